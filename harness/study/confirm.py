"""Screen, then confirm: how a claim is tested and how many seeds it gets.

Every variant trains on the screening seeds. A claim's side that names several variants is
represented by its best on the validation split of the screening seeds (so each form of a
technique competes at its own best strength and the test set chooses nothing). Because a
run's validation and test accuracy share its seed's luck, the chosen variant's screening
runs are lucky test draws as well; so when a choice was made, the claim is tested only on
fresh confirmation seeds that took no part in it, and the test pays nothing for the choice
(no Bonferroni factor). When neither side chose (one variant against one reference), every
seed confirms.

The confirmation seeds of the chosen pair are added look by look (harness/stats/sequential.py)
until the claim is decided or the budget is spent: `confirm.max` seeds, `confirm.minutes` of
this command. `judge` replays that stopping rule from the runs table alone, so the executor
(which adds the seeds) and the report (which states the verdict) cannot disagree.

With `confirm: false` the seeds are fixed: the claim is tested once over the matched seeds,
and a choice among k pairs is paid for by testing at alpha / k (Bonferroni).
"""

from __future__ import annotations

import fnmatch
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats as sps

from harness.stats.sequential import (
    HELD_STATES,
    NOT_HELD_STATES,
    UNDECIDED,
    Decision,
    SequentialPlan,
    walk,
)
from harness.study.claim_config import ClaimConfig, ConfirmConfig

HELD, NOT_HELD = "held", "did not hold"  # UNDECIDED is shared with the sequential test
BASELINE_ALIAS = "baseline"  # in a claim, always the study's baseline (full_recipe, ...)
ALPHA = 0.05
# Claim metric -> runs-table column (the rest have the same name).
METRIC_COLUMNS = {"test_acc": "best_test_acc", "test_loss": "best_test_loss"}
# Selection on the validation split: runs-table column and whether higher is better.
SELECT_COLUMNS = {"val_acc": ("best_val_acc", True), "val_loss": ("best_val_loss", False)}
# Shown beside the claim's own metric over the same seeds, so a reader sees whether the
# checkpoint choice matters: test accuracy at the best-val epoch and at the last epoch.
CHECKPOINT_COLUMNS = ("best_test_acc", "last_test_acc")


def column(metric: str) -> str:
    return METRIC_COLUMNS.get(metric, metric)


def matching(patterns: list[str], names: list[str], baseline: str | None) -> list[str]:
    """Variant names matching any pattern (fnmatch); 'baseline' is the study's baseline."""
    out: list[str] = []
    for pattern in patterns:
        if pattern == BASELINE_ALIAS and baseline is not None:
            pattern = baseline
        out += [n for n in fnmatch.filter(names, pattern) if n not in out]
    return out


def sides(claim: ClaimConfig, names: list[str], baseline: str | None) -> tuple[list[str],
                                                                                list[str]]:
    """(candidates, references): the variants each side of the claim may be represented by."""
    refs = matching(claim.versus, names, baseline)
    cands = (matching(claim.variants, names, baseline) if claim.variants
             else [n for n in names if n != baseline and n not in refs])
    return cands, refs


def included(runs: pd.DataFrame) -> pd.DataFrame:
    return runs[runs["included"].astype(bool)] if len(runs) else runs


def by_seed(runs: pd.DataFrame, variant: str, col: str) -> dict[int, float]:
    """A variant's finite values of one column, by seed (included runs only)."""
    inc = included(runs)
    rows = inc[inc["variant"] == variant] if len(inc) else inc
    if col not in rows:
        return {}
    values = pd.to_numeric(rows[col], errors="coerce")
    return {int(s): float(v) for s, v in zip(rows["seed"], values, strict=True)
            if math.isfinite(v)}


def best_on_validation(candidates: list[str], runs: pd.DataFrame, select: str,
                       seeds: list[int]) -> str | None:
    """The candidate with the best mean validation metric over `seeds` (None: none has one).
    Ties go to the first candidate, so the choice is reproducible."""
    col, higher = SELECT_COLUMNS[select]
    best, score = None, -math.inf
    for name in candidates:
        values = [v for s, v in by_seed(runs, name, col).items() if s in seeds]
        if not values:
            continue
        mean = float(np.mean(values)) * (1 if higher else -1)
        if mean > score:
            best, score = name, mean
    return best


def fresh_seeds(screen: list[int], n: int) -> list[int]:
    """The first n seeds that took no part in the screening: counting up from its largest."""
    return list(range(max(screen) + 1, max(screen) + 1 + n))


