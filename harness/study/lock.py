"""File locks of a study folder, and one coordinator per study: a second `harness
ablation`/`tune` of a running study is told who holds it (pid, host, since when) and exits
2, instead of queueing every run twice; a run folder is trained by one local worker at once.

Locally the lock is an flock on results/<study>/.study.lock (released by the kernel when
the holder dies); with a PostgreSQL queue it is also a session advisory lock in the
database, so coordinators on two machines sharing one queue exclude each other too.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import time
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from harness.errors import HarnessError
from harness.record.layout import RUN_LOCK, STUDY_LOCK

HOLDER_ATTR = "coordinator"


class StudyBusy(HarnessError):
    """The study is being run by another coordinator right now."""


def holder_info() -> dict[str, Any]:
    return {"pid": os.getpid(), "host": socket.gethostname(),
            "since": time.strftime("%Y-%m-%d %H:%M:%S %Z", time.localtime())}


def busy_message(name: str, holder: dict[str, Any] | None) -> str:
    who = (f"pid {holder.get('pid')} on {holder.get('host')} since {holder.get('since')}"
           if holder else "another process (it has not said who yet)")
    return (f"study {name} is already running ({who}); wait for it to finish, or add "
            f"workers to it with `harness worker --study {name} --storage URL`")


def _read_holder(fd: int) -> dict[str, Any] | None:
    for _ in range(10):  # the holder writes its line just after taking the lock
        try:
            text = os.pread(fd, 4096, 0).decode()
            if text.strip():
                return json.loads(text)
        except (OSError, ValueError):
            pass
        time.sleep(0.1)
    return None


@contextmanager
def file_lock(path: Path, wait: bool) -> Iterator[tuple[int, bool]]:
    """(fd, held) for an exclusive flock on `path` (created), released when the block ends or
    the holder dies; without `wait`, held is False when another process holds it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            yield fd, False
            return
        yield fd, True
    finally:
        os.close(fd)


@contextmanager
def study_lock(sdir: Path) -> Iterator[bool]:
    """Hold results/<study>/.study.lock for the duration, or raise StudyBusy naming the
    holder. Yields True (kept for callers that ask whether they are alone)."""
    with file_lock(sdir / STUDY_LOCK, wait=False) as (fd, held):
        if not held:
            raise StudyBusy(busy_message(sdir.name, _read_holder(fd)))
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(holder_info()).encode(), 0)
        yield True


@contextmanager
def run_lock(path: Path, wait: bool = False) -> Iterator[bool]:
    """An exclusive lock on one run folder: True if we hold it (no one else trains it here).
    With `wait`, block until the other holder is done (its finished run is then reused)."""
    with file_lock(path / RUN_LOCK, wait) as (_, held):
        yield held


def advisory_key(name: str) -> int:
    return zlib.crc32(f"harness-study:{name}".encode())


@contextmanager
def storage_lock(queue: Any, name: str) -> Iterator[None]:
    """With a PostgreSQL queue (a RunQueue), hold a session advisory lock named after the
    study (None or other storages: nothing to do; SQLite is local: `study_lock`)."""
    study: Any = getattr(queue, "study", None)  # used only with a PostgreSQL engine
    engine = getattr(getattr(queue, "storage", None), "engine", None)
    if engine is None or engine.dialect.name != "postgresql":
        yield
        return
    from sqlalchemy import text

    with engine.connect() as conn:
        key = advisory_key(name)
        got = conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": key}).scalar()
        conn.commit()  # the lock is the session's: no transaction is left open meanwhile
        if not got:
            holder = None
            for _ in range(10):
                holder = study.user_attrs.get(HOLDER_ATTR)
                if holder:
                    break
                time.sleep(0.1)
            raise StudyBusy(busy_message(name, holder))
        try:
            study.set_user_attr(HOLDER_ATTR, holder_info())
            yield
        finally:
            study.set_user_attr(HOLDER_ATTR, None)
            conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": key})
            conn.commit()
