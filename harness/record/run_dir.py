"""One run's folder, results/<study>/runs/<variant>-s<seed>-<run id>/: what the local store
writes (config, env, one metrics row per epoch, a checkpoint and, once the run has ended,
its summary) and reads back to resume. A run counts as finished only when summary.json
exists. The file names are record/layout.py's; the writes are record/disk.py's (atomic).
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

from harness.errors import ConfigError
from harness.record.disk import (
    atomic_torch_save,
    atomic_write_json,
    atomic_write_text,
    csv_fields,
    read_json,
    rows_to_csv,
)
from harness.record.layout import (
    CHECKPOINT,
    CONFIG,
    ENV,
    METRICS,
    MODEL,
    RUN_ID_SUFFIX,
    SUMMARY,
    folder_of_run,
    run_folder_name,
    run_folders,
    runs_dir,
)
from harness.record.numbers import parse_cell
from harness.record.schema import FINISHED_STATUSES


class RunDir:
    """One run's folder. Name: <variant>-s<seed>-<run id> (found again by its id)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._metrics_fields: list[str] | None = None  # header of metrics.csv as last written
        self._metrics_rows = 0  # rows metrics.csv holds, as written by this object

    @classmethod
    def for_run(cls, study_dir: Path, variant: str, seed: int, run_id: str) -> RunDir:
        existing = folder_of_run(study_dir, run_id)
        return cls(existing or runs_dir(study_dir) / run_folder_name(variant, seed, run_id))

    # --- writing ------------------------------------------------------------------
    def write_config(self, config: dict[str, Any]) -> None:
        atomic_write_json(self.path / CONFIG, config)

    def write_env(self, env: dict[str, Any]) -> None:
        atomic_write_json(self.path / ENV, env)

    def write_metrics(self, rows: list[dict[str, Any]]) -> None:
        """The whole file, atomically (a resume, or columns that changed)."""
        atomic_write_text(self.path / METRICS, rows_to_csv(rows))
        self._metrics_fields = csv_fields(rows) if rows else None
        self._metrics_rows = len(rows)

    def append_metrics(self, rows: list[dict[str, Any]]) -> None:
        """Add the last row of `rows` to metrics.csv: one appended line per epoch instead of
        rewriting the whole file (quadratic over a long run). Not fsynced: an fsync per epoch
        cost more than the epoch itself on small models, and the file is only trusted once the
        run's summary.json (fsynced, atomic) exists. Falls back to a
        whole rewrite when this object did not write the file's first rows (a resume) or the
        columns changed. A line cut short by a kill is harmless: the run is unfinished, and
        its resume rewrites the file from the checkpoint's rows."""
        if not rows:
            return
        last = rows[-1]
        if (self._metrics_fields is None or self._metrics_rows != len(rows) - 1
                or list(last) != self._metrics_fields):
            self.write_metrics(rows)
            return
        line = rows_to_csv([last]).split("\n", 1)[1]
        with open(self.path / METRICS, "a") as f:
            f.write(line)
        self._metrics_rows += 1

    def write_summary(self, summary: dict[str, Any]) -> None:
        atomic_write_json(self.path / SUMMARY, summary)

    def save_checkpoint(self, state: dict[str, Any]) -> None:
        atomic_torch_save(self.path / CHECKPOINT, state)

    def clear_for_rerun(self) -> None:
        """Drop what a failed or interrupted attempt left, keeping nothing it half-made."""
        for name in (SUMMARY, METRICS):
            (self.path / name).unlink(missing_ok=True)

    # --- reading ------------------------------------------------------------------
    @property
    def config(self) -> dict[str, Any] | None:
        return read_json(self.path / CONFIG)

    @property
    def summary(self) -> dict[str, Any] | None:
        return read_json(self.path / SUMMARY)

    def metrics(self) -> list[dict[str, Any]]:
        p = self.path / METRICS
        if not p.is_file():
            return []
        with p.open(newline="") as f:
            return [{k: parse_cell(v) for k, v in row.items()} for row in csv.DictReader(f)]

    def load_checkpoint(self) -> dict[str, Any] | None:
        p = self.path / CHECKPOINT
        if not p.is_file():
            return None
        try:
            import torch

            return torch.load(p, map_location="cpu", weights_only=True)
        except Exception:  # a checkpoint that cannot be read is as good as none
            return None

    @property
    def finished(self) -> bool:
        s = self.summary
        return s is not None and s.get("status") in FINISHED_STATUSES


def list_run_dirs(study_dir: Path) -> list[RunDir]:
    """The run folders of a study that hold a config (a run started there)."""
    return [RunDir(p) for p in run_folders(study_dir) if (p / CONFIG).is_file()]


# ----------------------------------------------------------------------------- finished runs
# A finished run named by its folder: where `model.init_from` and a distillation teacher
# read their weights.


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
    config_file, weights = folder / CONFIG, folder / MODEL
    if not config_file.is_file() or not weights.is_file():
        raise ConfigError(f"{key} = {ref!r}: {folder} is not a finished run folder (needs "
                          f"{CONFIG} and {MODEL})")
    saved = read_json(config_file)
    if saved is None:
        raise ConfigError(f"{key}: {config_file} is not a readable JSON object")
    return folder, saved
