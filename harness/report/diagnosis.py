"""Rule-based diagnosis of a variant's learning curves, each verdict citing its numbers.

Works on plain DataFrames (epoch, train_loss, val_loss, train_acc, val_acc, and test_loss /
test_acc, which stand in for the held-out curve of a study without a validation split), so
the rules can be tested on constructed curves. Every threshold is a named constant.

The findings of one variant cannot contradict each other: a variant that underfits is not
also said to memorize, and advice to add regularization is never given beside advice to
weaken it. "Healthy" is said only when every check ran and found nothing.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from harness.report import vocabulary as vocab

# Overfitting: after the epoch of minimum held-out loss, it ends higher by more than both
# an absolute and a relative margin, while train loss keeps falling.
OVERFIT_MIN_RISE = 0.02  # absolute rise of the held-out loss (nats) above its minimum
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
# Memorization: at the last epoch, train accuracy exceeds held-out accuracy by more than this
# (classification), even when the held-out loss has not turned up.
GAP_ACC_LARGE = 0.15
# Miscalibration: |mean confidence - accuracy| of the final model above this.
MISCALIBRATED = 0.10

PROBLEMS = ("overfitting", "memorization", "underfitting", "instability", "miscalibration")
# Finding kinds of the comparison with the baseline, by vocabulary word.
EFFECT_KINDS = {vocab.BETTER: "effect", vocab.WORSE: "effect", vocab.NO_EFFECT: "no_effect",
                vocab.UNADJUSTED_ONLY: "unadjusted", vocab.UNDECIDED: "undecided",
                vocab.NOT_TESTED: "untestable"}


@dataclass(frozen=True)
class Finding:
    kind: str  # a PROBLEMS entry | effect | no_effect | unadjusted | undecided | untestable
    #            | healthy | no_data
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


def held_out(curve: pd.DataFrame) -> str:
    """'val', or 'test' when the curves have no validation split (then test is the only
    held-out measurement; it describes, it chooses nothing)."""
    return "val" if np.isfinite(_series(curve, "val_loss")).any() or \
        np.isfinite(_series(curve, "val_acc")).any() else "test"


def _more_regularization(regularizers: Collection[str], part: str = "val") -> str:
    """Advice against overfitting that the variant does not already follow (and can: early
    stopping needs a validation split)."""
    if "early_stopping" in regularizers:
        return "more regularization or data (early stopping already restores the best-val weights)"
    if part != "val":
        return "more regularization or data"
    return "more regularization or data, or early stopping at the best-val epoch"


def overfitting(curve: pd.DataFrame, regularizers: Collection[str] = ()) -> Finding | None:
    part = held_out(curve)
    epochs, val = _series(curve, "epoch"), _series(curve, f"{part}_loss")
    train = _series(curve, "train_loss")
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
            f"overfitting: {part} loss rose from {_f(val[k])} at epoch {int(epochs[k])} to "
            f"{_f(val[-1])} at epoch {int(epochs[-1])} while train loss fell "
            f"{_f(train[k])} -> {_f(train[-1])}",
            _more_regularization(regularizers, part))
    return None


def memorization(curve: pd.DataFrame, regularizers: Collection[str] = ()) -> Finding | None:
    """A large train - held-out accuracy gap at the last epoch (the model fits what does not
    transfer)."""
    part = held_out(curve)
    train, val = _series(curve, "train_acc"), _series(curve, f"{part}_acc")
    ok = np.isfinite(train) & np.isfinite(val)
    if ok.sum() < UNDERFIT_MIN_EPOCHS:
        return None
    gap = train[ok][-1] - val[ok][-1]
    if gap <= GAP_ACC_LARGE:
        return None
    return Finding("memorization",
                   f"memorization: train accuracy {train[ok][-1]:.1%} vs {part} "
                   f"{val[ok][-1]:.1%} at the last epoch (gap {gap * 100:.1f} points > "
                   f"{GAP_ACC_LARGE * 100:.0f})", _more_regularization(regularizers, part))


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


def miscalibration(overconfidence: float | None, ece: float | None = None,
                   temperature: float | None = None) -> Finding | None:
    """The final model's mean confidence far from its accuracy, with the direction."""
    if overconfidence is None or not math.isfinite(overconfidence) or \
            abs(overconfidence) <= MISCALIBRATED:
        return None
    way = "over-confident" if overconfidence > 0 else "under-confident"
    ece_text = f", ECE {ece:.3f}" if ece is not None and math.isfinite(ece) else ""
    t_text = f" (T = {temperature:.2f} here)" if temperature is not None and \
        math.isfinite(temperature) else ""
    return Finding("miscalibration",
                   f"{way}: mean confidence − accuracy {vocab.number(overconfidence, 3)} on "
                   f"test{ece_text} (|difference| > {MISCALIBRATED})",
                   f"a temperature fitted on the validation split{t_text} rescales confidence")


def effect(judgement: vocab.Judgement | None, metric: str = "test accuracy") -> Finding | None:
    """The comparison with the baseline, in the report's words (vocabulary.py)."""
    if judgement is None:
        return None
    kind = EFFECT_KINDS.get(judgement.word, "undecided")
    advice = {"unadjusted": "more seeds would settle it",
              "undecided": "more seeds, or a stronger setting",
              "untestable": "run at least 2 seeds of each"}.get(kind, "")
    return Finding(kind, f"against the baseline in {metric}: {judgement.word} "
                         f"({judgement.reason})", advice)


def diagnose(curve: pd.DataFrame, run_curves: Sequence[tuple[str, pd.DataFrame]] = (),
             failures: Sequence[str] = (), judgement: vocab.Judgement | None = None,
             classification: bool = True, regularizers: Collection[str] = (),
             calibration: tuple[float, float, float] | None = None,
             metric: str = "test accuracy") -> list[Finding]:
    """Findings for one variant.

    curve: mean over seeds (epoch, train_loss, val_loss, train_acc, val_acc[, test_*]).
    run_curves: (label, per-run curve with epoch and train_loss) for spike detection; the mean
        curve is checked when none are given.
    failures: descriptions of diverged runs ("seed 1 diverged at epoch 7").
    judgement: the comparison with the baseline in the report's words (None: the baseline).
    regularizers: the variant's regularizers, so advice never repeats what it already does.
    calibration: the final model's mean (confidence - accuracy, ECE, temperature).
    """
    if curve.empty and not failures:
        return [Finding("no_data", "no completed runs with metrics")]
    under = underfitting(curve, classification, regularizers)
    over = overfitting(curve, regularizers)
    gap = memorization(curve, regularizers) if classification and under is None else None
    if over is not None and under is not None:  # never "more" beside "weaker" regularization
        over = Finding(over.kind, over.message)
    if over is not None and gap is not None:  # the same cure: say it once
        gap = Finding(gap.kind, gap.message)
    cal = miscalibration(*calibration) if calibration and classification else None
    findings = [f for f in (instability(run_curves or [("mean", curve)], failures), over, gap,
                            under, cal, effect(judgement, metric)) if f is not None]
    checked = np.isfinite(_series(curve, f"{held_out(curve)}_loss")).any()
    if checked and not any(f.kind in PROBLEMS for f in findings):
        findings.insert(0, Finding("healthy", "healthy: no overfitting, memorization, "
                                              "underfitting, instability or miscalibration"))
    return findings
