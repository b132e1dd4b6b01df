"""The group-sequential claim test: spending functions by formula, each decision against
scipy and statsmodels (paired t, TOST), error rates and power by simulation."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from harness.stats.sequential import (
    AT_MAX,
    BETTER,
    NO_EFFECT,
    NO_GAIN,
    UNDECIDED,
    WORSE,
    SequentialPlan,
    decide,
    spent,
    walk,
)

STUDIES = 4000


def simulate(plan: SequentialPlan, effect: float, seed: int) -> tuple[dict[str, float], float]:
    """Normal paired differences (sd 1) walked look by look: the share of each final state
    and the mean number of seeds used. Vectorised: every look decided for every study, the
    first decided look (or the last) kept."""
    rng = np.random.default_rng(seed)
    d = rng.normal(effect, 1.0, size=(STUDIES, plan.max_seeds))
    final = np.full(STUDIES, UNDECIDED, dtype=object)
    used = np.full(STUDIES, plan.max_seeds)
    for n in plan.looks:
        open_ = final == UNDECIDED
        for i in np.flatnonzero(open_):
            final[i] = decide(d[i, :n], plan).state
            used[i] = n
    return {s: float(np.mean(final == s)) for s in (BETTER, WORSE, NO_EFFECT, NO_GAIN,
                                                    AT_MAX)}, float(used.mean())


def se(p: float) -> float:
    return math.sqrt(p * (1 - p) / STUDIES)


@pytest.mark.slow  # 4000 simulated sequential studies per spending function (~2 s each)
@pytest.mark.parametrize("spending", ["obrien_fleming", "pocock"])
def test_error_rates_stay_at_alpha_over_all_looks(spending):
    """No true effect: 'better' at most alpha/2 (one side of the two-sided 95% interval).
    A true effect of exactly the margin: 'no gain' or 'no effect' at most alpha/2."""
    plan = SequentialPlan(5, 20, step=5, alpha=0.05, margin=0.5, spending=spending)
    null, _ = simulate(plan, 0.0, seed=11)
    assert null[BETTER] <= 0.025 + 3 * se(0.025)
    assert null[BETTER] > 0.005  # the union bound is conservative, not a test that never says it
    at_margin, _ = simulate(plan, 0.5, seed=12)
    assert at_margin[NO_GAIN] + at_margin[NO_EFFECT] <= 0.025 + 3 * se(0.025)


@pytest.mark.slow  # 8000 simulated sequential studies per spending function (~3 s)
@pytest.mark.parametrize("spending, power, seeds", [("obrien_fleming", 0.96, 14.5),
                                                    ("pocock", 0.92, 12.5)])
def test_power_and_seeds_saved_against_a_fixed_design(spending, power, seeds):
    """A true effect of 1 sd: measured power 0.975 (O'Brien-Fleming) and 0.938 (Pocock) with
    13.7 and 11.9 of the 20 seeds on average. No effect with a margin of 1 sd: decided as
    no effect (or no gain) in 96% and 92%, again before the last look on average."""
    plan = SequentialPlan(5, 20, step=5, alpha=0.05, margin=0.5, spending=spending)
    shares, mean_seeds = simulate(plan, 1.0, seed=13)
    # a fixed 20-seed paired t-test at alpha 0.05 (two-sided) has power 0.99 at effect 1 sd
    fixed = 1 - stats.nct.cdf(stats.t.ppf(0.975, 19), 19, 1.0 * math.sqrt(20))
    assert fixed > 0.98
    assert shares[BETTER] > power and mean_seeds < seeds
    plan = SequentialPlan(5, 20, step=5, margin=1.0, spending=spending)
    shares, mean_seeds = simulate(plan, 0.0, seed=14)
    assert shares[NO_EFFECT] + shares[NO_GAIN] > power - 0.02 and mean_seeds < seeds


def test_spending_functions_by_formula():
    alpha = 0.05
    assert spent(1.0, alpha, "obrien_fleming") == pytest.approx(alpha)
    assert spent(1.0, alpha, "pocock") == pytest.approx(alpha)
    # O'Brien-Fleming at t = 1/4: 2 - 2 Phi(1.959964 / 0.5)
    assert spent(0.25, alpha, "obrien_fleming") == pytest.approx(
        2 * (1 - stats.norm.cdf(1.959964 / 0.5)), rel=1e-5)
    assert spent(0.5, alpha, "pocock") == pytest.approx(alpha * math.log(1 + (math.e - 1) / 2))
    plan = SequentialPlan(5, 20, step=5)
    assert plan.looks == [5, 10, 15, 20]
    assert sum(plan.alphas) == pytest.approx(alpha)
    assert all(a > 0 for a in plan.alphas)
    assert SequentialPlan(4, 10, step=3).looks == [4, 7, 10]
    one = SequentialPlan.fixed(6, 0.05, 0.01)
    assert one.looks == [6] and one.alphas == pytest.approx([0.05])


def test_one_look_is_the_paired_t_test_and_tost():
    """A one-look plan decides exactly as scipy's paired t interval and statsmodels' TOST
    (both one-sided tests at alpha/2, i.e. the 95% interval inside the margins)."""
    from statsmodels.stats.weightstats import ttost_paired

    rng = np.random.default_rng(3)
    base = rng.normal(0.7, 0.02, 8)
    for shift, spread in [(0.0, 0.002), (0.004, 0.003), (0.03, 0.01), (-0.03, 0.01),
                          (0.006, 0.01), (-0.004, 0.003)]:
        var = base + shift + rng.normal(0, spread, 8)
        plan = SequentialPlan.fixed(8, 0.05, 0.01)
        d = decide(var - base, plan)
        res = stats.ttest_rel(var, base)
        lo, hi = res.confidence_interval(0.95)
        assert (d.lo, d.hi) == pytest.approx((lo, hi))
        p_tost = ttost_paired(var, base, -0.01, 0.01)[0]
        if lo > 0:
            assert d.state == BETTER
        elif hi < 0:
            assert d.state == WORSE
        else:
            assert (d.state == NO_EFFECT) == (p_tost < 0.025)
            assert d.state in (NO_EFFECT, NO_GAIN, AT_MAX)
        # direction down: the same interval read the other way
        down = decide(var - base, plan, sign=-1.0)
        if lo > 0:
            assert down.state == WORSE
        if hi < 0:
            assert down.state == BETTER


def test_decisions_by_hand():
    plan = SequentialPlan(2, 4, alpha=0.05, margin=0.1, spending="obrien_fleming")
    d = decide([1.0, 1.2, 0.8, 1.0], plan)
    a = plan.alphas[-1]
    half = stats.t.ppf(1 - a / 2, 3) * np.std([1.0, 1.2, 0.8, 1.0], ddof=1) / 2
    assert d.state == BETTER and d.lo == pytest.approx(1.0 - half)
    assert decide([-1.0, -1.2, -0.8, -1.0], plan).state == WORSE
    assert decide([0.001, -0.001, 0.0, 0.0], plan).state == NO_EFFECT
    # excludes a gain of 0.1 but not a loss larger than the margin
    assert decide([-0.1, -0.3, -0.1, -0.3], plan).state == NO_GAIN
    assert decide([0.5, -0.5, 0.4, -0.4], plan).state == AT_MAX
    assert decide([0.5, -0.5], plan).state == UNDECIDED
    with pytest.raises(ValueError, match="not a planned look"):
        decide([1.0, 2.0, 3.0, 4.0, 5.0], plan)


def test_walk_stops_at_the_first_decided_look():
    plan = SequentialPlan(2, 6, step=2, margin=0.1)
    diffs = [0.5, -0.5, 1.0, 1.1, 0.9, 1.0]
    looks = walk(diffs, plan)
    assert [x.n for x in looks] == [2, 4, 6][:len(looks)]
    assert all(not x.decided for x in looks[:-1])
    assert walk(diffs[:3], plan)[-1].n == 2  # a look needs all its seeds
    assert walk([], plan) == []


@pytest.mark.parametrize("kwargs", [dict(min_seeds=1, max_seeds=3), dict(min_seeds=5, max_seeds=3),
                                    dict(min_seeds=3, max_seeds=5, alpha=1.5),
                                    dict(min_seeds=3, max_seeds=5, margin=0)])
def test_plan_rejects_bad_settings(kwargs):
    with pytest.raises(ValueError, match="need"):
        SequentialPlan(**kwargs)


def test_expected_seeds_matches_the_walk():
    """The dry run's vectorised expectation agrees with walking `decide` look by look."""
    from harness.stats.sequential import expected_seeds

    plan = SequentialPlan(5, 20, step=5, margin=1.0)
    for effect in (0.0, 2.0):
        rng = np.random.default_rng(5)
        walked = [walk(rng.normal(effect, 1.0, 20), plan)[-1].n for _ in range(2000)]
        assert expected_seeds(plan, effect, 1.0, sims=2000) == pytest.approx(
            np.mean(walked), abs=0.6)
    assert expected_seeds(plan, 0.0, 1e-9) == 5.0  # no spread: decided at the first look
