"""`harness sync`: upload a study's offline W&B runs with `wandb sync`, one subprocess per
run folder, telling synced from failed and skipped (already synced, or an earlier attempt of
a resumed run)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from harness.record.layout import SEARCH, WANDB
from harness.record.schema import study_name
from harness.tracking.wandb_client import find_credentials, server_unreachable

SYNC_TIMEOUT_S = 300.0


@dataclass
class SyncResult:
    """Outcome of `sync_study`: folders synced, failed (folder -> first error line), skipped."""

    study: str
    synced: list[Path] = field(default_factory=list)
    failed: dict[Path, str] = field(default_factory=dict)
    skipped: dict[Path, str] = field(default_factory=dict)
    seconds: float = 0.0
    not_logged_in: str = ""  # why nothing was tried, when the user can fix it (no credentials)

    @property
    def ok(self) -> bool:
        return not self.failed

    def summary_line(self) -> str:
        return (f"W&B sync of {self.study}: {len(self.synced)} synced, {len(self.failed)} failed"
                + (f", {len(self.skipped)} skipped" if self.skipped else "")
                + (f" in {self.seconds:.0f} s" if self.seconds >= 1 else ""))

    def lines(self) -> list[str]:
        out = [self.summary_line()]
        out += [f"  synced  {p.name}" for p in self.synced]
        out += [f"  FAILED  {p.name}: {why}" for p, why in self.failed.items()]
        out += [f"  skipped {p.name}: {why}" for p, why in self.skipped.items()]
        return out


def offline_run_dirs(study_dir: Path) -> list[Path]:
    """The offline-run-* folders (holding a .wandb file) of one study: its training and study
    runs (results/<study>/wandb/) and a tuning study's search trials (search/*/wandb/)."""
    study_dir = Path(study_dir)
    roots = [study_dir / WANDB, *sorted(study_dir.glob(f"{SEARCH}/*/{WANDB}"))]
    return [p for root in roots if root.is_dir() for p in sorted(root.glob("offline-run-*"))
            if p.is_dir() and any(p.glob("*.wandb"))]


def offline_run_id(folder: Path) -> str:
    """The W&B run id of an offline-run folder, from the run-<id>.wandb file it holds: the
    folder's own name is offline-run-<date>_<time>-<id>, plus -<n> when an earlier attempt
    of the same run started in the same second (wandb.init avoids the clash that way)."""
    logs = sorted(folder.glob("run-*.wandb"))
    if logs:
        return logs[0].name[len("run-"):-len(".wandb")]
    parts = folder.name.split("-", 3)
    return parts[3] if len(parts) == 4 else folder.name


def superseded(dirs: list[Path]) -> dict[Path, Path]:
    """Earlier attempts of a W&B run (a killed run, resumed later under the same id) -> the
    latest one, which holds the whole history: only that one is uploaded."""
    latest: dict[tuple[Path, str], Path] = {}
    for d in dirs:  # names sort by start time within a folder
        key = (d.parent, offline_run_id(d))
        if key not in latest or d.name > latest[key].name:
            latest[key] = d
    return {d: latest[(d.parent, offline_run_id(d))] for d in dirs
            if latest[(d.parent, offline_run_id(d))] != d}


def wandb_command() -> list[str]:
    """The `wandb` CLI of this interpreter's environment."""
    exe = Path(sys.executable).with_name("wandb")
    if exe.is_file():
        return [str(exe)]
    found = shutil.which("wandb")
    return [found] if found else [sys.executable, "-m", "wandb"]


def _run_command(cmd: list[str], timeout: float) -> subprocess.CompletedProcess:
    """subprocess.run, no stdin (a login prompt must fail, never wait). Tests replace this."""
    return subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                          timeout=timeout, check=False, env={**os.environ, "WANDB_SILENT": "false"})


def _first_error(text: str) -> str:
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    for ln in lines:
        if "error" in ln.lower() or "failed" in ln.lower():
            return ln
    return lines[-1] if lines else "no output"


def sync_study(study_dir: Path, *, timeout_s: float = SYNC_TIMEOUT_S,
               include_synced: bool = False, check_login: bool = True,
               progress: Callable[[str], None] | None = None) -> SyncResult:
    """`wandb sync <dir>` for every offline run of one study, one subprocess each, at most
    timeout_s seconds each; `progress` gets one line per run as it ends.

    Folders already uploaded (a `.wandb.synced` marker from wandb) are skipped unless
    include_synced, and so are earlier attempts of a resumed run (`superseded`). Without W&B
    credentials, or with the server unreachable (one probe), nothing is attempted: every run
    is reported failed with the reason (wandb would prompt on a terminal, or retry for minutes).
    """
    started = time.monotonic()
    study_dir = Path(study_dir)
    result = SyncResult(study=study_name(study_dir))
    say = progress or (lambda line: None)
    dirs = offline_run_dirs(study_dir)
    if check_login and dirs:
        source, problem = find_credentials()
        why = problem or ("not logged in to W&B: run `wandb login` or set WANDB_API_KEY"
                          if source is None else server_unreachable())
        if why:
            result.failed = dict.fromkeys(dirs, why)
            result.not_logged_in = why if source is None or problem else ""
            if not result.not_logged_in:  # the caller says that one (`harness sync`: exit 2)
                say(f"nothing synced: {why}")
            return result
    later = superseded(dirs)
    cmd = wandb_command()
    for i, run_dir in enumerate(dirs, 1):
        label = f"[{i}/{len(dirs)}] {run_dir.relative_to(study_dir)}"
        if run_dir in later:
            result.skipped[run_dir] = f"superseded by {later[run_dir].name} (same run, resumed)"
            say(f"{label}: skipped (superseded by a later attempt)")
            continue
        if not include_synced and any(run_dir.glob("*.wandb.synced")):
            result.skipped[run_dir] = "already synced"
            say(f"{label}: skipped (already synced)")
            continue
        t0 = time.monotonic()
        try:
            proc = _run_command([*cmd, "sync", str(run_dir)], timeout_s)
        except subprocess.TimeoutExpired:
            result.failed[run_dir] = f"timed out after {timeout_s:.0f} s"
        except OSError as exc:
            result.failed[run_dir] = f"cannot run wandb: {exc}"
        else:
            output = f"{proc.stderr or ''}\n{proc.stdout or ''}"
            if proc.returncode != 0 or "ERROR" in output:
                result.failed[run_dir] = _first_error(output)
            else:
                result.synced.append(run_dir)
        outcome = "FAILED: " + result.failed[run_dir] if run_dir in result.failed else "synced"
        say(f"{label}: {outcome} ({time.monotonic() - t0:.1f} s)")
    result.seconds = time.monotonic() - started
    return result


