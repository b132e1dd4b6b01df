"""Checks that need the model but not the data: refuse, before anything is written, a run
whose model cannot fit in this machine's memory. The model is built on PyTorch's meta
device, which allocates nothing, so a width of 10^9 costs microseconds to measure."""

from __future__ import annotations

import os
from collections.abc import Iterable

import torch

from harness.config import RunConfig
from harness.data.shapes import known_shape
from harness.errors import ConfigError

BYTES_PER_PARAM = 4 * 4  # float32 weights, gradients and two Adam moments
MEMORY_SHARE = 0.8  # of physical memory a run may plan to use for its parameters


def physical_memory() -> int:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 0


def parameter_count(config: RunConfig) -> int | None:
    """Parameters of the configured model (before regularizer surgery); None when the data
    shape cannot be known without loading the data."""
    from harness.models import count_parameters, create_model
    from harness.models.contract import is_builtin, resolve_model

    shape = known_shape(config.data)
    if shape is None:
        return None
    from harness.train.build import model_options

    m = config.model
    kwargs = model_options(config)
    try:
        with torch.device("meta"):
            model = create_model(m.name, input_shape=shape.input_shape,
                                 num_classes=shape.num_classes, extra=m.kwargs, **kwargs)
    except (RuntimeError, NotImplementedError):  # an init that reads values (e.g. .item())
        return None
    except Exception:  # a plug-in's own init on the meta device: no estimate; the build reports
        if is_builtin(resolve_model(m.name)):
            raise
        return None
    return count_parameters(model)


def check_model_sizes(configs: Iterable[RunConfig], source: str) -> None:
    """One line, naming the variant, when a model would not fit in memory."""
    memory = physical_memory()
    seen: set[str] = set()
    for cfg in configs:
        key = repr((cfg.model.model_dump(), cfg.data.name, cfg.data.num_samples))
        if key in seen or not memory:
            continue
        seen.add(key)
        n = parameter_count(cfg)
        if n is not None and n * BYTES_PER_PARAM > MEMORY_SHARE * memory:
            need = n * BYTES_PER_PARAM / 2**30
            raise ConfigError(
                f"{source}: variant {cfg.variant!r}: model {cfg.model.name} (width "
                f"{cfg.model.width}) has {n:,} parameters, about {need:,.1f} GiB to train; this "
                f"machine has {memory / 2**30:.1f} GiB (make the model smaller)")
