"""Supervise local worker processes: relay their progress events until all have exited."""

from __future__ import annotations

import atexit
import multiprocessing as mp
import os
import queue as queue_mod
import signal
import time
from collections.abc import Callable
from typing import Any

PRELOAD = "harness.study.worker_preload"


def worker_context() -> Any:
    """Where the OS has it, a forkserver that imported torch, wandb and the training code
    once (harness.study.worker_preload) and forks each worker from there; else spawn.
    Both start workers without the coordinator's threads or open connections."""
    if "forkserver" not in mp.get_all_start_methods():
        return mp.get_context("spawn")
    ctx = mp.get_context("forkserver")
    ctx.set_forkserver_preload([PRELOAD])
    return ctx


def warm_worker_server(workers: int | None = None) -> None:
    """Start the worker server now, so its imports overlap the coordinator's own imports and
    planning; not where one worker (run in this process) is all there will be."""
    if (workers or os.cpu_count() or 1) <= 1:
        return
    ctx = worker_context()
    if ctx.get_start_method() == "forkserver":
        from multiprocessing import forkserver

        forkserver.ensure_running()
        atexit.register(stop_worker_server)


def stop_worker_server() -> None:
    """At exit: a server still importing would otherwise outlive a refused study by seconds,
    holding the caller's stdout/stderr open (a pipe reader waits for it)."""
    from multiprocessing import forkserver

    pid = getattr(getattr(forkserver, "_forkserver", None), "_forkserver_pid", None)
    if pid:
        try:
            os.kill(pid, signal.SIGTERM)
        except (ProcessLookupError, PermissionError):
            pass


def make_workers(target: Callable[..., None], args: Callable[[int], tuple[Any, ...]],
                 count: int) -> tuple[list[Any], Any]:
    """`count` worker processes running `target(*args(i))`, and the event queue they share.
    Each first takes the coordinator's environment as it is now (a forkserver started
    earlier would otherwise hand out the environment of its own start)."""
    ctx = worker_context()
    events = ctx.Queue()
    environ = dict(os.environ)
    procs = [ctx.Process(target=run_with_environment, daemon=False,
                         args=(environ, events, target, *args(i), events, i))
             for i in range(count)]
    return procs, events


def run_with_environment(environ: dict[str, str], events: Any, target: Callable[..., None],
                         *args: Any) -> None:
    os.environ.clear()
    os.environ.update(environ)
    try:
        target(*args)
    finally:
        # do not wait at exit for the queue's feeder thread: after a Ctrl-C the coordinator
        # may have stopped reading, and the worker would hang in its exit handlers
        events.cancel_join_thread()


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
            p.kill()  # SIGKILL: a worker ignores SIGTERM while it records its interruption


def interrupt_once(signum: int, frame: Any) -> None:
    """Signal handler for workers: the first SIGINT/SIGTERM raises KeyboardInterrupt (the
    run records itself as interrupted); later ones are ignored so that recording finishes."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    raise KeyboardInterrupt


def install_worker_signals() -> None:
    signal.signal(signal.SIGINT, interrupt_once)
    signal.signal(signal.SIGTERM, interrupt_once)
