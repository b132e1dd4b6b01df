"""The report's words, computed from the tables: the answer sentences at the top, readable
variant labels, and per variant the evidence against the baseline (which metrics moved, by
how much, and whether beyond the seed-to-seed noise)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd

from harness.record.numbers import finite
from harness.record.params import display_label
from harness.report.formatting import fmt, fmt_interval, fmt_p
from harness.stats import compare as stats

# Secondary metrics compared with the baseline: column -> (label, scale, unit, lower is better).
# Accuracies read in percent / percentage points.
EVIDENCE_METRICS: dict[str, tuple[str, float, str, bool]] = {
    "gap_loss": ("val − train loss gap", 1.0, "", True),
    "gap_acc": ("train − val accuracy gap", 100.0, " pts", True),
    "ece": ("calibration error (ECE)", 1.0, "", True),
    "mia_advantage": ("membership-inference advantage", 1.0, "", True),
    "best_test_loss": ("test loss", 1.0, "", True),
    "shift_acc": ("accuracy under shift", 100.0, "%", False),
    "last_test_acc": ("test accuracy at the last epoch", 100.0, "%", False),
}
MECHANISM_LIMIT = 3  # metrics named in the answer's second sentence


def variant_label(name: str, baseline: str | None = None,
                  baseline_desc: str | None = None) -> str:
    """'dropout.p=0.5' -> 'dropout p = 0.5'; the baseline gets its description if any."""
    if name == baseline and baseline_desc:
        return f"{name} ({baseline_desc})"
    if "=" in name:
        return ", ".join(f"{display_label(k)} = {v}" for k, v in
                         (part.split("=", 1) for part in name.split(",") if "=" in part))
    return name


@dataclass(frozen=True)
class Moved:
    metric: str
    label: str
    base: float
    value: float
    comparison: stats.Comparison
    lower_is_better: bool
    scale: float
    unit: str

    @property
    def beyond_noise(self) -> bool:
        """The paired 95% CI of the difference excludes 0 (unadjusted)."""
        c = self.comparison
        return finite(c.ci_lo) and finite(c.ci_hi) and (c.ci_lo > 0 or c.ci_hi < 0)

    @property
    def improved(self) -> bool:
        return (self.comparison.diff < 0) == self.lower_is_better

    def _v(self, x: float) -> str:
        return f"{x * self.scale:.1f}" if self.scale != 1 else fmt(x, 3 if abs(x) < 10 else 2)

    @property
    def change(self) -> str:
        """'0.402 → 0.097'"""
        return f"{self._v(self.base)} → {self._v(self.value)}{self.unit}"

    @property
    def delta(self) -> str:
        """'−0.305 [−0.330, −0.280]' in the metric's units (percentage points if scaled)."""
        c = self.comparison
        digits = 1 if self.scale != 1 else 3
        unit = " pts" if self.scale != 1 else ""
        return (f"{c.diff * self.scale:+.{digits}f}{unit} "
                f"{fmt_interval(c.ci_lo, c.ci_hi, self.scale, digits)}").replace("-", "−")


def evidence(runs: pd.DataFrame, variant: str, baseline: str | None) -> list[Moved]:
    """Each secondary metric of `variant` against the baseline, paired by seed."""
    if baseline is None or variant == baseline:
        return []
    inc = runs[runs["included"].astype(bool)]
    mine, base = inc[inc["variant"] == variant], inc[inc["variant"] == baseline]
    out = []
    for metric, (label, scale, unit, lower) in EVIDENCE_METRICS.items():
        if metric not in inc:
            continue
        c = stats.compare(dict(zip(mine["seed"], mine[metric], strict=True)),
                          dict(zip(base["seed"], base[metric], strict=True)))
        bm, vm = base[metric].astype(float).mean(), mine[metric].astype(float).mean()
        if finite(c.diff) and finite(bm) and finite(vm):
            out.append(Moved(metric, label, float(bm), float(vm), c, lower, scale, unit))
    return out


def _pct(x: Any) -> str:
    return f"{float(x) * 100:.1f}%"


def _pts(x: float) -> str:
    return f"{abs(x) * 100:.1f} points"


def _finding(row: pd.Series, base: pd.Series, label, n_variants: int) -> str:
    d, up = float(row["delta"]), float(row["delta"]) > 0
    verb = "raises" if up else "lowers"
    ci = fmt_interval(row.get("delta_ci_lo"), row.get("delta_ci_hi"))
    text = (f"{label(row['variant'])} {verb} test accuracy by {_pts(d)} [95% CI {ci[1:-1]}] "
            f"compared with {label(base['variant'])} ({_pct(base['best_test_acc_mean'])} → "
            f"{_pct(row['best_test_acc_mean'])}; {stats.MULTIPLE_TESTING}-adjusted "
            f"p = {fmt_p(row.get('p_holm'))})")
    if n_variants > 1:
        text += f", the largest {'gain' if up else 'loss'} of {n_variants} settings"
    return text + "."


def _mechanism(moved: list[Moved], lead: str = "Beyond seed noise it also") -> str | None:
    real = [m for m in moved if m.beyond_noise and m.metric != "last_test_acc"]
    good = [m for m in real if m.improved][:MECHANISM_LIMIT]
    bad = [m for m in real if not m.improved][:MECHANISM_LIMIT]
    if not good and not bad:
        return None

    def says(m: Moved) -> str:
        verb = ("shrinks" if "gap" in m.metric else "lowers") if m.comparison.diff < 0 \
            else ("widens" if "gap" in m.metric else "raises")
        return f"{verb} the {m.label} from {m.change.replace(' → ', ' to ')}"

    parts = [says(m) for m in good]
    text = f"{lead} " + _join(parts) if parts else "It " + _join(
        [says(m) for m in bad])
    if parts and bad:
        text += ", but " + _join([says(m) for m in bad])
    return text + " (paired 95% CIs exclude 0)."


