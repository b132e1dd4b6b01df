"""Where a study's queue lives: the one opener of an Optuna storage (SQLite file or database
URL), with its checks and the masked URL every message shows.

A tuning study keeps its search and its runs in one storage; ablation runs, search trials,
the CLI and the dashboard all open it here.
"""

from __future__ import annotations

import os
import random
import re
import time
from pathlib import Path
from typing import Any

import optuna
from optuna.storages import RDBStorage

from harness.errors import ConfigError, one_line
from harness.failures import CorruptQueue, describe_storage_error
from harness.record.layout import QUEUE_DB


def heartbeat_interval() -> int:
    return int(os.environ.get("HARNESS_HEARTBEAT_SECONDS", "10"))


def mask_url(url: str) -> str:
    """Hide the password of a storage URL before it reaches a log, the console or a report."""
    return re.sub(r"(://[^:/@]+:)[^@]*@", r"\1***@", url)


def default_storage_url(study_dir: Path) -> str:
    return f"sqlite:///{(study_dir / QUEUE_DB).resolve()}"


SQLITE_HEADER = b"SQLite format 3\x00"
SCHEMA_RACE = ("unique", "duplicate", "already exists")  # two processes created the tables
BAD_URL = ("ArgumentError", "NoSuchModuleError")  # a malformed URL or an unknown dialect


def sqlite_path(url: str) -> Path | None:
    """The file of a sqlite:/// URL (None for other storages and in-memory SQLite)."""
    prefix = "sqlite:///"
    return Path(url[len(prefix):]) if url.startswith(prefix) and len(url) > len(prefix) else None


def check_sqlite_file(url: str) -> None:
    """Refuse a queue file that is not SQLite before anything opens (or writes) it."""
    path = sqlite_path(url)
    if path is None or not path.is_file() or path.stat().st_size == 0:
        return
    with path.open("rb") as f:
        if f.read(len(SQLITE_HEADER)) != SQLITE_HEADER:
            raise CorruptQueue(str(path), "file is not a database")


def check_sqlite_folder(url: str) -> None:
    """A SQLite storage in a folder that does not exist: the URL's to fix (--storage)."""
    path = sqlite_path(url)
    if path is not None and not path.parent.is_dir():
        raise ConfigError(f"storage {mask_url(url)}: folder {path.parent} does not exist; "
                          "create it or pass another --storage")


def open_storage(url: str, attempts: int = 5) -> RDBStorage:
    """Optuna's RDB storage, creating its tables if needed. Processes that create the
    tables of a fresh database at the same moment collide on a unique key: the loser
    tries again (the tables are there by then)."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    check_sqlite_file(url)
    check_sqlite_folder(url)
    if url.startswith("sqlite"):
        engine: dict[str, Any] = {"connect_args": {"timeout": 60}}
    else:
        engine = {"pool_pre_ping": True}
    interval = heartbeat_interval()
    for attempt in range(attempts):
        try:
            return RDBStorage(url, engine_kwargs=engine, heartbeat_interval=interval,
                              grace_period=3 * interval)
        except Exception as err:
            if isinstance(err, ImportError | ValueError) or type(err).__name__ in BAD_URL:
                raise ConfigError(f"storage {mask_url(url)}: cannot open ({type(err).__name__}"
                                  f": {one_line(err, 200)})") from None
            text = one_line(err).lower()
            if attempt + 1 < attempts and any(t in text for t in SCHEMA_RACE):
                time.sleep(random.uniform(0.1, 0.5))
                continue
            path = sqlite_path(url)
            raise describe_storage_error(err, str(path) if path else None) from None
    raise AssertionError("unreachable")


def studies_in(url: str) -> list[str]:
    """Names of the Optuna studies a storage holds, creating nothing (not even tables, which
    would race with a coordinator creating them): a missing file or table holds none."""
    path = sqlite_path(url)
    if path is not None and not path.is_file():
        return []
    import sqlalchemy

    try:
        engine = sqlalchemy.create_engine(url)
        try:
            with engine.connect() as conn:
                if not sqlalchemy.inspect(conn).has_table("studies"):
                    return []
                rows = conn.execute(sqlalchemy.text("SELECT study_name FROM studies"))
                return [str(r[0]) for r in rows]
        finally:
            engine.dispose()
    except Exception as err:  # bad URL, unreachable server, missing driver
        if isinstance(err, ImportError | ValueError) or type(err).__name__ in BAD_URL:
            raise ConfigError(f"storage {mask_url(url)}: cannot open ({type(err).__name__}: "
                              f"{one_line(err, 200)})") from None
        raise describe_storage_error(err, None) from None
