"""Import modules in a background thread at the lowest CPU priority.

A study's report needs matplotlib, pandas, markdown and wandb in the coordinator: about 3 s
of imports that used to start after the last run. While worker processes train, this
process only relays their progress, so the imports can run then, on whatever CPU the
workers leave idle (nice 19 and SCHED_IDLE: they take a core only when a worker does not). Only for
worker processes: a run trained in this process would share its interpreter with them.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import threading


def import_in_background(modules: tuple[str, ...]) -> threading.Thread:
    def run() -> None:
        with contextlib.suppress(AttributeError, OSError):  # Linux: a thread has its own nice
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 19)
        with contextlib.suppress(AttributeError, OSError):  # and its own scheduling class
            os.sched_setscheduler(threading.get_native_id(), os.SCHED_IDLE, os.sched_param(0))
        for name in modules:
            try:
                importlib.import_module(name)
            except Exception:  # the import that needs it reports the error
                return

    thread = threading.Thread(target=run, name="prefetch", daemon=True)
    thread.start()
    return thread
