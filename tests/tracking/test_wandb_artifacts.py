"""A run's W&B model artifacts and console capture (issue 32, item 16), read back with
W&B's own offline reader (`wandb leet inspect --json`): the best-val epoch's weights and the
final weights as versions of `model-<W&B id>` with the aliases W&B users look for, what the
run printed in its Logs, and both switched off by config."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest
import torch
from conftest import tiny_raw
from test_wandb_resume import WANDB, leet_records

from harness.config import build_run_config
from harness.tracking.wandb_model import BestWeights, rank
from harness.tracking.wandb_tracker import wandb_run_tracker
from harness.train.loop import train_run
from harness.train.results import best_row

pytestmark = pytest.mark.skipif(not WANDB.is_file(),
                                reason="needs the wandb CLI beside this Python")

# seed 0 at this lr: the best validation accuracy is at epoch 3 of 5 (asserted below)
RAW = dict(seed=0, train={"epochs": 5, "checkpoint_every_s": 0},
           optim={"name": "adam", "lr": 0.05}, schedule={"name": "constant"})


def offline(**tracking: Any) -> dict:
    return tiny_raw(**RAW, study="art", tracking={"wandb": "offline",
                                                  "project": "harness-test", **tracking})


def artifacts(records: list[dict]) -> list[dict]:
    return [r["artifact"] for r in records if r["type"] == "artifact"]


def weights_of(artifact: dict) -> dict[str, torch.Tensor]:
    (entry,) = artifact["manifest"]["contents"]
    assert entry["path"] == "model.pt"
    return torch.load(entry["local_path"], map_location="cpu", weights_only=True)


def printer(epoch: int, row: dict) -> None:
    print(f"console check: epoch {epoch} val_acc {row['val_acc']:.3f}")
    print(f"console check on stderr: epoch {epoch}", file=sys.stderr)


@pytest.mark.slow
def test_best_and_final_weights_are_model_artifacts_and_the_console_is_captured(
        tmp_path: Path) -> None:
    config = build_run_config(offline(), "art")
    result = train_run(config, results_dir=tmp_path, on_epoch=[printer],
                       tracker=wandb_run_tracker(config, tmp_path))
    best_epoch = result.summary["best_epoch"]
    assert best_epoch == 3 < result.summary["epochs_run"]  # the case this test is about
    records = leet_records(Path(result.summary["wandb"]["run_dir"]))
    best, final = artifacts(records)
    wandb_id = result.summary["wandb"]["id"]
    assert best["name"] == final["name"] == f"model-{wandb_id}"
    assert best["type"] == final["type"] == "model"
    assert "best" in best["aliases"] and "best" not in final["aliases"]
    assert {"latest", "final"} <= set(final["aliases"])  # logged last: W&B's latest
    # the final version is model.pt byte for byte; the best one is what training to the
    # best epoch alone leaves (constant lr, same seed and data order: the same weights)
    saved = torch.load(result.run_dir.path / "model.pt", map_location="cpu", weights_only=True)
    for key, value in weights_of(final).items():
        assert torch.equal(value, saved[key])
    raw = offline(log_model=False)
    short = build_run_config({**raw, "study": "short",
                              "train": {**raw["train"], "epochs": best_epoch}}, "short")
    short_run = train_run(short, results_dir=tmp_path / "short")
    expected = torch.load(short_run.run_dir.path / "model.pt", weights_only=True)
    got = weights_of(best)
    assert got.keys() == expected.keys()
    for key in expected:
        assert torch.equal(got[key], expected[key]), key
    lines = "".join(r["output_raw"]["line"] for r in records if r["type"] == "output_raw")
    for epoch in range(1, 6):
        assert f"console check: epoch {epoch} " in lines
        assert f"console check on stderr: epoch {epoch}" in lines


@pytest.mark.slow
def test_models_and_console_switch_off(tmp_path: Path) -> None:
    config = build_run_config(offline(log_model=False, console=False), "art")
    result = train_run(config, results_dir=tmp_path, on_epoch=[printer],
                       tracker=wandb_run_tracker(config, tmp_path))
    records = leet_records(Path(result.summary["wandb"]["run_dir"]))
    assert not artifacts(records)
    assert not [r for r in records if r["type"] in ("output_raw", "output")]
    assert [r["history"]["item"]["epoch"] for r in records if r["type"] == "history"] == [
        1, 2, 3, 4, 5]


@pytest.mark.slow
def test_one_version_with_every_alias_when_the_last_epoch_is_the_best(tmp_path: Path) -> None:
    raw = offline()
    raw["train"] = {**raw["train"], "epochs": 3}  # epochs 1-3 of the same run: 3 is best
    config = build_run_config(raw, "art")
    result = train_run(config, results_dir=tmp_path, tracker=wandb_run_tracker(config, tmp_path))
    assert result.summary["best_epoch"] == 3
    (only,) = artifacts(leet_records(Path(result.summary["wandb"]["run_dir"])))
    assert {"best", "latest", "final"} <= set(only["aliases"])


@pytest.mark.parametrize("select", ["val_acc", "val_loss"])
def test_the_best_epoch_is_the_loops(select: str) -> None:
    """BestWeights picks the row the loop's best_row picks, ties included."""
    rows = [{"epoch": 1, "val_acc": 0.5, "val_loss": 1.0},
            {"epoch": 2, "val_acc": 0.7, "val_loss": 0.9},
            {"epoch": 3, "val_acc": 0.7, "val_loss": 0.8},
            {"epoch": 4, "val_acc": 0.7, "val_loss": 0.8},
            {"epoch": 5, "val_acc": 0.6, "val_loss": 0.8}]
    seen = BestWeights(select)
    copies = []
    seen.weights = lambda: {"w": torch.tensor([float(len(copies))])}
    for row in rows:
        before = seen.epoch
        seen.see(row)
        if seen.epoch != before:
            copies.append(row["epoch"])
    assert seen.epoch == best_row(rows, select)["epoch"]
    assert seen.state is not None and rank(rows[0], select) is not None
