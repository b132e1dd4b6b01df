"""Import modules in a background thread, so that the thread that needs them later finds them
imported.

A study's report needs matplotlib, pandas, markdown and wandb in the coordinator: about 3 s
of imports that used to start after the last run. The executor calls for them once fewer
runs are left than workers, so a core is free while the last runs train. The thread runs at
normal priority on purpose: the report waits on these imports (an import lock), and a
thread at idle priority would leave it waiting for as long as other processes keep the
cores busy.
"""

from __future__ import annotations

import importlib
import threading


def import_in_background(modules: tuple[str, ...]) -> threading.Thread:
    def run() -> None:
        for name in modules:
            try:
                importlib.import_module(name)
            except Exception:  # the import that needs it reports the error
                return

    thread = threading.Thread(target=run, name="prefetch", daemon=True)
    thread.start()
    return thread
