"""The Tracker protocol: what the loop tells a tracker, in which order, and the local store,
null and fan-out implementations."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
from conftest import tiny_raw

from harness.config import build_run_config
from harness.numerics import NUMERICS_VERSION
from harness.record.run_dir import RunDir
from harness.tracking.protocol import FanOut, NullTracker, StoreTracker, Tracker
from harness.tracking.wandb_tracker import WandbTracker, wandb_run_tracker
from harness.train.loop import train_run


class Recorder:
    """Records every call, as the loop made it."""

    def __init__(self, name: str = "rec", log: list[tuple[str, Any]] | None = None) -> None:
        self.name, self.calls = name, log if log is not None else []

    def start(self, config: Mapping[str, Any], env: Mapping[str, Any],
              resumed: Sequence[Mapping[str, Any]]) -> None:
        self.calls.append((f"{self.name}.start", [r["epoch"] for r in resumed]))

    def log_epoch(self, row: Mapping[str, Any]) -> None:
        self.calls.append((f"{self.name}.log_epoch", row["epoch"]))

    def summary_entries(self) -> dict[str, Any]:
        return {self.name: {"where": "memory"}}

    def log_summary(self, summary: Mapping[str, Any]) -> None:
        self.calls.append((f"{self.name}.log_summary", summary["status"]))

    def finish(self) -> None:
        self.calls.append((f"{self.name}.finish", None))

    def fail(self, status: str) -> None:
        self.calls.append((f"{self.name}.fail", status))


def test_every_implementation_is_a_tracker(tmp_path: Path) -> None:
    cfg = build_run_config(tiny_raw())
    for tracker in (NullTracker(), StoreTracker(RunDir(tmp_path)), FanOut(NullTracker()),
                    wandb_run_tracker(cfg, tmp_path), Recorder()):
        assert isinstance(tracker, Tracker)


def test_the_loop_calls_the_tracker_in_order_after_the_store(tmp_path: Path) -> None:
    cfg = build_run_config(tiny_raw(train={"epochs": 3}))
    rec = Recorder()
    result = train_run(cfg, results_dir=tmp_path, tracker=rec)
    assert rec.calls == [("rec.start", []), ("rec.log_epoch", 1), ("rec.log_epoch", 2),
                         ("rec.log_epoch", 3), ("rec.log_summary", "completed"),
                         ("rec.finish", None)]
    # what the tracker said about itself is in the stored summary
    stored = json.loads((result.run_dir.path / "summary.json").read_text())
    assert stored["rec"] == {"where": "memory"} and "wandb" not in stored
    again = Recorder()  # a finished run is read from the store: the tracker is never started
    train_run(cfg, results_dir=tmp_path, tracker=again)
    assert again.calls == []


def test_a_failed_run_is_logged_then_failed_with_its_status(tmp_path: Path) -> None:
    cfg = build_run_config(tiny_raw(train={"epochs": 3}))
    rec = Recorder()

    def boom(epoch: int, row: dict[str, Any]) -> None:
        raise RuntimeError("disk on fire")

    with pytest.raises(RuntimeError):
        train_run(cfg, results_dir=tmp_path, tracker=rec, on_epoch=[boom])
    assert rec.calls == [("rec.start", []), ("rec.log_epoch", 1),
                         ("rec.log_summary", "failed"), ("rec.fail", "failed")]
    (run,) = (tmp_path / "adhoc" / "runs").iterdir()
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "failed" and "disk on fire" in summary["error"]


def test_fan_out_calls_each_tracker_in_the_order_given() -> None:
    log: list[tuple[str, Any]] = []
    both = FanOut(Recorder("a", log), Recorder("b", log))
    both.start({}, {}, [{"epoch": 1}])
    both.log_epoch({"epoch": 2})
    assert both.summary_entries() == {"a": {"where": "memory"}, "b": {"where": "memory"}}
    both.log_summary({"status": "pruned"})
    both.fail("pruned")
    assert log == [("a.start", [1]), ("b.start", [1]), ("a.log_epoch", 2), ("b.log_epoch", 2),
                   ("a.log_summary", "pruned"), ("b.log_summary", "pruned"),
                   ("a.fail", "pruned"), ("b.fail", "pruned")]


def test_store_tracker_keeps_resumed_rows_and_writes_every_file(tmp_path: Path) -> None:
    run_dir = RunDir(tmp_path / "run")
    store = StoreTracker(run_dir)
    store.start({"run_id": "r1", "seed": 0}, {"torch": "x"}, [{"epoch": 1, "val_acc": 0.5}])
    store.log_epoch({"epoch": 2, "val_acc": 0.75})
    assert not run_dir.finished
    store.log_summary({"run_id": "r1", "status": "completed"})
    # stamped with the numerics version its run id hashes (harness/numerics.py)
    assert run_dir.config == {"run_id": "r1", "seed": 0, "numerics": NUMERICS_VERSION}
    assert json.loads((run_dir.path / "env.json").read_text()) == {"torch": "x"}
    assert [(r["epoch"], r["val_acc"]) for r in run_dir.metrics()] == [(1, 0.5), (2, 0.75)]
    assert run_dir.finished and run_dir.summary["status"] == "completed"


class FakeRun:
    def __init__(self) -> None:
        self.mode, self.failed, self.info, self.run_dir = "offline", False, {"id": "w1"}, None
        self.epochs: list[int] = []
        self.summary: dict[str, Any] = {}
        self.exit_code: int | None = None

    def log_epoch(self, row: dict[str, Any]) -> None:
        self.epochs.append(row["epoch"])

    def set_summary(self, summary: dict[str, Any]) -> None:
        self.summary = summary

    def finish(self, exit_code: int = 0) -> None:
        self.exit_code = exit_code


@pytest.mark.parametrize(("status", "exit_code"), [("pruned", 0), ("failed", 1),
                                                   ("interrupted", 1)])
def test_wandb_run_opens_at_start_and_replays_resumed_epochs(status: str,
                                                             exit_code: int) -> None:
    opened: list[FakeRun] = []
    tracker = WandbTracker(lambda fresh: opened.append(FakeRun()) or opened[-1])
    assert tracker.summary_entries() == {} and not opened  # nothing opened before start
    tracker.start({}, {}, [{"epoch": 1}, {"epoch": 2}])
    tracker.log_epoch({"epoch": 3})
    (run,) = opened
    assert run.epochs == [1, 2, 3]
    assert tracker.summary_entries()["wandb"]["id"] == "w1"
    tracker.log_summary({"status": status})
    tracker.fail(status)
    assert run.summary == {"status": status} and run.exit_code == exit_code
