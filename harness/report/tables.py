"""Read a study folder into records and tables: runs.csv (one row per run), summary.csv (one
row per variant) and per-variant mean curves."""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from harness.dotted import flatten_dotted
from harness.record import RunRecord as RunRecordType
from harness.record import StudyRecord, Variant
from harness.record.numbers import number_or_nan
from harness.record.params import sweep_axis
from harness.record.schema import DEFAULT_COMPARE_METRIC
from harness.report import stats
from harness.train.analysis import load_predictions
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
COMPARE_METRIC = DEFAULT_COMPARE_METRIC  # the default comparison (a study may choose another)

Study = StudyRecord
RunRecord = RunRecordType
load_study = StudyRecord.load



# ----------------------------------------------------------------------------- runs.csv


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


def runs_table(study: Study) -> pd.DataFrame:
    """Every run folder read, trusted or not; `included` says which ones the means use."""
    rows = [run_row(r) for r in [*study.runs, *study.rejected]]
    cols = ["variant", "seed", "run_id", "status", "included", "reason", "trusted",
            "diverged_epoch", *METRICS, "wandb_url", "error", "path"]
    df = pd.DataFrame(rows, columns=cols)
    return df.sort_values(["variant", "seed"], kind="stable").reset_index(drop=True)


# ----------------------------------------------------------------------------- summary.csv


def sweep_parameter(study: Study) -> str | None:
    return sweep_axis(study.design)


def swept_value(variant: Variant, param: str | None) -> float:
    """The numeric swept value of a variant, as the plan recorded it; else nan."""
    return number_or_nan(variant.params.get(param)) if param else math.nan


def variant_settings(study: Study) -> dict[str, dict[str, Any]]:
    """Per variant, the dotted config keys (lr, regularizer strengths, ...) of its first run:
    what claims and the strength-grid section read to find where a variant sits."""
    out: dict[str, dict[str, Any]] = {}
    for v in study.variants:
        runs = study.runs_of(v.name, included_only=False)
        if runs:
            config = {k: val for k, val in runs[0].config.items()
                      if k not in ("run_id", "seed", "variant", "study")}
            out[v.name] = flatten_dotted("", config)
    return out


def variant_disagreement(study: Study, variant: str) -> tuple[float, int]:
    preds = [p for r in study.runs_of(variant) if (p := load_predictions(r.path)) is not None]
    return stats.pairwise_disagreement(preds), len(preds)


