"""Read a study folder into records and tables: runs.csv (one row per run), summary.csv (one
row per variant) and per-variant mean curves."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from harness.dotted import flatten_dotted
from harness.record import Comparison, StudyRecord, Variant
from harness.record import RunRecord as RunRecordType
from harness.record.numbers import number_or_nan
from harness.record.params import sweep_axis
from harness.record.schema import DEFAULT_COMPARE_METRIC
from harness.report import vocabulary
from harness.stats import compare as stats
from harness.study.runs_table import METRICS, train_cols
from harness.train.analysis import load_predictions

COMPARE_METRIC = DEFAULT_COMPARE_METRIC  # the default comparison (a study may choose another)

Study = StudyRecord
RunRecord = RunRecordType
load_study = StudyRecord.load



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


def has_validation(runs: pd.DataFrame) -> bool:
    """Did any included run measure a validation split (a best-val checkpoint exists)?"""
    inc = runs[runs["included"].astype(bool)] if len(runs) else runs
    return bool(len(inc)) and bool(pd.to_numeric(inc["best_val_acc"], errors="coerce")
                                   .notna().any())


def effective_compare(study: Study, runs: pd.DataFrame) -> Comparison:
    """The comparison the study declares; without a validation split there is no best-val
    checkpoint, so test accuracy at the last epoch stands in for it (what such a study, e.g.
    one trained to interpolation, measures)."""
    compare = study.compare
    if has_validation(runs) or not len(runs):
        return compare

    def last(metric: str) -> str:
        return "last_" + metric[len("best_"):] if metric.startswith("best_") else metric

    also = [m for m in dict.fromkeys(last(m) for m in compare.also_against)
            if m != last(compare.reference_metric)]
    return Comparison(metric=last(compare.metric), reference=last(compare.reference_metric),
                      also_against=also, report=list(compare.report))


def summary_table(study: Study, runs: pd.DataFrame, compare: Comparison | None = None,
                  margin: float = vocabulary.DEFAULT_MARGIN) -> pd.DataFrame:
    """One row per variant: counts, mean / CI half-width / n per metric, and the comparison
    the study declares (default: test acc at the best-val epoch, both sides), judged in the
    report's words (vocabulary.py) with `margin` as the smallest effect of interest.
    Why long: one row's columns, each computed where it is named."""
    inc = runs[runs["included"].astype(bool)]
    trusted = runs[runs["trusted"].astype(bool)]
    param = sweep_parameter(study)
    compare = compare or effective_compare(study, runs)
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
    n_comparisons = int(np.isfinite(df["p_value"].to_numpy(dtype=float)).sum())
    unit = vocabulary.unit_of(compare.metric)
    words = [vocabulary.judge(vocabulary.row_effect(r, margin, n_comparisons,
                                                   stats.MULTIPLE_TESTING, unit))
             if not r["is_baseline"] else None for _, r in df.iterrows()]
    df["verdict"] = [j.word if j else "baseline" for j in words]
    df["verdict_reason"] = [j.reason if j else "" for j in words]
    df["margin"] = margin
    key = f"{compare.metric}_mean" if f"{compare.metric}_mean" in df else \
        f"{COMPARE_METRIC}_mean"
    return df.sort_values(key, ascending=False, na_position="last", kind="stable").reset_index(
        drop=True)


# ----------------------------------------------------------------------------- curves

CURVE_COLUMNS = ("train_loss", "val_loss", "train_acc", "val_acc", "gap_loss", "test_loss",
                 "test_acc")


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
    out["test_loss"] = metrics.get("test_loss")
    out["test_acc"] = metrics.get("test_acc")
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
