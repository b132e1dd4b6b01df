"""Typed run configuration: defaults < YAML file < CLI flags; an unknown key is an error.

Every section is a strict pydantic model, so a typo or an out-of-range value is
caught before any compute is spent, and reported as one line naming the file,
the key path, the value and what is allowed.

The sections of a run (data, model, optim, schedule, train, tracking, regularizers) are one
pydantic tree, because its cross-section checks and the run-id hash see the whole; the YAML
reading, the error wording and the dotted keys live in their own modules.
"""

from __future__ import annotations

import copy
import types
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Any, Literal, TypeVar, Union, get_args, get_origin

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    field_serializer,
    field_validator,
    model_validator,
)

from harness import quick_check
from harness.config_errors import validated
from harness.dotted import set_dotted
from harness.errors import ConfigError
from harness.numerics import NUMERICS_VERSION
from harness.record.identity import identity_of, run_id_of

# While set, validation checks keys, types and ranges, and names and option ranges against
# the table of built-ins (harness/quick_check.py): no registry is imported (PyTorch: seconds).
# The CLI answers most mistakes this way first, then validates fully.
STRUCTURE_ONLY: ContextVar[bool] = ContextVar("STRUCTURE_ONLY", default=False)


@contextmanager
def structure_only() -> Iterator[None]:
    token = STRUCTURE_ONLY.set(True)
    try:
        yield
    finally:
        STRUCTURE_ONLY.reset(token)


def _regularizer_checks() -> Any:
    """The regularizer package's checks. Imported on the first full validation, not with
    this module: it imports PyTorch (seconds), which the CLI's structure-only first pass and
    its one-line answers to bad input never need."""
    from harness.regularizers import validate

    return validate


SEED_MAX = 2**63 - 1  # torch.manual_seed takes a 64-bit integer


# Spellings an earlier harness took, each refused in one line naming what replaced it: the
# dotted key in a run config ("run") or in a study file ("study").
OLD_SPELLINGS: dict[str, tuple[str, str]] = {
    "regularizers.mixup": ("run", "now regularizers.mix: {mixup_alpha: ALPHA, prob: P}"),
    "regularizers.cutmix": ("run", "now regularizers.mix: {mixup_alpha: 0, cutmix_alpha: "
                                   "ALPHA, prob: P} (both alphas above 0 switch, switch_prob)"),
    "seed_batch": ("study", "removed (each seed now trains as its own run; see "
                            "bench/RESULTS.md, Seed-batched training); delete the key"),
}


def refuse_old_spellings(raw: Any, where: str) -> None:
    """A ConfigError (one line once the source is added) for the first old spelling `raw`
    (a run config or a study file, as `where` says) uses."""
    for key, (scope, replacement) in OLD_SPELLINGS.items():
        node = raw
        for part in key.split("."):
            node = node.get(part, _ABSENT) if isinstance(node, dict) else _ABSENT
        if scope == where and node is not _ABSENT:
            raise ConfigError(f"{key}: {replacement}")


_ABSENT = object()


