"""Table rows for the templates: the compact paper-style comparison and the themed detail
tables (generalization; calibration and memorization; robustness; cost), as display strings.
Every column header says which weights its numbers describe."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from harness.record.numbers import finite
from harness.report import vocabulary as vocab
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


def _name_cell(r: pd.Series, best: str | None, label: Labeler,
               notes: dict[str, str] | None = None) -> dict[str, Any]:
    n_bad = int(r["n_diverged"] + r["n_failed"] + r["n_incomplete"])
    note = (notes or {}).get(str(r["variant"]), "")
    return {"name": r["variant"], "label": label(r["variant"]),
            "is_baseline": bool(r["is_baseline"]),
            "is_best": r["variant"] == best,
            "n": f"n={int(r['n_included'])}" + (f" (+{n_bad} excl.)" if n_bad else "")
                 + (f"; {note}" if note else "")}


def short_reason(r: pd.Series) -> str:
    """The verdict cell's second line: what decided the word, in a few characters."""
    word = str(r.get("verdict"))
    margin = vocab.POINTS.effect(float(r.get("margin", vocab.DEFAULT_MARGIN))).lstrip("+")
    if word == vocab.UNADJUSTED_ONLY:
        return f"p = {vocab.fmt_p(float(r['p_value']))} before {stats.MULTIPLE_TESTING}"
    if word == vocab.NO_EFFECT:
        return f"CI inside ±{margin}"
    if word == vocab.UNDECIDED:
        mde = r.get("mde")
        return f"seeds detect ±{float(mde) * 100:.1f} pts" if finite(mde) else \
            f"CI not inside ±{margin}"
    if word == vocab.NOT_TESTED:
        return f"{int(r.get('n_pairs') or 0)} paired seed(s)"
    return ""


def compact_rows(summary: pd.DataFrame, best: str | None, label: Labeler, metric: str,
                 reference: str, notes: dict[str, str] | None = None) -> list[dict[str, Any]]:
    """Variant, test acc % (mean ± CI; the baseline's reference column), Δ in points [CI of
    the paired difference], Holm p, the verdict word with what decided it."""
    rows = []
    for _, r in summary.iterrows():
        base = bool(r["is_baseline"])
        col = reference if base else metric
        verdict = "baseline" if base else str(r.get("verdict") or "n/a")
        rows.append({
            **_name_cell(r, best, label, notes),
            "acc": fmt_pct_ci(r, col),
            "acc_mean": fmt(r.get(f"{col}_mean") * 100, 1)
            if finite(r.get(f"{col}_mean")) else "n/a",
            "acc_ci": "± " + fmt(r.get(f"{col}_ci95") * 100, 1)
            if finite(r.get(f"{col}_ci95")) else "",  # one seed: no interval to show
            "delta": "—" if base else fmt_pts(r.get("delta")),
            "delta_ci": "" if base or not finite(r.get("delta_ci_lo")) else
            fmt_interval(r.get("delta_ci_lo"), r.get("delta_ci_hi")),
            "p": "—" if base else fmt_p(r.get("p_holm")),
            "p_raw": fmt_p(r.get("p_value")), "test": r.get("test") or "n/a",
            "dz": fmt(r.get("effect_dz"), 2),
            "verdict": verdict, "verdict_class": verdict.replace(" ", "-"),
            "reason": "" if base else str(r.get("verdict_reason") or ""),
            "short": "" if base else short_reason(r),
        })
    return rows


def _epochs(runs: pd.DataFrame, variant: str, column: str, budget: Any) -> str:
    """An epoch column as 'median (min–max) of budget' over seeds."""
    inc = runs[(runs["variant"] == variant) & runs["included"].astype(bool)]
    e = inc[column].astype(float).dropna().to_numpy()
    if not len(e):
        return "n/a"
    text = f"{np.median(e):.0f}" + (f" ({e.min():.0f}–{e.max():.0f})" if e.min() != e.max()
                                     else "")
    return text + (f" of {int(budget)}" if finite(budget) else "")


def _shift_drop(runs: pd.DataFrame, variant: str) -> str:
    inc = runs[(runs["variant"] == variant) & runs["included"].astype(bool)]
    ci = stats.mean_ci((inc["final_test_acc"] - inc["shift_acc"]).tolist())
    return fmt_ci({"d_mean": ci.mean, "d_ci95": ci.half}, "d", 1, 100.0)


