"""Table rows for the templates: the compact paper-style comparison and the themed detail
tables (generalization; calibration and memorization; robustness; cost), as display strings."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from harness.record.numbers import finite
from harness.report.formatting import (
    fmt,
    fmt_ci,
    fmt_int,
    fmt_interval,
    fmt_p,
    fmt_pct_ci,
    fmt_pts,
    fmt_seconds,
)
from harness.stats import compare as stats

Labeler = Callable[[str], str]


def _name_cell(r: pd.Series, best: str | None, label: Labeler) -> dict[str, Any]:
    n_bad = int(r["n_diverged"] + r["n_failed"] + r["n_incomplete"])
    return {"name": r["variant"], "label": label(r["variant"]),
            "is_baseline": bool(r["is_baseline"]),
            "is_best": r["variant"] == best,
            "n": f"n={int(r['n_included'])}" + (f" (+{n_bad} excl.)" if n_bad else "")}


def compact_rows(summary: pd.DataFrame, best: str | None, label: Labeler) -> list[dict[str, Any]]:
    """Variant, test acc % (mean ± CI), Δ in points [CI of the paired difference], Holm p,
    verdict; the minimum detectable effect rides along for non-significant rows."""
    rows = []
    for _, r in summary.iterrows():
        base = bool(r["is_baseline"])
        verdict = "baseline" if base else str(r.get("verdict") or "n/a")
        rows.append({
            **_name_cell(r, best, label),
            "acc": fmt_pct_ci(r, "best_test_acc"),
            "acc_mean": fmt(r.get("best_test_acc_mean") * 100, 1)
            if finite(r.get("best_test_acc_mean")) else "n/a",
            "acc_ci": "± " + (fmt(r.get("best_test_acc_ci95") * 100, 1)
                              if finite(r.get("best_test_acc_ci95")) else "n/a"),
            "delta": "—" if base else fmt_pts(r.get("delta")),
            "delta_ci": "" if base else fmt_interval(r.get("delta_ci_lo"), r.get("delta_ci_hi")),
            "p": "—" if base else fmt_p(r.get("p_holm")),
            "p_raw": fmt_p(r.get("p_value")), "test": r.get("test") or "n/a",
            "dz": fmt(r.get("effect_dz"), 2),
            "verdict": verdict, "verdict_class": verdict.replace(" ", "-"),
            "mde": _undetected(r, verdict),
        })
    return rows


def _undetected(r: pd.Series, verdict: str) -> str:
    """What a non-significant row could have shown: the detectable size, or that the
    unadjusted CI already excludes 0 (the adjustment, not the noise, holds it back)."""
    if verdict != "no detectable effect":
        return ""
    lo, hi, mde = r.get("delta_ci_lo"), r.get("delta_ci_hi"), r.get("mde")
    if finite(lo) and finite(hi) and (lo > 0 or hi < 0):
        return f"CI excludes 0 before {stats.MULTIPLE_TESTING}"
    return f"could detect ±{float(mde) * 100:.1f} pts" if finite(mde) else ""


def _epochs(runs: pd.DataFrame, variant: str, budget: Any) -> str:
    """Best-val epoch as 'median (min–max) of budget' over seeds."""
    inc = runs[(runs["variant"] == variant) & runs["included"].astype(bool)]
    e = inc["best_epoch"].astype(float).dropna().to_numpy()
    if not len(e):
        return "n/a"
    text = f"{np.median(e):.0f}" + (f" ({e.min():.0f}–{e.max():.0f})" if e.min() != e.max()
                                     else "")
    return text + (f" of {int(budget)}" if finite(budget) else "")


def _shift_drop(runs: pd.DataFrame, variant: str) -> str:
    inc = runs[(runs["variant"] == variant) & runs["included"].astype(bool)]
    ci = stats.mean_ci((inc["final_test_acc"] - inc["shift_acc"]).tolist())
    return fmt_ci({"d_mean": ci.mean, "d_ci95": ci.half}, "d", 1, 100.0)


def detail_tables(summary: pd.DataFrame, runs: pd.DataFrame, best: str | None, label: Labeler,
                  epoch_budget: Any) -> list[dict[str, Any]]:
    """Themed tables, each a few columns wide: {id, title, note, columns, rows}."""
    def table(tid: str, title: str, note: str, columns: list[str],
              cells: Callable[[pd.Series], list[str]]) -> dict[str, Any]:
        rows = [{**_name_cell(r, best, label), "cells": cells(r)} for _, r in summary.iterrows()]
        return {"id": tid, "title": title, "note": note, "columns": columns, "rows": rows}

    return [
        table("generalization", "Generalization",
              "At the last epoch unless marked; gaps use an eval-mode pass on the training "
              "data (noisy labels included). Best-val epoch: median (min–max) over seeds.",
              ["Test acc @ last (%)", "Test loss @ best val", "Test loss @ last",
               "Loss gap (val − train)", "Acc gap (train − val, pts)", "Best-val epoch"],
              lambda r: [fmt_pct_ci(r, "last_test_acc"), fmt_ci(r, "best_test_loss"),
                         fmt_ci(r, "last_test_loss"), fmt_ci(r, "gap_loss"),
                         fmt_pct_ci(r, "gap_acc"),
                         _epochs(runs, r["variant"], epoch_budget)]),
        table("calibration", "Calibration and memorization",
              "ECE: expected calibration error on test (15 bins). MIA advantage: 2·(AUC − 0.5) "
              "of a loss-threshold membership attack (0 = no memorization). Disagreement: "
              "fraction of test predictions that differ between two seeds.",
              ["ECE", "MIA advantage", "MIA AUC", "Seed disagreement"],
              lambda r: [fmt_ci(r, "ece"), fmt_ci(r, "mia_advantage"), fmt_ci(r, "mia_auc"),
                         fmt(r.get("disagreement"))]),
        table("robustness", "Robustness",
              "Shift: a seeded rotated / shifted and noisy copy of the test set, evaluated with "
              "the final weights; drop = clean minus shifted accuracy of the same weights.",
              ["Shift acc (%)", "Drop under shift (pts)"],
              lambda r: [fmt_pct_ci(r, "shift_acc"), _shift_drop(runs, r["variant"])]),
        table("cost", "Cost",
              "Per run, mean over the variant's runs; wall time on the hardware listed above.",
              ["Params", "FLOPs / sample", "Wall / run"],
              lambda r: [fmt_int(r.get("params_mean")), fmt_int(r.get("flops_mean")),
                         fmt_seconds(r.get("wall_time_mean"))]),
    ]
