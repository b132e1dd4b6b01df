"""The report's words (harness/report/vocabulary.py) on constructed results: every wording path
of the tables, the headline and the claim box, and every sentence checked against the numbers
it states (read back out of the sentence, not taken from the code that wrote it)."""

from __future__ import annotations

import itertools
import math
import re

import pandas as pd
import pytest
from scipy import stats as sps

from harness.report import claim_words, headline
from harness.report import vocabulary as vocab
from harness.report.claims import HELD, NOT_HELD, UNDECIDED, Verdict
from harness.report.selection import Choice
from harness.stats.compare import ALPHA
from harness.study.claim_config import higher_is_better

NUM = r"[+−-]?\d+(?:\.\d+)?"
P = re.compile(r"((?:Holm|Bonferroni)-adjusted p \(\d+ comparisons\)|\bp) (= (" + NUM +
               r")|< 0\.001)")


def num(text: str) -> float:
    return float(text.replace("−", "-"))


def stated(sentence: str) -> dict:
    """The numbers a sentence states: CI, p values (raw and adjusted), margin, seed pairs."""
    out: dict = {}
    if m := re.search(rf"\[({NUM}), ({NUM})\]( pts)?", sentence):
        scale = 100 if m.group(3) else 1
        out["lo"], out["hi"] = num(m.group(1)) / scale, num(m.group(2)) / scale
    for label, _, value in P.findall(sentence):
        key = "p_adj" if "adjusted" in label else "p"
        out[key] = num(value) if value else 0.0009
    if m := re.search(rf"±({NUM})( pts)?", sentence):
        out["margin"] = num(m.group(1)) / (100 if m.group(2) else 1)
    if m := re.search(r"(\d+) (?:seed pairs|paired seed)", sentence):
        out["n"] = int(m.group(1))
    return out


def check(word: str, sentence: str, e: vocab.Effect | None = None) -> None:
    """The word's meaning holds for the numbers the sentence states (and those numbers are the
    inputs, to the digits shown)."""
    s = stated(sentence)
    assert word in vocab.WORDS
    if word == vocab.NOT_TESTED:
        assert s.get("n", 0) < 2, sentence
        return
    lo, hi, p = s["lo"], s["hi"], s.get("p", s.get("p_adj"))
    if e is not None:
        assert lo == pytest.approx(e.lo, abs=0.0051 * (1 if e.unit is vocab.PLAIN else 0.1))
        assert hi == pytest.approx(e.hi, abs=0.0051 * (1 if e.unit is vocab.PLAIN else 0.1))
    if word in (vocab.BETTER, vocab.WORSE):
        deciding = s.get("p_adj", p)
        assert deciding is not None, sentence
        assert deciding < ALPHA and (lo > 0 or hi < 0), sentence
        if e is not None:
            assert ((lo > 0) == e.higher_is_better) == (word == vocab.BETTER), sentence
    elif word == vocab.UNADJUSTED_ONLY:
        assert p < ALPHA <= s["p_adj"] and (lo > 0 or hi < 0), sentence
    elif word == vocab.NO_EFFECT:
        assert p >= ALPHA and -s["margin"] < lo and hi < s["margin"], sentence
    elif word == vocab.UNDECIDED:
        assert p >= ALPHA and lo <= 0 <= hi, sentence
        assert not (-s["margin"] < lo and hi < s["margin"]), sentence


def paired(diff: float, sd: float, n: int, k: int, margin: float,
           unit: vocab.Unit = vocab.POINTS, higher: bool = True) -> vocab.Effect:
    """The Effect a paired t-test over n pairs with this mean and sd gives, Holm x k."""
    if n < 2:
        return vocab.Effect(diff, math.nan, math.nan, math.nan, math.nan, n, margin, unit)
    se = sd / math.sqrt(n)
    half = sps.t.ppf(0.975, n - 1) * se
    p = float(2 * sps.t.sf(abs(diff) / se, n - 1))
    return vocab.Effect(diff, diff - half, diff + half, p, min(1.0, p * k), n, margin, unit,
                        higher, "Holm" if k > 1 else "", k)


GRID = list(itertools.product(
    (-0.08, -0.02, -0.004, 0.0, 0.003, 0.009, 0.02, 0.05), (0.002, 0.01, 0.05), (1, 2, 3, 8),
    (1, 3), (0.01, 0.02)))


