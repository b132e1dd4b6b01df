"""A study's runs as one table (runs.csv): one row per run folder, with the run-level
metrics every reader derives the same way (the report, the claims' confirmation rounds, the
Python API). It sits below the report because the study executor decides claims from it."""

from __future__ import annotations

from typing import Any

import pandas as pd

from harness.record import RunRecord, StudyRecord
from harness.record.numbers import number_or_nan
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
    "final_gap_loss": "gap (val - train loss) of the final model",
    "final_gap_acc": "gap (train - val acc) of the final model",
    "last_train_acc": "train acc @ last epoch",
    "final_train_acc": "train acc of the final model",
    "restored_epoch": "epoch early stopping restored",
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
        "epochs_run": number_or_nan(s.get("epochs_run", len(m))),
        "diverged_epoch": s.get("diverged_epoch"),
    }
    for k in ("best_test_acc", "best_test_loss", "last_test_acc", "last_test_loss",
              "final_test_acc", "best_val_acc", "best_val_loss"):
        row[k] = number_or_nan(s.get(k))
    # Gap at the last epoch, from the last metrics row (falls back to summary last_*).
    last = m.iloc[-1].to_dict() if len(m) else {k[5:]: v for k, v in s.items()
                                                  if k.startswith("last_")}
    tl, ta = train_cols(last)
    row["gap_loss"] = number_or_nan(last.get("val_loss")) - number_or_nan(last.get(tl))
    row["gap_acc"] = number_or_nan(last.get(ta)) - number_or_nan(last.get("val_acc"))
    row["last_train_acc"] = number_or_nan(last.get(ta))
    # The final model (restored / averaged / last epoch): its own eval-mode pass.
    ftl, fta = train_cols(k[6:] for k in s if k.startswith("final_"))
    row["final_gap_loss"] = (number_or_nan(s.get("final_val_loss"))
                             - number_or_nan(s.get(f"final_{ftl}")))
    row["final_gap_acc"] = (number_or_nan(s.get(f"final_{fta}"))
                            - number_or_nan(s.get("final_val_acc")))
    row["final_train_acc"] = number_or_nan(s.get(f"final_{fta}"))
    row["restored_epoch"] = number_or_nan(s.get("es_best_epoch"))
    row["best_epoch"] = number_or_nan(s.get("best_epoch"))
    row["ece"] = number_or_nan(s.get("final_ece"))
    for k in CALIBRATION_KEYS:
        row[k] = number_or_nan(s.get(f"final_{k}"))
    row["mia_auc"] = number_or_nan(s.get("final_mia_auc"))
    row["mia_advantage"] = number_or_nan(s.get("final_mia_advantage"))
    row["shift_acc"] = number_or_nan(s.get("final_shift_acc"))
    row["params"] = number_or_nan(s.get("params"))
    row["flops"] = number_or_nan(s.get("flops"))
    row["wall_time"] = number_or_nan(s.get("wall_time"))
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
