"""The group-sequential test that decides a claim over matched seeds.

A claim says which way a metric should move (`sign` = +1 up, -1 down) for one variant
against one reference, with a smallest effect of interest, the `margin` (in the metric's
units). The paired differences (variant - reference, one per confirmation seed) are looked
at after n = looks[0], looks[1], ... seeds, planned in advance. At look k they get a t
confidence interval at level 1 - alpha_k, where alpha_k = A(t_k) - A(t_(k-1)) is what the
alpha-spending function A (Lan & DeMets 1983) releases at information fraction
t_k = n_k / max:

- O'Brien-Fleming type: A(t) = 2 - 2 Phi(z_(1 - alpha/2) / sqrt(t)) (spends little early);
- Pocock type: A(t) = alpha ln(1 + (e - 1) t) (spends evenly).

With the interval turned into the claimed direction ([lo, hi] of sign x difference):

- lo > 0: BETTER, the claim held;
- hi < 0: WORSE, it did not hold;
- -margin < lo and hi < margin: NO_EFFECT, no effect beyond the margin (an equivalence
  test: both one-sided tests of TOST at alpha_k / 2 reject);
- hi < margin otherwise: NO_GAIN, no gain as large as the margin (a loss is not ruled out);
- else UNDECIDED (more seeds), or AT_MAX at the last look.

Why it keeps its error rates: each look's t interval is exact for normal differences, so a
look says BETTER when the true effect is <= 0 with probability <= alpha_k / 2, and says
NO_GAIN or NO_EFFECT when the true effect is >= margin with probability <= alpha_k / 2; by
the union bound over the looks, neither error exceeds alpha / 2 in the whole sequence,
whatever the looks' correlation (stopping early only removes chances). The bound is
conservative (exact boundaries would integrate the looks' joint law); tests/stats/test_sequential.py
checks both rates and the power by simulation. A plan with one look is the fixed-sample
paired t-test at level alpha.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Literal

import numpy as np
from scipy import stats

Spending = Literal["obrien_fleming", "pocock"]
SPENDING_NAMES = {"obrien_fleming": "O'Brien-Fleming-type", "pocock": "Pocock-type"}
BETTER, WORSE = "better", "worse"
NO_EFFECT, NO_GAIN = "no effect beyond the margin", "no gain as large as the margin"
UNDECIDED, AT_MAX = "undecided", "undecided at max"
HELD_STATES = (BETTER,)
NOT_HELD_STATES = (WORSE, NO_EFFECT, NO_GAIN)


def spent(t: float, alpha: float, spending: Spending) -> float:
    """Alpha spent by information fraction t in [0, 1] (Lan-DeMets spending functions)."""
    if t <= 0:
        return 0.0
    t = min(t, 1.0)
    if spending == "pocock":
        return alpha * math.log(1 + (math.e - 1) * t)
    return float(2 - 2 * stats.norm.cdf(stats.norm.ppf(1 - alpha / 2) / math.sqrt(t)))


@dataclass(frozen=True)
class SequentialPlan:
    min_seeds: int
    max_seeds: int
    step: int = 1
    alpha: float = 0.05
    margin: float = 0.01  # in the compared metric's units
    spending: Spending = "pocock"

    def __post_init__(self) -> None:
        if not 2 <= self.min_seeds <= self.max_seeds:
            raise ValueError(f"need 2 <= min <= max seeds, got {self.min_seeds=}, "
                             f"{self.max_seeds=}")
        if self.step < 1 or not 0 < self.alpha < 1 or self.margin <= 0:
            raise ValueError(f"need step >= 1, 0 < alpha < 1, margin > 0; got {self.step=}, "
                             f"{self.alpha=}, {self.margin=}")

    @classmethod
    def fixed(cls, n: int, alpha: float, margin: float) -> SequentialPlan:
        """One look at n seeds: the ordinary paired t-test at level alpha."""
        return cls(n, n, 1, alpha, margin)

    @cached_property
    def looks(self) -> list[int]:
        """Seed counts at which a comparison is decided (the maximum always one of them)."""
        return sorted({*range(self.min_seeds, self.max_seeds, self.step), self.max_seeds})

    @cached_property
    def alphas(self) -> list[float]:
        """alpha_k released at each look; they sum to alpha."""
        cum = [spent(n / self.max_seeds, self.alpha, self.spending) for n in self.looks]
        return [b - a for a, b in zip([0.0, *cum[:-1]], cum, strict=True)]

    @cached_property
    def critical(self) -> list[float]:
        """Two-sided t quantile t_(1 - alpha_k / 2, n_k - 1) of each look."""
        return [float(stats.t.ppf(1 - a / 2, n - 1))
                for a, n in zip(self.alphas, self.looks, strict=True)]

    def next_look(self, n: int) -> int | None:
        """The planned seed count after n (None at the maximum)."""
        return next((k for k in self.looks if k > n), None)

    @property
    def name(self) -> str:
        if len(self.looks) == 1:
            return f"paired t-test over {self.looks[0]} seeds at alpha {self.alpha:g}"
        return (f"group-sequential paired t-test, {SPENDING_NAMES[self.spending]} alpha "
                f"spending (Lan-DeMets) over looks at {self.looks} seeds, alpha {self.alpha:g}, "
                "union bound over the looks")


@dataclass(frozen=True)
class Decision:
    state: str  # BETTER | WORSE | NO_EFFECT | NO_GAIN | UNDECIDED | AT_MAX
    n: int
    diff: float = math.nan  # mean of variant - reference, in the metric's units
    lo: float = math.nan  # interval of the difference at this look's level 1 - alpha_k
    hi: float = math.nan
    alpha_k: float = math.nan
    notes: list[str] = field(default_factory=list)

    @property
    def decided(self) -> bool:
        return self.state in HELD_STATES + NOT_HELD_STATES


def decide(diffs: Sequence[float] | np.ndarray, plan: SequentialPlan,
           sign: float = 1.0) -> Decision:
    """The decision after the look whose seed count is len(diffs) (it must be planned)."""
    d = np.asarray(diffs, dtype=np.float64)
    n = len(d)
    if n not in plan.looks:
        raise ValueError(f"{n} seeds is not a planned look ({plan.looks})")
    k = plan.looks.index(n)
    mean, sd = float(d.mean()), float(d.std(ddof=1))
    half = plan.critical[k] * sd / math.sqrt(n)
    lo, hi = mean - half, mean + half
    dlo, dhi = sorted((sign * lo, sign * hi))  # the interval in the claimed direction
    if dlo > 0:
        state = BETTER
    elif dhi < 0:
        state = WORSE
    elif dhi < plan.margin:
        state = NO_EFFECT if dlo > -plan.margin else NO_GAIN
    else:
        state = AT_MAX if n >= plan.max_seeds else UNDECIDED
    return Decision(state, n, mean, lo, hi, plan.alphas[k])


def walk(diffs: Sequence[float] | np.ndarray, plan: SequentialPlan,
         sign: float = 1.0) -> list[Decision]:
    """The looks the differences (in seed order) reach, up to the first that decides: the
    stopping rule the study followed, replayed from its runs."""
    out: list[Decision] = []
    for n in plan.looks:
        if n > len(diffs):
            break
        out.append(decide(diffs[:n], plan, sign))
        if out[-1].decided:
            break
    return out


def expected_seeds(plan: SequentialPlan, effect: float, sd: float, sims: int = 4000,
                   seed: int = 0) -> float:
    """Mean seeds the plan uses when the true difference is `effect` (claimed direction) with
    spread `sd`: the dry run's expected cost. Simulated with normal differences (the same
    interval rule as `decide`, vectorised over studies)."""
    rng = np.random.default_rng(seed)
    d = rng.normal(effect, sd, size=(sims, plan.max_seeds))
    used = np.full(sims, plan.max_seeds, dtype=float)
    open_ = np.ones(sims, dtype=bool)
    for n, crit in zip(plan.looks, plan.critical, strict=True):
        x = d[:, :n]
        half = crit * x.std(axis=1, ddof=1) / math.sqrt(n)
        lo, hi = x.mean(axis=1) - half, x.mean(axis=1) + half
        decided = open_ & ((lo > 0) | (hi < plan.margin))
        used[decided] = n
        open_ &= ~decided
    return float(used.mean())