def test_every_word_on_a_grid_of_results_states_numbers_that_make_it_true() -> None:
    seen = set()
    for diff, sd, n, k, margin in GRID:
        for unit, higher in ((vocab.POINTS, True), (vocab.PLAIN, False)):
            e = paired(diff, sd, n, k, margin, unit, higher)
            j = vocab.judge(e)
            check(j.word, j.reason, e)
            seen.add(j.word)
    assert seen == set(vocab.WORDS) - {vocab.NO_GAIN}  # a claims-only word


@pytest.mark.parametrize("e", [
    vocab.Effect(0.03, 0.0004, 0.06, 0.04955, 0.04955, 3),  # p 0.0496 and a CI bound at 0.04
    vocab.Effect(0.001, -0.00998, 0.00997, 0.8, 0.8, 5, margin=0.01),  # CI just inside
    vocab.Effect(0.001, -0.01, 0.012, 0.8, 0.8, 5, margin=0.01),  # CI on the margin
    vocab.Effect(0.02, 0.00003, 0.04, 0.0499, 0.1497, 3, correction="Holm", n_comparisons=3),
])
def test_numbers_on_a_threshold_get_the_digits_that_keep_them_on_their_side(
        e: vocab.Effect) -> None:
    j = vocab.judge(e)
    check(j.word, j.reason, e)
    assert "p = 0.05 < 0.05" not in j.reason and "[+0.0," not in j.reason


def test_levels_read_as_they_are() -> None:
    assert [claim_words.level_text(x) for x in (0.95, 1 - 0.05 / 3, 0.992, 0.99995)] == \
        ["95%", "98.3%", "99.2%", "99.995%"]


def test_fmt_p_and_p_is() -> None:
    assert vocab.fmt_p(0.0496) == "0.0496" and vocab.fmt_p(0.051) == "0.051"
    assert vocab.fmt_p(0.5) == "0.5" and vocab.p_is(0.0004) == "< 0.001"
    assert vocab.number(-0.00004, 1) == "0.0" and vocab.number(-0.04, 1) == "0.0"  # no −0.0
    assert vocab.number(-0.06, 1) == "−0.1" and vocab.number(0.06, 1) == "+0.1"
    assert vocab.number(0.0004, 1, keep=(0.0,)) == "+0.0004"  # stays above 0 where 0 matters


# ----------------------------------------------------------------------------- headline


def _summary(rows: dict[str, tuple[float, float]], base: float, k: int = 3) -> pd.DataFrame:
    """variant -> (mean accuracy, per-pair sd); the baseline at `base`."""
    out = [{"variant": "baseline", "is_baseline": True, "best_test_acc_mean": base,
            "verdict": "baseline", "verdict_reason": "", "delta": math.nan}]
    for name, (acc, sd) in rows.items():
        e = paired(acc - base, sd, 3, k, 0.01)
        j = vocab.judge(e)
        out.append({"variant": name, "is_baseline": False, "best_test_acc_mean": acc,
                    "delta": e.diff, "delta_ci_lo": e.lo, "delta_ci_hi": e.hi,
                    "p_value": e.p_raw, "p_holm": e.p_adj, "n_pairs": 3, "mde": math.nan,
                    "verdict": j.word, "verdict_reason": j.reason})
    return pd.DataFrame(out).sort_values("best_test_acc_mean", ascending=False)


def _inputs(summary: pd.DataFrame, chosen: str | None, n_seeds: int = 3) -> headline.Inputs:
    others = [v for v in summary["variant"] if v != "baseline"]
    how = "chosen on validation by the study's claim" if chosen else \
        "no validation split to choose on"
    return headline.Inputs(summary, "baseline", Choice(chosen, how, others), "best_test_acc",
                           "best_test_acc", "test accuracy at the best-val checkpoint",
                           n_seeds=n_seeds)


@pytest.mark.parametrize("chosen_acc,sd", [(0.48, 0.002), (0.47, 0.03), (0.40, 0.002),
                                           (0.4195, 0.001), (0.43, 0.05)])