def seed_order(screen: list[int], n: int) -> list[int]:
    """The first n seeds in the order a study adds them: the screening seeds, then fresh ones."""
    return [*screen, *fresh_seeds(screen, max(0, n - len(screen)))][:n]


def paired(runs: pd.DataFrame, variant: str, reference: str, col: str,
           seeds: list[int]) -> tuple[list[int], np.ndarray]:
    """The seeds (in `seeds` order) where both finished, and variant - reference on each."""
    a, b = by_seed(runs, variant, col), by_seed(runs, reference, col)
    common = [s for s in seeds if s in a and s in b]
    return common, np.array([a[s] - b[s] for s in common], dtype=float)


def t_interval(d: np.ndarray, level: float = 0.95) -> tuple[float, float, float]:
    """(mean, lo, hi) of the t interval of the mean difference (nan below 2 values)."""
    if len(d) < 2:
        return (float(d.mean()) if len(d) else math.nan), math.nan, math.nan
    mean, sd = float(d.mean()), float(d.std(ddof=1))
    half = float(sps.t.ppf((1 + level) / 2, len(d) - 1)) * sd / math.sqrt(len(d))
    return mean, mean - half, mean + half


@dataclass(frozen=True)
class AlsoShown:
    """Another metric of the same pair over the same confirmation seeds (95% t interval)."""

    metric: str
    diff: float
    lo: float
    hi: float


@dataclass
class ClaimTest:
    """One claim tested: the pair, the seeds and the looks that decided it."""

    claim: ClaimConfig
    candidates: list[str]
    references: list[str]
    variant: str | None = None  # the candidate chosen on validation
    reference: str | None = None
    screen_seeds: list[int] = field(default_factory=list)
    chose: bool = False  # a choice was made on validation: only fresh seeds confirm
    seeds: list[int] = field(default_factory=list)  # the matched confirmation seeds, in order
    diffs: np.ndarray = field(default_factory=lambda: np.zeros(0))
    plan: SequentialPlan | None = None
    looks: list[Decision] = field(default_factory=list)
    pairs: int = 1  # (variant, reference) pairs the choice could make
    adjusted: bool = False  # fixed seeds with a choice: tested at alpha / pairs
    also: list[AlsoShown] = field(default_factory=list)
    problem: str = ""  # why no test was possible

    @property
    def sign(self) -> float:
        return 1.0 if self.claim.direction == "up" else -1.0

    @property
    def final(self) -> Decision | None:
        return self.looks[-1] if self.looks else None

    @property
    def state(self) -> str:
        return self.final.state if self.final else UNDECIDED

    @property
    def outcome(self) -> str:
        if self.state in HELD_STATES:
            return HELD
        return NOT_HELD if self.state in NOT_HELD_STATES else UNDECIDED

    def seeds_wanted(self) -> int | None:
        """Confirmation seeds the next look needs (None: decided, at the budget, or no
        pair to test)."""
        if self.plan is None or self.adjusted or self.variant is None or self.reference is None:
            return None
        if self.final is not None and (self.final.decided or self.final.n >= self.plan.max_seeds):
            return None
        return self.plan.next_look(self.final.n) if self.final else self.plan.looks[0]

    def run_seeds(self, n: int) -> list[int]:
        """The seeds the pair trains on to have n confirmation seeds."""
        if self.chose:
            return self.screen_seeds + fresh_seeds(self.screen_seeds, n)
        return sorted(set(self.screen_seeds) | set(seed_order(self.screen_seeds, n)))


def judge(claim: ClaimConfig, runs: pd.DataFrame, baseline: str | None, screen: list[int],
          confirm: ConfirmConfig | None, names: list[str] | None = None) -> ClaimTest:
    """The claim tested on a study's runs table (study/runs_table.py)."""
    names = names if names is not None else sorted({str(v) for v in runs.get("variant", [])})
    cands, refs = sides(claim, names, baseline)
    test = ClaimTest(claim, cands, refs, screen_seeds=list(screen),
                     chose=len(cands) > 1 or len(refs) > 1,
                     pairs=max(1, len(cands)) * max(1, len(refs)))
    test.variant = best_on_validation(cands, runs, claim.select, screen)
    test.reference = best_on_validation(refs, runs, claim.select, screen)
    if test.variant is None or test.reference is None:
        test.problem = "no finished screening runs on one side of the comparison"
        return test
    col = column(claim.metric)
    margin = claim.effect_margin
    if confirm is not None:
        order = fresh_seeds(screen, confirm.max) if test.chose else \
            seed_order(screen, max(confirm.max, len(screen)))
    else:  # fixed seeds: every seed the runs have, in order
        order = sorted({int(s) for s in runs.get("seed", [])})
    test.seeds, test.diffs = paired(runs, test.variant, test.reference, col, order)
    if confirm is not None:
        plan = confirm.plan(margin)
        if len(test.diffs) < plan.looks[0]:
            test.problem = (f"{len(test.diffs)} of the {plan.looks[0]} confirmation seeds "
                            "of the first look have finished")
    elif len(test.diffs) < 2:
        test.problem = f"{len(test.diffs)} matched seed(s): at least 2 are needed"
        return _also(test, runs)
    else:
        test.adjusted = test.chose
        alpha = ALPHA / test.pairs if test.chose else ALPHA
        plan = SequentialPlan.fixed(len(test.diffs), alpha, margin)
    test.plan = plan
    test.looks = walk(test.diffs, plan, test.sign)
    return _also(test, runs)


