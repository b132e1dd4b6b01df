"""The group-sequential test: spending functions by formula, error rate and power by simulation."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from harness.study.sequential import (
    AT_MAX,
    DIFFERS,
    EQUIVALENT,
    UNDECIDED,
    SequentialPlan,
    decide,
    spent,
)

STUDIES = 2000


def run_sequential(plan: SequentialPlan, effect: float,
                   rng: np.random.Generator) -> tuple[str, int]:
    """One simulated comparison: normal paired differences (sd 1), seeds added look by look."""
    diffs = rng.normal(effect, 1.0, size=plan.max_seeds)
    for n in plan.looks:
        d = decide(diffs[:n], plan)
        if d.state != UNDECIDED:
            return d.state, n
    raise AssertionError("the last look must decide or say 'undecided at max'")


def simulate(plan: SequentialPlan, effect: float, seed: int) -> tuple[float, float]:
    """(fraction of studies that say 'differs', mean seeds used)."""
    rng = np.random.default_rng(seed)
    runs = [run_sequential(plan, effect, rng) for _ in range(STUDIES)]
    return float(np.mean([s == DIFFERS for s, _ in runs])), float(np.mean([n for _, n in runs]))


@pytest.mark.parametrize("spending", ["obrien_fleming", "pocock"])
def test_false_positive_rate_of_null_variants_stays_at_alpha(spending):
    plan = SequentialPlan(3, 10, alpha=0.05, min_effect=0.5, spending=spending)
    fpr, _ = simulate(plan, effect=0.0, seed=11)
    se = math.sqrt(0.05 * 0.95 / STUDIES)
    assert fpr <= 0.05 + 3 * se
    assert fpr > 0.01  # the union bound is conservative, not a test that never rejects


def test_power_on_a_true_effect_and_seeds_saved():
    plan = SequentialPlan(3, 10, alpha=0.05, min_effect=0.5)
    power, mean_seeds = simulate(plan, effect=1.5, seed=12)
    # a fixed 10-seed paired t-test at alpha 0.05 has power 0.987 here; the sequential
    # design (conservative union bound) keeps most of it while stopping early
    fixed = 1 - stats.nct.cdf(stats.t.ppf(0.975, 9), 9, 1.5 * math.sqrt(10))
    assert fixed > 0.98
    assert power > 0.9
    assert mean_seeds < 8  # measured 7.2 of the 10 a fixed design spends


def test_equivalence_stops_null_variants_early_when_min_effect_is_large():
    plan = SequentialPlan(3, 10, min_effect=2.0)
    fpr, mean_seeds = simulate(plan, effect=0.0, seed=14)
    assert fpr <= 0.05 + 3 * math.sqrt(0.05 * 0.95 / STUDIES)
    assert mean_seeds < 8


def test_more_seeds_give_more_power():
    small = SequentialPlan(3, 5, min_effect=0.1)
    large = SequentialPlan(3, 15, min_effect=0.1)
    p_small, _ = simulate(small, effect=1.0, seed=13)
    p_large, _ = simulate(large, effect=1.0, seed=13)
    assert p_large > p_small + 0.2


def test_spending_functions_by_formula():
    alpha = 0.05
    assert spent(1.0, alpha, "obrien_fleming") == pytest.approx(alpha)
    assert spent(1.0, alpha, "pocock") == pytest.approx(alpha)
    # O'Brien-Fleming at t = 1/4: 2 - 2 Phi(1.959964 / 0.5)
    assert spent(0.25, alpha, "obrien_fleming") == pytest.approx(
        2 * (1 - stats.norm.cdf(1.959964 / 0.5)), rel=1e-5)
    assert spent(0.5, alpha, "pocock") == pytest.approx(alpha * math.log(1 + (math.e - 1) / 2))
    plan = SequentialPlan(3, 10)
    assert plan.looks == [3, 4, 5, 6, 7, 8, 9, 10]
    assert sum(plan.alphas) == pytest.approx(alpha)
    assert all(a > 0 for a in plan.alphas)
    assert SequentialPlan(4, 10, step=3).looks == [4, 7, 10]


def test_decisions_by_hand():
    plan = SequentialPlan(2, 4, alpha=0.05, min_effect=0.1)
    # look at 4 seeds: alpha_k released, interval mean +- t_(1 - a/2, 3) sd / 2
    d = decide([1.0, 1.2, 0.8, 1.0], plan)
    a = plan.alphas[-1]
    half = stats.t.ppf(1 - a / 2, 3) * np.std([1.0, 1.2, 0.8, 1.0], ddof=1) / 2
    assert d.state == DIFFERS and d.lo == pytest.approx(1.0 - half)
    assert decide([0.001, -0.001, 0.0, 0.0], plan).state == EQUIVALENT
    assert decide([0.5, -0.5, 0.4, -0.4], plan).state == AT_MAX
    assert decide([0.5, -0.5], plan).state == UNDECIDED
    with pytest.raises(ValueError, match="not a planned look"):
        decide([1.0, 2.0, 3.0, 4.0, 5.0], plan)


@pytest.mark.parametrize("kwargs", [dict(min_seeds=1, max_seeds=3), dict(min_seeds=5, max_seeds=3),
                                    dict(min_seeds=3, max_seeds=5, alpha=1.5)])
def test_plan_rejects_bad_settings(kwargs):
    with pytest.raises(ValueError, match="need"):
        SequentialPlan(**kwargs)
