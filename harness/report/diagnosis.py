"""Rule-based diagnosis of a variant's learning curves, each verdict citing its numbers.

Works on plain DataFrames (epoch, train_loss, val_loss, train_acc, val_acc), so the rules
can be tested on constructed curves. Every threshold is a named constant.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from harness.stats.compare import ALPHA, POWER, Comparison

# Overfitting: after the epoch of minimum val loss, val loss ends higher by more than both
# an absolute and a relative margin, while train loss keeps falling.
OVERFIT_MIN_RISE = 0.02  # absolute rise of val loss (nats) above its minimum
OVERFIT_MIN_REL_RISE = 0.05  # ... and at least 5% of the minimum
# Underfitting: the last train loss is still above this fraction of the first epoch's ...
UNDERFIT_LOSS_RATIO = 0.5
# ... or (classification only) the last train accuracy is below this level.
UNDERFIT_MAX_TRAIN_ACC = 0.3
UNDERFIT_MIN_EPOCHS = 2  # fewer epochs: no verdict on underfitting or overfitting
# Instability: a train-loss spike is an epoch after SPIKE_AFTER_EPOCH whose train loss exceeds
# SPIKE_RATIO x the previous epoch's; any non-finite loss or diverged run also counts.
SPIKE_RATIO = 1.5
SPIKE_AFTER_EPOCH = 2
# Memorization: at the last epoch, train accuracy exceeds val accuracy by more than this
# (classification), even when the val loss has not turned up.
GAP_ACC_LARGE = 0.15

PROBLEMS = ("overfitting", "memorization", "underfitting", "instability")


@dataclass(frozen=True)
class Finding:
    kind: str  # overfitting | memorization | underfitting | instability | no_effect | effect
    #            | untestable | healthy | no_data
    message: str  # the verdict with its numbers
    advice: str = ""

    @property
    def text(self) -> str:
        return f"{self.message}: {self.advice}" if self.advice else self.message


def _f(x: float) -> str:
    return "n/a" if x is None or not math.isfinite(x) else f"{x:.3g}"


def _series(curve: pd.DataFrame, col: str) -> np.ndarray:
    if col not in curve:
        return np.full(len(curve), np.nan)
    return pd.to_numeric(curve[col], errors="coerce").to_numpy(dtype=float)


def _more_regularization(regularizers: Collection[str]) -> str:
    """Advice against overfitting that the variant does not already follow."""
    if "early_stopping" in regularizers:
        return "more regularization or data (early stopping already restores the best-val weights)"
    return "more regularization or data, or early stopping at the best-val epoch"


def overfitting(curve: pd.DataFrame, regularizers: Collection[str] = ()) -> Finding | None:
    epochs, val, train = _series(curve, "epoch"), _series(curve, "val_loss"), _series(curve,
                                                                                      "train_loss")
    ok = np.isfinite(val) & np.isfinite(train)
    if ok.sum() < UNDERFIT_MIN_EPOCHS + 1:
        return None
    epochs, val, train = epochs[ok], val[ok], train[ok]
    k = int(np.argmin(val))
    if k == len(val) - 1:
        return None
    rise = val[-1] - val[k]
    rose = rise > OVERFIT_MIN_RISE and rise > OVERFIT_MIN_REL_RISE * abs(val[k])
    if rose and train[-1] < train[k]:
        return Finding(
            "overfitting",
            f"overfitting: val loss rose from {_f(val[k])} at epoch {int(epochs[k])} to "
            f"{_f(val[-1])} at epoch {int(epochs[-1])} while train loss fell "
            f"{_f(train[k])} -> {_f(train[-1])}",
            _more_regularization(regularizers))
    return None


def memorization(curve: pd.DataFrame, regularizers: Collection[str] = ()) -> Finding | None:
    """A large train-val accuracy gap at the last epoch (the model fits what does not transfer)."""
    train, val = _series(curve, "train_acc"), _series(curve, "val_acc")
    ok = np.isfinite(train) & np.isfinite(val)
    if ok.sum() < UNDERFIT_MIN_EPOCHS:
        return None
    gap = train[ok][-1] - val[ok][-1]
    if gap <= GAP_ACC_LARGE:
        return None
    return Finding("memorization",
                   f"memorization: train accuracy {train[ok][-1]:.1%} vs val {val[ok][-1]:.1%} "
                   f"at the last epoch (gap {gap * 100:.1f} points > {GAP_ACC_LARGE * 100:.0f})",
                   _more_regularization(regularizers))


def underfitting(curve: pd.DataFrame, classification: bool = True,
                 regularizers: Collection[str] = ()) -> Finding | None:
    train, acc = _series(curve, "train_loss"), _series(curve, "train_acc")
    fin = train[np.isfinite(train)]
    if len(fin) < UNDERFIT_MIN_EPOCHS:
        return None
    first, last = fin[0], fin[-1]
    acc_fin = acc[np.isfinite(acc)]
    last_acc = acc_fin[-1] if len(acc_fin) else math.nan
    if first > 0 and last > UNDERFIT_LOSS_RATIO * first:
        why = (f"train loss stayed high: {_f(last)} at the last epoch is "
               f"{last / first:.0%} of the first epoch's {_f(first)}")
    elif classification and math.isfinite(last_acc) and last_acc < UNDERFIT_MAX_TRAIN_ACC:
        why = f"train accuracy only {_f(last_acc)} at the last epoch"
    else:
        return None
    advice = "a bigger model or more epochs"
    if regularizers:
        advice = f"weaker {' / '.join(sorted(regularizers))}, " + advice
    return Finding("underfitting", f"underfitting: {why}", advice)


def instability(run_curves: Sequence[tuple[str, pd.DataFrame]],
                failures: Sequence[str] = ()) -> Finding | None:
    """Spikes / non-finite losses in any run's train loss, or diverged runs (`failures`)."""
    events: list[str] = list(failures)
    for label, c in run_curves:
        epochs, loss = _series(c, "epoch"), _series(c, "train_loss")
        bad = ~np.isfinite(loss)
        if bad.any():
            events.append(f"{label}: non-finite train loss at epoch {int(epochs[bad][0])}")
            continue
        for i in range(1, len(loss)):
            if epochs[i] > SPIKE_AFTER_EPOCH and loss[i] > SPIKE_RATIO * loss[i - 1]:
                events.append(f"{label}: train loss jumped {_f(loss[i - 1])} -> {_f(loss[i])} "
                              f"at epoch {int(epochs[i])}")
                break
    if not events:
        return None
    return Finding("instability", "instability: " + "; ".join(events),
                   "clip gradients, lower the learning rate, add warm-up")


