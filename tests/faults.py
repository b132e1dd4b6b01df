"""Helpers for the fault tests: run `harness` as a user would and read its answer."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

from conftest import study_file

REPO = Path(__file__).resolve().parents[1]


def as_terminal_job() -> None:
    """preexec_fn of a `harness` process that a test interrupts as Ctrl-C would: SIGINT
    back to its default. A test run started in the background of a script (`cmd &` without
    job control) has SIGINT ignored, its children inherit that, and Python then installs no
    KeyboardInterrupt handler: the child would never see the test's SIGINT."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def harness(*args: str, cwd: Path | None = None, timeout: float = 600,
            **env: str) -> subprocess.CompletedProcess[str]:
    """`python -m harness.cli ARGS` in a fresh process (this checkout first on the path)."""
    full_env = {**os.environ, "PYTHONPATH": str(REPO), "PYTHONUNBUFFERED": "1", **env}
    return subprocess.run([sys.executable, "-m", "harness.cli", *args], cwd=cwd, env=full_env,
                          capture_output=True, text=True, timeout=timeout)


def error_of(proc: subprocess.CompletedProcess[str]) -> str:
    """The one `error:` line of a failed command (asserting it is one line, no traceback)."""
    out = proc.stdout + proc.stderr
    assert "Traceback" not in out, out[-3000:]
    errors = [line for line in out.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, out[-3000:]
    return errors[0]


def write_study(folder: Path, name: str = "f", seeds: int = 1, epochs: int = 2,
                values: tuple[int, ...] = (8,), **extra: object) -> Path:
    return study_file(folder, name, seeds=seeds, description="fault test",
                      train={"epochs": epochs, "batch_size": 64, "threads": 1},
                      design={"kind": "sweep", "parameter": "model.width",
                              "values": list(values)}, **extra)


def files_under(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*")) if folder.exists() else []


@contextlib.contextmanager
def tmpfs(path: Path, size: str, read_only: bool = False) -> Iterator[bool]:
    """A small tmpfs at `path` (True) or nothing (False) where the kernel refuses the mount
    (not root, no CAP_SYS_ADMIN, a container without mount rights)."""
    path.mkdir(parents=True, exist_ok=True)
    opts = f"size={size}" + (",ro" if read_only else "")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(path)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        yield False
        return
    try:
        yield True
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True)


def remount(path: Path, options: str) -> None:
    subprocess.run(["mount", "-o", f"remount,{options}", str(path)], check=True)
