"""The report's verdict words. Each word has one exact meaning, and every sentence that uses
one gives the numbers that make it true, printed with enough digits that the reader can check
the rule (a p of 0.0496 is never printed as 0.05 next to "< 0.05").

The same words judge a variant against the baseline in the tables and the headline, and a
study's claim in the claim box (read from harness.report.claims.Verdict), so a report never
calls one result by two names.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from harness.record.numbers import finite
from harness.stats.compare import ALPHA, CONFIDENCE, POWER

BETTER = "better"
WORSE = "worse"
NO_EFFECT = "no effect beyond the margin"
NO_GAIN = "no gain as large as the margin"  # claims only: a one-sided "did not hold"
UNADJUSTED_ONLY = "detected before adjustment only"
UNDECIDED = "undecided"
NOT_TESTED = "not tested"
WORDS = (BETTER, WORSE, NO_EFFECT, NO_GAIN, UNADJUSTED_ONLY, UNDECIDED, NOT_TESTED)
CI_TEXT = f"{CONFIDENCE:.0%} CI"
MEANINGS = {
    BETTER: f"the deciding test (adjusted for the number of comparisons; for a claim, its "
            f"confirmation test) finds a difference at α = {ALPHA} in the metric's good "
            "direction (higher accuracy, lower loss or ECE)",
    WORSE: f"the deciding test (adjusted for the number of comparisons; for a claim, its "
           f"confirmation test) finds a difference at α = {ALPHA} in the metric's bad "
           "direction",
    NO_GAIN: "(a claim's verdict) the interval of the difference excludes a gain of the "
             "margin or more in the direction the claim expects, while a loss is not ruled out",
    UNADJUSTED_ONLY: f"the paired test finds a difference at α = {ALPHA} before the adjustment "
                     f"for multiple comparisons (its {CI_TEXT} excludes 0) but not after it: "
                     "more seeds, or fewer comparisons, would settle it",
    NO_EFFECT: f"no difference at α = {ALPHA}, and the {CI_TEXT} of the difference lies inside "
               "± the margin (the smallest effect of interest): any effect is smaller than that",
    UNDECIDED: f"no difference at α = {ALPHA} even before adjustment, and the {CI_TEXT} "
               "is not inside ± the margin: the seeds cannot tell an effect from none",
    NOT_TESTED: "fewer than 2 paired seeds: no test is possible",
}
DEFAULT_MARGIN = 0.01  # accuracy, 1 point: the margin when no claim of the study sets one
MAX_DIGITS = 6


@dataclass(frozen=True)
class Unit:
    scale: float  # printed value = value * scale
    suffix: str  # " pts", ""
    digits: int

    def num(self, x: float, signed: bool = True, keep: tuple[float, ...] = ()) -> str:
        """x in this unit, with more digits where the default would put it on the other
        side of (or onto) a threshold in `keep` (in the metric's own units)."""
        return number(x * self.scale, self.digits, tuple(t * self.scale for t in keep), signed)

    def interval(self, lo: float, hi: float, keep: tuple[float, ...] = ()) -> str:
        return f"[{self.num(lo, keep=keep)}, {self.num(hi, keep=keep)}]{self.suffix}"

    def effect(self, x: float, keep: tuple[float, ...] = ()) -> str:
        return f"{self.num(x, keep=keep)}{self.suffix}"


POINTS = Unit(100.0, " pts", 1)
PLAIN = Unit(1.0, "", 3)
ACCURACY_METRICS = ("test_acc", "best_test_acc", "last_test_acc", "final_test_acc", "gap_acc",
                    "shift_acc", "accuracy")


def unit_of(metric: str) -> Unit:
    return POINTS if metric in ACCURACY_METRICS else PLAIN


def _side(x: float, t: float) -> int:
    """-1, 0 or 1: below, at (to float noise) or above t."""
    if math.isclose(x, t, rel_tol=1e-9, abs_tol=1e-12):
        return 0
    return 1 if x > t else -1


def number(x: float, digits: int, keep: tuple[float, ...] = (), signed: bool = True) -> str:
    """x with `digits` decimals, or more while rounding would move it onto or across one of
    the thresholds in `keep` (so "0.0496 < 0.05", not "0.05 < 0.05"). Never "-0.0"."""
    if not finite(x):
        return "n/a"
    for d in range(digits, MAX_DIGITS + 1):
        text = f"{x:+.{d}f}" if signed else f"{x:.{d}f}"
        if all(_side(float(text), t) == _side(x, t) for t in keep):
            break
    if float(text) == 0:
        text = text.lstrip("+-")
    return text.replace("-", "−")


def fmt_p(p: float) -> str:
    """p with two significant digits, or as many as it takes to stay on its side of α."""
    if not finite(p):
        return "n/a"
    if p < 0.001:
        return "<0.001"
    for sig in range(2, MAX_DIGITS + 1):
        text = f"{p:.{sig}g}"
        if (float(text) < ALPHA) == (p < ALPHA):
            break
    return text


def p_is(p: float) -> str:
    """'= 0.034' or '< 0.001', to follow 'p '."""
    text = fmt_p(p)
    return text.replace("<", "< ") if text.startswith("<") else f"= {text}"


@dataclass(frozen=True)
class Effect:
    """What a word is judged on: one paired difference and its tests."""

    diff: float  # mean over seed pairs, variant - reference, in the metric's units
    lo: float  # CI of the paired difference
    hi: float
    p_raw: float  # before any adjustment for multiple comparisons
    p_adj: float  # the deciding p (equal to p_raw when nothing is adjusted)
    n_pairs: int
    margin: float = DEFAULT_MARGIN
    unit: Unit = POINTS
    higher_is_better: bool = True
    correction: str = ""  # "Holm", "Bonferroni"; "" when p_adj is not adjusted
    n_comparisons: int = 1  # what the correction adjusted for
    mde: float = math.nan  # smallest effect the seeds detect at POWER
    mde_level: str = ""  # at which α mde was computed, when not ALPHA

    @property
    def deciding_p(self) -> str:
        """'Holm-adjusted p (3 comparisons)' or 'p'."""
        if not self.correction:
            return "p"
        return f"{self.correction}-adjusted p ({self.n_comparisons} comparisons)"


@dataclass(frozen=True)
class Judgement:
    word: str
    reason: str  # the numbers that make the word true, as a clause

    @property
    def text(self) -> str:
        return f"{self.word} ({self.reason})"


def below(p: float) -> str:
    """' < 0.05' after a p that is below α (unless it already reads '< 0.001')."""
    return "" if fmt_p(p).startswith("<") else f" < {ALPHA}"


def judge(e: Effect) -> Judgement:
    """The one word for a paired difference, with its reason."""
    if e.n_pairs < 2 or not finite(e.p_raw):
        return Judgement(NOT_TESTED, f"{e.n_pairs} paired seed{'s' * (e.n_pairs != 1)}: "
                                     "a test needs at least 2")
    p_adj = e.p_adj if finite(e.p_adj) else e.p_raw
    ci = e.unit.interval(e.lo, e.hi, keep=(0.0, -e.margin, e.margin))
    pairs = f"{e.n_pairs} seed pairs"
    if p_adj < ALPHA:
        good = (e.diff > 0) == e.higher_is_better
        return Judgement(BETTER if good else WORSE,
                         f"{e.deciding_p} {p_is(p_adj)}{below(p_adj)}; {CI_TEXT} {ci}; {pairs}")
    if e.p_raw < ALPHA:
        return Judgement(UNADJUSTED_ONLY,
                         f"p {p_is(e.p_raw)}{below(e.p_raw)} before adjustment and the "
                         f"{CI_TEXT} {ci} excludes 0, but {e.deciding_p} {p_is(p_adj)}; {pairs}")
    margin = e.unit.effect(e.margin).lstrip("+")
    if finite(e.lo) and finite(e.hi) and _side(e.lo, -e.margin) > 0 and \
            _side(e.hi, e.margin) < 0:
        return Judgement(NO_EFFECT, f"p {p_is(e.p_raw)}; {CI_TEXT} {ci} lies inside "
                                    f"±{margin}; {pairs}")
    text = f"p {p_is(e.p_raw)}; {CI_TEXT} {ci} includes 0 and is not inside ±{margin}"
    if finite(e.mde):
        text += (f"; {e.n_pairs} seeds detect about {e.unit.effect(e.mde).lstrip('+')} "
                 f"({POWER:.0%} power{e.mde_level})")
    return Judgement(UNDECIDED, f"{text}; {pairs}")


def row_effect(row: Any, margin: float, n_comparisons: int, correction: str,
               unit: Unit = POINTS, prefix: str = "") -> Effect:
    """The Effect of a summary.csv row (its comparison with the baseline)."""
    def num(key: str) -> float:
        v = row.get(f"{prefix}{key}")
        return float(v) if finite(v) else math.nan

    adjusted = n_comparisons > 1 and not prefix  # Holm runs over the declared comparison
    return Effect(num("delta"), num("delta_ci_lo"), num("delta_ci_hi"), num("p_value"),
                  num("p_holm") if adjusted else num("p_value"),
                  int(row.get(f"{prefix}n_pairs") or 0), margin, unit,
                  correction=correction if adjusted else "", n_comparisons=n_comparisons,
                  mde=num("mde"))


def tally(words: list[str]) -> str:
    """'1 better, 1 detected before adjustment only and 1 undecided' in WORDS order."""
    counts = [(w, words.count(w)) for w in WORDS if words.count(w)]
    parts = [f"{n} {w}" for w, n in counts]
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]