def effect(comparison: Comparison | None, metric: str = "test acc") -> Finding | None:
    if comparison is None or comparison.test == "n/a" and math.isnan(comparison.diff):
        return None
    d = comparison.diff * 100
    if comparison.significant is None:
        return Finding("untestable",
                       f"difference vs baseline {d:+.1f} pts {metric} cannot be tested "
                       f"({comparison.n_pairs} paired seed(s))", "run at least 2 seeds of each")
    ci = ""
    if math.isfinite(comparison.ci_lo) and math.isfinite(comparison.ci_hi):
        ci = f" [95% CI {comparison.ci_lo * 100:+.1f}, {comparison.ci_hi * 100:+.1f}]"
    where = f"{d:+.1f} pts {metric}{ci}, p={comparison.p:.2g} ({comparison.test}, " \
            f"{comparison.n_pairs} pairs)"
    if comparison.significant:
        better = "better" if comparison.diff > 0 else "worse"
        return Finding("effect", f"significantly {better} than the baseline: {where}")
    advice = "inside the seed-to-seed noise; more seeds or a stronger setting"
    if math.isfinite(comparison.mde):
        advice = (f"inside the seed-to-seed noise: {comparison.n_pairs} seeds detect only "
                  f"differences of about {comparison.mde * 100:.1f} pts or more "
                  f"({POWER:.0%} power); more seeds to resolve smaller ones")
    return Finding("no_effect", f"no significant effect vs baseline: {where}, p >= {ALPHA}",
                   advice)


def diagnose(curve: pd.DataFrame, run_curves: Sequence[tuple[str, pd.DataFrame]] = (),
             failures: Sequence[str] = (), comparison: Comparison | None = None,
             classification: bool = True,
             regularizers: Collection[str] = ()) -> list[Finding]:
    """Findings for one variant.

    curve: mean over seeds (epoch, train_loss, val_loss, train_acc, val_acc).
    run_curves: (label, per-run curve with epoch and train_loss) for spike detection; the mean
        curve is checked when none are given.
    failures: descriptions of diverged runs ("seed 1 diverged at epoch 7").
    comparison: the difference from the baseline (None for the baseline itself).
    regularizers: the variant's regularizers, so advice never repeats what it already does.
    "healthy" when none of overfitting, memorization, underfitting, instability or no effect
    applies.
    """
    findings: list[Finding] = []
    if curve.empty and not failures:
        return [Finding("no_data", "no completed runs with metrics")]
    over = overfitting(curve, regularizers)
    gap = memorization(curve, regularizers) if classification else None
    if over is not None and gap is not None:  # same cure: say it once
        gap = Finding(gap.kind, gap.message)
    for f in (instability(run_curves or [("mean", curve)], failures), over, gap,
              underfitting(curve, classification, regularizers), effect(comparison)):
        if f is not None:
            findings.append(f)
    if not any(f.kind in (*PROBLEMS, "no_effect") for f in findings):
        findings.insert(0, Finding("healthy", "healthy: no overfitting, memorization, "
                                              "underfitting or instability in the curves"))
    return findings
