"""The regularizer protocol: a base class whose hook methods default to no-ops.

The training loop calls every hook of every active regularizer at its named
point (model build, batch transform, loss, after backward, before/after the
optimizer step, end of epoch, end of training), in the order of their `phase`.
Build hooks get what they build (the model spec, the module); every training hook
gets the run's `TrainState` (model, optimizer, epoch, step, metrics). The loop never
looks a regularizer up by name, so adding one is one file, a registry entry and its
test. What a regularizer needs (model, data kind, regularizers it excludes) is
declared in `requires`, and whether it can train inside a population in
`population`, not coded.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from enum import IntEnum
from pathlib import Path
from typing import Any, ClassVar, Generic, Protocol, TypeVar, get_args, get_origin

import torch
from pydantic import BaseModel, ConfigDict
from torch import nn

from harness.registry import Registry


class Params(BaseModel):
    """Base for each regularizer's validated parameters (unknown keys are errors)."""

    model_config = ConfigDict(extra="forbid")


P = TypeVar("P", bound=Params)


@dataclass(frozen=True)
class Requires:
    """What a regularizer needs, declared on the class and checked in one place
    (`check_requires` in harness/regularizers/requires.py) when the config is validated.

    - `model`: a structural fact the model must declare in its ModelInfo ("residual",
      "language_model"); None: any model;
    - `data`: the data kinds it is defined for ("image", "signal", "text"); empty: all;
    - `excludes`: regularizers it cannot be combined with;
    - `options`: param -> the model option it sets (`configure_model`), so a model that
      does not take the option is refused naming that param.
    """

    model: str | None = None
    data: frozenset[str] = frozenset()
    excludes: frozenset[str] = frozenset()
    options: dict[str, str] = field(default_factory=dict)


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


class TrainSettings(Protocol):
    """The train section as regularizers read it."""

    @property
    def epochs(self) -> int: ...
    @property
    def batch_size(self) -> int: ...


class DataSettings(Protocol):
    @property
    def name(self) -> str: ...
    @property
    def val_fraction(self) -> float: ...
    @property
    def has_validation(self) -> bool: ...


class ModelSettings(Protocol):
    @property
    def name(self) -> str: ...
    @property
    def depth(self) -> int | None: ...
    @property
    def width(self) -> int | None: ...
    @property
    def patch_size(self) -> int | None: ...
    @property
    def heads(self) -> int | None: ...


class RunSettings(Protocol):
    """The part of a run's config that regularizers read (harness.config.RunConfig is one;
    this package sits below harness.config, so it names only what it uses)."""

    @property
    def study(self) -> str: ...
    @property
    def train(self) -> TrainSettings: ...
    @property
    def data(self) -> DataSettings: ...
    @property
    def model(self) -> ModelSettings: ...
    @property
    def regularizers(self) -> dict[str, dict[str, Any]]: ...


@dataclass
class RunContext:
    """Facts about one run that a regularizer may need from its construction on; filled by
    the training code before anything is built."""

    config: RunSettings
    data: Any  # DataBundle (or a stand-in with name, kind, train/val/test splits, normalize)
    device: torch.device
    epochs: int
    steps_per_epoch: int
    num_classes: int
    results_dir: Path = Path("results")  # the results folder (relative run paths start here)
    data_dir: Path | None = None
    # rebuilds a finished run's model (its folder's config.json and model.pt) on this run's
    # data and device, without the named regularizer; the training code fills it in, so a
    # plug-in that needs another run's model (a distillation teacher) never imports it
    load_run_model: Callable[[Path, str], nn.Module] | None = None


@dataclass
class TrainState:
    """What every training hook receives, as Lightning passes its trainer and module: the
    run's facts and where training stands. One object per run, updated by the loop; a
    hook reads the fields of its point (documented on each hook) and never keeps the state.

    In a population (several runs trained as one vectorized model) each member has its
    own state: `model` is that member's own module (its parameters alias the population's
    stacked tensors, gradients included) and `optimizer` a view of its parameters."""

    run: RunContext
    model: nn.Module
    optimizer: Any = None  # torch.optim.Optimizer or a member's view (its `param_groups`)
    epoch: int = 0  # 1-based, the epoch being trained (or just evaluated)
    step: int = 0  # 0-based global step: the one being taken (after_step: just taken)
    metrics: dict[str, Any] = field(default_factory=dict)  # end_epoch: the epoch's row
    evaluated: nn.Module | None = None  # end_epoch / end_training: the model `metrics` came from


