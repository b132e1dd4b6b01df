"""The one place a config's regularizers are checked, before any data is loaded.

In order, for each regularizer the config names: it exists (did-you-mean otherwise), its
params validate, its declared `requires` holds (model, data kind, excluded partners,
model options), then its own `check` for what `requires` cannot say (a value against the
config). Last, the model must take every option the regularizers pass it. Each failure is
one line naming the key and what is allowed. `harness.config`, the layer above, calls
`validate_regularizers` on each fully validated RunConfig and keeps the params it returns
(each regularizer's params are validated here once; the run is built from them).
"""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import ValidationError

from harness.config_errors import params_error
from harness.data.base import KIND_HOLDS, dataset_kind
from harness.errors import ConfigError
from harness.models import MODELS, model_capabilities, model_info
from harness.models.contract import CONTRACT, is_builtin, resolve_model
from harness.models.factory import check_extra
from harness.models.options import NEUTRAL, check_options, models_with
from harness.regularizers.base import REGULARIZERS, ModelSpec, Params, Regularizer

T = TypeVar("T", bound=Params)
# Requires.model: the ModelInfo flag -> (what is needed, what the model lacks)
MODEL_FACTS = {"residual": ("needs a model with residual blocks", "has none"),
               "language_model": ("only for language models", "is not one")}
# Requires.options: a model option -> (the models that take it, what another model lacks)
OPTION_OWNERS = {"embed_dropout": ("models with embeddings", "has none"),
                 **dict.fromkeys(("norm_position", "attn_dropout", "head_dropout",
                                  "dropout_sites"), ("transformer models", "is not one"))}

def validate_regularizers(config: Any) -> dict[str, Params]:
    """Every regularizer's params, validated, once each has been checked against the config
    (see module doc)."""
    validated: dict[str, Params] = {}
    for name, raw in config.regularizers.items():
        reg_cls = REGULARIZERS.get(name)
        params = validate_params(reg_cls.Params, name, raw)
        check_requires(reg_cls, params, config)
        reg_cls.check(params, config)
        validated[name] = params
    check_model_takes(config, validated)
    return validated


def validate_params(params_cls: type[T], name: str, raw: Any) -> T:
    """`raw` as `params_cls`, or one line naming `regularizers.<name>.<key>`."""
    try:
        return params_cls.model_validate(raw or {})
    except ValidationError as err:
        raise ConfigError(params_error(err, name, params_cls)) from None


def check_requires(reg_cls: type[Regularizer[Any]], params: Params, config: Any) -> None:
    """Refuse a config that breaks what `reg_cls.requires` declares."""
    name, req, model = reg_cls.name, reg_cls.requires, config.model.name
    if req.model is not None and not getattr(model_capabilities(model), req.model, False):
        need, lack = MODEL_FACTS.get(req.model, (f"needs a model with {req.model}", "has not"))
        owners = ", ".join(n for n, c in MODELS.items() if getattr(model_info(c), req.model))
        raise ConfigError(f"regularizers.{name}: {need} ({owners}); model {model} {lack}")
    check_data_kind(reg_cls, dataset_kind(config.data.name), config.data.name)
    for other in config.regularizers:
        other_req = REGULARIZERS.get(other).requires if other != name else req
        if other in req.excludes or name in other_req.excludes:
            raise ConfigError(f"regularizers.{name}: cannot be combined with "
                              f"regularizers.{other}; keep one")
    check_model_options(reg_cls, params, model)


def check_data_kind(reg_cls: type[Regularizer[Any]], kind: str | None, dataset: str) -> None:
    """Refuse a data kind outside `requires.data`. Also called when the run builds its
    regularizers: a plug-in dataset's kind may be known only once it is loaded (None here)."""
    wanted = reg_cls.requires.data
    if kind is not None and wanted and kind not in wanted:
        holds = " and ".join(KIND_HOLDS[k] for k in sorted(wanted))
        raise ConfigError(f"regularizers.{reg_cls.name}: defined for {holds}; dataset "
                          f"{dataset} holds {KIND_HOLDS.get(kind, kind)}")


def check_model_options(reg_cls: type[Regularizer[Any]], params: Params, model: str) -> None:
    """A param that sets a model option (`requires.options`) to a value that is not neutral
    needs a model taking that option; the error names the param, not the option."""
    if not reg_cls.requires.options:
        return
    spec = probe_model_spec(reg_cls, params, model)
    takes = model_capabilities(model).options
    for param, option in reg_cls.requires.options.items():
        value = spec.kwargs.get(option, NEUTRAL.get(option))
        if option not in takes and value != NEUTRAL.get(option):
            owners, lack = OPTION_OWNERS.get(option, (f"models taking {option}",
                                                      "does not take it"))
            raise ConfigError(f"regularizers.{reg_cls.name}.{param} = "
                              f"{getattr(params, param)!r}: only for {owners} "
                              f"({models_with(option)}); model {model} {lack}")


def probe_model_spec(reg_cls: type[Regularizer[Any]], params: Params, model: str) -> ModelSpec:
    """What `configure_model` would pass the model (it reads only params: see base.py)."""
    probe = reg_cls.__new__(reg_cls)
    Regularizer.__init__(probe, params, None)  # type: ignore[arg-type]  # no run yet
    spec = ModelSpec(model, {})
    probe.configure_model(spec)
    return spec


def check_model_takes(config: Any, params: dict[str, Params]) -> None:
    """Build-free check that the model takes every option the config and its regularizers
    will pass (dropout on a plug-in model without a `dropout` argument fails here, before
    any data is loaded or anything trains)."""
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
    for reg_name, reg_params in params.items():
        reg_cls = REGULARIZERS.get(reg_name)
        if reg_cls.configure_model is Regularizer.configure_model:
            continue
        spec = probe_model_spec(reg_cls, reg_params, name)
        try:
            passed.update(check_options(name, info, spec.kwargs))
        except ConfigError as err:
            raise ConfigError(f"regularizers.{reg_name}: {err}{hint}") from None
    check_extra(name, resolve_model(name), passed, dict(m.kwargs))
