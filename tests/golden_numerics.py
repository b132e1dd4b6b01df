"""Fixed small runs whose numbers pin the training numerics (tests/train/test_numerics.py).

Each run is a few seconds of CPU at most, on data that needs no download (generated
MNIST-1D, scikit-learn's digits), and together they pass through every model family and the
regularizers that change numbers most often. `python tests/golden_numerics.py --write`
regenerates tests/golden/numerics.json: do so only together with a bump of
harness.numerics.NUMERICS_VERSION (or when a run is added here).
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path
from typing import Any

GOLDEN = Path(__file__).resolve().parent / "golden" / "numerics.json"
# Per-epoch and final values compared (timings and throughputs differ between equal runs).
EPOCH_KEYS = ("train_loss", "val_loss", "test_loss", "val_acc", "test_acc", "weight_norm")
FINAL_KEYS = ("final_test_loss", "final_test_acc", "best_epoch")

BASE: dict[str, Any] = {
    "seed": 3,
    "data": {"name": "mnist1d", "num_samples": 600},
    "optim": {"name": "adam", "lr": 3e-3},
    "train": {"epochs": 2, "batch_size": 64, "threads": 1, "checkpoint": False},
    "tracking": {"wandb": "disabled"},
}
DIGITS = {"name": "digits"}
RUNS: dict[str, dict[str, Any]] = {
    "mlp_dropout_smoothing_noise": {
        "data": {"label_noise": 0.1}, "model": {"name": "mlp", "width": 32},
        "regularizers": {"dropout": {"p": 0.2}, "label_smoothing": {"epsilon": 0.1},
                         "elastic_net": {"value": 1e-3}}},
    "cnn_ema_decay_mix": {
        "data": DIGITS, "model": {"name": "cnn", "width": 8},
        "regularizers": {"ema": {"decay": 0.9}, "weight_decay": {"value": 0.05},
                         "mix": {"mixup_alpha": 0.4, "cutmix_alpha": 1.0},
                         "grad_clip": {"mode": "agc", "threshold": 0.05}}},
    "resnet_sgd_cosine_droppath_swa": {
        "data": DIGITS, "model": {"name": "resnet", "width": 8, "depth": 2},
        "optim": {"name": "sgd", "lr": 0.05, "momentum": 0.9},
        "schedule": {"name": "cosine"},
        "regularizers": {"drop_path": {"rate": 0.2}, "swa": {"start_epoch": 2},
                         "spectral_norm": {}}},
    "vit_decay_dropout": {
        "data": DIGITS, "model": {"name": "vit", "width": 16, "depth": 2, "heads": 2},
        "optim": {"name": "adam", "lr": 1e-2}, "train": {"epochs": 3},
        "regularizers": {"weight_decay": {"value": 1.0}, "drop_path": {"rate": 0.1},
                         "dropout": {"p": 0.1, "attn_p": 0.1}}},
    "transformer1d_postnorm_dropconnect": {
        "model": {"name": "transformer1d", "width": 16, "depth": 2, "heads": 2},
        "regularizers": {"norm": {"kind": "layernorm", "position": "post"},
                         "dropconnect": {"p": 0.1}}},
}


def run_config(name: str) -> Any:
    from harness.config import build_run_config

    raw = json.loads(json.dumps(BASE))
    for section, value in RUNS[name].items():
        raw[section] = {**raw.get(section, {}), **value} if isinstance(value, dict) else value
    raw["study"], raw["variant"] = "golden", name
    return build_run_config(raw, f"golden run {name}")


def train(name: str) -> dict[str, Any]:
    """The numbers of one golden run, trained in a throwaway results folder."""
    from harness.train.loop import train_run

    config = run_config(name)
    with tempfile.TemporaryDirectory() as results:
        result = train_run(config, results_dir=results)
    summary = result.summary
    return {"run_id": config.run_id(), "status": summary.get("status"),
            "epochs": [{k: row.get(k) for k in ("epoch", *EPOCH_KEYS)} for row in result.rows],
            **{k: summary.get(k) for k in FINAL_KEYS}}


def write() -> None:
    from harness.numerics import NUMERICS_VERSION

    golden = {"numerics": NUMERICS_VERSION, "runs": {name: train(name) for name in RUNS}}
    GOLDEN.write_text(json.dumps(golden, indent=1, sort_keys=True) + "\n")
    print(f"wrote {GOLDEN} (numerics version {NUMERICS_VERSION}, {len(RUNS)} runs)")


if __name__ == "__main__":
    if sys.argv[1:] != ["--write"]:
        sys.exit("usage: python tests/golden_numerics.py --write")
    write()
