"""SIGTERM does what Ctrl-C does: `kill PID`, a batch system's time limit or a container's
stop interrupts a command as Ctrl-C would (workers stopped, runs recorded as interrupted and
released, the resume hint), raised as `Terminated`, a KeyboardInterrupt, so every place that
handles Ctrl-C handles it.

A command started in the background of a shell (`harness ablation x &`) has SIGINT ignored,
as the shell asks; its workers ignore it too (harness/study/processes.py), and SIGTERM is
the way to stop it.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where Ctrl-C would raise KeyboardInterrupt."""


def raise_terminated(signum: int, frame: Any) -> None:
    raise Terminated


@contextmanager
def terminate_as_interrupt() -> Iterator[None]:
    """While inside, SIGTERM raises Terminated; only where nobody else handles SIGTERM (the
    default handler) and in the main thread (the only one Python delivers signals to)."""
    if threading.current_thread() is not threading.main_thread() \
            or signal.getsignal(signal.SIGTERM) != signal.SIG_DFL:
        yield
        return
    signal.signal(signal.SIGTERM, raise_terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


def exit_code(err: KeyboardInterrupt) -> int:
    """The shell's convention: 128 + the signal's number."""
    return 128 + (signal.SIGTERM if isinstance(err, Terminated) else signal.SIGINT)
