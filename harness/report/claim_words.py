"""A claim's verdict (harness.report.claims.Verdict) in the report's words (vocabulary.py).

The statistics stay in claims.py and study/confirm.py: the verdict's `reason` decides (its
group-sequential test may use an interval wider than 95%). This module names the reason with
the report's word and writes the numbers that make it true: the interval at the verdict's own
level, the margin, the seeds, and for a fixed-seed choice its Bonferroni adjustment.

The word follows the metric's own good direction (higher accuracy, lower ECE is "better"),
so a claim that expects a fall in accuracy and holds reads "held — worse".
"""

from __future__ import annotations

import fnmatch
import math
from typing import Any

from scipy import stats as sps

from harness.record.numbers import finite, number_or_nan
from harness.report import vocabulary as vocab
from harness.report.claims import fmt_level
from harness.stats.compare import ALPHA, CONFIDENCE
from harness.study.claim_config import verdict_word

CLAIM_PHRASES = {"test_acc": "test accuracy at the best-val checkpoint",
                 "test_loss": "test loss at the best-val checkpoint",
                 "last_test_acc": "test accuracy at the last epoch",
                 "final_test_acc": "test accuracy of the final model",
                 "gap_acc": "train − val accuracy gap at the last epoch",
                 "gap_loss": "val − train loss gap at the last epoch",
                 "shift_acc": "accuracy under shift (final model)",
                 "mia_advantage": "membership-inference advantage (final model)",
                 "overconfidence": "mean confidence − accuracy (final model)"}
CALIBRATION_METRICS = ("ece", "ece_ts", "nll", "nll_ts", "overconfidence")
# The column a claim metric reads (claims.py), for the weights it describes.
CLAIM_COLUMNS = {"test_acc": "best_test_acc", "test_loss": "best_test_loss"}


def margin_of(verdict: Any, claim: Any) -> float:
    """The claim's smallest effect of interest: the verdict's, else the claim's."""
    for value in (getattr(verdict, "margin", None), getattr(claim, "effect_margin", None),
                  getattr(claim, "margin", None)):
        if number_or_nan(value) > 0:
            return number_or_nan(value)
    return vocab.DEFAULT_MARGIN


def level_text(level: float) -> str:
    """The interval's level as claims.fmt_level writes it (95% where none is known)."""
    return fmt_level(level) if finite(level) else f"{CONFIDENCE:.0%}"


def adjusted(v: Any) -> bool:
    """A choice on validation tested on the same (fixed) seeds at alpha / pairs."""
    return bool(getattr(v, "adjusted", False))


def _seeds(v: Any) -> str:
    n = v.n_pairs
    fresh = getattr(v, "chose", False) and not adjusted(v)
    return f"{n} confirmation seed{'s' * (n != 1)}" if fresh else \
        f"{n} seed pair{'s' * (n != 1)}"


def _interval_95(v: Any) -> tuple[float, float]:
    """The unadjusted 95% CI behind a fixed-seed interval at a wider level (same t)."""
    lo, hi = v.ci
    n = v.n_pairs
    if n < 2 or not (finite(lo) and finite(hi) and finite(v.level)):
        return math.nan, math.nan
    se = (hi - lo) / 2 / sps.t.ppf(1 - (1 - v.level) / 2, n - 1)
    half = sps.t.ppf((1 + CONFIDENCE) / 2, n - 1) * se
    return v.diff - half, v.diff + half


