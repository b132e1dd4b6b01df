"""Atomic writes (harness.tracking.store) that leave report files world-readable."""

from __future__ import annotations

import contextlib
from pathlib import Path

from harness.tracking.store import atomic_write_bytes as _store_write_bytes

FILE_MODE = 0o644  # the store's temp files are created 0600; reports are meant to be shared


def atomic_write_bytes(path: Path, data: bytes) -> None:
    _store_write_bytes(path, data)
    with contextlib.suppress(OSError):
        path.chmod(FILE_MODE)


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode())
