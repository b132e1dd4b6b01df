"""The report's words (harness/report/vocabulary.py) on constructed results: every wording path
of the tables, the headline and the claim box, and every sentence checked against the numbers
it states (read back out of the sentence, not taken from the code that wrote it)."""

from __future__ import annotations

import itertools
import math
import re
from types import SimpleNamespace

import pandas as pd
import pytest
from scipy import stats as sps

from harness.report import claim_words, headline
from harness.report import vocabulary as vocab
from harness.report.claims import HELD, NOT_HELD, UNDECIDED, Verdict
from harness.report.selection import Choice
from harness.report.stats import ALPHA

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
    assert seen == set(vocab.WORDS)


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


def _verdict(outcome: str, diff: float, sd: float, n: int, k: int, **extra) -> Verdict:
    e = paired(diff, sd, n, k, 0.01)
    p = e.p_adj if n >= 2 else math.nan
    v = Verdict(outcome, "s", "src", "test_acc", "a", "baseline", diff, (e.lo, e.hi), p, n)
    return SimpleNamespace(**v.__dict__, **extra) if extra else v  # type: ignore[return-value]


CLAIM = SimpleNamespace(metric="test_acc", direction="up", variants=None,
                        versus=["baseline"], min_effect=0.01)


@pytest.mark.parametrize("outcome,diff,sd,k,word", [
    (HELD, 0.05, 0.005, 1, vocab.BETTER),
    (NOT_HELD, -0.05, 0.005, 3, vocab.WORSE),
    (UNDECIDED, 0.03, 0.012, 3, vocab.UNADJUSTED_ONLY),  # raw p 0.049, x3 0.148
    (UNDECIDED, 0.03, 0.05, 3, vocab.UNDECIDED),
    (NOT_HELD, 0.0005, 0.002, 1, vocab.NO_EFFECT),  # equivalence: CI inside ±1 pt
    (NOT_HELD, -0.01, 0.006, 1, vocab.NO_EFFECT),  # one-sided: no gain of 1 pt or more
])
def test_claim_words_follow_the_verdict_and_its_numbers(outcome, diff, sd, k, word) -> None:
    v = _verdict(outcome, diff, sd, 3, k)
    e = claim_words.effect_of(v, CLAIM, k)
    assert (e.p_raw < ALPHA <= e.p_adj) == (word == vocab.UNADJUSTED_ONLY), e
    j = claim_words.judgement(v, CLAIM, k)
    assert j.word == word, j
    if "claimed direction" in j.reason:  # the one-sided "did not hold"
        s = stated(j.reason)
        assert s["hi"] < 0.01 and "below +1.0 pts" in j.reason
    else:
        check(j.word, j.reason)
    # the raw p read back from the CI is the paired t's own
    if k > 1 and v.p < 1:
        assert e.p_raw == pytest.approx(v.p / k, rel=1e-6)


def test_claim_words_read_the_fields_the_statistics_add() -> None:
    """reason / margin / confirmation seeds (issue 29's Verdict): the word follows `reason`,
    the margin is the verdict's, and a confirmed choice pays no Bonferroni factor."""
    v = _verdict(NOT_HELD, 0.001, 0.002, 5, 3, reason=vocab.NO_EFFECT, margin=0.02,
                 confirmation_seeds=5, screening_seeds=3)
    e = claim_words.effect_of(v, CLAIM, 3)
    assert e.margin == 0.02 and e.correction == "" and e.p_adj == e.p_raw == v.p
    j = claim_words.judgement(v, CLAIM, 3)
    assert j.word == vocab.NO_EFFECT and "±2.0 pts" in j.reason
    assert claim_words.selection_text(v, 3, str) == (
        "a, chosen on validation from 3 candidates on 3 screening seeds, tested on 5 fresh "
        "seeds, vs baseline")
    # a rule the numbers alone do not show (a sequential test's spent alpha) keeps its word
    spent = _verdict(UNDECIDED, 0.03, 0.01, 3, 1, reason=vocab.UNDECIDED)
    j = claim_words.judgement(spent, CLAIM, 1)
    assert j.word == vocab.UNDECIDED and "p = " in j.reason
    missing = Verdict(UNDECIDED, "s", "src", "test_acc", None, "baseline",
                      text="no completed runs on one side of the comparison")
    assert claim_words.judgement(missing, CLAIM, 1).word == vocab.NOT_TESTED
