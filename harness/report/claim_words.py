"""A claim's verdict (harness.report.claims.Verdict) in the report's words (vocabulary.py).

The statistics stay in claims.py; this module only reads a Verdict's numbers and names them.
It reads the fields a Verdict may carry beyond the original ones when they are there
(`reason`, `margin`, `p_raw`, `screening_seeds`, `confirmation_seeds`, `candidates`), so
the claim box follows the statistics as they grow.
"""

from __future__ import annotations

import math
from typing import Any

from scipy import stats as sps

from harness.report import vocabulary as vocab
from harness.report.formatting import as_float, finite
from harness.report.stats import CONFIDENCE

HELD, NOT_HELD, UNDECIDED = "held", "did not hold", "undecided"  # claims.py's outcomes
# Claim metrics where a lower value is the better one (the rest: higher is better).
LOWER_IS_BETTER = ("test_loss", "ece", "ece_ts", "nll", "nll_ts", "gap_acc", "gap_loss",
                   "mia_advantage")
# The column a claim metric reads (claims.METRIC_COLUMNS), for the weights it describes.
CLAIM_COLUMNS = {"test_acc": "best_test_acc", "test_loss": "best_test_loss"}


def higher_is_better(metric: str, direction: str = "up") -> bool:
    if metric == "overconfidence":  # neither way is better: follow the claim
        return direction == "up"
    return metric not in LOWER_IS_BETTER


def margin_of(verdict: Any, claim: Any) -> float:
    """The claim's smallest effect of interest: the verdict's, else the claim's, else 1 pt."""
    for value in (getattr(verdict, "margin", None), getattr(claim, "margin", None),
                  getattr(claim, "min_effect", None)):
        if as_float(value) > 0:
            return as_float(value)
    return vocab.DEFAULT_MARGIN


def p_from_ci(diff: float, lo: float, hi: float, n: int) -> float:
    """The two-sided paired-t p behind a t-based CI of the mean difference (the same t)."""
    if n < 2 or not (finite(diff) and finite(lo) and finite(hi)):
        return math.nan
    half = (hi - lo) / 2
    if half <= 0:
        return 0.0 if diff != 0 else 1.0
    se = half / sps.t.ppf((1 + CONFIDENCE) / 2, n - 1)
    return float(2 * sps.t.sf(abs(diff) / se, n - 1))


def candidates_of(verdict: Any, claim: Any, names: list[str], baseline: str | None) -> int:
    """How many (variant, reference) pairs validation chose among: the Bonferroni factor."""
    given = getattr(verdict, "candidates", None)
    if isinstance(given, int) and given > 0:
        return given
    from harness.report.claims import matching

    refs = matching(list(claim.versus), names, baseline)
    cands = matching(list(claim.variants), names, baseline) if claim.variants else \
        [n for n in names if n != baseline and n not in refs]
    return max(1, len(cands)) * max(1, len(refs))


def effect_of(verdict: Any, claim: Any, k: int) -> vocab.Effect:
    """The Effect a claim is judged on. With confirmation seeds the test pays no x k."""
    lo, hi = verdict.ci
    confirmed = bool(getattr(verdict, "confirmation_seeds", None))
    adjusted = k > 1 and not confirmed
    p_raw = as_float(getattr(verdict, "p_raw", None))
    if not finite(p_raw):
        p_raw = p_from_ci(verdict.diff, lo, hi, verdict.n_pairs) if adjusted else verdict.p
    return vocab.Effect(verdict.diff, lo, hi, p_raw, verdict.p, verdict.n_pairs,
                        margin_of(verdict, claim), vocab.unit_of(verdict.metric),
                        higher_is_better(verdict.metric, claim.direction),
                        "Bonferroni" if adjusted else "", k, verdict.mde,
                        " at the Bonferroni-adjusted α" if adjusted else "")


def judgement(verdict: Any, claim: Any, k: int) -> vocab.Judgement:
    """The word for a claim's verdict, and its reason. The word follows the verdict's own
    `reason` when it gives one; the numbers fill in the rest."""
    e = effect_of(verdict, claim, k)
    given = getattr(verdict, "reason", None)
    if verdict.variant is None or verdict.reference is None:
        return vocab.Judgement(vocab.NOT_TESTED, verdict.text or "no runs on one side")
    j = vocab.judge(e)
    if given == vocab.NO_EFFECT or (given is None and verdict.outcome == NOT_HELD
                                     and j.word == vocab.UNDECIDED):
        return _no_effect(e, j)
    refines = given == vocab.UNDECIDED and j.word in (vocab.UNADJUSTED_ONLY, vocab.NOT_TESTED)
    both_decided = given in (vocab.BETTER, vocab.WORSE) and j.word in (vocab.BETTER, vocab.WORSE)
    if given is None or given == j.word or refines or both_decided:
        return j
    # claims.py decided by a rule these numbers alone do not show (e.g. a sequential test's
    # spent alpha): its word stands, with the numbers as they are
    ci = e.unit.interval(e.lo, e.hi)
    return vocab.Judgement(str(given), f"p {vocab.p_is(verdict.p)}; {vocab.CI_TEXT} {ci}; "
                                       f"{e.n_pairs} seed pairs")