def registered(name: str, registry: Any) -> str:
    """`name` when the registry holds it; else its did-you-mean line (a validation error)."""
    if name not in registry:
        raise ValueError(registry.unknown_message(name))
    return name


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class DataConfig(Strict):
    name: str = "mnist1d"

    @field_validator("name")
    @classmethod
    def _known_dataset(cls, v: str) -> str:
        if STRUCTURE_ONLY.get():
            quick_check.check_name("dataset", v)
            return v
        from harness.data import DATASETS

        return registered(v, DATASETS)

    data_dir: str | None = None  # None: --data-dir / HARNESS_DATA_DIR / per-user cache
    download: bool = False  # only when the user asks
    num_samples: int = Field(5000, ge=100)  # mnist1d: total generated (train + test)
    test_fraction: float = Field(0.2, gt=0.0, lt=1.0)  # mnist1d: 5000 * 0.2 = standard 1000 test
    generator_seed: int = 42  # mnist1d's own generation seed (42 = the published dataset)
    val_fraction: float = Field(0.1, ge=0.0, lt=1.0)  # carved from train, stratified
    # Or an exact count, which then replaces val_fraction (a held-out set sized to the
    # question: e.g. 4000 validation samples of a generated dataset, whatever the train_size)
    val_size: int | None = Field(None, ge=1)
    train_size: int | None = Field(None, ge=10)  # stratified subset of train (small-data regime)
    label_noise: float = Field(0.0, ge=0.0, le=1.0)  # fraction of train labels made random
    seed: int = Field(0, ge=0, le=SEED_MAX)  # splits, subsets, label noise (fixed across run seeds)
    seq_len: int = Field(128, ge=2)  # text: characters per training sequence
    kwargs: dict[str, Any] = Field(default_factory=dict)  # the loader's own options (image_folder)

    def val_count(self, pool: int) -> int:
        """Samples carved from a training pool of `pool` for validation."""
        return self.val_size if self.val_size is not None else int(round(self.val_fraction * pool))

    @property
    def has_validation(self) -> bool:
        return self.val_size is not None or self.val_fraction > 0

    @model_validator(mode="after")
    def _loader_options(self) -> DataConfig:
        if STRUCTURE_ONLY.get():
            quick_check.check_dataset_options(self.name, self.kwargs)
            return self
        from harness.data.base import check_dataset_options

        check_dataset_options(self.name, self.kwargs)
        return self


class ModelConfig(Strict):
    name: str = "cnn"

    @field_validator("name")
    @classmethod
    def _known_model(cls, v: str) -> str:
        if STRUCTURE_ONLY.get():
            if ":" not in v:  # an import path is imported by the full pass
                quick_check.check_name("model", v)
            return v
        from harness.models import MODELS
        from harness.models.contract import is_import_path, resolve_model

        if is_import_path(v):
            resolve_model(v)  # importable and callable, or one line saying why not
            return v
        return registered(v, MODELS)

    width: int | None = Field(None, ge=1)  # None: the model's default
    depth: int | None = Field(None, ge=1)
    patch_size: int | None = Field(None, ge=1)  # vit
    heads: int | None = Field(None, ge=1)  # transformers
    kwargs: dict[str, Any] = Field(default_factory=dict)  # further constructor arguments
    # Fine-tuning (harness/train/transfer.py): start from a finished run's weights (a run
    # folder, or in a study the name of an upstream run), freeze parameters by name prefix.
    init_from: str | None = Field(None, min_length=1)
    freeze: list[str] = Field(default_factory=list)  # parameter-name prefixes, e.g. body.0
    freeze_body: bool = False  # every parameter but the classifier head's


class OptimConfig(Strict):
    name: Literal["sgd", "adam", "adamw"] = "adam"
    lr: float = Field(3e-3, gt=0.0)
    momentum: float = Field(0.9, ge=0.0, lt=1.0)  # sgd
    nesterov: bool = False
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = Field(1e-8, gt=0.0)
    body_lr_scale: float = Field(1.0, gt=0.0, le=1.0)  # lr of all but the head, as a fraction


class ScheduleConfig(Strict):
    name: Literal["constant", "cosine", "step"] = "cosine"
    warmup_epochs: float = Field(0.0, ge=0.0)
    step_epochs: int = Field(30, ge=1)  # step: decay every N epochs
    gamma: float = Field(0.1, gt=0.0, le=1.0)  # step: factor
    min_lr_ratio: float = Field(0.0, ge=0.0, le=1.0)  # cosine: floor as a fraction of lr


class TrainConfig(Strict):
    epochs: int = Field(30, ge=1)
    batch_size: int = Field(128, ge=1)
    eval_batch_size: int = Field(2048, ge=1)
    eval_train: bool = True  # eval-mode pass over (up to eval_train_max) train samples per epoch
    eval_train_max: int = Field(10000, ge=1)
    eval_test: bool = True  # recorded for reports, never used for selection
    select: Literal["val_acc", "val_loss"] = "val_acc"  # which epoch counts as best-val
    device: str = Field("auto", pattern=r"^(auto|cpu|mps|cuda(:\d+)?)$")  # auto|cpu|cuda[:N]
    threads: int | None = Field(None, ge=1)
    amp: Literal["off", "bf16"] = "off"  # CUDA only
    channels_last: bool = False  # CUDA CNNs
    compile: bool = False
    checkpoint: bool = True  # resume checkpoints (kept only while a run is unfinished)
    # Seconds of training between resume checkpoints (0: after every epoch). A kill loses at
    # most this much work; short epochs then skip most of the fsynced writes.
    checkpoint_every_s: float = Field(10.0, ge=0.0)


