"""Supervise local worker processes: relay their progress events until all have exited."""

from __future__ import annotations

import os
import queue as queue_mod
import signal
import time
from collections.abc import Callable
from typing import Any


def supervise(procs: list[Any], events: Any, handle: Callable[[tuple[Any, ...]], None],
              refresh: Callable[[], None]) -> None:
    """Start `procs`, pass each event to `handle` (calling `refresh` when idle), and on
    Ctrl-C stop them all. Returns when every process has exited (a dead worker's run comes
    back to the queue when its heartbeat stops)."""
    for p in procs:
        p.start()
    try:
        while True:
            if not any(p.is_alive() for p in procs):
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
