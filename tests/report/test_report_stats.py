"""Statistics of the report v2 checked against scipy and statsmodels, and the sentences and
verdicts built from them on constructed tables."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.power import TTestPower

from harness.report import diagnosis, narrative
from harness.stats import compare as stats

RNG = np.random.default_rng(0)


@pytest.mark.slow
def test_holm_matches_statsmodels() -> None:
    for m in (1, 2, 3, 7):
        p = RNG.uniform(0, 0.2, m)
        assert stats.holm(p) == pytest.approx(list(multipletests(p, method="holm")[1]))
    # nan entries (the baseline row) stay nan and do not count as comparisons
    got = stats.holm([0.01, float("nan"), 0.04, None, 0.03])
    ref = multipletests([0.01, 0.04, 0.03], method="holm")[1]
    assert [got[0], got[2], got[4]] == pytest.approx(list(ref))
    assert math.isnan(got[1]) and math.isnan(got[3])


def test_paired_difference_ci_effect_size_and_mde() -> None:
    v = {0: 0.47, 1: 0.48, 2: 0.46, 3: 0.49}
    b = {0: 0.41, 1: 0.44, 2: 0.40, 3: 0.43}
    c = stats.compare(v, b)
    a, z = np.array(list(v.values())), np.array(list(b.values()))
    ref = sps.ttest_rel(a, z)
    lo, hi = ref.confidence_interval(0.95)
    assert (c.ci_lo, c.ci_hi) == pytest.approx((lo, hi))
    d = a - z
    assert c.effect_size == pytest.approx(d.mean() / d.std(ddof=1))
    dz = TTestPower().solve_power(nobs=4, alpha=0.05, power=0.8, alternative="two-sided")
    assert c.mde == pytest.approx(dz * d.std(ddof=1), rel=1e-6)


@pytest.mark.parametrize("n", [2, 3, 5, 10, 30])
def test_minimum_detectable_effect_matches_statsmodels(n: int) -> None:
    ref = TTestPower().solve_power(nobs=n, alpha=0.05, power=0.8, alternative="two-sided")
    assert stats.minimum_detectable_dz(n) == pytest.approx(ref, rel=1e-6)
    assert stats.paired_t_power(0.7, n) == pytest.approx(
        TTestPower().power(effect_size=0.7, nobs=n, alpha=0.05), rel=1e-6)
    assert math.isnan(stats.minimum_detectable_dz(1))


def test_welch_ci_matches_scipy() -> None:
    c = stats.compare({0: 0.9, 1: 0.8, 2: 0.85}, {5: 0.7, 6: 0.75, 7: 0.72, 8: 0.71})
    ref = sps.ttest_ind([0.9, 0.8, 0.85], [0.7, 0.75, 0.72, 0.71], equal_var=False)
    assert c.test == "welch t"
    assert (c.ci_lo, c.ci_hi) == pytest.approx(tuple(ref.confidence_interval(0.95)))


def test_evidence_names_what_moved_beyond_noise() -> None:
    runs = pd.DataFrame({
        "variant": ["baseline"] * 3 + ["v"] * 3, "seed": [0, 1, 2] * 2, "included": True,
        "ece": [0.40, 0.39, 0.41, 0.10, 0.08, 0.11], "gap_loss": [3.4, 3.3, 3.5, 3.3, 3.6, 3.4],
    })
    moved = {m.metric: m for m in narrative.evidence(runs, "v", "baseline")}
    assert moved["ece"].beyond_noise and moved["ece"].improved
    assert not moved["gap_loss"].beyond_noise
    ref = sps.ttest_rel([0.10, 0.08, 0.11], [0.40, 0.39, 0.41]).confidence_interval()
    assert (moved["ece"].comparison.ci_lo, moved["ece"].comparison.ci_hi) == pytest.approx(
        tuple(ref))
    lines = narrative.evidence_lines(list(moved.values()))
    assert lines["moved"][0].startswith("calibration error (ECE) at the last epoch: 0.400 → 0.097")
    assert "val − train loss gap" in lines["noise"][0]


def _curve(train_acc: float, val_acc: float) -> pd.DataFrame:
    return pd.DataFrame({"epoch": [1, 2, 3], "train_loss": [1.0, 0.5, 0.3],
                         "val_loss": [1.0, 0.6, 0.5], "train_acc": [0.6, 0.9, train_acc],
                         "val_acc": [0.4, 0.5, val_acc]})


def test_a_large_train_val_gap_is_not_called_healthy() -> None:
    kinds = [f.kind for f in diagnosis.diagnose(_curve(0.97, 0.50))]
    assert "memorization" in kinds and "healthy" not in kinds
    assert [f.kind for f in diagnosis.diagnose(_curve(0.85, 0.80))] == ["healthy"]


def test_advice_never_repeats_what_the_variant_does() -> None:
    over = pd.DataFrame({"epoch": range(1, 8), "train_loss": [1, .6, .4, .2, .1, .05, .02],
                         "val_loss": [1, .5, .31, .35, .42, .48, .52],
                         "train_acc": [.9] * 7, "val_acc": [.8] * 7})
    plain = {f.kind: f for f in diagnosis.diagnose(over)}["overfitting"]
    assert "early stopping" in plain.advice
    es = {f.kind: f for f in diagnosis.diagnose(over, regularizers={"early_stopping"})}
    assert "already" in es["overfitting"].advice
    assert "stopping at the best-val epoch" not in es["overfitting"].advice


def test_constant_nonzero_paired_difference_has_p_zero():
    a = {0: 0.5, 1: 0.6, 2: 0.7}
    b = {0: 0.4, 1: 0.5, 2: 0.6}
    c = stats.compare(a, b)
    expected = sps.ttest_rel(np.array([0.5, 0.6, 0.7]), np.array([0.4, 0.5, 0.6])).pvalue
    assert c.diff == pytest.approx(0.1)
    assert c.p == expected == 0.0
    assert c.significant is True
    assert stats.compare({0: 0.5, 1: 0.6}, {0: 0.5, 1: 0.6}).p == 1.0
    assert math.isnan(stats.compare({0: 0.5}, {0: 0.4}).p)