@dataclass(frozen=True)
class PopulationSupport:
    """A regularizer's declaration that it can train inside a population (several runs
    trained as one vectorized model; docs/architecture.md, "Population training").

    Each member keeps its own instance (its own params and state), and the loop calls its
    hooks once per member with that member's TrainState: `state.model` is the member's own
    module, whose parameters (and their gradients) alias the population's stacked tensors,
    and torch's global generator is the member's own while its hooks run. Declaring support
    promises that the hooks reach the model only that way (parameters, gradients, buffers,
    submodules, `state_dict`, in place) and do nothing else a member cannot do alone. Not
    possible inside a population: a `loss` hook (a penalty on a member's parameters would not
    reach the population's gradients) and `on_model` surgery.

    `same_for_all`: the hooks change what the members share (the optimizer's lr, as SWA's
    lr does), so all members of a population have it, with equal params. Otherwise members
    may differ in whether they have it and in every param.
    """

    same_for_all: bool = False
@dataclass(frozen=True)
class UpstreamNeed:
    """A run a regularizer needs finished before its own run starts (a distillation teacher).
    The planner (harness/study/upstream.py) plans and trains it first: a study's upstream run
    named `name`, or `overrides` on this run's config (its regularizers and fine-tuning keys
    left out); then it hands the run's folder to the regularizer's `linked`."""

    param: str  # the param that holds the reference, e.g. "teacher"
    key: str  # what names it, for messages: "teacher.upstream", "teacher.config"
    variant: str  # the upstream run's variant name in the study folder
    name: str | None = None  # a study's upstream run
    overrides: dict[str, Any] | None = None  # on this run's config


class Phase(IntEnum):
    """Where a regularizer runs among the others: at every hook, lower phases first (ties
    keep the config's order). The order matters only where two plug-ins use one hook."""

    REPLACE_LOSS = 0  # loss: replaces it (distillation), so penalties add to the new loss
    AUGMENT = 10  # transform_batch: edits the inputs before they are mixed
    REWIRE = 40  # on_model: swaps modules that later surgery wraps (dropconnect, then SN)
    DEFAULT = 50  # most plug-ins: mixing, penalties, clipping, early stopping
    SMOOTH_TARGETS = 80  # transform_batch: smooths targets, also the soft ones mixing made
    AVERAGE = 90  # after_step after weight editors; its before_step (SWA lr) before decay
    DECAY = 95  # before_step: last, once the step's lr is final


