"""The figures a paper would print, drawn first in the report:

- the forest plot: each variant's paired difference from the baseline (mean over seed pairs,
  95% CI, every seed's own difference as a dot) against zero and the ± margin band, coloured
  by its verdict word;
- one overlay of every variant's validation curves (test curves without a validation split);
- for a sweep: the paired difference and the metric itself against the swept value, the
  baseline drawn at its own value on that axis and each seed's runs joined by a line.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from harness.report import figures
from harness.report import vocabulary as vocab
from harness.report.figures import BASE_COLOR, Figure, Labeler, Panel, _axes

WORD_COLORS = {vocab.BETTER: "#1b7a2f", vocab.WORSE: "#c62828",
               vocab.UNADJUSTED_ONLY: "#d97a00", vocab.NO_EFFECT: "#3465a4",
               vocab.UNDECIDED: "#6b6b6b", vocab.NOT_TESTED: "#9e9e9e"}
CHOSEN_COLOR = "#1a5fb4"
ROW_INCHES = 0.42
MAX_ROWS = 40


@dataclass(frozen=True)
class Pairing:
    """What the paired figures read: the compared column of each side, per seed."""

    runs: pd.DataFrame  # runs.csv (included runs are used)
    metric: str
    reference: str
    baseline: str

    def by_seed(self, variant: str, column: str) -> dict[int, float]:
        inc = self.runs[self.runs["included"].astype(bool) & (self.runs["variant"] == variant)]
        vals = pd.to_numeric(inc[column], errors="coerce")
        return {int(s): float(v) for s, v in zip(inc["seed"], vals, strict=True)
                if math.isfinite(v)}

    def differences(self, variant: str) -> list[float]:
        mine = self.by_seed(variant, self.metric)
        base = self.by_seed(self.baseline, self.reference)
        return [mine[s] - base[s] for s in sorted(set(mine) & set(base))]


def forest_rows(summary: pd.DataFrame, pairing: Pairing) -> pd.DataFrame:
    """One row per compared variant: mean, CI, word and the per-seed differences (points)."""
    rows = []
    for _, r in summary.iterrows():
        if r["variant"] == pairing.baseline or not math.isfinite(float(r.get("delta", np.nan))):
            continue
        rows.append({"variant": r["variant"], "diff": float(r["delta"]) * 100,
                     "lo": float(r.get("delta_ci_lo", np.nan)) * 100,
                     "hi": float(r.get("delta_ci_hi", np.nan)) * 100,
                     "word": str(r.get("verdict")),
                     "seeds": [d * 100 for d in pairing.differences(str(r["variant"]))]})
    return pd.DataFrame(rows).head(MAX_ROWS)


def forest_figure(summary: pd.DataFrame, pairing: Pairing, margin: float, chosen: str | None,
                  label: Labeler, phrase: str) -> Figure | None:
    rows = forest_rows(summary, pairing)
    if rows.empty:
        return None
    n = len(rows)
    fig, ax = _axes((5.2, 1.2 + ROW_INCHES * n))
    m = margin * 100
    ax.axvspan(-m, m, color="#dfe7f3", lw=0, label=f"± margin ({m:g} pts)")
    ax.axvline(0, color="black", lw=0.9)
    for i, r in enumerate(rows.itertuples()):
        y = n - 1 - i
        color = WORD_COLORS.get(r.word, "#6b6b6b")
        seeds = np.asarray(r.seeds, dtype=float)
        ax.scatter(seeds, np.full(len(seeds), y + 0.18), s=12, color="#888888", zorder=2,
                   label="one seed pair" if i == 0 else None)
        if math.isfinite(r.lo) and math.isfinite(r.hi):
            ax.plot([r.lo, r.hi], [y, y], color=color, lw=2.2, zorder=3)
        ax.plot([r.diff], [y], marker="D" if r.variant == chosen else "o", ms=7, color=color,
                zorder=4, markeredgecolor="black" if r.variant == chosen else color)
        ax.annotate(r.word, (1.01, y), xycoords=("axes fraction", "data"), va="center",
                    fontsize=8, color=color, annotation_clip=False)
    ax.set_yticks(range(n))
    ax.set_yticklabels([label(v) + (" (chosen)" if v == chosen else "")
                        for v in reversed(list(rows["variant"]))])
    ax.set_ylim(-0.7, n - 0.3)
    # below the figure: inside, "best" placed it over a variant's seed points
    fig.legend(*ax.get_legend_handles_labels(), loc="upper center", bbox_to_anchor=(0.5, 0.0),
               ncol=2, fontsize=figures.FONT["legend.fontsize"], frameon=False)
    png = figures._finish(fig, ax, "Paired difference from the baseline",
                          "Δ vs the baseline (points; mean and 95% CI over seed pairs)", "",
                          legend=False)
    caption = (f"Each variant's difference from the baseline in {phrase}, in percentage points: "
               "the mean over seed pairs (marker) with its 95% CI (bar, paired t), every seed "
               "pair's own difference (grey dots), zero (black line) and the ± margin band. "
               "The colour and the word on the right are the table's verdict; the diamond is "
               "the variant the report calls best.")
    return Figure("forest", "Paired difference from the baseline", caption,
                  [Panel("forest", "Paired difference from the baseline", png)])


def overlay_figure(curves: dict[str, pd.DataFrame], order: list[str], baseline: str | None,
                   chosen: str | None, label: Labeler) -> Figure | None:
    """Every variant's mean validation accuracy and loss per epoch in one panel each."""
    names = [v for v in order if v in curves and not curves[v].empty][:20]
    if not names:
        return None
    part = "val" if any(np.isfinite(curves[v].get("val_acc_mean", pd.Series(dtype=float))
                                    .to_numpy(dtype=float)).any() for v in names) else "test"
    panels = []
    for kind, scale, ylabel in (("acc", 100.0, "accuracy (%)"), ("loss", 1.0, "loss")):
        fig, ax = _axes((5.2, 3.4))
        cmap = plt.get_cmap("tab10" if len(names) <= 10 else "tab20")
        for i, name in enumerate(names):
            c = curves[name]
            col = f"{part}_{kind}_mean"
            if col not in c:
                continue
            is_base, is_chosen = name == baseline, name == chosen
            ax.plot(c["epoch"], c[col] * scale, lw=2.6 if is_chosen else 1.2,
                    ls="--" if is_base else "-",
                    color=BASE_COLOR if is_base else (CHOSEN_COLOR if is_chosen else
                                                      cmap(i % cmap.N)),
                    label=label(name) + (" (chosen)" if is_chosen else ""))
        ax.xaxis.get_major_locator().set_params(integer=True)
        what = f"{part} {'accuracy' if kind == 'acc' else 'loss'}"
        panels.append(Panel(f"overlay_{kind}", f"{what} of every variant",
                            figures._finish(fig, ax, f"{what.capitalize()} per epoch", "epoch",
                                    ylabel)))
    caption = (f"Mean over seeds of each variant's {part} curve; the baseline dashed, the "
               "chosen variant thick." + ("" if part == "val" else
                                          " No validation split: the test curves."))
    return Figure("overlay", f"Every variant's {part} curves", caption, panels)


