"""Supervise local worker processes: relay their progress events until all have exited.

The workers are forked by a worker server that is its own Python process
(harness/study/worker_server.py): it imports torch, wandb and the training code once, while
the coordinator reads and plans the study, and never runs the caller's `__main__` (so a
script or a notebook cell without an `if __name__ == "__main__":` guard starts its workers
like the CLI does). Events come back as JSON lines on the server's standard output.
"""

from __future__ import annotations

import atexit
import json
import multiprocessing as mp
import os
import queue as queue_mod
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

SERVER_CODE = ("import json, sys; sys.path[:] = json.loads(sys.argv[1]); "
               "from harness.study.worker_server import main; main()")
GONE = ("server-gone",)  # the channel's end: the server exited


def worker_context() -> Any:
    """multiprocessing for the dry run's side-by-side probes (a CLI-only path): a forkserver
    where the OS has it, else spawn."""
    if "forkserver" not in mp.get_all_start_methods():
        return mp.get_context("spawn")
    ctx = mp.get_context("forkserver")
    ctx.set_forkserver_preload(["harness.study.worker_preload"])
    return ctx


class WorkerServer:
    """One worker server process and the thread that reads its events."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", SERVER_CODE, json.dumps(sys.path)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, close_fds=True)
        self.events: queue_mod.Queue[tuple[Any, ...]] = queue_mod.Queue()
        self.batches = 0
        threading.Thread(target=self._read, daemon=True, name="worker-events").start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            try:
                self.events.put(tuple(json.loads(line)))
            except ValueError:
                continue
        self.events.put(GONE)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def start(self, target: str, options: list[dict[str, Any]]) -> Batch:
        """Fork one worker per options mapping, each running `target(options, emit, index)`
        with the coordinator's environment and SIGINT disposition as they are now."""
        self.batches += 1
        sigint = "ignore" if signal.getsignal(signal.SIGINT) == signal.SIG_IGN else "handle"
        line = json.dumps({"batch": self.batches, "target": target, "environ": dict(os.environ),
                           "sigint": sigint, "workers": [{"index": i, "options": o}
                                                         for i, o in enumerate(options)]},
                          default=str)
        assert self.proc.stdin is not None
        self.proc.stdin.write(line.encode() + b"\n")
        self.proc.stdin.flush()
        return Batch(self, self.batches, len(options))

    def close(self) -> None:
        """End of input: the server exits once its workers have (any still running are
        stopped as on Ctrl-C). One that never started a worker (a refused study) need not
        finish its imports: it is killed."""
        if not self.batches and self.alive():
            self.proc.kill()
        try:
            if self.proc.stdin is not None:
                self.proc.stdin.close()
        except OSError:
            pass


_server: WorkerServer | None = None


def worker_server() -> WorkerServer:
    """The warm server (started by warm_worker_server), or a new one."""
    global _server
    if _server is None or not _server.alive():
        _server = WorkerServer()
        atexit.register(stop_worker_server)
    return _server


def warm_worker_server(workers: int | None = None) -> None:
    """Start the worker server now, so its imports overlap the coordinator's own imports and
    planning; not where one worker (run in this process) is all there will be."""
    if (workers or os.cpu_count() or 1) > 1:
        worker_server()


def stop_worker_server() -> None:
    """At exit: a server still importing would otherwise outlive a refused study by seconds,
    holding the caller's stdout/stderr open (a pipe reader waits for it)."""
    global _server
    if _server is not None:
        _server.close()
        _server = None


@dataclass
class Batch:
    """The workers of one `WorkerServer.start`: their pids and exit codes as reported."""

    server: WorkerServer
    number: int
    count: int
    pids: dict[int, int] = field(default_factory=dict)
    exits: dict[int, int] = field(default_factory=dict)

    def done(self) -> bool:
        return len(self.exits) >= self.count

    def next_event(self, timeout: float) -> tuple[Any, ...] | None:
        """The next event of a worker of this batch (pid and exit notes are kept here, not
        returned); None after `timeout` seconds without one."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                event = self.server.events.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue_mod.Empty:
                return None
            if event == GONE:  # the server died: its workers are gone or orphaned
                self.server.events.put(GONE)
                self.exits.update({i: -1 for i in range(self.count) if i not in self.exits})
                return None
            if event[0] != self.number:
                continue
            kind, index = event[1], event[2]
            if kind == "pid":
                self.pids[index] = event[3]
            elif kind == "exit":
                self.exits[index] = event[3]
            else:
                return event[1:]

    def signal_all(self, signum: int) -> None:
        for index, pid in self.pids.items():
            if index not in self.exits:
                try:
                    os.kill(pid, signum)
                except ProcessLookupError:
                    pass


def supervise(batch: Batch, handle: Callable[[tuple[Any, ...]], None],
              refresh: Callable[[], None]) -> None:
    """Pass each event of the batch's workers to `handle` (calling `refresh` when idle) until
    every worker has exited; on Ctrl-C (or SIGTERM, raised as KeyboardInterrupt) stop them
    all. A dead worker's run comes back to the queue when its heartbeat stops."""
    try:
        while not batch.done():
            event = batch.next_event(timeout=0.5)
            if event is None:
                refresh()
            else:
                handle(event)
    except KeyboardInterrupt:
        stop_workers(batch)
        raise


def stop_workers(batch: Batch, grace: float = 30.0) -> None:
    """Ask every worker to stop (SIGTERM, which they turn into an `interrupted` summary and a
    released queue entry; a Ctrl-C from the terminal has already reached them), give them
    `grace` seconds, then kill them."""
    batch.signal_all(signal.SIGTERM)
    deadline = time.monotonic() + grace
    while not batch.done() and time.monotonic() < deadline:
        batch.next_event(timeout=0.2)
    batch.signal_all(signal.SIGKILL)  # a worker ignores signals while it records itself


def interrupt_once(signum: int, frame: Any) -> None:
    """Signal handler for workers: the first SIGINT/SIGTERM raises KeyboardInterrupt (the
    run records itself as interrupted); later ones do nothing so that recording finishes.
    Not SIG_IGN: a second signal already delivered but not yet handled (Ctrl-C and the
    coordinator's SIGTERM together) would then raise "Signal 15 ignored due to race
    condition" inside that recording."""
    signal.signal(signal.SIGINT, _after_first)
    signal.signal(signal.SIGTERM, _after_first)
    raise KeyboardInterrupt


def _after_first(signum: int, frame: Any) -> None:
    """Later SIGINT/SIGTERM in a worker that is already stopping."""