def judgement(v: Any, claim: Any) -> vocab.Judgement:
    """The word for a claim's verdict, and the numbers that make it true."""
    if v.variant is None or v.reference is None or not finite(v.diff):
        return vocab.Judgement(vocab.NOT_TESTED, v.text or "no runs on one side")
    unit, m = vocab.unit_of(v.metric), margin_of(v, claim)
    lo, hi = v.ci
    level = level_text(v.level)
    ci = unit.interval(lo, hi, keep=(0.0, -m, m))
    margin = unit.effect(m).lstrip("+")
    seeds = _seeds(v)
    reason = str(getattr(v, "reason", "") or "")
    if reason in (vocab.BETTER, vocab.WORSE) and finite(lo) and finite(hi):
        word = verdict_word(reason, v.diff, v.metric, claim.direction)
        p = f"; {_p_text(v)}" if finite(v.p) else ""
        return vocab.Judgement(word, f"the {level} CI {ci} excludes 0{p}; {seeds}")
    if reason == vocab.NO_EFFECT:
        return vocab.Judgement(vocab.NO_EFFECT, f"the {level} CI {ci} lies inside ±{margin}; "
                                                f"{seeds}")
    if reason == vocab.NO_GAIN:
        up = claim.direction == "up"
        return vocab.Judgement(vocab.NO_GAIN, f"the {level} CI {ci} lies "
                               f"{'below +' if up else 'above −'}{margin}: no gain of the "
                               f"margin in the claimed direction; {seeds}")
    if adjusted(v) and finite(v.p) and v.p < 1 and v.p / v.pairs < ALPHA:
        lo95, hi95 = _interval_95(v)
        return vocab.Judgement(
            vocab.UNADJUSTED_ONLY,
            f"p {vocab.p_is(v.p / v.pairs)}{vocab.below(v.p / v.pairs)} "
            f"before adjustment and the 95% CI {unit.interval(lo95, hi95, keep=(0.0,))} "
            f"excludes 0, but {_p_text(v)}; {seeds}")
    if v.n_pairs < 2:
        return vocab.Judgement(vocab.NOT_TESTED, v.text or f"{seeds}: a test needs 2")
    step = f"; {v.next_step}" if getattr(v, "next_step", "") else ""
    return vocab.Judgement(vocab.UNDECIDED, f"the {level} CI {ci} includes 0 and is not "
                                            f"inside ±{margin}; {seeds}{step}")


def _p_text(v: Any) -> str:
    if adjusted(v):
        return f"Bonferroni-adjusted p ({v.pairs} comparisons) {vocab.p_is(v.p)}"
    return f"p {vocab.p_is(v.p)}"


def selection_text(v: Any, label: Any) -> str:
    """'dropout p = 0.5, chosen on validation over 3 screening seeds from 4 candidates and
    tested on fresh seeds, vs baseline'."""
    who = label(v.variant) if v.variant else "n/a"
    if getattr(v, "chose", False) and getattr(v, "pairs", 1) > 1:
        how = f"chosen on validation from {v.pairs} candidates"
        screen = getattr(v, "screen_seeds", 0)
        if not adjusted(v) and screen:
            how = (f"chosen on validation over {screen} screening seeds from {v.pairs} "
                   "candidates and tested on fresh seeds")
        who += f", {how},"
    ref = label(v.reference) if v.reference else "n/a"
    return f"{who} vs {ref}"


def _calibration(summary: Any, variant: str, reference: str, label: Any) -> str:
    """' dropout p = 0.5 is under-confident: mean confidence − accuracy −0.297 (baseline
    +0.012, calibrated).'"""
    from harness.train.calibration import direction

    def over(name: str) -> float:
        rows = summary[summary["variant"] == name]
        return number_or_nan(rows.iloc[0].get("overconfidence_mean")) if len(rows) else math.nan

    mine, theirs = over(variant), over(reference)
    if not finite(mine):
        return ""
    ref = f" ({label(reference)} {vocab.number(theirs, 3)}, {direction(theirs)})" \
        if finite(theirs) else ""
    return (f" {label(variant)} is {direction(mine)}: mean confidence − accuracy "
            f"{vocab.number(mine, 3)}{ref}.")


def box_entry(v: Any, claim: Any, summary: Any, baseline: str | None, label: Any,
              has_validation: bool, settings: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """One claim as the claim box shows it: outcome, word, and the sentences of numbers."""
    from harness.report.selection import range_edges

    entry = {"outcome": v.outcome, "statement": v.statement, "source": v.source,
             "edges": [], "details": list(getattr(v, "details", []) or [])}
    column = CLAIM_COLUMNS.get(v.metric, v.metric)
    if not has_validation and (column.startswith("best_") or getattr(v, "chose", False)):
        return {**entry, "outcome": "not evaluated", "word": vocab.NOT_TESTED, "details": [],
                "text": "The study has no validation split: nothing can be chosen on it, and "
                        "this claim reads a validation-chosen metric."}
    j = judgement(v, claim)
    what = CLAIM_PHRASES.get(v.metric, f"{v.metric} of the final model")
    effect = vocab.unit_of(v.metric).effect(v.diff) if finite(v.diff) else "n/a"
    text = f"{selection_text(v, label)}: {effect} in {what}; {j.word} ({j.reason})."
    if v.metric in CALIBRATION_METRICS and v.variant and v.reference:
        text += _calibration(summary, v.variant, v.reference, label)
    if v.variant:
        names = [str(n) for n in summary["variant"]] if len(summary) else []
        side = [n for n in names if n != baseline and (not claim.variants or any(
            fnmatch.fnmatch(n, pat) for pat in claim.variants))]
        entry["edges"] = range_edges(v.variant, side, settings, label)
    return {**entry, "word": j.word, "text": text}
