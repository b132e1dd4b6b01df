"""Checks on model options and input shapes, so a bad config fails as one clear line."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from harness.errors import ConfigError
from harness.models.base import MODELS, ModelInfo, data_kind, model_info
from harness.models.norms import NORM_KINDS
from harness.models.transformer import RESIDUAL_SITES
from harness.registry import unknown_name_message

# Values that mean "off": passing one to a model without the option is harmless.
NEUTRAL: dict[str, Any] = {
    "dropout": 0.0,
    "drop_path": 0.0,
    "embed_dropout": 0.0,
    "attn_dropout": 0.0,
    "head_dropout": 0.0,
    "dropout_sites": RESIDUAL_SITES,
    "tie_weights": False,
    "norm_position": "pre",
}

KIND_SHAPES = {"image": "(C, H, W)", "signal": "(C, L)", "text": "(T,)"}


def _positive_int(key: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{key} must be a positive integer, got {value!r}")


def _rate(key: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1:
        raise ConfigError(f"{key} must be a number in [0, 1), got {value!r}")


def _one_of(choices: tuple[str, ...]) -> Callable[[str, Any], None]:
    def check(key: str, value: Any) -> None:
        if value not in choices:
            raise ConfigError(f"{key} must be one of {', '.join(choices)}; got {value!r}")

    return check


def _sites(key: str, value: Any) -> None:
    """A non-empty tuple of distinct residual sites (attn, ffn)."""
    if (not isinstance(value, tuple) or not value or len(set(value)) != len(value)
            or not set(value) <= set(RESIDUAL_SITES)):
        raise ConfigError(f"{key} must be a non-empty tuple of distinct names from "
                          f"{', '.join(RESIDUAL_SITES)}; got {value!r}")


def _boolean(key: str, value: Any) -> None:
    if not isinstance(value, bool):
        raise ConfigError(f"{key} must be true or false, got {value!r}")


VALIDATORS: dict[str, Callable[[str, Any], None]] = {
    "width": _positive_int,
    "depth": _positive_int,
    "dropout": _rate,
    "norm": _one_of(NORM_KINDS),
    "drop_path": _rate,
    "embed_dropout": _rate,
    "attn_dropout": _rate,
    "head_dropout": _rate,
    "dropout_sites": _sites,
    "norm_position": _one_of(("pre", "post")),
    "patch_size": _positive_int,
    "heads": _positive_int,
    "tie_weights": _boolean,
}


def models_with(option: str) -> str:
    """Comma-separated names of the registered models that accept `option`."""
    return ", ".join(n for n, cls in MODELS.items() if option in model_info(cls).options)


def unsupported_message(option: str, name: str) -> str:
    owners = models_with(option)
    if option == "drop_path":
        return f"drop_path needs a model with residual blocks ({owners}); {name} has none"
    if option == "tie_weights":
        return f"tie_weights is only for language models ({owners}); {name} is not one"
    if option in ("embed_dropout", "attn_dropout", "head_dropout", "dropout_sites",
                  "norm_position", "heads"):
        return f"{option} is only for transformer models ({owners}); {name} is not one"
    return f"{option} is only for {owners}; {name} does not take it"


def check_options(name: str, info: ModelInfo, kwargs: dict[str, Any]) -> dict[str, Any]:
    """Validate kwargs for model `name`; return those to pass on (None and neutral
    values of unsupported options dropped)."""
    passed: dict[str, Any] = {}
    for key, value in kwargs.items():
        if key not in VALIDATORS:
            valid = sorted(info.options)
            raise ConfigError(unknown_name_message(f"{name} option", key, valid))
        if value is None:
            continue
        VALIDATORS[key](key, value)
        if key in info.options:
            passed[key] = value
        elif key not in NEUTRAL or value != NEUTRAL[key]:
            raise ConfigError(unsupported_message(key, name))
    return passed


def check_input(
    name: str, info: ModelInfo, input_shape: tuple[int, ...], num_classes: int
) -> tuple[int, ...]:
    """Refuse shapes the model cannot take (e.g. vit on a 1-D signal, gpt on images)."""
    shape = tuple(input_shape)
    if not shape or any(isinstance(d, bool) or not isinstance(d, int) or d < 1 for d in shape):
        raise ConfigError(f"input_shape must be positive integers, got {input_shape!r}")
    kind = data_kind(shape)
    if kind not in info.kinds:
        takes = " or ".join(f"{k} {KIND_SHAPES[k]}" for k in sorted(info.kinds))
        raise ConfigError(f"{name} takes {takes} inputs; got input_shape {shape} ({kind})")
    _positive_int("num_classes", num_classes)
    return shape
