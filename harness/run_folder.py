"""A finished run named by its folder: where `model.init_from` and a distillation teacher
read their weights. Below every layer (plain paths and JSON), so any layer may use it."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from harness.errors import ConfigError

RUN_ID_SUFFIX = re.compile(r"-([0-9a-f]{12})$")  # run folders end in their run id


def find_run_folder(ref: str, results_dir: str | Path, key: str) -> Path:
    """A run folder from a path: absolute, relative to the results folder, or to the working
    directory; a folder renamed for another variant is found by its run id suffix."""
    path = Path(ref).expanduser()
    candidates = [path] if path.is_absolute() else [Path(results_dir) / path, path]
    for c in candidates:
        if c.is_dir():
            return c
    match = RUN_ID_SUFFIX.search(path.name)
    for c in candidates:
        if match and c.parent.is_dir():
            found = sorted(c.parent.glob(f"*-{match.group(1)}"))
            if found:
                return found[0]
    raise ConfigError(f"{key} = {ref!r}: no such run folder (looked in {Path(results_dir)} and "
                      "the working directory); give a finished run folder or, in a study, the "
                      "name of an upstream run")


def finished_run(ref: str, results_dir: str | Path, key: str) -> tuple[Path, dict[str, Any]]:
    """(folder, its saved config) of a finished run, or one ConfigError line saying why not."""
    folder = find_run_folder(ref, results_dir, key)
    config_file, weights = folder / "config.json", folder / "model.pt"
    if not config_file.is_file() or not weights.is_file():
        raise ConfigError(f"{key} = {ref!r}: {folder} is not a finished run folder (needs "
                          "config.json and model.pt)")
    try:
        saved = json.loads(config_file.read_text())
    except (OSError, ValueError) as err:
        raise ConfigError(f"{key}: {config_file} is not readable JSON ({err})") from None
    return folder, saved
