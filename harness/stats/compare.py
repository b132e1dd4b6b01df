"""Statistics over seeds: mean with a t-based 95% CI, and differences from the baseline.

A comparison with the baseline carries the paired difference with its CI, an effect size
(Cohen's d_z), the smallest difference the seeds could have detected (paired t power) and,
across a study's comparisons, Holm-adjusted p-values.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np
from scipy import optimize, stats

ALPHA = 0.05  # significance level of the comparison with the baseline
CONFIDENCE = 0.95  # confidence level of the intervals
POWER = 0.80  # power at which the minimum detectable effect is quoted
MULTIPLE_TESTING = "Holm"  # the family-wise correction across a study's comparisons


def _finite(values: Iterable[float | None]) -> np.ndarray:
    arr = np.array([np.nan if v is None else float(v) for v in values], dtype=float)
    return arr[np.isfinite(arr)]


@dataclass(frozen=True)
class MeanCI:
    mean: float
    half: float  # half-width of the CI; nan for n < 2
    sd: float
    n: int

    @property
    def lo(self) -> float:
        return self.mean - self.half

    @property
    def hi(self) -> float:
        return self.mean + self.half


def mean_ci(values: Iterable[float | None], confidence: float = CONFIDENCE) -> MeanCI:
    """Mean and t-distribution CI half-width t_{(1+c)/2, n-1} * sd / sqrt(n) (sd with ddof 1).

    None / nan values are ignored; n = 0 gives all-nan, n = 1 a nan half-width.
    """
    x = _finite(values)
    n = len(x)
    if n == 0:
        return MeanCI(math.nan, math.nan, math.nan, 0)
    mean = float(x.mean())
    if n == 1:
        return MeanCI(mean, math.nan, math.nan, 1)
    sd = float(x.std(ddof=1))
    half = float(stats.t.ppf((1 + confidence) / 2, n - 1) * sd / math.sqrt(n))
    return MeanCI(mean, half, sd, n)


@dataclass(frozen=True)
class Comparison:
    diff: float  # variant minus baseline (mean of paired differences when paired)
    p: float  # nan when no test was possible
    test: str  # "paired t" | "welch t" | "n/a"
    n_pairs: int
    ci_lo: float = math.nan  # CONFIDENCE interval of the (paired) difference
    ci_hi: float = math.nan
    effect_size: float = math.nan  # Cohen's d_z = mean(d) / sd(d), paired only
    mde: float = math.nan  # smallest |difference| detectable with POWER at ALPHA, paired only

    @property
    def significant(self) -> bool | None:
        """True / False at ALPHA; None when untestable."""
        return None if math.isnan(self.p) else bool(self.p < ALPHA)


def compare(variant: Mapping[int, float | None],
            baseline: Mapping[int, float | None]) -> Comparison:
    """Difference from the baseline by seed.

    >= 2 seeds present in both: paired t-test (scipy.stats.ttest_rel) on the matched seeds.
    Otherwise >= 2 values on each side: Welch's t-test. Otherwise no test (p = nan).
    """
    v = {s: float(x) for s, x in variant.items() if x is not None and math.isfinite(float(x))}
    b = {s: float(x) for s, x in baseline.items() if x is not None and math.isfinite(float(x))}
    if not v or not b:
        return Comparison(math.nan, math.nan, "n/a", 0)
    seeds = sorted(set(v) & set(b))
    if len(seeds) >= 2:
        a = np.array([v[s] for s in seeds])
        c = np.array([b[s] for s in seeds])
        d = a - c
        diff = float(d.mean())
        if np.allclose(d, d[0], rtol=0, atol=1e-15):
            # Constant differences: zero spread, so t = d / 0. Identical runs mean "no
            # difference" (p = 1); a constant non-zero shift is certain (p = 0, as scipy's
            # limit t -> inf gives).
            p = 1.0 if abs(d[0]) < 1e-15 else 0.0
        else:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                p = float(stats.ttest_rel(a, c).pvalue)
        ci = mean_ci(d)
        sd = float(d.std(ddof=1))
        return Comparison(diff, p, "paired t", len(seeds), ci.lo, ci.hi,
                          diff / sd if sd > 0 else math.nan,
                          minimum_detectable_dz(len(seeds)) * sd)
    va, vb = np.array(list(v.values())), np.array(list(b.values()))
    diff = float(va.mean() - vb.mean())
    if len(va) >= 2 and len(vb) >= 2:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            p = float(stats.ttest_ind(va, vb, equal_var=False).pvalue)
        lo, hi = welch_ci(va, vb)
        return Comparison(diff, p, "welch t", len(seeds), lo, hi)
    return Comparison(diff, math.nan, "n/a", len(seeds))


def welch_ci(a: np.ndarray, b: np.ndarray,
             confidence: float = CONFIDENCE) -> tuple[float, float]:
    """CI of mean(a) - mean(b) with Welch-Satterthwaite degrees of freedom."""
    va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
    se = math.sqrt(va + vb)
    diff = float(a.mean() - b.mean())
    if se == 0:
        return diff, diff
    df = (va + vb) ** 2 / (va ** 2 / (len(a) - 1) + vb ** 2 / (len(b) - 1))
    half = float(stats.t.ppf((1 + confidence) / 2, df) * se)
    return diff - half, diff + half


def holm(pvalues: Iterable[float | None]) -> list[float]:
    """Holm-Bonferroni adjusted p-values (step-down, monotone, capped at 1).

    nan / None entries stay nan and do not count towards the number of comparisons.
    """
    p = np.array([np.nan if v is None else float(v) for v in pvalues], dtype=float)
    out = np.full(len(p), np.nan)
    idx = np.flatnonzero(np.isfinite(p))
    m = len(idx)
    running = 0.0
    for rank, i in enumerate(idx[np.argsort(p[idx], kind="stable")]):
        running = max(running, min(1.0, (m - rank) * p[i]))
        out[i] = running
    return out.tolist()


def paired_t_power(dz: float, n: int, alpha: float = ALPHA) -> float:
    """Power of the two-sided paired t-test with n pairs when the true effect is d_z.

    Noncentral t with n - 1 degrees of freedom and noncentrality d_z * sqrt(n).
    """
    df = n - 1
    crit = stats.t.ppf(1 - alpha / 2, df)
    nc = dz * math.sqrt(n)
    # P(T > crit) + P(T < -crit); the lower tail as sf at -nc, which stays finite far out
    return float(stats.nct.sf(crit, df, nc) + stats.nct.sf(crit, df, -nc))


def minimum_detectable_dz(n: int, alpha: float = ALPHA, power: float = POWER) -> float:
    """The smallest d_z a two-sided paired t-test over n pairs detects with `power`; nan if n < 2.

    Multiply by the sd of the paired differences to get it in the metric's units: a
    non-significant comparison then says how large an effect the seeds could have missed.
    """
    if n < 2:
        return math.nan
    hi = 1.0
    while paired_t_power(hi, n, alpha) < power:  # power rises with d_z; n = 2 needs d_z ~ 20
        hi *= 2
    return float(optimize.brentq(lambda d: paired_t_power(d, n, alpha) - power, 1e-9, hi))


def pairwise_disagreement(predictions: list) -> float:
    """Mean over seed pairs of the fraction of test examples (tokens) where predictions differ.

    nan with fewer than 2 prediction tensors; pairs of different shapes are skipped.
    """
    fracs = []
    for i in range(len(predictions)):
        for j in range(i + 1, len(predictions)):
            a, b = predictions[i], predictions[j]
            if a.shape != b.shape or a.numel() == 0:
                continue
            fracs.append(float((a != b).float().mean()))
    return float(np.mean(fracs)) if fracs else math.nan
