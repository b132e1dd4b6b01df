"""A group-sequential comparison of a variant with the baseline over matched seeds.

The looks are planned in advance: n = min, min + step, ..., max seeds. At look k the paired
differences (variant - baseline, one per seed) get a t confidence interval at level
1 - alpha_k, where alpha_k = A(t_k) - A(t_(k-1)) is what the alpha-spending function A
(Lan & DeMets 1983) releases at information fraction t_k = n_k / max:

- O'Brien-Fleming type: A(t) = 2 - 2 Phi(z_(1 - alpha/2) / sqrt(t)) (spends little early);
- Pocock type: A(t) = alpha ln(1 + (e - 1) t) (spends evenly).

Decisions: the interval excludes 0 -> "differs" (the direction is the sign); the interval
lies inside (-min_effect, +min_effect) -> "equivalent" (no effect as large as min_effect);
otherwise "undecided" (more seeds), or "undecided at max" at the last look.

Why it keeps the error rate: each look's t interval is exact for normal differences, so
under no effect P(look k says "differs") = alpha_k, and by the union bound P(any look says
"differs") <= sum alpha_k = alpha, whatever the looks' correlation and whatever the
equivalence stops (stopping early only removes chances to reject). The bound is
conservative (exact boundaries would integrate the looks' joint law), which costs some
power; tests/test_sequential.py checks both by simulation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import cached_property
from typing import Literal

import numpy as np
from scipy import stats

Spending = Literal["obrien_fleming", "pocock"]
SPENDING_NAMES = {"obrien_fleming": "O'Brien-Fleming-type", "pocock": "Pocock-type"}
DIFFERS, EQUIVALENT, UNDECIDED, AT_MAX = "differs", "equivalent", "undecided", "undecided at max"


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
    min_effect: float = 0.01  # in the compared metric's units
    spending: Spending = "obrien_fleming"

    def __post_init__(self) -> None:
        if not 2 <= self.min_seeds <= self.max_seeds:
            raise ValueError(f"need 2 <= min <= max seeds, got {self.min_seeds=}, "
                             f"{self.max_seeds=}")
        if self.step < 1 or not 0 < self.alpha < 1 or self.min_effect <= 0:
            raise ValueError(f"need step >= 1, 0 < alpha < 1, min_effect > 0; got {self.step=}, "
                             f"{self.alpha=}, {self.min_effect=}")

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
        return (f"group-sequential paired t-test, {SPENDING_NAMES[self.spending]} alpha "
                f"spending (Lan-DeMets) over looks at {self.looks} seeds, alpha {self.alpha:g} "
                "per comparison, union bound over the looks")


@dataclass(frozen=True)
class Decision:
    state: str  # differs | equivalent | undecided | undecided at max
    n: int
    diff: float = math.nan  # mean of variant - baseline
    lo: float = math.nan  # interval at this look's level 1 - alpha_k
    hi: float = math.nan
    alpha_k: float = math.nan
    notes: list[str] = field(default_factory=list)

    @property
    def decided(self) -> bool:
        return self.state in (DIFFERS, EQUIVALENT)


def decide(diffs: np.ndarray | list[float], plan: SequentialPlan) -> Decision:
    """The decision after the look whose seed count is len(diffs) (it must be planned)."""
    d = np.asarray(diffs, dtype=np.float64)
    n = len(d)
    if n not in plan.looks:
        raise ValueError(f"{n} seeds is not a planned look ({plan.looks})")
    k = plan.looks.index(n)
    mean, sd = float(d.mean()), float(d.std(ddof=1))
    half = plan.critical[k] * sd / math.sqrt(n)
    lo, hi = mean - half, mean + half
    if lo > 0 or hi < 0:
        state = DIFFERS
    elif -plan.min_effect < lo and hi < plan.min_effect:
        state = EQUIVALENT
    else:
        state = AT_MAX if n >= plan.max_seeds else UNDECIDED
    return Decision(state, n, mean, lo, hi, plan.alphas[k])