def sweep_axis(values: np.ndarray, base_value: float | None) -> tuple[np.ndarray, float | None,
                                                                       bool]:
    """(x of the variants, x of the baseline, log scale?). On a log axis a baseline at 0 is
    drawn one step left of the smallest value (its tick says which value it is)."""
    log = len(values) > 2 and values.min() > 0 and values.max() / values.min() >= 50
    if base_value is None or not math.isfinite(base_value):
        return values, None, log
    if log and base_value <= 0:
        step = (values.max() / values.min()) ** (1 / max(1, len(values) - 1))
        return values, float(values.min() / step), log
    return values, float(base_value), log


def sweep_figure(summary: pd.DataFrame, pairing: Pairing, param_label: str,
                 baseline_value: object, margin: float, phrase: str) -> Figure | None:
    """Paired difference and the metric per seed against the swept value."""
    if summary.empty or "swept_value" not in summary:
        return None
    s = summary[np.isfinite(summary["swept_value"].astype(float))
                & (summary["variant"] != pairing.baseline)].sort_values("swept_value")
    if len(s) < 2:
        return None
    x = s["swept_value"].to_numpy(dtype=float)
    bv = float(baseline_value) if isinstance(baseline_value, (int, float)) else None
    x, xb, log = sweep_axis(x, bv)
    ticks = list(x) + ([xb] if xb is not None else [])
    names = [f"{v:g}" for v in x] + ([f"{bv:g}\n(baseline)"] if xb is not None else [])
    panels = [_paired_panel(s, pairing, x, xb, log, ticks, names, param_label, margin, phrase),
              _seeds_panel(s, pairing, x, xb, log, ticks, names, param_label, phrase)]
    caption = (f"Left: the paired difference from the baseline in {phrase} (mean over seed "
               "pairs with its 95% CI; grey dots: each seed pair), with zero and the ± margin "
               "band; the baseline sits at its own value of the swept setting, at 0. Right: "
               "the metric itself, one line per seed joining that seed's runs (the pairs the "
               "test compares), the mean as a marker.")
    return Figure("sweep", f"Against {param_label}", caption, panels)


