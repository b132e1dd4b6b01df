"""Statistics over seeds: mean with a t-based 95% CI, and differences from the baseline."""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np
from scipy import stats

ALPHA = 0.05  # significance level of the comparison with the baseline
CONFIDENCE = 0.95  # confidence level of the intervals


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
        return Comparison(diff, p, "paired t", len(seeds))
    va, vb = np.array(list(v.values())), np.array(list(b.values()))
    diff = float(va.mean() - vb.mean())
    if len(va) >= 2 and len(vb) >= 2:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            p = float(stats.ttest_ind(va, vb, equal_var=False).pvalue)
        return Comparison(diff, p, "welch t", len(seeds))
    return Comparison(diff, math.nan, "n/a", len(seeds))


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
