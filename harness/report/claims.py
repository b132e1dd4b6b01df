"""Does a study's claim hold? The verdict in words, from the test harness/study/confirm.py runs.

A claim (`claim:` in studies/NAME.yaml, harness.study.spec.ClaimConfig) says which way a
metric should move for some variants against a reference (the baseline by default), and the
smallest effect that matters, its `margin`. The pair is chosen on the validation split of the
screening seeds and tested on confirmation seeds (study/confirm.py says which and why); the
group-sequential test (stats/sequential.py) gives one of:

- held, "better": the interval of the difference excludes 0 in the claimed direction;
- did not hold, "worse": it excludes 0 the other way;
- did not hold, "no effect beyond the margin": it lies inside +-margin;
- did not hold, "no gain as large as the margin": it excludes a gain of margin or more;
- undecided: none of these at the seeds the budget allowed. The verdict then says how many
  seeds would decide the effect it observed (80% power at its spread) and what they would
  cost in training time at this study's measured time per run.

A best variant whose setting sits at the edge of the range its side explored is flagged: the
true best may lie outside the range, so the comparison may be unfair to that side.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy import integrate, optimize
from scipy import stats as sps

from harness.report.selection import range_edges
from harness.stats import compare as stats
from harness.stats.sequential import (
    AT_MAX,
    BETTER,
    NO_EFFECT,
    NO_GAIN,
    UNDECIDED,
    WORSE,
)
from harness.study.claim_config import ACCURACY_METRICS, ClaimConfig, ConfirmConfig
from harness.study.confirm import (
    HELD,
    NOT_HELD,
    ClaimTest,
    judge,
)

__all__ = ["HELD", "NOT_HELD", "UNDECIDED", "Verdict", "evaluate_claims", "range_edges"]
POWER = 0.8  # power of the seeds-to-decide estimate
MAX_SEEDS = 1000  # seeds_needed gives up beyond this
CHECKPOINT_WORDS = {"best_test_acc": "best-val checkpoint", "last_test_acc": "last epoch"}
REASON_WORDS = {
    BETTER: "the interval excludes 0 in the claimed direction",
    WORSE: "the interval excludes 0 against the claimed direction",
    NO_EFFECT: "the interval lies inside ±{margin}: no effect beyond the margin",
    NO_GAIN: "the interval excludes {gain} of {margin} or more{side} ({loss} is not ruled out)",
}
# The words of a gain in a claim's direction: a claim that the metric goes down gains by
# falling, said beside the difference as measured (variant - reference).
DIRECTION_WORDS = {"up": {"gain": "a gain", "side": "", "loss": "a loss"},
                   "down": {"gain": "a fall", "side": ", the claimed direction",
                            "loss": "a rise"}}


@dataclass(frozen=True)
class Verdict:
    outcome: str  # HELD | NOT_HELD | UNDECIDED
    reason: str  # better | worse | no effect beyond the margin | no gain ... | undecided
    statement: str
    source: str
    metric: str
    margin: float
    variant: str | None  # best of the claimed side on validation (the report's "best")
    reference: str | None  # best of the reference side on validation
    diff: float = math.nan  # mean over the deciding seeds of variant - reference
    ci: tuple[float, float] = (math.nan, math.nan)  # at `level`
    level: float = math.nan  # the deciding look's confidence level
    p: float = math.nan  # fixed seeds only (Bonferroni-adjusted when a choice was made)
    n_pairs: int = 0  # confirmation seeds the verdict used
    screen_seeds: int = 0
    chose: bool = False  # a side was chosen on validation (then fresh seeds confirm)
    pairs: int = 1  # (variant, reference) pairs the choice was made from
    sequential: bool = True  # confirmation seeds added look by look (else fixed seeds)
    max_seeds: int | None = None  # the budget in confirmation seeds
    adjusted: bool = False  # fixed seeds with a choice: tested at alpha / pairs (Bonferroni)
    looks: list[dict[str, Any]] = field(default_factory=list)
    also: list[dict[str, Any]] = field(default_factory=list)  # both checkpoints' test acc
    seeds_needed: int | None = None  # undecided: seeds that would decide the observed effect
    next_step: str = ""
    floor: str = ""  # the test set's measurement floor next to the seed noise
    details: list[str] = field(default_factory=list)  # sentences after the verdict's own
    edges: list[str] = field(default_factory=list)
    text: str = ""

    def to_json(self) -> dict[str, Any]:
        out = dict(self.__dict__)
        out["ci"] = [None if not math.isfinite(x) else x for x in self.ci]
        return {k: (None if isinstance(v, float) and not math.isfinite(v) else v)
                for k, v in out.items()}


# ----------------------------------------------------------------------------- power


def power_paired_t(effect: float, sd: float, n: int, alpha: float = stats.ALPHA) -> float:
    """Power of the two-sided paired t-test with n pairs when the true mean difference is
    `effect` and the differences' sd is `sd`.

    scipy's noncentral t; where it returns nan (large noncentrality at df = 1), the same
    probability as a mixture over the chi-square of the sample variance,
    P(|Z + nc| > c * sqrt(V / df)), integrated numerically.
    """
    df = n - 1
    crit = sps.t.ppf(1 - alpha / 2, df)
    nc = effect / sd * math.sqrt(n)
    power = float(sps.nct.sf(crit, df, nc) + sps.nct.cdf(-crit, df, nc))
    if math.isfinite(power):
        return power

    def given_v(v: float) -> float:
        c = crit * math.sqrt(v / df)
        return (sps.norm.sf(c - nc) + sps.norm.cdf(-c - nc)) * sps.chi2.pdf(v, df)

    return float(integrate.quad(given_v, 0, math.inf, limit=200)[0])


def min_detectable_effect(n: int, sd: float, alpha: float = stats.ALPHA,
                          power: float = POWER) -> float:
    """Smallest true mean difference the paired t-test detects with `power` (nan: n < 2)."""
    if n < 2 or not math.isfinite(sd):
        return math.nan
    if sd == 0:
        return 0.0
    hi = sd
    while power_paired_t(hi, sd, n, alpha) < power:
        hi *= 2
    return float(optimize.brentq(lambda e: power_paired_t(e, sd, n, alpha) - power, 0, hi,
                                 xtol=sd * 1e-9))


def seeds_needed(effect: float, sd: float, alpha: float = stats.ALPHA,
                 power: float = POWER) -> int | None:
    """Fewest pairs (>= 2) for which the paired t-test detects `effect` with `power`."""
    if not (math.isfinite(sd) and sd > 0 and effect > 0):
        return None
    z = sps.norm.ppf(1 - alpha / 2) + sps.norm.ppf(power)
    n = max(2, math.ceil((z * sd / effect) ** 2))  # normal approximation, then exact
    while n > 2 and power_paired_t(effect, sd, n - 1, alpha) >= power:
        n -= 1
    while power_paired_t(effect, sd, n, alpha) < power:
        n += 1
        if n > MAX_SEEDS:
            return None
    return n


def seeds_to_decide(gain: float, sd: float, margin: float,
                    alpha: float = stats.ALPHA) -> int | None:
    """Seeds for an 80% chance of deciding a true gain of `gain` (claimed direction): as
    better (the interval clears 0) or as no gain of `margin` (it clears the margin),
    whichever comes first."""
    options = [seeds_needed(gain, sd, alpha) if gain > 0 else None,
               seeds_needed(margin - gain, sd, alpha) if gain < margin else None]
    known = [n for n in options if n is not None]
    return min(known) if known else None


# ----------------------------------------------------------------------------- words


def fmt_effect(metric: str, x: float) -> str:
    if not math.isfinite(x):
        return "n/a"
    return f"{x * 100:+.1f} pts" if metric in ACCURACY_METRICS else f"{x:+.3f}"


def fmt_size(metric: str, x: float) -> str:
    return fmt_effect(metric, x).lstrip("+")


def fmt_level(level: float) -> str:
    """95% / 98.2% / 99.99%: one decimal, dropped when it is 0, and more where one decimal
    would read as 100%."""
    if not math.isfinite(level):
        return "n/a"
    pct = 100 * level
    digits = 1
    while float(f"{pct:.{digits}f}") >= 100 and pct < 100 and digits < 6:
        digits += 1
    text = f"{pct:.{digits}f}"
    return f"{text.removesuffix('.0')}%"


def default_statement(claim: Any) -> str:
    verb = "rises" if claim.direction == "up" else "falls"
    who = ", ".join(claim.variants) if claim.variants else "the regularized variants"
    return f"{claim.metric} {verb} for {who} vs {', '.join(claim.versus)}"


def measurement_floor(metric: str, runs: pd.DataFrame, test: ClaimTest,
                      test_size: int | None) -> str:
    """The test set's binomial SE per model next to the seed-to-seed sd of the difference:
    which of the two limits the comparison."""
    if metric not in ACCURACY_METRICS or not test_size or test.reference is None:
        return ""
    ref = pd.to_numeric(runs.loc[runs["variant"] == test.reference, "best_test_acc"],
                        errors="coerce").dropna()
    if ref.empty:
        return ""
    acc = float(ref.mean())
    se = math.sqrt(acc * (1 - acc) / test_size)
    n = test.final.n if test.final else len(test.diffs)
    sd = float(np.std(test.diffs[:n], ddof=1)) if n >= 2 else math.nan
    seeds = f"; seed-to-seed sd of the difference {fmt_size(metric, sd)}" if n >= 2 else ""
    return f"test set of {test_size:,}: binomial SE {fmt_size(metric, se)} per model{seeds}"


def checkpoint_sentence(t: ClaimTest) -> str:
    """Both checkpoints' test accuracy for the pair over the verdict's seeds: whether the
    choice of checkpoint matters."""
    if not t.also:
        return ""
    parts = [f"{CHECKPOINT_WORDS.get(a.metric, a.metric)} {fmt_effect('test_acc', a.diff)} "
             f"[95% CI {fmt_effect('test_acc', a.lo)}, {fmt_effect('test_acc', a.hi)}]"
             for a in t.also]
    return "Test accuracy of the pair over the same seeds: " + ", ".join(parts)


def _choice_words(t: ClaimTest) -> str:
    if not t.chose:
        return ""
    if t.adjusted:
        return (f"; chosen on validation from {t.pairs} pairs and tested at alpha "
                f"{stats.ALPHA:g}/{t.pairs} (Bonferroni)")
    return (f"; chosen on validation over {len(t.screen_seeds)} screening seeds from "
            f"{t.pairs} pairs, then tested on fresh confirmation seeds")


def _next_step(t: ClaimTest, runs: pd.DataFrame) -> tuple[int | None, str]:
    """Undecided: the seeds that would decide the observed effect, and their training time
    at this study's measured seconds per run of the pair."""
    n = len(t.diffs)
    if n < 2 or t.variant is None or t.reference is None:
        return None, ""
    gain, sd = t.sign * float(t.diffs.mean()), float(t.diffs.std(ddof=1))
    need = seeds_to_decide(gain, sd, t.claim.effect_margin)
    if need is None:
        return None, (f"the observed effect {fmt_effect(t.claim.metric, t.sign * gain)} is out "
                      f"of reach of {MAX_SEEDS} seeds")
    pair = runs[runs["variant"].isin([t.variant, t.reference])]
    per_run = float(pd.to_numeric(pair.get("wall_time"), errors="coerce").mean()) \
        if len(pair) else math.nan
    more = max(0, need - n)
    cost = (f", {2 * more} more runs, about {2 * more * per_run / 60:.0f} min of training at "
            f"this study's {per_run:.0f} s per run" if math.isfinite(per_run) and more else "")
    return need, (f"about {need} confirmation seeds would decide the observed "
                  f"{fmt_effect(t.claim.metric, t.sign * gain)} (80% power at its spread{cost})")


