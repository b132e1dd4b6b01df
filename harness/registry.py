"""Name -> factory registries (timm/big_vision style): decorator, list, create.

A duplicate name raises at import time; an unknown name raises a ConfigError
that lists the valid names, so a typo in a config is one clear line. A registry
whose kind has a plug-in entry-point group (harness/plugins.py) loads that group
the first time a name is looked up, so plug-in names are valid (and listed) too.
"""

from __future__ import annotations

import difflib
import fnmatch
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from harness.errors import ConfigError

T = TypeVar("T")


class Registry(Generic[T]):
    """A named collection of factories (classes or functions)."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, T] = {}
        self._discovered = False

    def _discover(self) -> None:
        """Load installed plug-ins of this kind once (not at import, which stays cheap)."""
        if self._discovered:
            return
        self._discovered = True
        from harness.plugins import GROUPS, load_entry_points

        if self.kind in GROUPS:
            load_entry_points(self.kind)

    def register(self, name: str) -> Callable[[T], T]:
        def decorator(obj: T) -> T:
            if name in self._entries:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            self._entries[name] = obj
            return obj

        return decorator

    def get(self, name: str) -> T:
        self._discover()
        if name not in self._entries:
            raise ConfigError(self.unknown_message(name))
        return self._entries[name]

    def unknown_message(self, name: str) -> str:
        """Did-you-mean over every name (plug-ins too), plus any plug-in that failed to load."""
        from harness.plugins import GROUPS, failed_plugins_note

        note = failed_plugins_note(self.kind) if self.kind in GROUPS else ""
        return unknown_name_message(self.kind, name, self.names()) + note

    def names(self, pattern: str = "*") -> list[str]:
        self._discover()
        return sorted(n for n in self._entries if fnmatch.fnmatch(n, pattern))

    def __contains__(self, name: object) -> bool:
        self._discover()
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def items(self) -> list[tuple[str, T]]:
        return [(n, self._entries[n]) for n in self.names()]


def unknown_name_message(kind: str, name: str, valid: list[str]) -> str:
    close = difflib.get_close_matches(str(name), valid, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return f"unknown {kind} {name!r}{hint}; valid: {', '.join(valid)}"
