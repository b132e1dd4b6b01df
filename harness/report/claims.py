"""Does a study's claim hold? A verdict from the runs, with the power the seeds had to see it.

A claim (`claim:` in studies/NAME.yaml, harness.study.spec.ClaimConfig) says which way a metric
should move for some variants against a reference (the baseline by default). A side that names
several variants is represented by its best on the validation split, so each form of a
technique competes at its own best strength and the test set chooses nothing. The two are
compared over matched seeds with a paired t-test:

- held: significant at ALPHA in the claimed direction. Where the validation split chose
  among several candidates, the p value is multiplied by the number of pairs it could have
  chosen (Bonferroni): a variant's val and test accuracy share its seeds' luck, so picking
  the best on validation also picks lucky test draws, and an unadjusted test would claim
  more than the data shows (tests/test_claims.py simulates it);
- did not hold: significant the other way, or the 95% CI of the paired difference excludes
  every effect of `min_effect` or more in the claimed direction;
- undecided: neither. The verdict then gives the smallest effect the seeds could detect
  (two-sided paired t-test at ALPHA with 80% power, at the observed spread of the
  differences) and how many seeds an effect of `min_effect` would need.

A best variant whose setting sits at the edge of the range its side explored is flagged: the
true best may lie outside the range, so the comparison may be unfair to that side.
"""

from __future__ import annotations

import fnmatch
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy import integrate, optimize
from scipy import stats as sps

from harness.report import stats

HELD, NOT_HELD, UNDECIDED = "held", "did not hold", "undecided"
POWER = 0.8  # power of the smallest detectable effect
MAX_SEEDS = 1000  # seeds_needed gives up beyond this
BASELINE_ALIAS = "baseline"  # in a claim, always the study's baseline (full_recipe, ...)
# Claim metric -> runs-table column (the rest have the same name).
METRIC_COLUMNS = {"test_acc": "best_test_acc", "test_loss": "best_test_loss"}
# Shown in points (x 100).
ACCURACY_METRICS = ("test_acc", "last_test_acc", "final_test_acc", "gap_acc", "shift_acc")
# Selection on the validation split: runs-table column and whether higher is better.
SELECT_COLUMNS = {"val_acc": ("best_val_acc", True), "val_loss": ("best_val_loss", False)}


@dataclass(frozen=True)
class Verdict:
    outcome: str  # HELD | NOT_HELD | UNDECIDED
    statement: str
    source: str
    metric: str
    variant: str | None  # best of the claimed side on validation
    reference: str | None  # best of the reference side on validation
    diff: float = math.nan  # mean over seeds of variant - reference, in the metric's units
    ci: tuple[float, float] = (math.nan, math.nan)
    p: float = math.nan
    n_pairs: int = 0
    mde: float = math.nan  # smallest effect detectable at POWER with these seeds
    seeds_needed: int | None = None  # seeds for min_effect at POWER (None: not estimable)
    edges: list[str] = field(default_factory=list)
    text: str = ""

    def to_json(self) -> dict[str, Any]:
        out = dict(self.__dict__)
        out["ci"] = [None if not math.isfinite(x) else x for x in self.ci]
        return {k: (None if isinstance(v, float) and not math.isfinite(v) else v)
                for k, v in out.items()}


# ----------------------------------------------------------------------------- statistics


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


# ----------------------------------------------------------------------------- selection


def matching(patterns: list[str], names: list[str], baseline: str | None) -> list[str]:
    """Variant names matching any pattern (fnmatch); 'baseline' is the study's baseline."""
    out = []
    for pattern in patterns:
        if pattern == BASELINE_ALIAS and baseline is not None:
            pattern = baseline
        out += [n for n in fnmatch.filter(names, pattern) if n not in out]
    return out


def best_on_validation(candidates: list[str], summary: pd.DataFrame, select: str) -> str | None:
    """The candidate with the best mean validation metric (None if none has one)."""
    column, higher = SELECT_COLUMNS[select]
    rows = summary[summary["variant"].isin(candidates)]
    scores = pd.to_numeric(rows.get(f"{column}_mean"), errors="coerce")
    if scores is None or scores.dropna().empty:
        return None
    best = scores.idxmax() if higher else scores.idxmin()
    return str(rows.loc[best, "variant"])


def paired_differences(runs: pd.DataFrame, variant: str, reference: str,
                       column: str) -> np.ndarray:
    """variant - reference per seed, over seeds where both have a finite value."""
    inc = runs[runs["included"].astype(bool)]

    def by_seed(name: str) -> dict[int, float]:
        rows = inc[inc["variant"] == name]
        values = pd.to_numeric(rows[column], errors="coerce")
        return {int(s): float(v) for s, v in zip(rows["seed"], values, strict=True)
                if math.isfinite(v)}

    a, b = by_seed(variant), by_seed(reference)
    return np.array([a[s] - b[s] for s in sorted(set(a) & set(b))], dtype=float)


def range_edges(chosen: str, candidates: list[str],
                settings: dict[str, dict[str, Any]]) -> list[str]:
    """For each numeric setting that varies over >= 3 values among the candidates: a line
    when the chosen variant's value is the smallest or largest of them."""
    mine = settings.get(chosen) or {}
    out = []
    for key, value in mine.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        values = {v for c in candidates if isinstance(v := (settings.get(c) or {}).get(key),
                                                      (int, float)) and not isinstance(v, bool)}
        if len(values) < 3:
            continue
        lo, hi = min(values), max(values)
        if value in (lo, hi):
            side = "lower" if value == lo else "upper"
            out.append(f"{chosen}: {key} = {value:g} is at the {side} edge of its range "
                       f"[{lo:g}, {hi:g}]; the best setting may lie outside it")
    return out


# ----------------------------------------------------------------------------- verdict