def _no_effect(e: vocab.Effect, j: vocab.Judgement) -> vocab.Judgement:
    """The CI rules out effects of the margin or more: both ways (equivalence), or only in
    the claimed direction (a one-sided claim that did not hold)."""
    if j.word == vocab.NO_EFFECT:
        return j
    ci = e.unit.interval(e.lo, e.hi, keep=(0.0, -e.margin, e.margin))
    margin = e.unit.effect(e.margin).lstrip("+")
    good = e.hi if e.higher_is_better else e.lo  # the bound in the claimed direction
    side = "below +" if e.higher_is_better else "above −"
    if not ((e.higher_is_better and good < e.margin) or
            (not e.higher_is_better and good > -e.margin)):
        return j  # the numbers do not show it: keep the word they do show
    return vocab.Judgement(vocab.NO_EFFECT,
                           f"the {vocab.CI_TEXT} {ci} lies {side}{margin}: no gain of the "
                           f"margin or more in the claimed direction; {e.n_pairs} seed pairs")


def selection_text(verdict: Any, k: int, label: Any) -> str:
    """'dropout p = 0.5, chosen on validation from 3 candidates, vs baseline'."""
    who = label(verdict.variant) if verdict.variant else "n/a"
    if k > 1:
        screen = getattr(verdict, "screening_seeds", None)
        confirm = getattr(verdict, "confirmation_seeds", None)
        how = f"chosen on validation from {k} candidates"
        if screen and confirm:
            how += f" on {screen} screening seeds, tested on {confirm} fresh seeds"
        who += f", {how},"
    ref = label(verdict.reference) if verdict.reference else "n/a"
    return f"{who} vs {ref}"


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


def _calibration(summary: Any, variant: str, reference: str, label: Any) -> str:
    """'dropout p = 0.5 is under-confident: mean confidence − accuracy −0.297 (baseline
    +0.012).'"""
    from harness.train.calibration import direction

    def over(name: str) -> float:
        rows = summary[summary["variant"] == name]
        v = rows.iloc[0].get("overconfidence_mean") if len(rows) else None
        return as_float(v)

    mine, theirs = over(variant), over(reference)
    if not finite(mine):
        return ""
    ref = f" ({label(reference)} {vocab.number(theirs, 3)}, {direction(theirs)})" \
        if finite(theirs) else ""
    return (f" {label(variant)} is {direction(mine)}: mean confidence − accuracy "
            f"{vocab.number(mine, 3)}{ref}.")


def box_entry(verdict: Any, claim: Any, summary: Any, baseline: str | None, label: Any,
              has_validation: bool, settings: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """One claim as the claim box shows it: outcome, word, and one sentence of numbers."""
    from harness.report.selection import range_edges

    names = [str(n) for n in summary["variant"]] if len(summary) else []
    k = candidates_of(verdict, claim, names, baseline)
    entry = {"outcome": verdict.outcome, "statement": verdict.statement,
             "source": verdict.source, "edges": []}
    column = CLAIM_COLUMNS.get(verdict.metric, verdict.metric)
    if not has_validation and (column.startswith("best_") or k > 1):
        return {**entry, "outcome": "not evaluated", "word": vocab.NOT_TESTED,
                "text": "The study has no validation split: nothing can be chosen on it, and "
                        "this claim reads a validation-chosen metric."}
    j = judgement(verdict, claim, k)
    what = CLAIM_PHRASES.get(verdict.metric, f"{verdict.metric} of the final model")
    effect = vocab.unit_of(verdict.metric).effect(verdict.diff) if finite(verdict.diff) \
        else "n/a"
    text = f"{selection_text(verdict, k, label)}: {effect} in {what}; {j.word} ({j.reason})."
    if verdict.metric in CALIBRATION_METRICS and verdict.variant and verdict.reference:
        text += _calibration(summary, verdict.variant, verdict.reference, label)
    if verdict.variant:
        from harness.report.claims import matching

        cands = matching(list(claim.variants), names, baseline) if claim.variants else \
            [n for n in names if n != baseline]
        entry["edges"] = range_edges(verdict.variant, cands, settings, label)
    return {**entry, "word": j.word, "text": text}