def verdict(t: ClaimTest, runs: pd.DataFrame, settings: dict[str, dict[str, Any]],
            test_size: int | None = None) -> Verdict:
    claim, metric = t.claim, t.claim.metric
    base: dict[str, Any] = {
        "statement": claim.statement or default_statement(claim), "source": claim.source,
        "metric": metric, "margin": claim.effect_margin, "variant": t.variant,
        "reference": t.reference, "screen_seeds": len(t.screen_seeds), "chose": t.chose,
        "pairs": t.pairs, "adjusted": t.adjusted,
        "sequential": not t.adjusted and t.plan is not None and len(t.plan.looks) > 1,
        "max_seeds": t.plan.max_seeds if t.plan else None,
        "edges": (range_edges(t.variant, t.candidates, settings)
                  + range_edges(t.reference, t.references, settings)) if t.variant
        and t.reference else [],
        "also": [a.__dict__ for a in t.also],
        "floor": (floor := measurement_floor(metric, runs, t, test_size)),
        "details": [x for x in (checkpoint_sentence(t), floor[:1].upper() + floor[1:]) if x]}
    d = t.final
    if d is None:
        need, step = _next_step(t, runs)
        return Verdict(t.outcome, UNDECIDED, n_pairs=len(t.diffs), seeds_needed=need,
                       next_step=step, **base, text=t.problem or "no test was possible")
    assert t.plan is not None
    level = 1 - d.alpha_k
    looks = [{"n": x.n, "state": x.state, "diff": x.diff, "lo": x.lo, "hi": x.hi,
              "level": 1 - x.alpha_k} for x in t.looks]
    k, total = t.plan.looks.index(d.n) + 1, len(t.plan.looks)
    where = f", look {k} of {total}" if total > 1 else ""
    kind = "confirmation seeds" if not t.adjusted else "seeds"
    numbers = (f"{t.variant} vs {t.reference}: {fmt_effect(metric, d.diff)} "
               f"({fmt_level(level)} CI {fmt_effect(metric, d.lo)} to "
               f"{fmt_effect(metric, d.hi)}, {d.n} {kind}{where}{_choice_words(t)})")
    p = math.nan
    if t.plan is not None and len(t.plan.looks) == 1 and d.n >= 2:
        raw = stats.compare(dict(enumerate(t.diffs[:d.n])), dict.fromkeys(range(d.n), 0.0)).p
        p = min(1.0, raw * (t.pairs if t.adjusted else 1)) if math.isfinite(raw) else raw
    kw = {"diff": d.diff, "ci": (d.lo, d.hi), "level": level, "p": p, "n_pairs": d.n,
          "looks": looks, **base}
    if d.decided:
        why = REASON_WORDS[d.state].format(margin=fmt_size(metric, claim.effect_margin),
                                           **DIRECTION_WORDS[claim.direction])
        return Verdict(t.outcome, d.state, **kw, text=f"{numbers}: {why}")
    need, step = _next_step(t, runs)
    budget = (f"undecided at the budget of {t.plan.max_seeds} confirmation seeds"
              if d.state == AT_MAX else f"undecided after {d.n} seeds (the study stopped "
              f"before the budget of {t.plan.max_seeds})")
    return Verdict(UNDECIDED, UNDECIDED, seeds_needed=need, next_step=step, **kw,
                   text=f"{numbers}: {budget}" + (f"; {step}" if step else ""))