def fmt_effect(metric: str, x: float) -> str:
    if not math.isfinite(x):
        return "n/a"
    return f"{x * 100:+.1f} pts" if metric in ACCURACY_METRICS else f"{x:+.3f}"


def default_statement(claim: Any) -> str:
    verb = "rises" if claim.direction == "up" else "falls"
    who = ", ".join(claim.variants) if claim.variants else "the regularized variants"
    return f"{claim.metric} {verb} for {who} vs {', '.join(claim.versus)}"


def evaluate_claim(claim: Any, summary: pd.DataFrame, runs: pd.DataFrame,
                   settings: dict[str, dict[str, Any]], baseline: str | None) -> Verdict:
    """The verdict of one claim (a ClaimConfig) on a study's summary and runs tables."""
    names = [str(v) for v in summary["variant"]] if len(summary) else []
    refs = matching(claim.versus, names, baseline)
    cands = matching(claim.variants, names, baseline) if claim.variants else \
        [n for n in names if n != baseline and n not in refs]
    base = {"statement": claim.statement or default_statement(claim), "source": claim.source,
            "metric": claim.metric}
    variant = best_on_validation(cands, summary, claim.select)
    reference = best_on_validation(refs, summary, claim.select)
    if variant is None or reference is None:
        return Verdict(UNDECIDED, variant=variant, reference=reference, **base,
                       text="no completed runs on one side of the comparison")
    edges = range_edges(variant, cands, settings) + range_edges(reference, refs, settings)
    column = METRIC_COLUMNS.get(claim.metric, claim.metric)
    d = paired_differences(runs, variant, reference, column)
    sign = 1.0 if claim.direction == "up" else -1.0
    n = len(d)
    common = {"variant": variant, "reference": reference, "edges": edges, "n_pairs": n, **base}
    if n < 2:
        return Verdict(UNDECIDED, diff=float(d.mean()) if n else math.nan, **common,
                       text=f"{n} matched seed(s): at least 2 are needed for a test")
    mean, sd = float(d.mean()), float(d.std(ddof=1))
    half = float(sps.t.ppf((1 + stats.CONFIDENCE) / 2, n - 1) * sd / math.sqrt(n))
    raw_p = stats.compare(dict(enumerate(d)), dict.fromkeys(range(n), 0.0)).p
    pairs = max(1, len(cands)) * max(1, len(refs))
    p = min(1.0, raw_p * pairs) if math.isfinite(raw_p) else raw_p
    alpha = stats.ALPHA / pairs  # the detectable effect at the level the verdict uses
    mde = min_detectable_effect(n, sd, alpha)
    need = seeds_needed(claim.min_effect, sd, alpha)
    chosen = (f", chosen on validation from {pairs} pairs: p={raw_p:.2g} before the x{pairs} "
              "Bonferroni adjustment" if pairs > 1 else "")
    numbers = (f"{variant} vs {reference}: {fmt_effect(claim.metric, mean)} "
               f"(95% CI {fmt_effect(claim.metric, mean - half)} to "
               f"{fmt_effect(claim.metric, mean + half)}, p={p:.2g}, {n} seeds{chosen})")
    kw = {"diff": mean, "ci": (mean - half, mean + half), "p": p, "mde": mde,
          "seeds_needed": need, **common}
    if math.isfinite(p) and p < stats.ALPHA:
        outcome = HELD if sign * mean > 0 else NOT_HELD
        return Verdict(outcome, **kw, text=numbers)
    upper = max(sign * (mean - half), sign * (mean + half))  # CI bound in the claimed direction
    if upper < claim.min_effect:
        return Verdict(NOT_HELD, **kw, text=f"{numbers}; the CI rules out an effect of "
                       f"{fmt_effect(claim.metric, sign * claim.min_effect)} or more")
    need_text = (f"about {need} seeds would detect {fmt_effect(claim.metric, claim.min_effect)}"
                 if need else f"{fmt_effect(claim.metric, claim.min_effect)} is out of reach "
                 f"of {MAX_SEEDS} seeds")
    mde_text = fmt_effect(claim.metric, mde).lstrip("+") if math.isfinite(mde) else "n/a"
    return Verdict(UNDECIDED, **kw, text=f"{numbers}; not enough seeds: the smallest effect "
                   f"{n} seeds detect (80% power{' at the adjusted level' if pairs > 1 else ''})"
                   f" is {mde_text}; {need_text}")


def evaluate_claims(claims: list[Any], summary: pd.DataFrame, runs: pd.DataFrame,
                    settings: dict[str, dict[str, Any]], baseline: str | None) -> list[Verdict]:
    return [evaluate_claim(c, summary, runs, settings, baseline) for c in claims]


def overall(verdicts: list[Verdict]) -> str:
    """One word for results/index.html: the common outcome, or 'mixed (...)'."""
    if not verdicts:
        return "no claim"
    outcomes = [v.outcome for v in verdicts]
    if len(set(outcomes)) == 1:
        return outcomes[0]
    return "mixed (" + ", ".join(outcomes) + ")"


# ----------------------------------------------------------------------------- reading


def study_claims(meta: dict[str, Any] | None, name: str) -> list[Any]:
    """The claims of a study: from its study.json, else (a study run before its claims were
    written) from its study file, if one of that name is found."""
    from harness.errors import ConfigError
    from harness.study.spec import ClaimConfig, load_study

    if meta and meta.get("claims"):
        return [ClaimConfig.model_validate(c) for c in meta["claims"]]
    try:
        return list(load_study(name).claim)
    except ConfigError:
        return []


def claims_record(verdicts: list[Verdict]) -> dict[str, Any]:
    """claims.json: what results/index.html shows and what a script can read."""
    return {"overall": overall(verdicts), "claims": [v.to_json() for v in verdicts]}
