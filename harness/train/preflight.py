"""Checks that need the model but not the data: refuse, before anything is written, a run
whose model cannot fit in this machine's memory, or a plug-in model that breaks its contract.
The model is built on PyTorch's meta device, which allocates nothing, so a width of 10^9
costs microseconds to measure; the same count chooses a study's workers."""

from __future__ import annotations

import functools
import os
from collections.abc import Iterable
from pathlib import Path

import torch

from harness.config import RunConfig
from harness.data.shapes import DataShape, known_shape
from harness.errors import ConfigError

BYTES_PER_PARAM = 4 * 4  # float32 weights, gradients and two Adam moments
MEMORY_SHARE = 0.8  # of physical memory a run may plan to use for its parameters


def physical_memory() -> int:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 0


def parameter_count(config: RunConfig, data_dir: str | Path | None = None) -> int | None:
    """Parameters of the configured model (before regularizer surgery); None when the data
    shape is unknown or the model cannot be built on the meta device. A plug-in model (timm's
    too) is also checked here, before anything is written: a constructor that refuses its
    arguments, or a forward whose output is not [batch, num_classes] logits, is one line."""
    from harness.models import count_parameters, create_model
    from harness.models.contract import is_builtin, resolve_model

    shape = data_shape(config, data_dir)
    if shape is None:
        return None
    from harness.train.build import model_options

    m = config.model
    builtin = is_builtin(resolve_model(m.name))
    try:
        with torch.device("meta"):
            model = create_model(m.name, input_shape=shape.input_shape,
                                 num_classes=shape.num_classes, extra=m.kwargs,
                                 **model_options(config))
    except (ConfigError, RuntimeError, NotImplementedError) as err:
        if isinstance(err, ConfigError):
            raise
        return None  # an init that reads values (e.g. .item()): no count on the meta device
    except Exception as err:
        if builtin:
            raise
        if isinstance(err, TypeError):  # the plug-in's constructor refused its arguments
            raise ConfigError(f"model {m.name}: building it for input_shape "
                              f"{shape.input_shape} and num_classes {shape.num_classes} failed: "
                              f"TypeError: {err} (see harness/models/contract.py)") from None
        return None  # its own init on the meta device: the run's build reports it
    if not builtin:
        check_meta_forward(m.name, model, shape)
    return count_parameters(model)


def check_meta_forward(name: str, model: torch.nn.Module, shape: DataShape) -> None:
    """The plug-in contract's output check, on the meta device (costs nothing); a forward the
    meta device cannot run is left to the real batch each run checks first."""
    from harness.models import data_kind, model_info
    from harness.models.contract import check_logits, resolve_model

    dtype = torch.long if data_kind(shape.input_shape) == "text" else torch.float32
    x = torch.zeros((2, *shape.input_shape), dtype=dtype, device="meta")
    model.eval()
    try:
        with torch.no_grad():
            out = model(x)
    except Exception:  # an op without a meta kernel, or a real fault: the real batch says
        return
    check_logits(name, tuple(x.shape), out, shape.num_classes,
                 model_info(resolve_model(name)).language_model)


def data_shape(config: RunConfig, data_dir: str | Path | None) -> DataShape | None:
    """The shape of the config's data: known without loading for the built-in datasets;
    a plug-in dataset is loaded once here (its loader says nothing about its shape)."""
    shape = known_shape(config.data)
    if shape is not None:
        return shape
    from harness.data import DATASETS

    if (getattr(DATASETS.get(config.data.name), "__module__", "") or "").startswith("harness."):
        return None  # a built-in whose shape depends on its files (image_folder): not loaded
    return loaded_shape(config.data.model_dump_json(), None if data_dir is None else str(data_dir))


@functools.lru_cache(maxsize=8)
def loaded_shape(data_json: str, data_dir: str | None) -> DataShape | None:
    from harness.config import DataConfig
    from harness.data import load_data

    try:
        bundle = load_data(DataConfig.model_validate_json(data_json), data_dir)
    except Exception:  # the run reports its own data error, with its context
        return None
    return DataShape(tuple(bundle.input_shape), bundle.num_classes, len(bundle.train))


def check_model_sizes(configs: Iterable[RunConfig], source: str,
                      data_dir: str | Path | None = None) -> None:
    """One line, naming the variant, when a model would not fit in memory."""
    memory = physical_memory()
    seen: set[str] = set()
    for cfg in configs:
        key = repr((cfg.model.model_dump(), cfg.data.name, cfg.data.num_samples,
                    cfg.data.kwargs))
        if key in seen or not memory:
            continue
        seen.add(key)
        try:
            n = parameter_count(cfg, data_dir)
        except ConfigError as err:
            raise ConfigError(f"{source}: variant {cfg.variant!r}: {err}") from None
        if n is not None and n * BYTES_PER_PARAM > MEMORY_SHARE * memory:
            need = n * BYTES_PER_PARAM / 2**30
            raise ConfigError(
                f"{source}: variant {cfg.variant!r}: model {cfg.model.name} (width "
                f"{cfg.model.width}) has {n:,} parameters, about {need:,.1f} GiB to train; this "
                f"machine has {memory / 2**30:.1f} GiB (make the model smaller)")
