"""Writing and reading the record's files. Every write goes to a temporary file in the same
folder, is fsynced and then renamed over the target, so a killed process never leaves a
half-written file that later code trusts; a file that cannot be read reads as missing."""

from __future__ import annotations

import csv
import io
import json
import os
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from harness.errors import HarnessError
from harness.record.layout import RUNS


def ensure_writable(path: Path) -> None:
    """Fail early, with one line, when results cannot be written there (creates nothing)."""
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
    for pattern in (".*.tmp", f"{RUNS}/*/.*.tmp"):
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


def read_json(path: Path) -> dict[str, Any] | None:
    """A JSON object from `path`; None when it is missing, unreadable or not an object."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None
