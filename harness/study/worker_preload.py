"""Imported once by the worker server (multiprocessing's forkserver) before it forks workers.

Each spawned worker used to import torch, wandb and the training code itself: about 6 s of
CPU per worker on a 2-core machine, paid again by every worker. The server pays it once,
while the coordinator plans the study, and each worker starts as a fork of it. (A run no
longer imports torch._dynamo, 2 s more: harness/train/optim.py and `flop_counter` in
harness/train/analysis.py.) Only imports live here; a missing optional package is skipped
(the worker then imports what it needs as before)."""

from __future__ import annotations

import importlib

WARM_MODULES = (
    "torch",
    "harness.study.worker",
    "harness.study.queue",  # optuna and SQLAlchemy
    "harness.train.loop",
    "wandb",
)

for _name in WARM_MODULES:
    try:
        importlib.import_module(_name)
    except ImportError:
        pass

try:  # the package list each W&B run records, read once for every worker (wandb_packages)
    from harness.tracking.wandb_packages import list_packages_once

    list_packages_once(now=True)
except ImportError:
    pass
