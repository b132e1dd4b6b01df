"""Build a model by registered name or import path after checking its options and input shape."""

from __future__ import annotations

from typing import Any

from torch import nn

from harness.errors import ConfigError
from harness.models.base import ModelInfo
from harness.models.contract import check_signature, is_builtin, model_info, resolve_model
from harness.models.options import VALIDATORS, check_input, check_options


def create_model(
    name: str, *, input_shape: tuple[int, ...], num_classes: int,
    extra: dict[str, Any] | None = None, **kwargs: Any,
) -> nn.Module:
    """Create model `name` for per-sample `input_shape`; None kwargs mean the default.

    `kwargs` are the harness options (width, dropout, ...), checked against the model's
    info; `extra` (config `model.kwargs`) goes to the constructor as it is.
    """
    cls = resolve_model(name)
    info = model_info(cls)
    shape = check_input(name, info, input_shape, num_classes)
    options = check_options(name, info, kwargs)
    extra = dict(extra or {})
    check_extra(name, cls, options, extra)
    return cls(input_shape=shape, num_classes=num_classes, **options, **extra)


# Where each harness option is set in a run config (the model section, or the regularizer
# that passes it to the model): what an error about model.kwargs.<option> tells the user.
OPTION_SETTINGS: dict[str, str] = {
    "width": "model.width", "depth": "model.depth", "patch_size": "model.patch_size",
    "heads": "model.heads", "dropout": "regularizers.dropout.p",
    "embed_dropout": "regularizers.dropout.embed_p",
    "attn_dropout": "regularizers.dropout.attn_p", "head_dropout": "regularizers.dropout.head_p",
    "dropout_sites": "regularizers.dropout.sites", "norm": "regularizers.norm.kind",
    "norm_position": "regularizers.norm.position", "drop_path": "regularizers.drop_path.rate",
    "tie_weights": "regularizers.weight_tying",
}


def check_extra(name: str, cls: Any, options: dict[str, Any], extra: dict[str, Any]) -> None:
    """model.kwargs may not repeat a harness option; a plug-in's constructor must take them."""
    for key in extra:
        if key in ("input_shape", "num_classes"):
            raise ConfigError(f"model.kwargs.{key}: set by the harness from the data; remove it")
        if key in VALIDATORS:
            raise ConfigError(f"model.kwargs.{key}: {key!r} is a harness option; set it with "
                              f"{OPTION_SETTINGS.get(key, 'its regularizer')}, "
                              "not model.kwargs")
    if extra or not is_builtin(cls):
        check_signature(name, cls, {**options, **extra})


def model_capabilities(name: str) -> ModelInfo:
    """What model `name` accepts (data kinds, options) and whether it is residual / an LM."""
    return model_info(resolve_model(name))


def count_parameters(model: nn.Module) -> int:
    """Number of distinct parameters (a tied weight counts once)."""
    return sum(p.numel() for p in model.parameters())
