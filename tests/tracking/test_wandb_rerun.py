"""Online resume keeps a forced rerun's history (issue 32, item 17). W&B's server is
simulated: an online init is an offline run (read back with `wandb leet inspect`) that
reports itself resumed with a server summary saying which epoch the server already holds."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from conftest import tiny_raw
from test_wandb_resume import WANDB, leet_records

from harness.config import build_run_config
from harness.tracking import wandb_client
from harness.tracking.wandb_client import WandbRun, wandb_safe_id
from harness.tracking.wandb_tracker import wandb_run_tracker
from harness.train.loop import train_run

pytestmark = pytest.mark.skipif(not WANDB.is_file(),
                                reason="needs the wandb CLI beside this Python")


class ServerSummary(dict):
    """What the server's summary says before this attempt logs (`epoch`); updates go to
    the run's own summary."""

    def __init__(self, real: Any, held: int) -> None:
        super().__init__({"epoch": held})
        self.real = real

    def update(self, values: Any = (), **more: Any) -> None:  # type: ignore[override]
        self.real.update(dict(values, **more))


class ServerResumed:
    """An offline run that says it resumed a server run holding `held` epochs."""

    def __init__(self, run: Any, held: int) -> None:
        self._real, self.resumed = run, True
        self.summary = ServerSummary(run.summary, held)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)

    def __setattr__(self, name: str, value: Any) -> None:
        if name in ("_real", "resumed", "summary"):
            object.__setattr__(self, name, value)
        else:
            setattr(self._real, name, value)


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """Online inits become offline runs: `held` epochs already on the server for the id
    (0: a new run); `rewind` says whether W&B accepts resume_from."""
    import wandb

    real_init = wandb.init
    state: dict[str, Any] = {"held": 0, "rewind": True, "calls": []}

    def init(*args: Any, **kwargs: Any) -> Any:
        state["calls"].append(dict(kwargs))
        if kwargs.get("mode") != "online":
            return real_init(*args, **kwargs)
        offline = {**kwargs, "mode": "offline"}
        if "resume_from" in offline:
            if not state["rewind"]:
                raise wandb.errors.CommError("simulated: rewinding is not enabled")
            offline["id"] = offline.pop("resume_from").split("?")[0]
            return real_init(*args, **offline)  # the server dropped the earlier epochs
        run = real_init(*args, **offline)
        return ServerResumed(run, state["held"]) if state["held"] else run

    monkeypatch.setattr(wandb, "init", init)
    monkeypatch.setattr(wandb_client, "find_credentials", lambda: ("test", None))
    monkeypatch.setattr(wandb_client, "server_unreachable", lambda: None)
    return state


def logged_epochs(run_dir: Path) -> list[int]:
    return [r["history"]["item"]["epoch"] for r in leet_records(run_dir)
            if r["type"] == "history"]


def online_run(tmp_path: Path, seed: int) -> Any:
    raw = tiny_raw(seed=seed, study="rerun", train={"epochs": 3},
                   tracking={"wandb": "online", "project": "harness-test", "log_model": False})
    return build_run_config(raw, "rerun")


@pytest.mark.slow
def test_a_forced_rerun_rewinds_the_runs_history_and_logs_every_epoch(
        tmp_path: Path, server: dict[str, Any]) -> None:
    config = online_run(tmp_path, seed=811)
    server["held"] = 3  # an earlier attempt of this run logged all 3 epochs
    result = train_run(config, results_dir=tmp_path, force=True,
                       tracker=wandb_run_tracker(config, tmp_path))
    wid = wandb_safe_id(config.run_id())
    assert [c.get("resume_from") for c in server["calls"]] == [None, f"{wid}?_step=0"]
    assert result.summary["wandb"]["mode"] == "online"
    assert logged_epochs(Path(result.summary["wandb"]["run_dir"])) == [1, 2, 3]


@pytest.mark.slow
def test_where_rewinding_is_refused_every_epoch_is_still_logged(
        tmp_path: Path, server: dict[str, Any]) -> None:
    config = online_run(tmp_path, seed=812)
    server.update(held=3, rewind=False)
    result = train_run(config, results_dir=tmp_path, force=True,
                       tracker=wandb_run_tracker(config, tmp_path))
    assert [("resume_from" in c) for c in server["calls"]] == [False, True, False]
    assert logged_epochs(Path(result.summary["wandb"]["run_dir"])) == [1, 2, 3]


@pytest.mark.slow
def test_a_run_continued_after_a_checkpoint_skips_what_the_server_holds(
        tmp_path: Path, server: dict[str, Any]) -> None:
    """Not fresh (epochs restored from a checkpoint): epochs the server already holds are
    not logged twice; no rewind is asked for."""
    server["held"] = 2
    tracker = WandbRun(mode="online", project="harness-test", entity=None, group="g",
                           job_type="j", name="n", tags=[], config={}, run_id="cont-813",
                           root=tmp_path, fresh=False)
    for epoch in (1, 2, 3, 4):
        tracker.log_epoch({"epoch": epoch, "train_loss": 1.0 / epoch})
    tracker.finish()
    assert not any("resume_from" in c for c in server["calls"])
    assert tracker.run_dir is not None and logged_epochs(tracker.run_dir) == [3, 4]
