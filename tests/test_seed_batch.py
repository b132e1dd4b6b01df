"""Seed-batched training: each seed trains like its separate run, in the same store format."""

from __future__ import annotations

import json
import statistics
from pathlib import Path

import pytest
import torch
from conftest import tiny_raw

from harness.config import build_run_config
from harness.tracking.store import RunDir
from harness.train.loop import train_run
from harness.train.seed_batch import can_batch_seeds, train_seeds_batched

SEEDS = (0, 1, 2)
STORE_FILES = ("config.json", "env.json", "metrics.csv", "summary.json", "model.pt",
               "test_predictions.pt")
TIMING = {"samples_per_sec", "seconds"}


def batchable(seed: int, **sections) -> dict:
    sections = {"regularizers": {"norm": {"kind": "none"}}, **sections}
    raw = tiny_raw(model={"name": "cnn", "width": 8}, train={"epochs": 3}, **sections)
    return {**raw, "seed": seed}


def configs(**sections):
    return [build_run_config(batchable(s, **sections)) for s in SEEDS]


def test_batched_seeds_follow_their_separate_runs(tmp_path: Path) -> None:
    """No dropout, no augmentation: a batched seed has its separate run's init and batch
    order, so only floating-point summation order differs (grouped vs plain convolution):
    losses agree to ~1e-5 and accuracies to within a couple of test samples."""
    cfgs = configs(regularizers={"norm": {"kind": "none"}, "weight_decay": {"value": 0.05},
                                 "label_smoothing": {"epsilon": 0.1}})
    assert can_batch_seeds(cfgs) == (True, "")
    batched = train_seeds_batched(cfgs, tmp_path / "batch")
    separate = [train_run(c, results_dir=tmp_path / "sep") for c in cfgs]
    for b, s in zip(batched, separate, strict=True):
        assert b.summary["status"] == s.summary["status"] == "completed"
        for rb, rs in zip(b.rows, s.rows, strict=True):
            assert rb["train_loss"] == pytest.approx(rs["train_loss"], rel=1e-3)
            assert rb["val_loss"] == pytest.approx(rs["val_loss"], rel=1e-3)
        assert abs(b.summary["final_test_acc"] - s.summary["final_test_acc"]) <= 0.02
    # the seeds are different models: own init, own batch order
    weights = [b.model.head.weight.detach() for b in batched]
    assert not torch.allclose(weights[0], weights[1])
    assert len({round(b.summary["final_val_loss"], 6) for b in batched}) == len(SEEDS)


@pytest.mark.slow
def test_dropout_seeds_match_separate_runs_in_distribution(tmp_path: Path) -> None:
    """With dropout the masks come from other draws than the separate run's, so compare
    the mean over seeds: within the seed-to-seed spread (3 standard errors of the
    difference of means) plus 0.03 for the coarse test set (1000 samples, 3 seeds)."""
    cfgs = configs(regularizers={"norm": {"kind": "none"}, "dropout": {"p": 0.3}})
    batched = [r.summary["final_test_acc"] for r in train_seeds_batched(cfgs, tmp_path / "b")]
    separate = [train_run(c, results_dir=tmp_path / "s").summary["final_test_acc"]
                for c in cfgs]
    se = (statistics.variance(batched) / len(SEEDS)
          + statistics.variance(separate) / len(SEEDS)) ** 0.5
    assert abs(statistics.mean(batched) - statistics.mean(separate)) <= 3 * se + 0.03
    assert len(set(batched)) > 1 or len(set(separate)) == 1  # seeds are not copies


@pytest.mark.slow
def test_store_files_are_complete_and_in_train_run_format(tmp_path: Path) -> None:
    cfgs = configs()
    batched = train_seeds_batched(cfgs, tmp_path)
    reference = train_run(cfgs[0], results_dir=tmp_path / "ref")
    ref_columns = list(reference.rows[0])
    ref_keys = set(reference.summary)
    for cfg, result in zip(cfgs, batched, strict=True):
        path = result.run_dir.path
        assert path.name == f"default-s{cfg.seed}-{cfg.run_id()}"
        for name in STORE_FILES:
            assert (path / name).is_file(), name
        assert not (path / "checkpoint.pt").exists()
        rows = RunDir(path).metrics()
        assert len(rows) == 3 and list(rows[0]) == ref_columns
        summary = json.loads((path / "summary.json").read_text())
        assert set(summary) == ref_keys
        assert summary["status"] == "completed" and summary["seed"] == cfg.seed
        config = json.loads((path / "config.json").read_text())
        assert config["run_id"] == cfg.run_id() and config["seed"] == cfg.seed
        env = json.loads((path / "env.json").read_text())
        assert env["seed_batch"]["seeds"] == list(SEEDS)
        assert RunDir(path).finished
    # finished runs are not trained again
    again = train_seeds_batched(cfgs, tmp_path)
    assert [a.summary for a in again] == [b.summary for b in batched]


@pytest.mark.parametrize(("change", "reason"), [
    ({"regularizers": {}}, "batchnorm"),
    ({"regularizers": {"norm": {"kind": "none"}, "grad_clip": {"threshold": 1.0}}},
     "regularizer(s) grad_clip"),
    ({"model": {"name": "resnet"}}, "model resnet"),
])
def test_unsupported_configs_fall_back_with_a_reason(change: dict, reason: str,
                                                     tmp_path: Path) -> None:
    cfgs = [build_run_config({**batchable(s), **change}) for s in SEEDS[:2]]
    ok, why = can_batch_seeds(cfgs)
    assert not ok and reason in why
    if "model" not in change:  # runs anyway, one after another
        results = train_seeds_batched([c.model_copy(update={"train": c.train.model_copy(
            update={"epochs": 1})}) for c in cfgs], tmp_path)
        assert [r.summary["status"] for r in results] == ["completed", "completed"]
        assert "seed_batch" not in json.loads((results[0].run_dir.path / "env.json")
                                              .read_text())


def test_runs_that_differ_beyond_the_seed_are_not_batched() -> None:
    a = build_run_config(batchable(0))
    b = build_run_config(batchable(1, optim={"lr": 0.01}))
    ok, why = can_batch_seeds([a, b])
    assert not ok and "more than the seed" in why
    assert can_batch_seeds([a]) == (False, "fewer than 2 seeds")


@pytest.mark.slow
def test_diverged_seeds_are_stored_like_separate_runs(tmp_path: Path) -> None:
    cfgs = configs(optim={"name": "sgd", "lr": 1e6, "momentum": 0.9})
    batched = train_seeds_batched(cfgs, tmp_path / "b")
    separate = train_run(cfgs[0], results_dir=tmp_path / "s")
    for r in batched:
        assert r.summary["status"] == separate.summary["status"] == "diverged"
        assert r.summary["diverged_epoch"] == separate.summary["diverged_epoch"]
        assert r.run_dir.finished