def _join(parts: list[str]) -> str:
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


def _tally(comp: pd.DataFrame, n_seeds: int, label) -> str:
    counts = comp["verdict"].value_counts()
    better, worse = int(counts.get("better", 0)), int(counts.get("worse", 0))
    none = int(counts.get("no detectable effect", 0))
    untested = len(comp) - better - worse - none
    parts = [f"{better} better", f"{worse} worse", f"{none} with no detectable effect"]
    if untested:
        parts.append(f"{untested} untestable")
    worst = comp[comp["verdict"] == "worse"]
    named = "" if worst.empty else " (worse: " + ", ".join(
        f"{label(r['variant'])} {float(r['delta']) * 100:+.1f} points"
        for _, r in worst.iterrows()) + ")"
    return (f"Of {len(comp)} variant(s) against the baseline: {', '.join(parts)}{named}; paired "
            f"t-tests over {n_seeds} seed(s), {stats.MULTIPLE_TESTING}-adjusted across the "
            f"{len(comp)} comparison(s).")


def _null(row: pd.Series, label, n_comparisons: int) -> str:
    d = float(row["delta"])
    lo, hi = row.get("delta_ci_lo"), row.get("delta_ci_hi")
    ci = fmt_interval(lo, hi)
    adjusted = f"{stats.MULTIPLE_TESTING}-adjusted p = {fmt_p(row.get('p_holm'))}"
    if finite(lo) and finite(hi) and (lo > 0 or hi < 0):  # real before the adjustment only
        return (f"No variant changed test accuracy significantly after the "
                f"{stats.MULTIPLE_TESTING} adjustment across {n_comparisons} comparisons: the "
                f"largest difference, {label(row['variant'])} at {d * 100:+.1f} points "
                f"[95% CI {ci[1:-1]}], has {adjusted}; its unadjusted paired CI excludes 0, "
                f"so more seeds would settle it.")
    text = (f"No variant changed test accuracy detectably: the largest difference, "
            f"{label(row['variant'])} at {d * 100:+.1f} points [95% CI {ci[1:-1]}], is within "
            f"the seed noise ({adjusted}).")
    if finite(row.get("mde")):
        text += (f" With {int(row['n_pairs'])} paired seeds the study could only have detected "
                 f"a difference of about {float(row['mde']) * 100:.1f} points "
                 f"({stats.POWER:.0%} power at α = {stats.ALPHA}, before the "
                 f"{stats.MULTIPLE_TESTING} adjustment).")
    return text


def answer(summary: pd.DataFrame, evidence_of: dict[str, list[Moved]], baseline: str | None,
           label=str) -> list[str]:
    """Two to four sentences stating the study's finding with its numbers."""
    key = "best_test_acc_mean"
    ok = summary[summary[key].apply(finite)] if len(summary) else summary
    if ok.empty:
        return ["No completed runs yet."]
    if baseline is None or baseline not in set(ok["variant"]):
        best = ok.sort_values(key, ascending=False).iloc[0]
        return [f"Best: {label(best['variant'])} at {_pct(best[key])} test accuracy "
                f"(no baseline to compare with)."]
    base = ok[ok["variant"] == baseline].iloc[0]
    comp = ok[ok["variant"] != baseline]
    if comp.empty:
        return [f"Baseline only: {_pct(base[key])} test accuracy."]
    n_seeds = int(comp["n_pairs"].max()) if "n_pairs" in comp else 0
    moved = comp[comp["verdict"].isin(["better", "worse"])]
    if moved.empty:
        top = comp.loc[comp["delta"].abs().astype(float).idxmax()] \
            if comp["delta"].apply(finite).any() else None
        if top is None:
            return [f"No variant could be compared with the baseline "
                    f"({_pct(base[key])} test accuracy): too few paired seeds."]
        out = [_null(top, label, len(comp))]
        mech = _mechanism(evidence_of.get(top["variant"], []),
                          f"Still, beyond seed noise {label(top['variant'])}")
        return out + ([mech] if mech else []) + [_tally(comp, n_seeds, label)]
    better = moved[moved["verdict"] == "better"]
    top = (better if len(better) else moved).sort_values(
        "delta", ascending=better.empty).iloc[0]
    out = [_finding(top, base, label, len(comp))]
    mech = _mechanism(evidence_of.get(top["variant"], []))
    if mech:
        out.append(mech)
    out.append(_tally(comp, n_seeds, label))
    return out


def best_variant(summary: pd.DataFrame) -> str | None:
    """The variant marked best: significantly better than the baseline and highest in accuracy."""
    if summary.empty or "verdict" not in summary:
        return None
    better = summary[summary["verdict"] == "better"]
    if better.empty:
        return None
    return str(better.sort_values("best_test_acc_mean", ascending=False).iloc[0]["variant"])


def evidence_lines(moved: list[Moved]) -> dict[str, list[str]]:
    """{'moved': [...], 'noise': [...]} sentences for the per-variant evidence."""
    out: dict[str, list[str]] = {"moved": [], "noise": []}
    for m in moved:
        if m.beyond_noise:
            how = "better" if m.improved else "worse"
            out["moved"].append(f"{m.label}: {m.change} ({m.delta}; {how})")
        else:
            out["noise"].append(f"{m.label} {m.delta}")
    return out
