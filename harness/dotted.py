"""Nested mappings addressed by dotted keys (`regularizers.dropout.p`): the one spelling the
YAML files, `--set` flags, study designs and report columns share."""

from __future__ import annotations

import copy
from typing import Any


def deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = deep_merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def set_dotted(d: dict[str, Any], dotted: str, value: Any) -> None:
    """`regularizers.dropout.p` -> d["regularizers"]["dropout"]["p"] = value."""
    keys = dotted.split(".")
    cur = d
    for k in keys[:-1]:
        nxt = cur.get(k)
        if not isinstance(nxt, dict):
            nxt = {}
            cur[k] = nxt
        cur = nxt
    cur[keys[-1]] = value


def get_dotted(d: Any, dotted: str) -> Any:
    """d["a"]["b"] for "a.b"; None when any step is missing."""
    cur = d
    for k in dotted.split("."):
        if not hasattr(cur, "get") or k not in cur:
            return None
        cur = cur[k]
    return cur


def flatten_dotted(prefix: str, value: Any) -> dict[str, Any]:
    """Nested mappings -> dotted keys ({"a": {"b": 1}} -> {"a.b": 1}); empty mappings stay."""
    if hasattr(value, "items") and value:
        out: dict[str, Any] = {}
        for k, v in value.items():
            out.update(flatten_dotted(f"{prefix}.{k}" if prefix else str(k), v))
        return out
    return {prefix: value}
