"""Pydantic's errors as the one line a user reads: the error most likely to fix first, and
the file, key path, value and what is allowed."""

from __future__ import annotations

import difflib
import typing
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from harness.errors import ConfigError

M = TypeVar("M", bound=BaseModel)

# An unknown key is usually a typo that also causes the other errors (a missing field).
PRIORITY = {"extra_forbidden": 0, "missing": 2}


def first_error(err: ValidationError) -> ErrorDetails:
    return min(err.errors(), key=lambda e: PRIORITY.get(e["type"], 1))


def format_validation_error(err: ValidationError, source: str, raw: dict[str, Any],
                            root: type[BaseModel]) -> str:
    """First error of a pydantic ValidationError as one line: source: key.path: value: why."""
    e = first_error(err)
    loc = [str(p) for p in e["loc"]]
    key = ".".join(loc) or "(top level)"
    if e["type"] == "extra_forbidden":
        parent = _lookup_model_fields(loc[:-1], root)
        close = difflib.get_close_matches(loc[-1], parent, n=1) if parent else []
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        allowed = f"; allowed: {', '.join(sorted(parent))}" if parent else ""
        return f"{source}: unknown key {key!r}{hint}{allowed}"
    if e["type"] == "missing":
        return f"{source}: {key}: required"
    value = e.get("input")
    msg = e["msg"]
    if msg.startswith("Value error, "):
        msg = msg[len("Value error, ") :]
    if isinstance(value, dict):
        return f"{source}: {key}: {msg}"
    return f"{source}: {key} = {short_repr(value)}: {msg}"


def short_repr(value: Any, limit: int = 80) -> str:
    """repr() cut to one short line: a value from a file can be megabytes long."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[: limit - 15]}... ({len(text):,} chars)"


def _lookup_model_fields(loc: list[str], root: type[BaseModel]) -> list[str]:
    model: Any = root
    for part in loc:
        if part.isdigit():  # an item of a list of models: same fields
            continue
        field = getattr(model, "model_fields", {}).get(part)
        if field is None:
            return []
        model = field.annotation
        for arg in typing.get_args(model):  # Optional[Model] -> Model
            if hasattr(arg, "model_fields"):
                model = arg
    return list(getattr(model, "model_fields", {}).keys())


def params_error(err: ValidationError, name: str, params: type[BaseModel]) -> str:
    """A regularizer's params error as one line naming `regularizers.<name>.<key>`."""
    e = first_error(err)
    key = ".".join(str(p) for p in ("regularizers", name, *e["loc"]))
    if e["type"] == "extra_forbidden":
        allowed = ", ".join(params.model_fields) or "(none)"
        return f"unknown key {key!r}; allowed: {allowed}"
    if e["type"] == "missing":
        return f"{key}: required"
    msg, value = e["msg"].removeprefix("Value error, "), e.get("input")
    shown = "" if isinstance(value, dict) else f" = {value!r}"  # a whole section: no echo
    return f"{key}{shown}: {msg}"


def check_dataset_kwargs(name: str, options: type[BaseModel] | None,
                         kwargs: dict[str, Any]) -> None:
    """`data.kwargs` against a dataset's options model (None: it takes none), or one line
    naming the key and what the dataset takes."""
    if options is None:
        if kwargs:
            raise ConfigError(f"data.kwargs: dataset {name} takes no options; "
                              f"got {', '.join(map(str, kwargs))}")
        return
    try:
        options.model_validate(kwargs)
    except ValidationError as err:
        e = first_error(err)
        key = ".".join(str(p) for p in ("data.kwargs", *e["loc"]))
        allowed = ", ".join(options.model_fields)
        why = "unknown key" if e["type"] == "extra_forbidden" else e["msg"]
        raise ConfigError(f"{key}: {why} (dataset {name} takes {allowed})") from None


def validated(model: type[M], raw: dict[str, Any], source: str) -> M:
    """`raw` as `model`, or a ConfigError of one line that starts with `source`."""
    try:
        return model.model_validate(raw)
    except ValidationError as err:
        raise ConfigError(format_validation_error(err, source, raw, model)) from None
    except ConfigError as err:
        raise ConfigError(f"{source}: {err}") from None
