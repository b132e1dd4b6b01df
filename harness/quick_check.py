"""The first pass's checks of names and option ranges (harness.config.structure_only): a
config's dataset, model and regularizer names and its regularizers' and datasets' options,
checked against harness/builtin_names.py without importing a registry (PyTorch).

Each answer is the line the full check would give. Where the table cannot know, the check
is left to the full pass: a name that an installed plug-in (an entry point) may provide; or,
once a registry has been imported anyway (a config's `plugins:` import it), the registry
itself, which is then free to ask.
"""

from __future__ import annotations

import functools
import sys
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model

from harness import builtin_names
from harness.config_errors import check_dataset_kwargs, params_error
from harness.errors import ConfigError
from harness.registry import unknown_name_message

REGISTRIES = {"dataset": ("harness.data", "DATASETS"), "model": ("harness.models", "MODELS"),
              "regularizer": ("harness.regularizers", "REGULARIZERS")}
TABLE = {"dataset": builtin_names.DATASETS, "model": builtin_names.MODELS,
         "regularizer": builtin_names.REGULARIZERS}


def loaded_registry(kind: str) -> Any:
    """The real registry when its package is already imported (asking it is then free)."""
    module, name = REGISTRIES[kind]
    return getattr(sys.modules[module], name, None) if module in sys.modules else None


def known(kind: str, name: str) -> bool | None:
    """True/False when the name's validity is known now; None when only the full pass can
    say (an installed plug-in might provide it)."""
    registry = loaded_registry(kind)
    if registry is not None:
        return name in registry
    if name in TABLE[kind]:
        return True
    from harness.plugins import installed_entry_points

    return None if installed_entry_points(kind) else False


def unknown_message(kind: str, name: str) -> str:
    registry = loaded_registry(kind)
    if registry is not None:
        return str(registry.unknown_message(name))
    return unknown_name_message(kind, name, list(TABLE[kind]))


def check_name(kind: str, name: str) -> None:
    """ValueError (the field validators' way) with the registry's line for an unknown name."""
    if known(kind, name) is False:
        raise ValueError(unknown_message(kind, name))


@functools.cache
def fields_model(kind: str, name: str) -> type[BaseModel]:
    """A pydantic model of one table entry: same fields, types and bounds (not the custom
    validators), so its errors read as the real model's."""
    table = {"regularizer": builtin_names.REGULARIZER_FIELDS,
             "dataset": builtin_names.DATASET_OPTIONS}[kind]
    fields: dict[str, Any] = {
        key: (annotation, Field(... if required else None, **bounds))
        for key, (annotation, bounds, required) in table[name].items()}
    model: type[BaseModel] = create_model(f"{name}_fields", __config__=ConfigDict(extra="forbid"),
                                          **fields)
    return model


def check_regularizers(regularizers: dict[str, Any]) -> None:
    """Each regularizer's name and params, as validate_regularizers words them."""
    if loaded_registry("regularizer") is not None:
        return  # the full pass runs next anyway, with the registry already imported
    for name, raw in regularizers.items():
        if known("regularizer", name):
            kind = "regularizer"
        elif known("regularizer", name) is None:
            continue
        else:
            raise ConfigError(unknown_message("regularizer", name))
        params = fields_model(kind, name)
        try:
            params.model_validate(raw or {})
        except ValidationError as err:
            raise ConfigError(params_error(err, name, params)) from None


def check_dataset_options(name: str, kwargs: dict[str, Any]) -> None:
    """data.kwargs of a built-in dataset, as harness.data.base.check_dataset_options."""
    if loaded_registry("dataset") is not None or name not in builtin_names.DATASETS:
        return
    options = fields_model("dataset", name) if name in builtin_names.DATASET_OPTIONS else None
    check_dataset_kwargs(name, options, kwargs)
