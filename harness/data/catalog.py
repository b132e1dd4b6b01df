"""What `harness datasets` lists: every registered dataset, where it comes from, whether its
files are in the data folder. Reads file names only, never the data."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from harness.data.base import DATASETS, info_of
from harness.plugins import plugin_source


def files_status(name: str, data_dir: Path) -> tuple[str, list[str]]:
    """('present' | 'missing' | 'none needed' | 'per config' | 'unknown', missing paths)."""
    info = info_of(name)
    if info.files is None:
        return ("per config" if info.options is not None else "unknown"), []
    paths = info.files(data_dir)
    if not paths:
        return "none needed", []
    missing = [str(p) for p in paths if not (p.is_file() or p.with_name(p.name + ".gz").is_file())]
    return ("missing" if missing else "present"), missing


def dataset_rows(data_dir: Path) -> list[dict[str, Any]]:
    rows = []
    for name, loader in DATASETS.items():
        info = info_of(name)
        status, missing = files_status(name, data_dir)
        rows.append({"name": name, "kind": info.kind or "?", "source": plugin_source(loader),
                     "files": status, "missing": missing, "download": info.download,
                     "summary": ((loader.__doc__ or "").strip().splitlines() or [""])[0]})
    return rows