class Regularizer(Generic[P]):
    """Base class: override only the hooks you need. Disabled means not constructed.

    Subclass as `class Mine(Regularizer[MineParams])`: `self.params` is then a
    `MineParams`, and `Mine.Params` is set from the type argument (what the config is
    validated with)."""

    name: ClassVar[str] = ""
    Params: ClassVar[type[Params]] = Params
    phase: ClassVar[Phase] = Phase.DEFAULT
    requires: ClassVar[Requires] = Requires()  # checked once, in harness/regularizers/requires.py
    reference: ClassVar[str] = ""  # the paper or doc it follows (docs/regularizers.md table)
    applies_to: ClassVar[str] = "all models"
    # For the registry-wide end-to-end test: params that turn it on, and config overrides
    # (dotted keys) giving it a model/dataset it fits, e.g. {"model.name": "resnet"}.
    example: ClassVar[dict[str, Any]] = {}
    example_overrides: ClassVar[dict[str, Any]] = {}
    # None: trains alone (a population of one); see PopulationSupport.
    population: ClassVar[PopulationSupport | None] = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "Params" in cls.__dict__:
            return  # declared explicitly
        for base in getattr(cls, "__orig_bases__", ()):
            origin, args = get_origin(base), get_args(base)
            if (isinstance(origin, type) and issubclass(origin, Regularizer) and args
                    and isinstance(args[0], type) and issubclass(args[0], Params)):
                cls.Params = args[0]

    def __init__(self, params: P, ctx: RunContext) -> None:
        self.params = params
        self.ctx = ctx

    @classmethod
    def check(cls, params: P, config: RunSettings) -> None:
        """Raise ConfigError for what `requires` cannot say (a value against the config)."""

    @classmethod
    def upstream(cls, params: P) -> list[UpstreamNeed]:
        """The runs this one needs trained first (see UpstreamNeed); a regularizer that
        declares any also says, in `linked`, how its params name the finished run."""
        return []

    @classmethod
    def linked(cls, raw: dict[str, Any], need: UpstreamNeed, folder: str) -> dict[str, Any]:
        """Its raw params once `need` is the finished run `folder` (relative to the results
        folder): asked only of a regularizer whose `upstream` returned `need`."""
        raise NotImplementedError(f"{cls.name} declares upstream runs but not how to link them")

    # --- build hooks: they make the model, before any training state exists ------------
    def configure_model(self, spec: ModelSpec) -> None:
        """Edit model kwargs before the build (dropout rate, drop_path, norm, tying).

        Reads only `self.params`: it also runs when the config is checked, to refuse a
        model that does not take the option before anything trains."""

    def on_model(self, model: nn.Module) -> nn.Module:
        """Module surgery after the build (DropConnect, spectral norm)."""
        return model

    # --- training hooks, in the order the loop calls them; each gets the TrainState -----
    def transform_batch(self, state: TrainState, batch: Batch) -> Batch:
        """Augmentation, mixing, label smoothing (training batches only)."""
        return batch

    def loss(self, state: TrainState, loss: torch.Tensor, batch: Batch,
             logits: torch.Tensor) -> torch.Tensor:
        """Add a penalty or replace the loss (L1, distillation); `state.model` is the model."""
        return loss

    def after_backward(self, state: TrainState) -> None:
        """Gradient surgery on `state.model`'s gradients (clipping)."""

    def before_step(self, state: TrainState) -> None:
        """Right before the optimizer step, after the lr of `state.step` is set in
        `state.optimizer.param_groups` (weight decay, SWA's lr)."""

    def after_step(self, state: TrainState) -> None:
        """Right after optimizer step `state.step` (EMA, SWA)."""

    def end_epoch(self, state: TrainState) -> bool:
        """Return True to stop training (early stopping). `state.metrics` (the epoch's row)
        were computed on `state.evaluated` (the EMA/SWA average when one is on, else
        `state.model` itself)."""
        return False

    def end_training(self, state: TrainState) -> None:
        """After the last epoch (restore best weights, recompute BN statistics); the final
        evaluation follows, on `state.evaluated`."""

    def eval_model(self, model: nn.Module) -> nn.Module:
        """Which weights to evaluate (EMA/SWA averages): a question, not a point in time."""
        return model

    def summary(self) -> dict[str, Any]:
        """Extra fields for the run summary (e.g. early stopping's stop epoch)."""
        return {}

    def state_dict(self) -> dict[str, Any]:
        """State to checkpoint so an interrupted run resumes exactly (tensors, numbers)."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what `state_dict` returned."""


REGULARIZERS: Registry[type[Regularizer[Any]]] = Registry("regularizer")
R = TypeVar("R", bound=type[Regularizer[Any]])


def reads_other_runs(reg_cls: type[Regularizer[Any]]) -> bool:
    """It declares upstream runs, so its runs read another run's folder (a teacher's
    weights): a probe trained where that folder is not must leave it out."""
    below_base = reg_cls.__mro__[:reg_cls.__mro__.index(Regularizer)]
    return any("upstream" in vars(c) for c in below_base)


def register(cls: R) -> R:
    """Class decorator: registers under `cls.name`."""
    REGULARIZERS.register(cls.name)(cls)
    return cls
