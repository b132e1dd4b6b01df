"""Readable variant labels, and per variant the evidence against the baseline: which
secondary metrics moved, by how much, for which weights, and whether beyond the
seed-to-seed noise (never said with fewer than 2 paired seeds: no noise was measured)."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from harness.record.numbers import finite
from harness.record.params import display_label
from harness.report import vocabulary
from harness.report.formatting import fmt, fmt_interval
from harness.stats import compare as stats

# Secondary metrics compared with the baseline: column -> (label, scale, unit, lower is better,
# weights: "final" = the final model, "last" = the last epoch).
EVIDENCE_METRICS: dict[str, tuple[str, float, str, bool, str]] = {
    "gap_loss": ("val − train loss gap", 1.0, "", True, "last"),
    "gap_acc": ("train − val accuracy gap", 100.0, " pts", True, "last"),
    "ece": ("calibration error (ECE)", 1.0, "", True, "final"),
    "mia_advantage": ("membership-inference advantage", 1.0, "", True, "final"),
    "best_test_loss": ("test loss at the best-val checkpoint", 1.0, "", True, "best"),
    "shift_acc": ("accuracy under shift", 100.0, "%", False, "final"),
    "last_test_acc": ("test accuracy", 100.0, "%", False, "last"),
}
# In a study that compares final models, the gaps are the final model's too.
FINAL_GAPS = {"gap_loss": "final_gap_loss", "gap_acc": "final_gap_acc"}
# Lower is not better for these when the variant no longer fits its training data.
FIT_DEPENDENT = ("gap_loss", "gap_acc", "ece", "mia_advantage")


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
    note: str = ""  # e.g. the calibration direction behind an ECE change

    @property
    def tested(self) -> bool:
        return self.comparison.n_pairs >= 2 and finite(self.comparison.ci_lo)

    @property
    def beyond_noise(self) -> bool:
        """The paired 95% CI of the difference excludes 0 (unadjusted)."""
        c = self.comparison
        return self.tested and (c.ci_lo > 0 or c.ci_hi < 0)

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
        ci = f" {fmt_interval(c.ci_lo, c.ci_hi, self.scale, digits)}" if self.tested else ""
        return f"{c.diff * self.scale:+.{digits}f}{unit}{ci}".replace("-", "−")


def _of(tag: str) -> str:
    return "at the last epoch" if tag == "last epoch" else f"of the {tag}"


def weights_label(metric: str, weights: str, tags: tuple[str, str]) -> str:
    """Which weights a secondary metric describes ('at the last epoch', 'of the restored
    model (the baseline's: at the last epoch)'), on both sides when they differ."""
    if weights == "last":
        return "at the last epoch"
    if weights == "best":
        return ""
    mine, theirs = tags
    return _of(mine) if mine == theirs else f"{_of(mine)} (the baseline's: {_of(theirs)})"


def _calibration_note(mine: pd.DataFrame, base: pd.DataFrame) -> str:
    from harness.train.calibration import direction

    if "overconfidence" not in mine:
        return ""
    v, b = (float(pd.to_numeric(x["overconfidence"], errors="coerce").mean())
            for x in (mine, base))
    if not (finite(v) and finite(b)):
        return ""
    return (f"{direction(v)}: mean confidence − accuracy {vocabulary.number(v, 3)}, "
            f"baseline {vocabulary.number(b, 3)}")


def evidence(runs: pd.DataFrame, variant: str, baseline: str | None,
             tags: tuple[str, str] = ("last epoch", "last epoch"),
             final_gaps: bool = False, skip: tuple[str, ...] = ()) -> list[Moved]:
    """Each secondary metric of `variant` against the baseline, paired by seed. `tags` name
    the final model of the variant and of the baseline (weights.final_model); `final_gaps`
    reads the gaps of the final model instead of the last epoch's."""
    if baseline is None or variant == baseline:
        return []
    inc = runs[runs["included"].astype(bool)]
    mine, base = inc[inc["variant"] == variant], inc[inc["variant"] == baseline]
    out = []
    for metric, (label, scale, unit, lower, weights) in EVIDENCE_METRICS.items():
        column = FINAL_GAPS.get(metric, metric) if final_gaps else metric
        if column not in inc or column in skip:
            continue
        if column != metric:
            weights = "final"
        c = stats.compare(dict(zip(mine["seed"], mine[column], strict=True)),
                          dict(zip(base["seed"], base[column], strict=True)))
        bm, vm = base[column].astype(float).mean(), mine[column].astype(float).mean()
        if not (finite(c.diff) and finite(bm) and finite(vm)):
            continue
        where = weights_label(metric, weights, tags)
        note = _calibration_note(mine, base) if metric == "ece" else ""
        out.append(Moved(metric, f"{label} {where}" if where else label, float(bm),
                         float(vm), c, lower, scale, unit, note))
    return out


def says(m: Moved) -> str:
    """'shrinks the val − train loss gap, at the last epoch, from 3.393 to 1.203'."""
    verb = ("shrinks" if "gap" in m.metric else "lowers") if m.comparison.diff < 0 \
        else ("widens" if "gap" in m.metric else "raises")
    note = f" ({m.note})" if m.note else ""
    return f"{verb} the {m.label} from {m.change.replace(' → ', ' to ')}{note}"


def evidence_lines(moved: list[Moved], underfits: str = "") -> dict[str, list[str]]:
    """{'moved', 'noise', 'untested'} sentences for the per-variant evidence. `underfits`
    (the train accuracy, in words) withholds "better" from gaps and calibration: a variant
    that no longer fits its training data shrinks them by fitting less, not by generalizing."""
    out: dict[str, list[str]] = {"moved": [], "noise": [], "untested": []}
    for m in moved:
        note = f"; {m.note}" if m.note else ""
        if not m.tested:
            out["untested"].append(f"{m.label}: {m.change} ({m.delta}{note})")
        elif m.beyond_noise:
            how = "better" if m.improved else "worse"
            if underfits and m.metric in FIT_DEPENDENT:
                how = ("lower" if m.comparison.diff < 0 else "higher") + \
                    f", not called better or worse: the variant underfits ({underfits})"
            out["moved"].append(f"{m.label}: {m.change} ({m.delta}; {how}{note})")
        else:
            out["noise"].append(f"{m.label} {m.delta}")
    return out
