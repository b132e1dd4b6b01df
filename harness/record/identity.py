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

# where a run is filed, not what it computes (`numerics`, the version of the code's numerics
# that trains it, stays: harness/numerics.py)
NAMES = ("study", "variant", "tracking", "plugins", "run_id")
# How a run executes and where its files come from, not what it computes (a run gives the
# same numbers on any device or thread count, from any data folder).
EXECUTION_KEYS = {("train", "device"), ("train", "threads"), ("train", "checkpoint_every_s"),
                  ("data", "data_dir"), ("data", "download")}


def identity_of(dumped: dict[str, Any]) -> dict[str, Any]:
    """RunConfig.identity from a saved config.json, without validating it (so a study's runs
    can be checked where the plug-ins that defined its model are not installed)."""
    d = copy.deepcopy({k: v for k, v in dumped.items() if k not in NAMES})
    for section, key in EXECUTION_KEYS:
        d[section].pop(key, None)
    return d


def run_id_of(identity: dict[str, Any]) -> str:
    blob = json.dumps(identity, sort_keys=True, separators=(",", ":"))
    return hashlib.sha1(blob.encode()).hexdigest()[:12]