def test_the_headline_states_the_chosen_variant_with_numbers_that_make_its_word_true(
        chosen_acc: float, sd: float) -> None:
    base = 0.419
    summary = _summary({"a": (chosen_acc, sd), "b": (0.45, 0.004), "c": (0.425, 0.03)}, base)
    lines = headline.answer(_inputs(summary, "a"))
    row = summary.set_index("variant").loc["a"]
    first = lines[0]
    assert first.startswith("a, chosen on validation by the study's claim, ")
    assert f"({base * 100:.1f}% → {chosen_acc * 100:.1f}%)" in first
    check(str(row["verdict"]), first)
    m = re.search(rf"by ({NUM}) (?:points|pts)", first)
    assert abs(num(m.group(1))) == pytest.approx(abs(chosen_acc - base) * 100, abs=0.051)
    # the others, relative to the chosen one, each with its own word
    others = next(x for x in lines if x.startswith("The other variants"))
    for name in ("b", "c"):
        r = summary.set_index("variant").loc[name]
        assert f"{name} {vocab.POINTS.effect(r['delta'])}, {r['verdict']}" in others
        rel = (r["best_test_acc_mean"] - chosen_acc) * 100
        if round(abs(rel), 1):
            side = "above" if rel > 0 else "below"
            assert f"{abs(rel):.1f} points {side} the chosen variant" in others
    tally = lines[-1]
    words = list(summary["verdict"][summary["verdict"] != "baseline"])
    for w in set(words):
        assert f"{words.count(w)} {w}" in tally


def test_one_seed_no_choice_baseline_only_and_no_baseline() -> None:
    summary = _summary({"a": (0.48, 0.01)}, 0.42)
    summary.loc[summary["variant"] == "a", ["verdict", "verdict_reason", "n_pairs"]] = \
        [vocab.NOT_TESTED, "1 paired seed: a test needs at least 2", 1]
    one = headline.answer(_inputs(summary, "a", n_seeds=1))
    assert "not tested (1 paired seed" in one[0] and "seed noise" not in " ".join(one)
    assert one[-1].endswith("(one seed per variant: a test needs at least 2).")
    none = headline.answer(_inputs(_summary({"a": (0.48, 0.01)}, 0.42), None))
    assert none[0].startswith("No variant is chosen (no validation split to choose on)")
    only = headline.answer(_inputs(_summary({}, 0.42), None))
    assert only == ["Baseline only: 42.0% test accuracy at the best-val checkpoint."]
    alone = _summary({"a": (0.48, 0.01)}, 0.42)
    alone = alone[alone["variant"] != "baseline"]
    lines = headline.answer(headline.Inputs(alone, None, Choice("a", "the only variant"),
                                            "best_test_acc", "best_test_acc", "test accuracy"))
    assert lines == ["a, the only variant, reaches 48.0% test accuracy (no baseline to "
                     "compare with)."]


# ----------------------------------------------------------------------------- claim box


def claim_check(word: str, sentence: str, margin: float, good_up: bool, up: bool) -> None:
    """A claim's word holds for the interval, margin and p the sentence states."""
    s = stated(sentence)
    lo, hi = s["lo"], s["hi"]
    if word in (vocab.BETTER, vocab.WORSE):
        assert lo > 0 or hi < 0, sentence
        assert ((lo > 0) == good_up) == (word == vocab.BETTER), sentence
    elif word == vocab.NO_EFFECT:
        assert -s["margin"] < lo and hi < s["margin"] == pytest.approx(margin), sentence
    elif word == vocab.NO_GAIN:
        assert (hi < margin) if up else (lo > -margin), sentence
    elif word == vocab.UNDECIDED:
        assert lo <= 0 <= hi and not (-margin < lo and hi < margin), sentence
    elif word == vocab.UNADJUSTED_ONLY:
        assert s["p"] < ALPHA <= s["p_adj"] and (lo > 0 or hi < 0), sentence


def claim(metric: str = "test_acc", direction: str = "up", margin: float = 0.01):
    from harness.study.claim_config import ClaimConfig

    return ClaimConfig.model_validate({"metric": metric, "direction": direction,
                                       "source": "src", "margin": margin})


def fixed_seed_verdict(diffs: list[float], pairs: int) -> Verdict:
    """What claims.py reports for a choice tested on the same seeds at alpha / pairs."""
    n = len(diffs)
    mean, sd = sum(diffs) / n, float(pd.Series(diffs).std())
    level = 1 - ALPHA / pairs
    half = sps.t.ppf(1 - (1 - level) / 2, n - 1) * sd / math.sqrt(n)
    raw = float(sps.ttest_1samp(diffs, 0).pvalue)
    return Verdict(UNDECIDED, UNDECIDED, "s", "src", "test_acc", 0.01, "a", "baseline",
                   diff=mean, ci=(mean - half, mean + half), level=level,
                   p=min(1.0, raw * pairs), n_pairs=n, screen_seeds=n, chose=True, pairs=pairs,
                   sequential=False, adjusted=True)