def evaluate_claims(claims: list[ClaimConfig], runs: pd.DataFrame, baseline: str | None,
                    screen: list[int], confirm: ConfirmConfig | None,
                    settings: dict[str, dict[str, Any]], names: list[str],
                    test_size: int | None = None) -> list[Verdict]:
    return [verdict(judge(c, runs, baseline, screen, confirm, names), runs, settings, test_size)
            for c in claims]


def overall(verdicts: list[Verdict]) -> str:
    """One word for results/index.html: the common outcome, or 'mixed (...)'."""
    if not verdicts:
        return "no claim"
    outcomes = [v.outcome for v in verdicts]
    if len(set(outcomes)) == 1:
        return outcomes[0]
    return "mixed (" + ", ".join(outcomes) + ")"


# ----------------------------------------------------------------------------- reading


def study_claims(meta: dict[str, Any] | None, name: str) -> list[ClaimConfig]:
    """The claims of a study: from its study.json, else (a study run before its claims were
    written) from its study file, if one of that name is found."""
    from harness.errors import ConfigError
    from harness.study.spec import load_study

    if meta and meta.get("claims"):
        return [ClaimConfig.model_validate(c) for c in meta["claims"]]
    try:
        return list(load_study(name).claim)
    except ConfigError:
        return []


def study_confirm(meta: dict[str, Any] | None) -> ConfirmConfig | None:
    """The confirmation plan the study ran with (study.json); None: fixed seeds."""
    raw = (meta or {}).get("confirm")
    return ConfirmConfig.model_validate(raw) if isinstance(raw, dict) else None


def claims_record(verdicts: list[Verdict]) -> dict[str, Any]:
    """claims.json: what results/index.html shows and what a script can read."""
    return {"overall": overall(verdicts), "claims": [v.to_json() for v in verdicts]}
