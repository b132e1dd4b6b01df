"""Turn a RunConfig into the objects of a run: device, data, model, regularizers."""

from __future__ import annotations

import json
import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from harness.config import RunConfig, build_run_config
from harness.data import DataBundle, load_data
from harness.errors import ConfigError
from harness.models import create_model
from harness.models.contract import check_forward, is_builtin, model_info, resolve_model
from harness.record.layout import CONFIG, MODEL
from harness.regularizers import ModelSpec, RegularizerStack, RunContext
from harness.regularizers.base import REGULARIZERS
from harness.train.transfer import load_weights


def pick_device(requested: str) -> torch.device:
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if requested.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"train.device = {requested!r}: CUDA is not available on this machine")
    try:
        return torch.device(requested)
    except RuntimeError:
        raise ConfigError(
            f"train.device = {requested!r}: expected auto, cpu, cuda or cuda:N"
        ) from None


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def set_threads(threads: int | None) -> None:
    torch.set_num_threads(threads or max(1, os.cpu_count() or 1))


def steps_per_epoch(n_train: int, batch_size: int) -> int:
    """ceil(n / batch), dropping a last batch of a single sample (BatchNorm cannot take it)."""
    steps, rest = divmod(n_train, batch_size)
    return steps + (1 if rest > 1 else 0) if steps else 1


def build_data(config: RunConfig, data_dir: str | Path | None, device: torch.device) -> DataBundle:
    return load_data(config.data, data_dir).to(device)


def model_options(config: RunConfig) -> dict[str, Any]:
    """The model section's set options (None means the model's own default)."""
    m = config.model
    return {k: v for k, v in (("width", m.width), ("depth", m.depth),
                              ("patch_size", m.patch_size), ("heads", m.heads)) if v is not None}


def model_spec(config: RunConfig, data: DataBundle) -> ModelSpec:
    return ModelSpec(name=config.model.name, kwargs=model_options(config))


def build_model(config: RunConfig, data: DataBundle, regs: RegularizerStack, *,
                results_dir: str | Path | None = None) -> nn.Module:
    """The run's model; with `results_dir`, `model.init_from`'s weights are loaded into it
    before any regularizer's module surgery (which may rename parameters)."""
    spec = regs.configure_model(model_spec(config, data))
    model = create_model(spec.name, input_shape=data.input_shape, num_classes=data.num_classes,
                         extra=config.model.kwargs, **spec.kwargs)
    cls = resolve_model(spec.name)
    if not is_builtin(cls):  # the plug-in contract, checked on one real batch before training
        check_forward(spec.name, model, data.prepare(data.train.x[:2].cpu()), data.num_classes,
                      model_info(cls).language_model)
    if results_dir is not None:
        load_weights(model, config, results_dir)
    return regs.on_model(model)


def run_context(config: RunConfig, data: DataBundle, device: torch.device, *,
                results_dir: Path = Path("results"), data_dir: Path | None = None) -> RunContext:
    return RunContext(config=config, data=data, device=device, epochs=config.train.epochs,
                      steps_per_epoch=steps_per_epoch(len(data.train.y), config.train.batch_size),
                      num_classes=data.num_classes, results_dir=results_dir, data_dir=data_dir,
                      load_run_model=lambda path, without: load_run_model(path, data, device,
                                                                          without))


def load_run_model(path: Path, data: DataBundle, device: torch.device,
                   without: str = "") -> nn.Module:
    """A finished run's model rebuilt from its config.json with its regularizers (module
    surgery renames parameters) except `without`, then its model.pt loaded."""
    config_file, weights = path / CONFIG, path / MODEL
    raw = json.loads(config_file.read_text())
    raw.pop("run_id", None)
    config = build_run_config(raw, source=str(config_file))
    ctx = run_context(config, data, device)
    regs = RegularizerStack([REGULARIZERS.get(name)(params, ctx)
                             for name, params in config.regularizer_params().items()
                             if name != without])
    model = build_model(config, data, regs)
    state = torch.load(weights, map_location="cpu", weights_only=True)
    try:
        model.load_state_dict(state)
    except RuntimeError as err:
        raise ConfigError(f"{weights} does not fit its model on this dataset "
                          f"({str(err).splitlines()[0]})") from None
    return model
