"""Early stopping. Prechelt 1998, "Early Stopping - But When?", Tricks of the Trade."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

import torch
from pydantic import Field
from torch import nn

from harness.errors import ConfigError
from harness.regularizers.base import (
    Params,
    PopulationSupport,
    Regularizer,
    RunContext,
    RunSettings,
    TrainState,
    register,
)


class EarlyStoppingParams(Params):
    patience: int = Field(10, ge=1)  # epochs without improvement before stopping
    min_delta: float = Field(0.0, ge=0.0)  # improvement must be larger than this
    monitor: Literal["val_loss", "val_acc"] = "val_loss"
    restore_best: bool = True


def cpu_state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}


@register
class EarlyStopping(Regularizer[EarlyStoppingParams]):
    """Stops when `monitor` has not improved by more than `min_delta` for `patience` epochs
    and (restore_best) puts back the weights of the best epoch at the end of training, so the
    final evaluation and the saved model are those weights.

    It watches the metrics of the evaluated model (the EMA/SWA average when one is on, passed
    to its hooks as `evaluated`) and saves and restores both it and the live model.
    """

    name = "early_stopping"
    population: ClassVar[PopulationSupport | None] = PopulationSupport()  # per member
    reference = "Prechelt 1998"
    applies_to = "all models (needs a validation split)"
    example: ClassVar[dict] = {"patience": 1}
    example_overrides: ClassVar[dict] = {}

    @classmethod
    def check(cls, params: EarlyStoppingParams, config: RunSettings) -> None:
        if not config.data.has_validation:
            raise ConfigError("regularizers.early_stopping: needs a validation split to watch; "
                              "data.val_fraction is 0 (set it above 0, e.g. 0.1)")

    def __init__(self, params: EarlyStoppingParams, ctx: RunContext) -> None:
        super().__init__(params, ctx)
        self.best: float | None = None
        self.best_epoch: int | None = None
        self.bad_epochs = 0
        self.stop_epoch: int | None = None
        self.best_state: dict[str, dict[str, torch.Tensor] | None] | None = None

    def improved(self, value: float) -> bool:
        p = self.params
        if self.best is None:
            return True
        if p.monitor == "val_loss":
            return value < self.best - p.min_delta
        return value > self.best + p.min_delta

    def end_epoch(self, state: TrainState) -> bool:
        p, epoch, model, evaluated = self.params, state.epoch, state.model, state.evaluated
        value = state.metrics.get(p.monitor)
        if value is None:
            raise ConfigError(f"regularizers.early_stopping: the epoch metrics have no "
                              f"{p.monitor!r} (is there a validation split?)")
        value = float(value)
        if self.improved(value):
            self.best, self.best_epoch, self.bad_epochs = value, epoch, 0
            if p.restore_best:  # both weights: final evaluation and model.pt are the best's
                self.best_state = {"live": cpu_state(model), "evaluated":
                                   cpu_state(evaluated)
                                   if evaluated is not None and evaluated is not model
                                   else None}
            return False
        self.bad_epochs += 1
        if self.bad_epochs >= p.patience:
            self.stop_epoch = epoch
            return True
        return False

    @torch.no_grad()
    def end_training(self, state: TrainState) -> None:
        model, evaluated = state.model, state.evaluated
        best = self.best_state
        if not self.params.restore_best or best is None or best["live"] is None:
            return
        model.load_state_dict(best["live"])
        if best["evaluated"] is not None and evaluated is not None and evaluated is not model:
            evaluated.load_state_dict(best["evaluated"])

    def summary(self) -> dict[str, Any]:
        return {"stop_epoch": self.stop_epoch, "es_best_epoch": self.best_epoch,
                f"es_best_{self.params.monitor}": self.best}

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best, "best_epoch": self.best_epoch, "bad_epochs": self.bad_epochs,
                "stop_epoch": self.stop_epoch, "best_state": self.best_state}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if not state:
            return
        self.best = state["best"]
        self.best_epoch = state["best_epoch"]
        self.bad_epochs = state["bad_epochs"]
        self.stop_epoch = state["stop_epoch"]
        self.best_state = state["best_state"]