def _axis(ax, log: bool, ticks: list[float], names: list[str]) -> None:
    if log:
        ax.set_xscale("log")
    ax.set_xticks(ticks)
    ax.set_xticklabels(names)
    ax.minorticks_off()


def _paired_panel(s, pairing, x, xb, log, ticks, names, xlabel, margin, phrase) -> Panel:
    fig, ax = _axes()
    m = margin * 100
    ax.axhspan(-m, m, color="#dfe7f3", lw=0)
    ax.axhline(0, color="black", lw=0.9)
    for xi, (_, r) in zip(x, s.iterrows(), strict=True):
        diffs = np.asarray(pairing.differences(str(r["variant"]))) * 100
        ax.scatter(np.full(len(diffs), xi), diffs, s=10, color="#888888", zorder=2)
        color = WORD_COLORS.get(str(r.get("verdict")), "#6b6b6b")
        lo, hi = float(r.get("delta_ci_lo", np.nan)) * 100, float(r.get("delta_ci_hi",
                                                                         np.nan)) * 100
        if math.isfinite(lo) and math.isfinite(hi):
            ax.plot([xi, xi], [lo, hi], color=color, lw=2)
        ax.plot([xi], [float(r["delta"]) * 100], "o", color=color, ms=6, zorder=3)
    if xb is not None:
        ax.plot([xb], [0], "s", color=BASE_COLOR, ms=6, label="baseline")
    _axis(ax, log, ticks, names)
    return Panel("sweep_paired", f"paired Δ vs {xlabel}",
                 figures._finish(fig, ax, f"Paired Δ vs {xlabel}", xlabel, "Δ vs baseline (points)",
                         legend=False))


def _seeds_panel(s, pairing, x, xb, log, ticks, names, xlabel, phrase) -> Panel:
    fig, ax = _axes()
    base = pairing.by_seed(pairing.baseline, pairing.reference) if xb is not None else {}
    per = [pairing.by_seed(str(v), pairing.metric) for v in s["variant"]]
    for seed in sorted(set().union(*per) | set(base)):
        xs = ([xb] if seed in base else []) + [xi for xi, p in zip(x, per, strict=True)
                                               if seed in p]
        ys = ([base[seed]] if seed in base else []) + [p[seed] for p in per if seed in p]
        ax.plot(xs, np.asarray(ys) * 100, color="#9a9a9a", lw=0.8, marker=".", ms=4)
    means = [np.mean(list(p.values())) * 100 if p else np.nan for p in per]
    ax.plot(x, means, "o", color=CHOSEN_COLOR, ms=6, label="mean over seeds")
    if base:
        ax.plot([xb], [np.mean(list(base.values())) * 100], "s", color=BASE_COLOR, ms=6,
                label="baseline mean")
    _axis(ax, log, ticks, names)
    return Panel("sweep_seeds", f"{phrase} vs {xlabel}, per seed",
                 figures._finish(fig, ax, f"Per seed vs {xlabel}", xlabel, "test accuracy (%)"))