def summary_table(study: Study, runs: pd.DataFrame) -> pd.DataFrame:
    """One row per variant: counts, mean / CI half-width / n per metric, and the comparison
    the study declares (default: test acc at the best-val epoch, both sides)."""
    inc = runs[runs["included"].astype(bool)]
    trusted = runs[runs["trusted"].astype(bool)]
    param = sweep_parameter(study)
    compare = study.compare
    base = inc[inc["variant"] == study.baseline] if study.baseline else inc.iloc[0:0]
    references = [compare.reference_metric, *compare.also_against]
    base_by_seed = {ref: dict(zip(base["seed"], base[ref], strict=True)) for ref in references
                    if ref in base}
    missing = pd.Series([m.variant for m in study.missing], dtype=object)
    rows = []
    for v in study.variants:
        all_v = trusted[trusted["variant"] == v.name]
        mine = inc[inc["variant"] == v.name]
        status = all_v["status"]
        row: dict[str, Any] = {
            "variant": v.name, "is_baseline": v.is_baseline,
            "swept_parameter": param, "swept_value": swept_value(v, param),
            "n_runs": len(all_v), "n_included": len(mine),
            "n_diverged": int((status == "diverged").sum()),
            "n_failed": int(status.isin(["failed", "interrupted", "pruned", "unknown"]).sum()),
            "n_incomplete": int((status == "incomplete").sum()),
            "n_rejected": int((runs["variant"] == v.name).sum() - len(all_v)),
            "n_missing": int((missing == v.name).sum()),
        }
        for metric in METRICS:
            ci = stats.mean_ci(mine[metric].tolist())
            row[f"{metric}_mean"] = ci.mean
            row[f"{metric}_ci95"] = ci.half
            row[f"{metric}_sd"] = ci.sd
            row[f"{metric}_n"] = ci.n
        row["compare_metric"] = compare.metric
        row["compare_reference"] = compare.reference_metric
        for i, ref in enumerate(references):
            prefix = "" if i == 0 else f"vs_{ref}_"
            if study.baseline is not None and not v.is_baseline and ref in base_by_seed:
                c = stats.compare(dict(zip(mine["seed"], mine[compare.metric], strict=True)),
                                  base_by_seed[ref])
                row.update({f"{prefix}delta": c.diff, f"{prefix}p_value": c.p,
                            f"{prefix}test": c.test, f"{prefix}n_pairs": c.n_pairs,
                            f"{prefix}significant": c.significant,
                            f"{prefix}delta_ci_lo": c.ci_lo, f"{prefix}delta_ci_hi": c.ci_hi,
                            f"{prefix}effect_dz": c.effect_size, f"{prefix}mde": c.mde})
            else:
                row.update({f"{prefix}delta": math.nan, f"{prefix}p_value": math.nan,
                            f"{prefix}test": "n/a", f"{prefix}n_pairs": 0,
                            f"{prefix}significant": None, f"{prefix}delta_ci_lo": math.nan,
                            f"{prefix}delta_ci_hi": math.nan, f"{prefix}effect_dz": math.nan,
                            f"{prefix}mde": math.nan})
        row["disagreement"], row["disagreement_n"] = variant_disagreement(study, v.name)
        rows.append(row)
    df = pd.DataFrame(rows)
    if df.empty:
        return df
    df["p_holm"] = stats.holm(df["p_value"])  # across this study's comparisons
    df["verdict"] = [stats.verdict(d, p) for d, p in zip(df["delta"], df["p_holm"], strict=True)]
    key = f"{compare.metric}_mean" if f"{compare.metric}_mean" in df else \
        f"{COMPARE_METRIC}_mean"
    return df.sort_values(key, ascending=False, na_position="last", kind="stable").reset_index(
        drop=True)


# ----------------------------------------------------------------------------- curves

CURVE_COLUMNS = ("train_loss", "val_loss", "train_acc", "val_acc", "gap_loss")


def run_curve(metrics: pd.DataFrame) -> pd.DataFrame:
    """epoch, train_loss, train_acc (eval-mode train metrics when present), val_*, gap_loss."""
    if metrics.empty or "epoch" not in metrics:
        return pd.DataFrame(columns=["epoch", *CURVE_COLUMNS])
    tl, ta = train_cols(metrics.columns)
    out = pd.DataFrame({"epoch": metrics["epoch"]})
    out["train_loss"] = metrics.get(tl)
    out["train_acc"] = metrics.get(ta)
    out["val_loss"] = metrics.get("val_loss")
    out["val_acc"] = metrics.get("val_acc")
    out["gap_loss"] = out["val_loss"] - out["train_loss"]
    return out.apply(pd.to_numeric, errors="coerce")


def variant_curves(records: list[RunRecord]) -> pd.DataFrame:
    """Per epoch over seeds: <col>_mean, <col>_min, <col>_max, <col>_sd and n."""
    frames = [run_curve(r.metrics).assign(seed=r.seed) for r in records if len(r.metrics)]
    frames = [f for f in frames if len(f)]
    if not frames:
        return pd.DataFrame()
    long = pd.concat(frames, ignore_index=True)
    g = long.groupby("epoch")
    out = pd.DataFrame({"epoch": sorted(long["epoch"].dropna().unique())}).set_index("epoch")
    for c in CURVE_COLUMNS:
        out[f"{c}_mean"] = g[c].mean()
        out[f"{c}_min"] = g[c].min()
        out[f"{c}_max"] = g[c].max()
        out[f"{c}_sd"] = g[c].std(ddof=1)
    out["n"] = g["seed"].count()
    return out.reset_index()


def mean_curve(curves: pd.DataFrame) -> pd.DataFrame:
    """The mean columns under their plain names (what diagnosis reads)."""
    if curves.empty:
        return pd.DataFrame(columns=["epoch", *CURVE_COLUMNS])
    return pd.DataFrame({"epoch": curves["epoch"],
                         **{c: curves[f"{c}_mean"] for c in CURVE_COLUMNS}})
