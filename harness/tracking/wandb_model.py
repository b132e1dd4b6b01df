"""A run's weights as W&B model artifacts, named and aliased as W&B's own integrations do
(Lightning's WandbLogger(log_model=True)): artifact `model-<W&B run id>` of type `model`,
one version holding the best-val epoch's evaluated weights (alias `best`) and one holding
the final weights the run saved as model.pt (aliases `latest`, `final`); one version with
all three aliases when they are the same weights (the last epoch was the best, or early
stopping restored it). Each file is `model.pt`, a state dict for `torch.load`.

The best epoch is chosen by the loop's rule (`train.select`, ties to the lower val_loss,
then the earlier epoch); its weights are copied to the CPU when it is seen, through the
loop's `watch` handle, so only a run that logs models pays for the copy. A resumed run
cannot copy an epoch trained before the interruption: when that epoch stays the best, only
the final weights are logged.
"""

from __future__ import annotations

import logging
import math
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

MODEL_FILE = "model.pt"
Weights = Callable[[], Mapping[str, Any]]  # the evaluated model's state dict, now


def rank(row: Mapping[str, Any], select: str) -> tuple[float, ...] | None:
    """A row's place by `select` (larger is better), as train.results.best_row orders rows:
    a loss by (value, epoch) ascending; an accuracy by value, then lower val_loss, then the
    earlier epoch."""
    value, epoch = row.get(select), row.get("epoch")
    if not isinstance(value, (int, float)) or not math.isfinite(value) or epoch is None:
        return None
    if select.endswith("loss"):
        return (-float(value), -float(epoch))
    return (float(value), -float(row.get("val_loss", 0.0)), -float(epoch))


class BestWeights:
    """The best epoch so far and, when it was trained in this process, a CPU copy of its
    evaluated weights."""

    def __init__(self, select: str) -> None:
        self.select = select
        self.weights: Weights | None = None
        self.best: tuple[float, ...] | None = None
        self.epoch: int | None = None
        self.state: dict[str, Any] | None = None

    def see(self, row: Mapping[str, Any]) -> None:
        key = rank(row, self.select)
        if key is None or (self.best is not None and key <= self.best):
            return
        self.best, self.epoch = key, int(row["epoch"])
        self.state = cpu_copy(self.weights()) if self.weights is not None else None


def cpu_copy(state: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v.detach().to("cpu", copy=True) for k, v in state.items()}


def same_weights(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    import torch

    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def log_model_artifacts(run: Any, run_folder: Path, best: BestWeights,
                        summary: Mapping[str, Any]) -> list[list[str]]:
    """Log the run's model artifact versions (see the module doc) through `run`, a
    WandbRun; the aliases of each version logged, in order. A finished run only."""
    import torch

    final = run_folder / MODEL_FILE
    if not final.is_file():
        return []
    name = f"model-{run.info.get('id') or run_folder.name}"
    common = {"run_id": summary.get("run_id"), "select": best.select,
              "best_epoch": summary.get("best_epoch")}
    aliases = ["latest", "final"]
    logged = []
    if best.state is not None and best.epoch == summary.get("best_epoch"):
        if same_weights(best.state, torch.load(final, map_location="cpu", weights_only=True)):
            aliases.append("best")
        else:
            with tempfile.TemporaryDirectory() as tmp:  # W&B copies it when added
                path = Path(tmp) / MODEL_FILE
                torch.save(best.state, path)
                if run.log_artifact(name, "model", [(path, MODEL_FILE)], ["best"],
                                    {**common, "epoch": best.epoch, "weights": "best"}):
                    logged.append(["best"])
    if run.log_artifact(name, "model", [(final, MODEL_FILE)], aliases,
                        {**common, "epoch": summary.get("epochs_run"), "weights": "final"}):
        logged.append(aliases)
    return logged