def _also(test: ClaimTest, runs: pd.DataFrame) -> ClaimTest:
    """Both checkpoints' test accuracy over the seeds the verdict used."""
    if test.variant is None or test.reference is None or not test.seeds:
        return test
    used = test.seeds[:test.final.n] if test.final else test.seeds
    for col in CHECKPOINT_COLUMNS:
        _, d = paired(runs, test.variant, test.reference, col, used)
        if len(d):
            test.also.append(AlsoShown(col, *t_interval(d)))
    return test


def judge_all(claims: list[ClaimConfig], runs: pd.DataFrame, baseline: str | None,
              screen: list[int], confirm: ConfirmConfig | None,
              names: list[str] | None = None) -> list[ClaimTest]:
    return [judge(c, runs, baseline, screen, confirm, names) for c in claims]


def round_seeds(tests: list[ClaimTest], last: dict[str, list[int]]) -> dict[str, list[int]]:
    """Seeds per variant for the next confirmation round: every seed a variant had in the
    last round (a decided claim keeps its runs in the study) plus what each open claim's
    next look needs. Equal to `last` when no claim wants more."""
    seeds = {name: list(s) for name, s in last.items()}
    for t in tests:
        n = t.seeds_wanted()
        if n is None or t.variant is None or t.reference is None:
            continue
        for name in (t.variant, t.reference):
            seeds[name] = sorted(set(seeds[name]) | set(t.run_seeds(n)))
    return seeds


def record_entry(test: ClaimTest) -> dict[str, Any]:
    """What confirm.json keeps of a claim after each round (for the report and a reader)."""
    return {"statement": test.claim.statement, "variant": test.variant,
            "reference": test.reference, "chose": test.chose, "state": test.state,
            "seeds": test.seeds, "looks": [{"n": d.n, "state": d.state, "diff": d.diff,
                                            "lo": d.lo, "hi": d.hi, "alpha_k": d.alpha_k}
                                           for d in test.looks]}


@dataclass(frozen=True)
class ConfirmationCost:
    """Confirmation runs of one claim before its pair is known: at least (decided at the
    first look), expected (at a stated effect and spread), at most (every look)."""

    statement: str
    least: int
    expected: float
    most: int
    assumption: str


def confirmation_cost(claim: ClaimConfig, names: list[str], baseline: str | None,
                      screen: list[int], confirm: ConfirmConfig,
                      runs: pd.DataFrame | None = None) -> ConfirmationCost:
    """Runs the claim's confirmation adds. The expectation simulates the sequential plan at
    the spread and effect of the pair's screening runs when the study has them, else at a
    true effect of one margin with a spread of one margin (said so)."""
    from harness.stats.sequential import expected_seeds

    cands, refs = sides(claim, names, baseline)
    chose = len(cands) > 1 or len(refs) > 1
    plan = confirm.plan(claim.effect_margin)

    def runs_for(n: float) -> float:  # two runs per confirmation seed beyond the screening
        return 2 * (n if chose else max(0.0, n - len(screen)))

    effect, sd = claim.effect_margin, claim.effect_margin
    assumption = "a true effect of one margin at a spread of one margin (no runs yet)"
    if runs is not None and len(runs):
        t = judge(claim, runs, baseline, screen, None, names)
        _, d = paired(runs, t.variant or "", t.reference or "", column(claim.metric), screen)
        if len(d) >= 2 and float(d.std(ddof=1)) > 0:
            effect, sd = t.sign * float(d.mean()), float(d.std(ddof=1))
            assumption = "the effect and spread of the chosen pair's screening runs"
    return ConfirmationCost(claim.statement or claim.metric, int(runs_for(plan.looks[0])),
                            runs_for(expected_seeds(plan, effect, sd)),
                            int(runs_for(plan.max_seeds)), assumption)
