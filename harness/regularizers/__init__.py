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
    check_model_takes(config)


def check_model_takes(config: Any) -> None:
    """Build-free check that the model takes every option the config and its regularizers
    will pass (dropout on a plug-in model without a `dropout` argument fails here, before
    any data is loaded or anything trains)."""
    from harness.models import model_capabilities
    from harness.models.contract import CONTRACT, is_builtin, resolve_model
    from harness.models.factory import check_extra
    from harness.models.options import check_options

    name, m = config.model.name, config.model
    info = model_capabilities(name)
    base = {k: v for k, v in (("width", m.width), ("depth", m.depth),
                              ("patch_size", m.patch_size), ("heads", m.heads)) if v is not None}
    hint = "" if is_builtin(resolve_model(name)) else (
        f" (a plug-in model declares the options it takes in info.options: see {CONTRACT})")
    try:
        passed = check_options(name, info, base)
    except ConfigError as err:
        raise ConfigError(f"model: {err}{hint}") from None
    for reg_name, raw in config.regularizers.items():
        reg_cls = REGULARIZERS.get(reg_name)
        if reg_cls.configure_model is Regularizer.configure_model:
            continue
        probe = reg_cls.__new__(reg_cls)  # configure_model reads only params (see base.py)
        Regularizer.__init__(probe, reg_cls.Params.model_validate(raw or {}), None)
        spec = ModelSpec(name, {})
        probe.configure_model(spec)
        try:
            passed.update(check_options(name, info, spec.kwargs))
        except ConfigError as err:
            raise ConfigError(f"regularizers.{reg_name}: {err}{hint}") from None
    check_extra(name, resolve_model(name), passed, dict(m.kwargs))


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
