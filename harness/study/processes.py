"""Supervise local worker processes: relay their progress events until all have exited."""

from __future__ import annotations

import queue as queue_mod
from collections.abc import Callable
from typing import Any


def supervise(procs: list[Any], events: Any, handle: Callable[[tuple[Any, ...]], None],
              refresh: Callable[[], None],
              on_failed_exit: Callable[[Any], None] | None = None) -> None:
    """Start `procs`, pass each event to `handle` (calling `refresh` when idle), call
    `on_failed_exit(proc)` once for a process that died with a non-zero exit code, and on
    Ctrl-C terminate them all. Returns when every process has exited."""
    for p in procs:
        p.start()
    reported: set[int] = set()
    try:
        while True:
            alive = [p for p in procs if p.is_alive()]
            for p in procs:
                if on_failed_exit and p not in alive and p.pid not in reported:
                    reported.add(p.pid)
                    if p.exitcode:
                        on_failed_exit(p)
            if not alive:
                break
            try:
                handle(events.get(timeout=0.5))
            except queue_mod.Empty:
                refresh()
        while True:
            try:
                handle(events.get_nowait())
            except queue_mod.Empty:
                break
    except KeyboardInterrupt:
        for p in procs:
            p.terminate()
        raise
    finally:
        for p in procs:
            p.join(timeout=10)
