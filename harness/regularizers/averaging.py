"""Weight averaging: EMA (Polyak & Juditsky 1992) and SWA (Izmailov et al. 2018, UAI)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, ClassVar, TypeVar

import torch
from pydantic import Field
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn, update_bn

from harness.errors import ConfigError
from harness.regularizers.base import (
    Params,
    Phase,
    PopulationSupport,
    Regularizer,
    Requires,
    RunContext,
    RunSettings,
    TrainState,
    register,
)


def has_batchnorm(model: nn.Module) -> bool:
    return any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())


def train_batches(data: Any, batch_size: int) -> Iterator[torch.Tensor]:
    """The whole training split, in order, as model inputs (a last batch of one is dropped:
    BatchNorm cannot take it)."""
    n = len(data.train.x)
    for i in range(0, n, batch_size):
        if n - i > 1 or i == 0:
            yield data.prepare(data.train.x[i:i + batch_size])


SPECTRAL_REFRESH_ITERATIONS = 10


@torch.no_grad()
def refresh_spectral_vectors(averaged: nn.Module, live: nn.Module,
                             iterations: int = SPECTRAL_REFRESH_ITERATIONS) -> None:
    """Make the averaged copy's spectral-norm vectors those of its own averaged weights.

    Averaging power-iteration vectors (u, v) like any buffer breaks their unit norm, so
    W / sigma is no longer normalized (sigma of 16 instead of 1). Start from the live model's
    unit vectors and run power iteration on the averaged weight, as torch does in training.
    """
    live_modules = dict(live.named_modules())
    for name, module in averaged.named_modules():
        sn = _spectral_parametrization(module)
        twin = _spectral_parametrization(live_modules.get(name))
        if sn is None or twin is None:
            continue
        sn._u.copy_(twin._u)
        sn._v.copy_(twin._v)
        weight = module.parametrizations.weight.original
        sn._power_method(sn._reshape_weight_to_matrix(weight), iterations)


def _spectral_parametrization(module: nn.Module | None) -> Any:
    plist = getattr(getattr(module, "parametrizations", None), "weight", None)
    if plist is None:
        return None
    return next((p for p in plist if hasattr(p, "_power_method")), None)


AverageParams = TypeVar("AverageParams", bound=Params)


class _Averaging(Regularizer[AverageParams]):
    """Keeps a torch.optim.swa_utils.AveragedModel; evaluation (per-epoch metrics, the final
    evaluation and the saved model.pt) uses the average once it holds at least one update."""

    phase = Phase.AVERAGE  # after_step after weight editors; before_step before weight decay

    def __init__(self, params: AverageParams, ctx: RunContext) -> None:
        super().__init__(params, ctx)
        self.averaged: AveragedModel | None = None
        self.pending: dict[str, Any] | None = None  # loaded state, applied once the model exists
        self.next_step = 0  # global step of the next optimizer step
        self.vectors_stale = False  # the average moved since its spectral vectors were set

    def make(self, model: nn.Module) -> AveragedModel:
        raise NotImplementedError

    def ensure(self, model: nn.Module) -> AveragedModel:
        if self.averaged is None:
            averaged = self.make(model)
            for p in averaged.parameters():
                p.grad = None
                p.requires_grad_(False)
            if self.pending is not None:
                averaged.load_state_dict(self.pending)
                self.pending = None
                self.vectors_stale = True
            self.averaged = averaged
        return self.averaged

    def n_averaged(self) -> int:
        return 0 if self.averaged is None else int(self.averaged.n_averaged)

    def eval_model(self, model: nn.Module) -> nn.Module:
        if self.averaged is None and self.pending is not None:
            self.ensure(model)
        if self.averaged is None or self.n_averaged() == 0:
            return model
        module = self.averaged.module
        if self.vectors_stale:
            refresh_spectral_vectors(module, model)
            self.vectors_stale = False
        return module

    def averaged_update(self, model: nn.Module) -> None:
        self.ensure(model).update_parameters(model)
        self.vectors_stale = True

    def state_dict(self) -> dict[str, Any]:
        avg = self.averaged.state_dict() if self.averaged is not None else self.pending
        return {"averaged": avg, "next_step": self.next_step}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if not state:
            return
        self.next_step = int(state.get("next_step", 0))
        if state.get("averaged") is not None:
            if self.averaged is not None:
                self.averaged.load_state_dict(state["averaged"])
            else:
                self.pending = state["averaged"]


class EMAParams(Params):
    decay: float = Field(0.999, gt=0.0, lt=1.0)
    use_buffers: bool = True  # average BatchNorm statistics too (else: copy the live ones)


@torch.no_grad()
def copy_counters(averaged: nn.Module, live: nn.Module) -> None:
    """Integer buffers (BatchNorm's num_batches_tracked) copied from the live model, as timm's
    ModelEmaV3 does: AveragedModel with use_buffers blends them like weights (30 against the
    live 40). Without use_buffers, AveragedModel already copies every buffer."""
    for mine, theirs in zip(averaged.buffers(), live.buffers(), strict=True):
        if not (mine.is_floating_point() or mine.is_complex()):
            mine.copy_(theirs.to(mine.device))


@register
class EMA(_Averaging[EMAParams]):
    """After every optimizer step: e <- decay * e + (1 - decay) * w, with e = w at the first
    step (torch's AveragedModel convention: the first update copies)."""

    name = "ema"
    population: ClassVar[PopulationSupport | None] = PopulationSupport()  # each member's average
    reference = "Polyak & Juditsky 1992; torch.optim.swa_utils.AveragedModel"
    applies_to = "all models"
    example: ClassVar[dict] = {"decay": 0.99}
    example_overrides: ClassVar[dict] = {}

    def make(self, model: nn.Module) -> AveragedModel:
        p = self.params
        return AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(p.decay),
                             use_buffers=p.use_buffers)

    @torch.no_grad()
    def after_step(self, state: TrainState) -> None:
        self.averaged_update(state.model)
        if self.params.use_buffers:
            copy_counters(self.ensure(state.model).module, state.model)
        self.next_step = state.step + 1


class SWAParams(Params):
    start_epoch: int | None = Field(None, ge=1)  # None: the last 25% of epochs
    lr: float | None = Field(None, gt=0.0)  # SWA lr from start_epoch on; None: keep the schedule
    anneal_epochs: int = Field(0, ge=0)  # linear from the schedule's lr to `lr` over N epochs


@register
class SWA(_Averaging[SWAParams]):
    """Equal-weight average of the weights at the end of every epoch from `start_epoch` on
    (taken after the epoch's last step, so that epoch's metrics already use it). From
    start_epoch the lr is `lr` (after an optional linear anneal), and after every update
    BatchNorm statistics are recomputed over the training split (update_bn)."""

    name = "swa"
    # its lr is the optimizer's, which the members share
    population: ClassVar[PopulationSupport | None] = PopulationSupport(same_for_all=True)
    # each evaluates its own average of the weights
    requires: ClassVar[Requires] = Requires(excludes=frozenset({"ema"}))
    reference = "Izmailov et al. 2018"
    applies_to = "all models (BatchNorm statistics recomputed)"
    example: ClassVar[dict] = {"start_epoch": 1, "lr": 1e-3}
    example_overrides: ClassVar[dict] = {}

    def __init__(self, params: SWAParams, ctx: RunContext) -> None:
        super().__init__(params, ctx)
        p = params
        self.start_epoch = p.start_epoch or max(1, int(ctx.epochs * 0.75) + 1)
        self.bn_fresh = True

    @classmethod
    def check(cls, params: SWAParams, config: RunSettings) -> None:
        p = params
        if p.start_epoch is not None and p.start_epoch > config.train.epochs:
            raise ConfigError(f"regularizers.swa.start_epoch = {p.start_epoch}: after the last "
                              f"epoch (train.epochs = {config.train.epochs})")
        if p.anneal_epochs and p.lr is None:
            raise ConfigError("regularizers.swa.anneal_epochs needs regularizers.swa.lr "
                              "(the lr to anneal to)")

    def make(self, model: nn.Module) -> AveragedModel:
        return AveragedModel(model, use_buffers=False)

    def epoch_of(self, step: int) -> int:
        return step // max(1, self.ctx.steps_per_epoch) + 1

    def before_step(self, state: TrainState) -> None:
        p = self.params
        if p.lr is None or self.epoch_of(self.next_step) < self.start_epoch:
            return
        alpha = 1.0
        if p.anneal_epochs:
            done = self.next_step - (self.start_epoch - 1) * self.ctx.steps_per_epoch + 1
            alpha = min(1.0, done / (p.anneal_epochs * self.ctx.steps_per_epoch))
        for g in state.optimizer.param_groups:
            swa_lr = p.lr * g.get("lr_scale", 1.0)
            g["lr"] = (1.0 - alpha) * g["lr"] + alpha * swa_lr

    @torch.no_grad()
    def after_step(self, state: TrainState) -> None:
        step = state.step
        self.next_step = step + 1
        last_of_epoch = (step + 1) % max(1, self.ctx.steps_per_epoch) == 0
        if last_of_epoch and self.epoch_of(step) >= self.start_epoch:
            self.averaged_update(state.model)
            self.bn_fresh = False
            self.recompute_bn()

    def recompute_bn(self) -> None:
        if self.bn_fresh or self.averaged is None:
            return
        module = self.averaged.module
        if has_batchnorm(module):
            update_bn(train_batches(self.ctx.data, self.ctx.config.train.batch_size), module)
        self.bn_fresh = True

    def end_training(self, state: TrainState) -> None:
        self.recompute_bn()

    def summary(self) -> dict[str, Any]:
        return {"swa_start_epoch": self.start_epoch, "swa_n_averaged": self.n_averaged()}
