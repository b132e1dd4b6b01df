"""The training loop end to end: determinism, resume, store, divergence, W&B read-back."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from conftest import strip_timing, tiny_raw

from harness.config import build_run_config
from harness.record import disk
from harness.record.disk import atomic_write_json
from harness.record.run_dir import RunDir
from harness.regularizers import REGULARIZERS
from harness.study.upstream import train_with_upstream
from harness.train.loop import train_run


def test_same_config_and_seed_give_identical_metrics(tmp_path: Path) -> None:
    cfg = build_run_config(tiny_raw(train={"epochs": 3}))
    a = train_run(cfg, results_dir=tmp_path / "a")
    b = train_run(cfg, results_dir=tmp_path / "b")
    assert strip_timing(a.rows) == strip_timing(b.rows)
    assert a.run_dir.metrics() and len(a.rows) == 3
    c = train_run(build_run_config(tiny_raw(train={"epochs": 3}), overrides={"seed": 1}),
                  results_dir=tmp_path / "c")
    assert strip_timing(c.rows) != strip_timing(a.rows)


def test_store_layout_and_summary(tmp_path: Path) -> None:
    cfg = build_run_config(tiny_raw())
    result = train_run(cfg, results_dir=tmp_path)
    path = result.run_dir.path
    assert path.parent == tmp_path / "adhoc" / "runs"
    assert path.name == f"default-s0-{cfg.run_id()}"
    for name in ("config.json", "metrics.csv", "summary.json", "env.json", "model.pt"):
        assert (path / name).is_file(), name
    assert not (path / "checkpoint.pt").exists()  # only kept while a run is unfinished
    summary = json.loads((path / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["epochs_run"] == 2
    rows = RunDir(path).metrics()
    best = max(rows, key=lambda r: (r["val_acc"], -r["val_loss"], -r["epoch"]))
    assert summary["best_epoch"] == best["epoch"]
    assert summary["best_test_acc"] == pytest.approx(best["test_acc"])
    assert summary["last_val_loss"] == pytest.approx(rows[-1]["val_loss"])
    env = json.loads((path / "env.json").read_text())
    assert {"python", "torch", "torchvision", "harness", "git_commit", "device", "seed"} <= set(env)
    # a finished run is not trained again
    again = train_run(cfg, results_dir=tmp_path)
    assert again.summary == summary


def test_interrupted_run_resumes_bit_for_bit(tmp_path: Path) -> None:
    cfg = build_run_config(tiny_raw(train={"epochs": 4}))
    clean = train_run(cfg, results_dir=tmp_path / "clean")

    def interrupt(epoch: int, row: dict) -> None:
        if epoch == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_run(cfg, results_dir=tmp_path / "cut", on_epoch=[interrupt])
    run_dir = RunDir.for_run(tmp_path / "cut" / "adhoc", "default", 0, cfg.run_id())
    assert run_dir.summary["status"] == "interrupted" and not run_dir.finished
    assert (run_dir.path / "checkpoint.pt").is_file()
    resumed = train_run(cfg, results_dir=tmp_path / "cut")
    assert strip_timing(resumed.rows) == strip_timing(clean.rows)
    assert resumed.summary["status"] == "completed"


def test_divergence_is_stored_and_stops_at_once(tmp_path: Path) -> None:
    cfg = build_run_config(tiny_raw(optim={"name": "sgd", "lr": 1e6, "momentum": 0.9},
                                    train={"epochs": 5}))
    result = train_run(cfg, results_dir=tmp_path)
    assert result.summary["status"] == "diverged"
    assert result.summary["diverged_epoch"] == 1 + len(result.rows)
    assert result.summary["epochs_run"] < 5


def test_atomic_write_leaves_old_file_when_interrupted(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "summary.json"
    atomic_write_json(target, {"status": "completed"})

    def boom(src, dst):  # the process dies between writing the temp file and renaming it
        raise OSError("killed")

    monkeypatch.setattr(disk.os, "replace", boom)
    with pytest.raises(OSError):
        atomic_write_json(target, {"status": "half"})
    assert json.loads(target.read_text()) == {"status": "completed"}
    assert os.listdir(tmp_path) == ["summary.json"]  # no temp file left behind


def test_corrupt_summary_is_not_trusted(tmp_path: Path) -> None:
    run = RunDir(tmp_path / "r")
    run.path.mkdir()
    (run.path / "summary.json").write_text('{"status": "compl')
    assert run.summary is None and not run.finished


def test_wandb_offline_run_matches_local_store(tmp_path: Path) -> None:
    from wandb_offline import read_offline_run

    from harness.tracking.wandb_tracker import wandb_run_tracker

    cfg = build_run_config(tiny_raw(tracking={"wandb": "offline"}, train={"epochs": 3}))
    result = train_run(cfg, results_dir=tmp_path, tracker=wandb_run_tracker(cfg, tmp_path))
    info = result.summary["wandb"]
    assert info["mode"] == "offline" and not info["failed"]
    run = read_offline_run(Path(info["run_dir"]))
    stored = result.run_dir.metrics()
    logged = [h for h in run.history if "train_loss" in h]
    assert len(logged) == len(stored) == 3
    for h, s in zip(logged, stored, strict=True):
        for key, value in s.items():
            assert h[key] == pytest.approx(value, rel=1e-6), key
    assert run.group == "adhoc" and run.job_type == "default" and run.name == "default-s0"
    assert run.config["run_id"] == cfg.run_id()
    assert run.summary["status"] == "completed"
    assert Path(info["run_dir"]).is_relative_to(tmp_path / "adhoc")


# Settings strong enough to act within 2 tiny epochs (the examples are conventional ones).
ACTING = {"early_stopping": {"patience": 1, "min_delta": 10.0},
          "grad_clip": {"mode": "norm", "threshold": 0.01}}


# dropout stays in `make test-fast`; the other 18 are marked slow (two runs each)
@pytest.mark.parametrize("name", [pytest.param(n, marks=() if n == "dropout" else pytest.mark.slow)
                                  for n in REGULARIZERS.names()])
def test_every_regularizer_trains_end_to_end(name: str, tmp_path: Path, text_slice: Path) -> None:
    reg = REGULARIZERS.get(name)
    params = ACTING.get(name, dict(reg.example))
    raw = tiny_raw(regularizers={name: params}, train={"epochs": 3 if name in ACTING else 2})
    cfg = build_run_config(raw, overrides=dict(reg.example_overrides))
    if cfg.data.name == "tiny_shakespeare":  # a slice of the text: the property, in seconds
        cfg = build_run_config(raw, overrides={**reg.example_overrides, "data.seq_len": 32,
                                               "data.data_dir": str(text_slice),
                                               "model.width": 32, "model.depth": 1,
                                               "train.epochs": 1})
    result = train_with_upstream(cfg, train_run, results_dir=tmp_path)  # a teacher first
    assert result.summary["status"] == "completed"
    assert result.summary["epochs_run"] >= 1
    # the same run without it: turning it on changes the curves
    plain = build_run_config({**cfg.model_dump(mode="json"), "regularizers": {}})
    base = train_run(plain, results_dir=tmp_path / "plain")
    assert strip_timing(result.rows) != strip_timing(base.rows)


@pytest.mark.slow
def test_early_stopping_with_ema_restores_the_best_evaluated_weights(tmp_path: Path) -> None:
    # min_delta so large that epoch 1 stays the best: it stops at epoch 2, restores epoch 1
    cfg = build_run_config(tiny_raw(train={"epochs": 4}, regularizers={
        "ema": {"decay": 0.5}, "early_stopping": {"patience": 1, "min_delta": 10.0}}))
    result = train_run(cfg, results_dir=tmp_path)
    s, rows = result.summary, result.rows
    assert s["stop_epoch"] == 2 and len(rows) == 2
    assert rows[0]["val_loss"] != rows[1]["val_loss"]
    # the final evaluation (of the EMA weights) is epoch 1's, not the last epoch's
    assert s["final_val_loss"] == pytest.approx(rows[0]["val_loss"], rel=1e-6)
    assert s["final_test_acc"] == pytest.approx(rows[0]["test_acc"], rel=1e-6)


@pytest.mark.slow
def test_a_stop_decided_before_a_kill_is_kept_on_resume(tmp_path: Path) -> None:
    cfg = build_run_config(tiny_raw(train={"epochs": 6}, regularizers={
        "early_stopping": {"patience": 1, "min_delta": 10.0}}))
    clean = train_run(cfg, results_dir=tmp_path / "clean")
    assert clean.summary["stop_epoch"] == 2

    def die_after_stop(epoch: int, row: dict) -> None:
        if epoch == 2:  # the checkpoint with the stop decision is written; then the kill
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_run(cfg, results_dir=tmp_path / "cut", on_epoch=[die_after_stop])
    resumed = train_run(cfg, results_dir=tmp_path / "cut")
    assert resumed.summary["epochs_run"] == 2
    assert strip_timing(resumed.rows) == strip_timing(clean.rows)
