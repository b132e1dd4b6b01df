"""Regularizer plug-ins. Importing this package registers every built-in one."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from harness.config_errors import first_error
from harness.errors import ConfigError
from harness.regularizers.base import (
    REGULARIZERS,
    Batch,
    ModelSpec,
    Params,
    Regularizer,
    RunContext,
    register,
)
from harness.regularizers.stack import RegularizerStack

# Built-in plug-ins register themselves on import (one module per family).
from harness.regularizers import _builtin  # noqa: F401,E402  isort: skip


def validate_regularizers(config: Any) -> None:
    """Validate every regularizer's params and its compatibility with the config."""
    for name, raw in config.regularizers.items():
        reg_cls = REGULARIZERS.get(name)
        try:
            params = reg_cls.Params.model_validate(raw or {})
        except ValidationError as err:
            e = first_error(err)
            key = ".".join(str(p) for p in ("regularizers", name, *e["loc"]))
            if e["type"] == "extra_forbidden":
                allowed = ", ".join(reg_cls.Params.model_fields) or "(none)"
                raise ConfigError(f"unknown key {key!r}; allowed: {allowed}") from None
            if e["type"] == "missing":
                raise ConfigError(f"{key}: required") from None
            msg = e["msg"].removeprefix("Value error, ")
            raise ConfigError(f"{key} = {e.get('input')!r}: {msg}") from None
        reg_cls.check(params, config)


__all__ = [
    "REGULARIZERS",
    "Batch",
    "ModelSpec",
    "Params",
    "Regularizer",
    "RegularizerStack",
    "RunContext",
    "register",
    "validate_regularizers",
]
