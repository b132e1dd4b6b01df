"""Turn what goes wrong at run time into one line with a next step and an exit code.

2: the user can fix it (a bad config, a folder they cannot write, a study already running, a
storage URL that reaches no server or is refused, a corrupt local queue file to delete);
1: the environment failed (disk full, the queue database failing while in use).
Every `harness` command passes its exceptions through `describe`; `--debug` shows the
traceback instead.
"""

from __future__ import annotations

import errno
import re
from collections.abc import Iterator

from harness.errors import HarnessError, one_line

USER, ENVIRONMENT = 2, 1
RERUN = "run the same command again: finished runs are kept"
FULL = (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC), errno.EFBIG)
DENIED = (errno.EACCES, errno.EPERM, errno.EROFS)
STORAGE_MODULES = ("sqlalchemy", "optuna", "sqlite3", "psycopg2", "psycopg", "pymysql")
CORRUPT_TEXT = ("file is not a database", "database disk image is malformed")
# the server cannot be reached or refuses the URL's user, password or database (psycopg2's,
# psycopg's and pymysql's words): the URL or the server is the user's to fix
UNREACHABLE_TEXT = ("could not connect", "connection refused", "could not translate host name",
                    "name or service not known", "password authentication failed",
                    "no password supplied", "timeout expired", "can't connect",
                    "access denied for user", "unknown database")
MISSING_ROLE_OR_DB = re.compile(r'(database|role) "[^"]*" does not exist')


class EnvironmentFailure(HarnessError):
    """The machine, the disk or the queue database failed; shown as one line, exit code 1."""

    exit_code = ENVIRONMENT


class CorruptQueue(HarnessError):
    """The local queue file is not a readable SQLite database (exit 2: deleting it is the
    fix, and safe)."""

    def __init__(self, path: str, detail: str) -> None:
        super().__init__(
            f"{path}: the study's queue is corrupt ({detail}); deleting it is safe (finished "
            f"results are in the run folders): rm {path}, then run the same command again")


def _chain(err: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    cur: BaseException | None = err
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        yield cur
        cur = cur.__cause__ or cur.__context__


def _is_storage(err: BaseException) -> bool:
    return any(type(e).__module__.split(".")[0] in STORAGE_MODULES for e in _chain(err))


def describe_os_error(err: OSError) -> HarnessError:
    where = f" {err.filename}" if err.filename else ""
    why = err.strerror or one_line(err)
    if err.errno in FULL:
        return EnvironmentFailure(f"disk full writing{where} ({why}); free space and {RERUN}")
    if err.errno in DENIED:
        return HarnessError(f"cannot write{where} ({why}); fix its permissions or choose "
                            "another --results-dir")
    return EnvironmentFailure(f"{why}{where}; check the folder and {RERUN}")


def describe_storage_error(err: BaseException, queue: str | None = None) -> HarnessError:
    chain = list(_chain(err))
    text = " ".join(one_line(e) for e in chain).lower()
    detail = one_line(chain[-1], 200)  # the root cause (sqlite's or the server's words)
    if queue and any(t in text for t in CORRUPT_TEXT):
        return CorruptQueue(queue, next(t for t in CORRUPT_TEXT if t in text))
    if "database or disk is full" in text or "no space left" in text:
        return EnvironmentFailure(f"disk full writing the study's queue ({detail}); free space "
                                  f"and {RERUN}")
    if any(t in text for t in UNREACHABLE_TEXT) or MISSING_ROLE_OR_DB.search(text):
        return HarnessError(f"queue storage unreachable ({detail}); check --storage (host, port, "
                            "database, user, password) and that the server is up")
    if "readonly database" in text or "unable to open database file" in text:
        return HarnessError(f"cannot write the study's queue{f' {queue}' if queue else ''} "
                            f"({detail}); fix the folder's permissions or choose another "
                            "--results-dir")
    return EnvironmentFailure(f"queue storage failed ({type(err).__name__}: {detail}); check "
                              f"the storage (server up, URL right) and {RERUN}")


def describe(err: BaseException, queue: str | None = None) -> HarnessError:
    """The one-line, exit-coded form of any error a command can meet."""
    if isinstance(err, HarnessError):
        return err
    if _is_storage(err):
        return describe_storage_error(err, queue)
    for e in _chain(err):
        if isinstance(e, OSError):
            return describe_os_error(e)
    return EnvironmentFailure(f"unexpected {type(err).__name__}: {one_line(err, 300)} "
                              "(run with --debug for the traceback)")
