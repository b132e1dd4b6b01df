"""The worker server: a fresh Python (`python -c`, the coordinator's sys.path) that imports
torch, wandb and the training code once and forks each local worker from there.

Why its own process and not multiprocessing's forkserver or spawn: those re-import the
caller's `__main__` in every worker, so a script calling `harness.ablation(...)` without an
`if __name__ == "__main__":` guard ran itself again in each worker. This server never sees
the caller's main; a script and a notebook cell start the same workers as the CLI.

Wire protocol (harness/study/processes.py is the other end), JSON lines:

- standard input, one line per batch: {"batch", "target": "module:function", "environ",
  "sigint": "handle" | "ignore", "workers": [{"index", "options"}]}; end of input: exit once
  every worker has;
- standard output (the channel; anything a worker prints goes to standard error):
  [batch, "pid", index, pid], the worker's own events [batch, kind, index, ...], and
  [batch, "exit", index, exit code].
"""

from __future__ import annotations

import importlib
import json
import os
import select
import signal
import sys
from typing import Any

MAX_TEXT = 1000  # a string in an event is cut to this: one line stays one atomic pipe write


def send(channel: int, item: list[Any]) -> None:
    """One event as one write: lines under the pipe's atomic size never interleave between
    workers. A coordinator that has gone away is not the worker's problem."""
    cut = [x[:MAX_TEXT] if isinstance(x, str) else x for x in item]
    try:
        os.write(channel, (json.dumps(cut, default=str) + "\n").encode())
    except OSError:
        pass


def install_signals(sigint: str) -> None:
    """A worker's first SIGINT/SIGTERM records its run as interrupted (processes.py). A
    coordinator started with SIGINT ignored (in the background of a shell) passes that on:
    its workers ignore it too, and SIGTERM is what stops them."""
    from harness.study.processes import interrupt_once

    signal.signal(signal.SIGINT, interrupt_once if sigint == "handle" else signal.SIG_IGN)
    signal.signal(signal.SIGTERM, interrupt_once)


def run_worker(channel: int, batch: dict[str, Any], worker: dict[str, Any]) -> int:
    """In the forked child: the batch's environment and signals, then the target."""
    os.environ.clear()
    os.environ.update(batch["environ"])
    install_signals(batch.get("sigint", "handle"))
    module, _, name = batch["target"].partition(":")
    target = getattr(importlib.import_module(module), name)
    number, index = batch["batch"], worker["index"]
    try:
        target(worker["options"], lambda event: send(channel, [number, *event]), index)
    except SystemExit as stop:
        return stop.code if isinstance(stop.code, int) else 1
    except BaseException:  # the target reports its own errors; this is the last resort
        import traceback

        traceback.print_exc()
        return 1
    return 0


def fork_batch(channel: int, batch: dict[str, Any], children: dict[int, tuple[int, int]]) -> None:
    for worker in batch["workers"]:
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                code = run_worker(channel, batch, worker)
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(code)
        children[pid] = (batch["batch"], worker["index"])
        send(channel, [batch["batch"], "pid", worker["index"], pid])


def reap(channel: int, children: dict[int, tuple[int, int]], block: bool) -> None:
    while children:
        try:
            pid, status = os.waitpid(-1, 0 if block else os.WNOHANG)
        except ChildProcessError:
            children.clear()
            return
        if pid == 0:
            return
        if pid in children:
            number, index = children.pop(pid)
            send(channel, [number, "exit", index, os.waitstatus_to_exitcode(status)])


def serve(commands: int, channel: int) -> None:
    """Fork each batch as it arrives, report exits as they happen. End of input with workers
    still running means the coordinator is gone (killed, or failing): they are asked to
    stop as on Ctrl-C (SIGTERM: their runs are recorded as interrupted and released), and
    waited for."""
    children: dict[int, tuple[int, int]] = {}
    pending = b""
    while True:
        reap(channel, children, block=False)
        ready, _, _ = select.select([commands], [], [], 0.2)
        if not ready:
            continue
        chunk = os.read(commands, 65536)
        if not chunk:
            break
        pending += chunk
        while b"\n" in pending:
            line, pending = pending.split(b"\n", 1)
            if line.strip():
                fork_batch(channel, json.loads(line), children)
    reap(channel, children, block=False)
    for pid in children:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    reap(channel, children, block=True)


def main() -> None:
    # Ctrl-C reaches the whole foreground group: the workers act on it, the server only
    # waits for them; the coordinator ends it by closing its input.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    channel = os.dup(1)
    os.dup2(2, 1)  # a worker's prints go to standard error, never into the channel
    import harness.study.worker_preload  # noqa: F401  (once, before any fork)

    serve(0, channel)


if __name__ == "__main__":
    main()
