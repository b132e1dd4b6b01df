"""A study's runs as one table (runs.csv): one row per run folder, with the run-level
metrics every reader derives the same way (the report, the claims' confirmation rounds, the
Python API). It sits below the report because the study executor decides claims from it."""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from harness.record import RunRecord, StudyRecord
from harness.train.calibration import CALIBRATION_KEYS

# Run-level metrics aggregated per variant: column -> human label.
METRICS: dict[str, str] = {
    "best_test_acc": "test acc @ best val",
    "best_test_loss": "test loss @ best val",
    "last_test_acc": "test acc @ last epoch",
    "last_test_loss": "test loss @ last epoch",
    "final_test_acc": "test acc of the final model",
    "epochs_run": "epochs run",
    "gap_loss": "gap (val - train loss)",
    "gap_acc": "gap (train - val acc)",
    "best_epoch": "best-val epoch",
    "best_val_acc": "val acc @ best val",
    "best_val_loss": "val loss @ best val",
    "ece": "ECE",
    "ece_ts": "ECE after temperature scaling",
    "nll": "test NLL",
    "nll_ts": "test NLL after temperature scaling",
    "confidence": "mean confidence",
    "accuracy": "accuracy (final model)",
    "overconfidence": "confidence - accuracy",
    "overconfidence_ts": "confidence - accuracy after temperature scaling",
    "temperature": "fitted temperature",
    "mia_auc": "MIA AUC",
    "mia_advantage": "MIA advantage",
    "shift_acc": "shift acc",
    "params": "params",
    "flops": "FLOPs / sample",
    "wall_time": "wall time / run (s)",
}


def number(v: Any) -> float:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return math.nan
    return f


def train_cols(frame_or_keys) -> tuple[str, str]:
    """The train loss/acc columns the gap uses: eval-mode train metrics when present."""
    keys = set(frame_or_keys)
    if "train_eval_loss" in keys:
        return "train_eval_loss", "train_eval_acc"
    return "train_loss", "train_acc"


def run_row(rec: RunRecord) -> dict[str, Any]:
    s = rec.summary or {}
    m = rec.metrics
    row: dict[str, Any] = {
        "variant": rec.variant, "seed": rec.seed, "run_id": rec.run_id,
        "status": rec.status, "included": rec.included, "reason": rec.reason,
        "trusted": rec.problem is None,
        "epochs_run": number(s.get("epochs_run", len(m))),
        "diverged_epoch": s.get("diverged_epoch"),
    }
    for k in ("best_test_acc", "best_test_loss", "last_test_acc", "last_test_loss",
              "final_test_acc", "best_val_acc", "best_val_loss"):
        row[k] = number(s.get(k))
    # Gap at the last epoch, from the last metrics row (falls back to summary last_*).
    last = m.iloc[-1].to_dict() if len(m) else {k[5:]: v for k, v in s.items()
                                                  if k.startswith("last_")}
    tl, ta = train_cols(last)
    row["gap_loss"] = number(last.get("val_loss")) - number(last.get(tl))
    row["gap_acc"] = number(last.get(ta)) - number(last.get("val_acc"))
    row["best_epoch"] = number(s.get("best_epoch"))
    row["ece"] = number(s.get("final_ece"))
    for k in CALIBRATION_KEYS:
        row[k] = number(s.get(f"final_{k}"))
    row["mia_auc"] = number(s.get("final_mia_auc"))
    row["mia_advantage"] = number(s.get("final_mia_advantage"))
    row["shift_acc"] = number(s.get("final_shift_acc"))
    row["params"] = number(s.get("params"))
    row["flops"] = number(s.get("flops"))
    row["wall_time"] = number(s.get("wall_time"))
    logged = s.get("wandb")
    wandb = logged if isinstance(logged, dict) else {}
    row["wandb_url"] = wandb.get("url") or None
    row["error"] = s.get("error") or (rec.failure.reason if rec.failure else None)
    row["path"] = str(rec.path)
    return row


def runs_table(study: StudyRecord) -> pd.DataFrame:
    """Every run folder read, trusted or not; `included` says which ones the means use."""
    rows = [run_row(r) for r in [*study.runs, *study.rejected]]
    cols = ["variant", "seed", "run_id", "status", "included", "reason", "trusted",
            "diverged_epoch", *METRICS, "wandb_url", "error", "path"]
    df = pd.DataFrame(rows, columns=cols)
    return df.sort_values(["variant", "seed"], kind="stable").reset_index(drop=True)


