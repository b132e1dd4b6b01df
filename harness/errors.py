"""User-facing errors: one clear line, exit code 2, nothing written."""

from __future__ import annotations


class HarnessError(Exception):
    """An error the user can fix (bad config, missing file); shown as one line, exit code 2."""

    exit_code = 2


class ConfigError(HarnessError):
    """A config value or combination that is not allowed."""


class DataError(HarnessError):
    """A dataset that cannot be found or read."""


def one_line(err: BaseException | str, limit: int = 500) -> str:
    """An error as one bounded line: a message can quote megabytes of a bad file."""
    text = " ".join(str(err).split()) or type(err).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."
