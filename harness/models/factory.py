"""Build a registered model by name after checking its options and input shape."""

from __future__ import annotations

from typing import Any

from torch import nn

from harness.models.base import MODELS, ModelInfo
from harness.models.options import check_input, check_options


def create_model(
    name: str, *, input_shape: tuple[int, ...], num_classes: int, **kwargs: Any
) -> nn.Module:
    """Create model `name` for per-sample `input_shape`; None kwargs mean the default."""
    cls = MODELS.get(name)
    shape = check_input(name, cls.info, input_shape, num_classes)
    options = check_options(name, cls.info, kwargs)
    return cls(input_shape=shape, num_classes=num_classes, **options)


def model_capabilities(name: str) -> ModelInfo:
    """What model `name` accepts (data kinds, options) and whether it is residual / an LM."""
    return MODELS.get(name).info


def count_parameters(model: nn.Module) -> int:
    """Number of distinct parameters (a tied weight counts once)."""
    return sum(p.numel() for p in model.parameters())