class TrackingConfig(Strict):
    wandb: Literal["auto", "online", "offline", "disabled"] = "auto"
    project: str = "harness"
    entity: str | None = None
    tags: list[str] = Field(default_factory=list)
    log_model: bool = True  # W&B model artifacts: best and final weights (aliases best, latest)
    console: bool = True  # W&B captures what the run prints (its Logs tab)


class RunConfig(Strict):
    plugins: list[str] = Field(default_factory=list)  # modules imported first (harness/plugins.py)
    study: str = "adhoc"
    variant: str = "default"
    seed: int = Field(0, ge=0, le=SEED_MAX)  # torch seeds are 64-bit
    data: DataConfig = Field(default_factory=DataConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    optim: OptimConfig = Field(default_factory=OptimConfig)
    schedule: ScheduleConfig = Field(default_factory=ScheduleConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    regularizers: dict[str, dict[str, Any]] = Field(default_factory=dict)
    tracking: TrackingConfig = Field(default_factory=TrackingConfig)
    # Each regularizer's params, validated once (by the full validation, or carried by the
    # plan: `from_plan`): what the run's regularizers are built from and what is serialized.
    _params: dict[str, Any] = PrivateAttr(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _drop_numerics_stamp(cls, raw: Any) -> Any:
        """A saved config.json carries the numerics version that trained it (a stamp, not a
        setting: the run id always hashes this harness's version): read it as absent."""
        if isinstance(raw, dict) and "numerics" in raw:
            raw = {k: v for k, v in raw.items() if k != "numerics"}
        return raw

    @model_validator(mode="before")
    @classmethod
    def _import_plugins(cls, raw: Any) -> Any:
        """Refuse old spellings, then import the named plug-in modules before any name in the
        config is looked up."""
        refuse_old_spellings(raw, "run")
        plugins = raw.get("plugins") if isinstance(raw, dict) else None
        if isinstance(plugins, list):
            from harness.plugins import import_plugins

            import_plugins(plugins)
        return raw

    @field_validator("regularizers", mode="before")
    @classmethod
    def _none_is_empty(cls, v: Any) -> Any:
        v = {} if v is None else v
        if isinstance(v, dict) and STRUCTURE_ONLY.get():
            quick_check.check_regularizers(v)
        return v

    @field_serializer("regularizers")
    def _validated_params(self, regularizers: dict[str, dict[str, Any]]) -> dict[str, Any]:
        """The validated params with every default (one spelling per run: its identity),
        as given where the config was only checked for structure."""
        if set(self._params) != set(regularizers):
            return regularizers
        return {name: self._params[name].model_dump(mode="json") for name in regularizers}

    def regularizer_params(self) -> dict[str, Any]:
        """name -> its validated params (the regularizer's Params), in the config's order."""
        if set(self._params) != set(self.regularizers):
            raise ConfigError("the regularizers of this config were not validated (a "
                              "structure-only check): build it with build_run_config")
        return {name: self._params[name] for name in self.regularizers}

    @classmethod
    def from_plan(cls, dumped: dict[str, Any]) -> RunConfig:
        """A config the plan validated, from its dump (the queue entry), rebuilt without
        validating it again: its plug-ins imported, its regularizers' params as dumped."""
        from harness.plugins import import_plugins

        import_plugins(list(dumped.get("plugins") or []))
        config = trusted(cls, dumped)
        registry = _regularizer_checks().REGULARIZERS
        config._params = {name: trusted(registry.get(name).Params, params)
                          for name, params in config.regularizers.items()}
        return config

    @model_validator(mode="after")
    def _validate_combination(self) -> RunConfig:
        if STRUCTURE_ONLY.get():
            return self
        from harness.data.base import KIND_HOLDS, dataset_kind
        from harness.models import model_capabilities

        kind = dataset_kind(self.data.name)
        takes = model_capabilities(self.model.name).kinds
        if kind is not None and kind not in takes:
            wanted = " or ".join(KIND_HOLDS[k] for k in sorted(takes))
            raise ConfigError(f"model.name = {self.model.name!r}: takes {wanted}; dataset "
                              f"{self.data.name} holds {KIND_HOLDS[kind]}")
        self._params = _regularizer_checks().validate_regularizers(self)
        self._check_train_size()
        return self

    def _check_train_size(self) -> None:
        from harness.data.shapes import train_samples_after_val

        available = train_samples_after_val(self.data)
        if self.data.train_size is not None and available is not None \
                and self.data.train_size > available:
            raise ConfigError(
                f"data.train_size = {self.data.train_size}: {self.data.name} has {available} "
                f"training samples after the validation split (val_fraction "
                f"{self.data.val_fraction}, val_size {self.data.val_size}); use at most "
                f"{available}")

    def identity(self) -> dict[str, Any]:
        """What makes two runs the same experiment: everything but names, tracking and
        execution details (device, threads), plus the version of the numerics that train it
        (harness/numerics.py), so a run of other numerics never shares its id."""
        return identity_of({**self.model_dump(mode="json"), "numerics": NUMERICS_VERSION})

    def run_id(self) -> str:
        return run_id_of(self.identity())


M = TypeVar("M", bound=BaseModel)


def trusted(model: type[M], dumped: dict[str, Any]) -> M:
    """`model` from the JSON dump of an instance that was validated: built without validating
    again (nested models and tuples rebuilt as the dump flattened them)."""
    values: dict[str, Any] = {}
    for name, field in model.model_fields.items():
        if name not in dumped:
            continue
        value, kind = dumped[name], _model_class(field.annotation)
        if kind is not None and isinstance(value, dict):
            value = trusted(kind, value)
        elif get_origin(field.annotation) is tuple and isinstance(value, list):
            value = tuple(value)
        values[name] = value
    return model.model_construct(**values)


def _model_class(annotation: Any) -> type[BaseModel] | None:
    """The pydantic model an annotation holds (`X` or `X | None`), else None."""
    options = get_args(annotation) if get_origin(annotation) in (Union, types.UnionType) \
        else (annotation,)
    found = [a for a in options if isinstance(a, type) and issubclass(a, BaseModel)]
    return found[0] if len(found) == 1 else None


# ----------------------------------------------------------------------------- loading


def load_yaml(path: str | Path) -> dict[str, Any]:
    """A config file as a mapping, read by the bounded strict loader (harness/yaml_load.py)."""
    from harness.yaml_load import load_yaml_mapping

    return load_yaml_mapping(path)


def parse_override(text: str) -> tuple[str, Any]:
    """`key.path=value` with the value parsed as YAML (numbers, bools, lists)."""
    if "=" not in text:
        raise ConfigError(f"--set {text!r}: expected key.path=value")
    key, raw = text.split("=", 1)
    from harness.yaml_load import parse_yaml_text

    try:
        value = parse_yaml_text(raw, f"--set {key.strip()}")
    except ConfigError:
        value = raw
    return key.strip(), value


def build_run_config(
    raw: dict[str, Any], source: str = "config", overrides: dict[str, Any] | None = None
) -> RunConfig:
    """Validate a raw mapping (plus dotted overrides) into a RunConfig, or raise ConfigError."""
    merged = copy.deepcopy(raw)
    for k, v in (overrides or {}).items():
        set_dotted(merged, k, v)
    return validated(RunConfig, merged, source)


def load_run_config(path: str | Path | None, overrides: dict[str, Any] | None = None) -> RunConfig:
    raw = load_yaml(path) if path else {}
    return build_run_config(raw, str(path) if path else "flags", overrides)
