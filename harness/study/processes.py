"""Supervise local worker processes: relay their progress events until all have exited."""

from __future__ import annotations

import os
import queue as queue_mod
import signal
import time
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
        stop_workers(procs)
        raise
    finally:
        for p in procs:
            p.join(timeout=10)


def stop_workers(procs: list[Any], grace: float = 30.0) -> None:
    """Ctrl-C: ask every worker to stop (SIGINT, which they turn into an `interrupted`
    summary and a released queue entry), give them `grace` seconds, then terminate."""
    for p in procs:
        if p.is_alive() and p.pid:
            try:
                os.kill(p.pid, signal.SIGINT)
            except ProcessLookupError:
                pass
    deadline = time.monotonic() + grace
    for p in procs:
        p.join(timeout=max(0.0, deadline - time.monotonic()))
    for p in procs:
        if p.is_alive():
            p.terminate()


def interrupt_once(signum: int, frame: Any) -> None:
    """Signal handler for workers: the first SIGINT/SIGTERM raises KeyboardInterrupt (the
    run records itself as interrupted); later ones are ignored so that recording finishes."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    raise KeyboardInterrupt


def install_worker_signals() -> None:
    signal.signal(signal.SIGINT, interrupt_once)
    signal.signal(signal.SIGTERM, interrupt_once)
