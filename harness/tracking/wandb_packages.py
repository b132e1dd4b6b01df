"""The installed packages W&B records for each run, read once per process."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

_installed: list[Callable[[], Iterator[Any]]] = []  # the wrapper put in place, once


def list_packages_once(now: bool = False) -> None:
    """Every wandb.init lists the installed packages for the run's requirements file,
    reading each package's metadata (about 0.4 s of CPU a run here). The packages of a
    process do not change between its runs (a worker trains many, a population several at
    once), so the list is read on the first init (`now`: at once, as the worker server
    does for the workers it forks) and handed out again after: same file."""
    try:
        import wandb.util
    except ImportError:
        return
    working_set = getattr(wandb.util, "working_set", None)
    if working_set is None or working_set in _installed:
        return
    packages: list[Any] = []

    def read_once() -> Iterator[Any]:
        if not packages:
            packages.extend(working_set())
        return iter(packages)

    _installed.append(read_once)
    wandb.util.working_set = read_once
    if now:
        read_once()
