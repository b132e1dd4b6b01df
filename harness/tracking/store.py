"""The local results store: the source of truth for reports.

One folder per run under results/<study>/runs/, holding the resolved config,
one metrics row per epoch, the environment, a checkpoint and, once the run has
ended, its summary. Every write goes to a temporary file in the same folder,
is fsynced and then renamed over the target, so a killed process never leaves
a half-written file that later code trusts. A run counts as finished only when
summary.json exists.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

CONFIG = "config.json"
METRICS = "metrics.csv"
SUMMARY = "summary.json"
ENV = "env.json"
CHECKPOINT = "checkpoint.pt"
FINISHED_STATUSES = ("completed", "diverged", "stopped")


def ensure_writable(path: Path) -> None:
    """Fail early, with one line, when results cannot be written there (creates nothing)."""
    from harness.errors import HarnessError

    probe = Path(path).absolute()
    while not probe.exists():
        probe = probe.parent
    if not probe.is_dir() or not os.access(probe, os.W_OK | os.X_OK):
        what = "is not a folder" if not probe.is_dir() else "is not writable"
        raise HarnessError(f"cannot write results to {path}: {probe} {what}")


def file_mode() -> int:
    """0666 less the umask (0644 usually), what open() would give: mkstemp makes 0600, which
    other users of a shared results folder cannot read."""
    try:  # Linux: read it without changing it (os.umask would, for every thread)
        with open("/proc/self/status") as f:
            mask = next(int(ln.split()[1], 8) for ln in f if ln.startswith("Umask:"))
    except (OSError, StopIteration, ValueError, IndexError):
        mask = os.umask(0)
        os.umask(mask)
    return 0o666 & ~mask


def atomic_write_bytes(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, file_mode())
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def remove_stale_temp_files(study_dir: Path, min_age: float = 60.0) -> int:
    """Delete the temporary files a killed writer left (`.NAME.*.tmp`, never trusted: the
    rename that would have made them real never happened). A write takes well under a
    second, so a temp file older than `min_age` seconds is no one's work in progress.
    Returns how many were removed."""
    removed = 0
    now = time.time()
    for pattern in (".*.tmp", "runs/*/.*.tmp"):
        for tmp in study_dir.glob(pattern):
            try:
                if now - tmp.stat().st_mtime >= min_age:
                    tmp.unlink()
                    removed += 1
            except FileNotFoundError:
                pass
    return removed


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode())


def atomic_write_json(path: Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=_jsonable) + "\n")


def atomic_torch_save(path: Path, obj: Any) -> None:
    import torch

    buf = io.BytesIO()
    torch.save(obj, buf)
    atomic_write_bytes(path, buf.getvalue())


def _jsonable(o: Any) -> Any:
    if isinstance(o, Path):
        return str(o)
    if hasattr(o, "tolist") and hasattr(o, "dim"):  # a tensor (torch imported lazily)
        return o.tolist()
    if hasattr(o, "item"):
        return o.item()
    raise TypeError(f"not JSON serializable: {type(o).__name__}")


def slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.=+-]+", "_", text).strip("_")[:80] or "run"


def csv_fields(rows: list[dict[str, Any]]) -> list[str]:
    """Every key of every row, in first-seen order (the CSV header)."""
    fields: list[str] = []
    for r in rows:
        fields += [k for k in r if k not in fields]
    return fields


def rows_to_csv(rows: Iterable[dict[str, Any]]) -> str:
    rows = list(rows)
    fields = csv_fields(rows)
    out = io.StringIO()
    w = csv.DictWriter(out, fieldnames=fields, lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    return out.getvalue()


class RunDir:
    """One run's folder. Name: <variant>-s<seed>-<run id> (found again by its id)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._metrics_fields: list[str] | None = None  # header of metrics.csv as last written
        self._metrics_rows = 0  # rows metrics.csv holds, as written by this object

    @classmethod
    def for_run(cls, study_dir: Path, variant: str, seed: int, run_id: str) -> RunDir:
        runs = study_dir / "runs"
        existing = sorted(runs.glob(f"*-{run_id}")) if runs.is_dir() else []
        if existing:
            return cls(existing[0])
        return cls(runs / f"{slug(variant)}-s{seed}-{run_id}")

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
    def read_json(self, name: str) -> dict[str, Any] | None:
        p = self.path / name
        if not p.is_file():
            return None
        try:
            return json.loads(p.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError):
            return None

    @property
    def config(self) -> dict[str, Any] | None:
        return self.read_json(CONFIG)

    @property
    def summary(self) -> dict[str, Any] | None:
        return self.read_json(SUMMARY)

    def metrics(self) -> list[dict[str, Any]]:
        p = self.path / METRICS
        if not p.is_file():
            return []
        with p.open(newline="") as f:
            return [{k: _parse(v) for k, v in row.items()} for row in csv.DictReader(f)]

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
        return bool(s) and s.get("status") in FINISHED_STATUSES


def _parse(v: str | None) -> Any:
    if v is None or v == "":
        return None
    try:
        f = float(v)
    except ValueError:
        return v
    return int(f) if f.is_integer() and "." not in v and "e" not in v.lower() else f


def list_run_dirs(study_dir: Path) -> list[RunDir]:
    runs = study_dir / "runs"
    if not runs.is_dir():
        return []
    return [RunDir(p) for p in sorted(runs.iterdir()) if p.is_dir() and (p / CONFIG).is_file()]