Column = tuple[str, Callable[[pd.Series], str]]


def _generalization(runs: pd.DataFrame, metric: str, budget: Any) -> list[Column]:
    cols: list[Column] = []
    if metric != "best_test_acc":
        cols.append(("Test acc @ best-val checkpoint (%)",
                     lambda r: fmt_pct_ci(r, "best_test_acc")))
    cols += [
        ("Test acc @ last epoch (%)", lambda r: fmt_pct_ci(r, "last_test_acc")),
        ("Test loss @ best-val checkpoint", lambda r: fmt_ci(r, "best_test_loss")),
        ("Test loss @ last epoch", lambda r: fmt_ci(r, "last_test_loss")),
        ("Loss gap @ last epoch (val − train)", lambda r: fmt_ci(r, "gap_loss")),
        ("Acc gap @ last epoch (train − val, pts)", lambda r: fmt_pct_ci(r, "gap_acc")),
        ("Best-val checkpoint epoch",
         lambda r: _epochs(runs, r["variant"], "best_epoch", budget))]
    if pd.to_numeric(runs["restored_epoch"], errors="coerce").notna().any():
        cols += [("Test acc, final model (%)", lambda r: fmt_pct_ci(r, "final_test_acc")),
                 ("Loss gap, final model", lambda r: fmt_ci(r, "final_gap_loss")),
                 ("Restored epoch", lambda r: _epochs(runs, r["variant"], "restored_epoch",
                                                      budget))]
    return cols


def detail_tables(summary: pd.DataFrame, runs: pd.DataFrame, best: str | None, label: Labeler,
                  epoch_budget: Any, metric: str = "best_test_acc") -> list[dict[str, Any]]:
    """Themed tables, each a few columns wide: {id, title, note, columns, rows}; a column
    with no number in any row is left out."""
    def table(tid: str, title: str, note: str, columns: list[Column]) -> dict[str, Any]:
        cells = [[fn(r) for _, fn in columns] for _, r in summary.iterrows()]
        keep = [i for i in range(len(columns)) if any(c[i] != "n/a" for c in cells)]
        rows = [{**_name_cell(r, best, label), "cells": [c[i] for i in keep]}
                for (_, r), c in zip(summary.iterrows(), cells, strict=True)]
        return {"id": tid, "title": title, "note": note,
                "columns": [columns[i][0] for i in keep], "rows": rows}

    tables = [
        table("generalization", "Generalization",
              "Each column names its weights: the best-val checkpoint (the epoch the "
              "validation metric chose), the last epoch, or the final model (with early "
              "stopping, the restored weights). Gaps use an eval-mode pass on the training "
              "data (noisy labels included). Epochs: median (min–max) over seeds.",
              _generalization(runs, metric, epoch_budget)),
        table("calibration", "Calibration and memorization (final model)",
              "ECE: expected calibration error on test, per run with 15 equal-width bins, "
              "mean over seeds. Confidence − accuracy: mean max-softmax probability minus "
              "accuracy (> 0 over-confident, < 0 under-confident). MIA advantage: 2·(AUC − "
              "0.5) of a loss-threshold membership attack (0 = no memorization). "
              "Disagreement: fraction of test predictions that differ between two seeds.",
              [("ECE", lambda r: fmt_ci(r, "ece")),
               ("Confidence − accuracy", lambda r: fmt_ci(r, "overconfidence")),
               ("MIA advantage", lambda r: fmt_ci(r, "mia_advantage")),
               ("MIA AUC", lambda r: fmt_ci(r, "mia_auc")),
               ("Seed disagreement", lambda r: fmt(r.get("disagreement")))]),
        table("robustness", "Robustness (final model)",
              "Shift: a seeded rotated / shifted and noisy copy of the test set, evaluated with "
              "the final weights; drop = clean minus shifted accuracy of the same weights.",
              [("Shift acc (%)", lambda r: fmt_pct_ci(r, "shift_acc")),
               ("Drop under shift (pts)", lambda r: _shift_drop(runs, r["variant"]))]),
        table("cost", "Cost",
              "Per run, mean over the variant's runs; wall time on the hardware listed above.",
              [("Params", lambda r: fmt_int(r.get("params_mean"))),
               ("FLOPs / sample", lambda r: fmt_int(r.get("flops_mean"))),
               ("Wall / run", lambda r: fmt_seconds(r.get("wall_time_mean")))]),
    ]
    return [t for t in tables if t["columns"]]
