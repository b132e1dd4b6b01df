"""Which of pydantic's errors to show: the one a user most likely needs to fix first."""

from __future__ import annotations

from pydantic import ValidationError
from pydantic_core import ErrorDetails

# An unknown key is usually a typo that also causes the other errors (a missing field).
PRIORITY = {"extra_forbidden": 0, "missing": 2}


def first_error(err: ValidationError) -> ErrorDetails:
    return min(err.errors(), key=lambda e: PRIORITY.get(e["type"], 1))