@pytest.mark.parametrize("metric,direction,reason,diff,ci,word", [
    ("test_acc", "up", "better", 0.03, (0.01, 0.05), vocab.BETTER),
    ("ece", "down", "worse", 0.2, (0.15, 0.25), vocab.WORSE),  # ECE rose: worse
    ("test_acc", "down", "better", -0.03, (-0.05, -0.01), vocab.WORSE),  # held, accuracy fell
    ("test_acc", "up", "no effect beyond the margin", 0.001, (-0.006, 0.008), vocab.NO_EFFECT),
    ("test_acc", "up", "no gain as large as the margin", -0.01, (-0.03, 0.006),
     vocab.NO_GAIN),
    ("ece", "down", "no gain as large as the margin", 0.01, (-0.004, 0.03), vocab.NO_GAIN),
    ("test_acc", "up", "undecided", 0.01, (-0.01, 0.03), vocab.UNDECIDED),
])
def test_claim_words_name_the_verdicts_reason_with_numbers_that_make_it_true(
        metric, direction, reason, diff, ci, word) -> None:
    margin = 0.01
    outcome = HELD if reason == "better" else UNDECIDED if reason == "undecided" else NOT_HELD
    v = Verdict(outcome, reason, "s", "src", metric, margin, "a", "baseline", diff=diff, ci=ci,
                level=0.992, p=math.nan, n_pairs=7, screen_seeds=3, chose=True, pairs=4,
                sequential=True, max_seeds=20, next_step="about 12 confirmation seeds "
                "would decide the observed +1.0 pts")
    j = claim_words.judgement(v, claim(metric, direction, margin))
    assert j.word == word, j
    assert "99.2% CI" in j.reason and "7 confirmation seeds" in j.reason
    claim_check(j.word, j.reason, margin, higher_is_better(metric), direction == "up")
    assert claim_words.selection_text(v, str) == (
        "a, chosen on validation over 3 screening seeds from 4 candidates and tested on fresh "
        "seeds, vs baseline")


def test_a_fixed_seed_choice_detected_before_its_bonferroni_adjustment_says_so() -> None:
    diffs = [0.02, 0.06, 0.02, 0.04]  # p 0.035, x3 0.11
    v = fixed_seed_verdict(diffs, 3)
    raw = sps.ttest_1samp(diffs, 0)
    assert raw.pvalue < ALPHA <= v.p  # the case: significant only before the x3
    j = claim_words.judgement(v, claim())
    assert j.word == vocab.UNADJUSTED_ONLY and "Bonferroni-adjusted p (3 comparisons)" in j.reason
    claim_check(j.word, j.reason, 0.01, True, True)
    lo, hi = raw.confidence_interval(0.95)
    assert claim_words._interval_95(v) == pytest.approx((lo, hi))  # the paired t's own CI
    assert claim_words.selection_text(v, str) == "a, chosen on validation from 3 candidates, " \
        "vs baseline"
    missing = Verdict(UNDECIDED, UNDECIDED, "s", "src", "test_acc", 0.01, None, "baseline",
                      text="no completed runs on one side of the comparison")
    assert claim_words.judgement(missing, claim()).word == vocab.NOT_TESTED


def test_the_answer_states_the_claims_own_test_of_the_chosen_variant() -> None:
    """With a claim on the chosen variant, the answer gives the claim's word, difference and
    interval (its own seeds), not the table's, so the two never disagree."""
    summary = _summary({"a": (0.48, 0.002), "b": (0.45, 0.004)}, 0.419)
    said = vocab.Judgement(vocab.UNDECIDED, "the 99.2% CI [−1.0, +9.0] pts includes 0 and is "
                                            "not inside ±1.0 pts; 5 confirmation seeds")
    inputs = _inputs(summary, "a")
    inputs.claim = (said, 0.04)
    first = headline.answer(inputs)[0]
    assert f"{vocab.UNDECIDED} ({said.reason})" in first
    assert "changes test accuracy at the best-val checkpoint by +4.0 pts" in first
    assert "(41.9% → 48.0% over all their seeds)" in first
    assert summary.set_index("variant").loc["a", "verdict"] == vocab.BETTER  # the table's own
    claim_check(said.word, said.reason, 0.01, True, True)
