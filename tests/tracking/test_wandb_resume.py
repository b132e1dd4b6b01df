"""W&B across a run's life: a killed run resumed continues its W&B run with every epoch once
(read back with W&B's own reader, `wandb leet inspect --json`), a pruned run finishes clean
with a `pruned` tag, an unreachable server is found once per study, and results files are
readable by others (0644 under the usual umask)."""

from __future__ import annotations

import json
import os
import signal
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import REPO, tiny_raw
from wandb_offline import read_offline_run

from harness.config import build_run_config
from harness.publish.sync import offline_run_dirs, offline_run_id, superseded
from harness.record.disk import atomic_write_text
from harness.tracking import wandb_mode
from harness.tracking.wandb_client import wandb_safe_id
from harness.tracking.wandb_tracker import wandb_run_tracker
from harness.train.loop import train_run

WANDB = Path(sys.executable).with_name("wandb")
FAKE_KEY = "a" * 40

KILLER = """
import os, signal, sys
from pathlib import Path
from harness.config import build_run_config
from harness.tracking.wandb_tracker import wandb_run_tracker
from harness.train.loop import train_run

raw, results, kill_after = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3])

def kill(epoch, row):
    if epoch == kill_after:
        os.kill(os.getpid(), signal.SIGKILL)  # no cleanup at all: a power cut

import json
config = build_run_config(json.loads(raw), "killed")
train_run(config, results_dir=results, on_epoch=[kill], tracker=wandb_run_tracker(config, results))
"""


def leet_records(run_dir: Path) -> list[dict[str, Any]]:
    """W&B's own offline reader: one JSON record per line."""
    out = subprocess.run([str(WANDB), "leet", "inspect", "--json", str(run_dir)],
                         capture_output=True, text=True, timeout=60, check=True,
                         stdin=subprocess.DEVNULL)
    return [json.loads(line) for line in out.stdout.splitlines() if line.strip()]


@pytest.mark.slow
@pytest.mark.skipif(not WANDB.is_file(), reason="needs the wandb CLI beside this Python")
def test_killed_run_resumes_its_wandb_run_with_every_epoch_once(tmp_path: Path) -> None:
    # seed 7919: a run id no other test in this process opens in wandb-core
    raw = tiny_raw(study="resume", seed=7919, train={"epochs": 4, "checkpoint_every_s": 0},
                   tracking={"wandb": "offline", "project": "harness-test"})
    results = tmp_path / "results"
    env = {**os.environ, "PYTHONPATH": str(REPO), "WANDB_SILENT": "true"}
    # The killed process must own its W&B service: inheriting this process's (WANDB_SERVICE,
    # set once an earlier test started one) would leave its run open in the service we
    # resume through, as a killed machine never would.
    env.pop("WANDB_SERVICE", None)
    killed = subprocess.run([sys.executable, "-c", KILLER, json.dumps(raw), str(results), "2"],
                            env=env, capture_output=True, text=True, timeout=300)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]

    config = build_run_config(raw, "resume")
    started: list[int] = []

    class Starts:
        def start(self, name: str, epochs: int, first_epoch: int) -> None:
            started.append(first_epoch)

        def epoch(self, row: dict[str, Any]) -> None: ...
        def end(self, summary: dict[str, Any]) -> None: ...

    result = train_run(config, results_dir=results, reporter=Starts(),
                       tracker=wandb_run_tracker(config, results))
    assert started == [3]  # resumed from the epoch-2 checkpoint, not trained again
    assert result.summary["status"] == "completed" and len(result.rows) == 4

    sdir = results / "resume"
    dirs = offline_run_dirs(sdir)
    wandb_id = wandb_safe_id(config.run_id())
    # both attempts are this run's; a second attempt started in the same second as the first
    # gets W&B's "-1" folder suffix, so the id is read from the folder's .wandb file
    assert len(dirs) == 2 and all(offline_run_id(d) == wandb_id for d in dirs)
    latest = Path(result.summary["wandb"]["run_dir"])
    assert superseded(dirs) == {dirs[0]: latest}  # sync uploads the resumed one only

    records = leet_records(latest)
    (run,) = [r["run"] for r in records if r["type"] == "run"][:1]
    assert run["run_id"] == wandb_id and run.get("resume") is True
    epochs = [r["history"]["item"]["epoch"] for r in records if r["type"] == "history"]
    assert epochs == [1, 2, 3, 4]
    val_loss = {r["history"]["item"]["epoch"]: r["history"]["item"]["val_loss"]
                for r in records if r["type"] == "history"}
    for row in result.rows:  # the restored epochs are the killed process's own numbers
        assert val_loss[row["epoch"]] == pytest.approx(row["val_loss"], rel=1e-9)
    (exit_record,) = [r for r in records if r["type"] == "exit"]
    assert exit_record["exit"].get("exit_code", 0) == 0
    summary = read_offline_run(latest).summary
    assert summary["val_loss"]["min"] == pytest.approx(min(r["val_loss"] for r in result.rows))


