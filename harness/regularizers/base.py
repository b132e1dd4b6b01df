"""The regularizer protocol: a base class whose hook methods default to no-ops.

The training loop calls every hook of every active regularizer at its named
point (model build, optimizer param groups, batch transform, loss, after
backward, before/after the optimizer step, end of epoch, end of training,
evaluation weights). It never looks a regularizer up by name, so adding one
is one file, a registry entry and its test.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from pydantic import BaseModel, ConfigDict
from torch import nn

from harness.registry import Registry


class Params(BaseModel):
    """Base for each regularizer's validated parameters (unknown keys are errors)."""

    model_config = ConfigDict(extra="forbid")


@dataclass
class ModelSpec:
    """What a model is built from; `configure_model` hooks edit `kwargs` before the build."""

    name: str
    kwargs: dict[str, Any]


@dataclass
class Batch:
    """One training batch. `y` stays the hard labels; `targets` is what the loss sees
    (hard labels, or soft (N, K) probabilities after mixup or label smoothing)."""

    x: torch.Tensor
    y: torch.Tensor
    targets: torch.Tensor


@dataclass
class RunContext:
    """Facts about the run that hooks may need; filled by the loop before building."""

    config: Any  # RunConfig
    data: Any  # DataBundle
    device: torch.device
    epochs: int
    steps_per_epoch: int
    num_classes: int
    extra: dict[str, Any] = field(default_factory=dict)


class Regularizer:
    """Base class: override only the hooks you need. Disabled means not constructed."""

    name: ClassVar[str] = ""
    Params: ClassVar[type[Params]] = Params
    order: ClassVar[int] = 50  # lower runs first at every hook
    reference: ClassVar[str] = ""  # the paper or doc it follows (README table)
    applies_to: ClassVar[str] = "all models"
    # For the registry-wide end-to-end test: params that turn it on, and config overrides
    # (dotted keys) giving it a model/dataset it fits, e.g. {"model.name": "resnet"}.
    example: ClassVar[dict[str, Any]] = {}
    example_overrides: ClassVar[dict[str, Any]] = {}

    def __init__(self, params: Params, ctx: RunContext) -> None:
        self.params = params
        self.ctx = ctx

    @classmethod
    def check(cls, params: Params, config: Any) -> None:
        """Raise ConfigError if this regularizer cannot run with this config."""

    # --- hooks, in the order the loop calls them -----------------------------------
    def configure_model(self, spec: ModelSpec) -> None:
        """Edit model kwargs before the build (dropout rate, drop_path, norm, tying).

        Reads only `self.params`: it also runs when the config is checked, to refuse a
        model that does not take the option before anything trains."""

    def on_model(self, model: nn.Module) -> nn.Module:
        """Module surgery after the build (DropConnect, spectral norm)."""
        return model

    def param_groups(self, groups: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Split or annotate the optimizer's parameter groups."""
        return groups

    def transform_batch(self, batch: Batch) -> Batch:
        """Augmentation, mixup/cutmix, label smoothing (training batches only)."""
        return batch

    def loss(self, loss: torch.Tensor, batch: Batch, logits: torch.Tensor,
             model: nn.Module) -> torch.Tensor:
        """Add a penalty or replace the loss (L1, distillation)."""
        return loss

    def after_backward(self, model: nn.Module) -> None:
        """Gradient surgery (clipping)."""

    def before_step(self, optimizer: torch.optim.Optimizer, model: nn.Module) -> None:
        """Right before optimizer.step(), after the lr is set (weight decay)."""

    def after_step(self, model: nn.Module, step: int) -> None:
        """Right after optimizer.step() (EMA, SWA)."""

    def end_epoch(self, epoch: int, metrics: dict[str, float], model: nn.Module) -> bool:
        """Return True to stop training (early stopping)."""
        return False

    def end_training(self, model: nn.Module) -> None:
        """After the last epoch (restore best weights, recompute BN statistics)."""

    def eval_model(self, model: nn.Module) -> nn.Module:
        """Which weights to evaluate (EMA/SWA averages)."""
        return model

    def summary(self) -> dict[str, Any]:
        """Extra fields for the run summary (e.g. early stopping's stop epoch)."""
        return {}

    def state_dict(self) -> dict[str, Any]:
        """State to checkpoint so an interrupted run resumes exactly (tensors, numbers)."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what `state_dict` returned."""


REGULARIZERS: Registry[type[Regularizer]] = Registry("regularizer")


def register(cls: type[Regularizer]) -> type[Regularizer]:
    """Class decorator: registers under `cls.name`."""
    REGULARIZERS.register(cls.name)(cls)
    return cls
