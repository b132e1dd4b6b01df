"""A run's identity: what makes two runs the same experiment, and the id hashed from it.

The id names the run's folder and queue entry, so a study run again finds its finished runs.
It is computed here from a config as saved (config.json) without validating it, so a
study's runs can be checked where the plug-ins that defined its model are not installed;
`RunConfig.run_id()` hashes its own dump the same way."""

from __future__ import annotations

import copy
import hashlib
import json
from typing import Any

# Keys added after runs were stored: left out of the identity at their default, so the ids
# of runs that never used them do not change.
ADDED_LATER: tuple[tuple[str, str, Any], ...] = (
    ("model", "init_from", None), ("model", "freeze", []),
    ("model", "freeze_body", False), ("optim", "body_lr_scale", 1.0))
EXECUTION_KEYS = {("train", "device"), ("train", "threads"), ("train", "checkpoint_every_s")}


def identity_of(dumped: dict[str, Any]) -> dict[str, Any]:
    """RunConfig.identity from a saved config.json, without validating it (so a study's runs
    can be checked where the plug-ins that defined its model are not installed)."""
    d = copy.deepcopy({k: v for k, v in dumped.items()
                       if k not in ("study", "variant", "tracking", "plugins", "run_id")})
    for section in ("data", "model"):  # added later: absent when empty, so old ids hold
        if not d[section].get("kwargs"):
            d[section].pop("kwargs", None)
    for section, key, default in ADDED_LATER:  # likewise: absent at their default
        if d.get(section, {}).get(key, default) == default:
            d.get(section, {}).pop(key, None)
    for section, key in EXECUTION_KEYS:
        d[section].pop(key, None)
    d["data"].pop("data_dir", None)
    d["data"].pop("download", None)
    return d


def run_id_of(identity: dict[str, Any]) -> str:
    blob = json.dumps(identity, sort_keys=True, separators=(",", ":"))
    return hashlib.sha1(blob.encode()).hexdigest()[:12]