def test_pruned_run_finishes_with_exit_code_0_and_a_pruned_tag(tmp_path: Path) -> None:
    import optuna

    raw = tiny_raw(study="prune", train={"epochs": 3},
                   tracking={"wandb": "offline", "project": "harness-test", "tags": ["mine"]})

    def prune(epoch: int, row: dict[str, Any]) -> None:
        raise optuna.TrialPruned(f"pruned at epoch {epoch}")

    with pytest.raises(optuna.TrialPruned):
        config = build_run_config(raw, "prune")
        train_run(config, results_dir=tmp_path, on_epoch=[prune],
                  tracker=wandb_run_tracker(config, tmp_path))
    (run_dir,) = offline_run_dirs(tmp_path / "prune")
    run = read_offline_run(run_dir)
    assert run.complete and run.exit_code == 0
    assert "pruned" in run.tags and "mine" in run.tags
    assert [h["epoch"] for h in run.history] == [1]


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed again on exit: connecting is refused


@pytest.mark.slow
def test_unreachable_server_is_found_once_and_every_run_goes_offline(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WANDB_API_KEY", FAKE_KEY)
    monkeypatch.setenv("WANDB_BASE_URL", f"http://127.0.0.1:{closed_port()}")
    wandb_mode._probe.cache_clear()
    connects: list[Any] = []
    real = socket.create_connection

    def counting(*args: Any, **kwargs: Any) -> Any:
        connects.append(args[0])
        return real(*args, **kwargs)

    monkeypatch.setattr(wandb_mode.socket, "create_connection", counting)
    started = time.monotonic()
    for seed in (0, 1):
        raw = tiny_raw(study="net", seed=seed, train={"epochs": 1},
                       tracking={"wandb": "auto", "project": "harness-test"})
        config = build_run_config(raw, "net")
        result = train_run(config, results_dir=tmp_path,
                           tracker=wandb_run_tracker(config, tmp_path))
        assert result.summary["wandb"]["mode"] == "offline"
        assert not result.summary["wandb"]["failed"]
    assert len(connects) == 1  # probed once; the second run knew
    assert os.environ[wandb_mode.UNREACHABLE_ENV].startswith("http://127.0.0.1:")
    assert time.monotonic() - started < 60  # no 20-100 s wait per run
    assert len(offline_run_dirs(tmp_path / "net")) == 2


@pytest.mark.parametrize(("umask", "mode"), [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_results_files_follow_the_umask(tmp_path: Path, umask: int, mode: int) -> None:
    old = os.umask(umask)
    try:
        atomic_write_text(tmp_path / "summary.json", "{}")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "summary.json").stat().st_mode) == mode


def test_an_attempt_started_in_the_same_second_is_still_superseded(tmp_path: Path) -> None:
    """wandb.init names a second attempt that starts in the first's second ...-<id>-1: it is
    the same W&B run (its .wandb file says so), so only the later attempt is uploaded."""
    first = tmp_path / "offline-run-20261130_090529-abc123-5f3e"
    again = tmp_path / "offline-run-20261130_090529-abc123-5f3e-1"
    other = tmp_path / "offline-run-20261130_090529-other-1"
    for folder, run_id in ((first, "abc123-5f3e"), (again, "abc123-5f3e"), (other, "other-1")):
        folder.mkdir()
        (folder / f"run-{run_id}.wandb").write_bytes(b"")
    assert [offline_run_id(d) for d in (first, again, other)] == \
        ["abc123-5f3e", "abc123-5f3e", "other-1"]
    assert superseded([first, again, other]) == {first: again}
