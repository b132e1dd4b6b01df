"""Report figures as PNG bytes (matplotlib, Agg backend; no display needed).

One panel per image: the HTML lays panels out in a grid that reflows with the page width, so
a panel keeps readable text on a phone instead of shrinking a wide strip of panels.
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TypeVar

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

DPI = 110
PANEL_SIZE = (4.4, 3.0)  # inches: about 480 x 330 px, shown at 300-400 px wide
MAX_PANELS = 24  # beyond this, only the first variants (by rank) get panels
TRAIN_COLOR, VAL_COLOR, BASE_COLOR = "#1f77b4", "#d62728", "#555555"
FONT = {"axes.titlesize": 10, "axes.labelsize": 9.5, "xtick.labelsize": 8.5,
        "ytick.labelsize": 8.5, "legend.fontsize": 8}

Labeler = Callable[[str], str]  # variant name -> readable label
T = TypeVar("T")  # what a figure draws per variant (curves, reliability bins)


@dataclass
class Panel:
    name: str  # file stem: figures/<name>.png
    label: str  # alt text and the panel's title
    png: bytes


@dataclass
class Figure:
    name: str
    title: str
    caption: str
    panels: list[Panel] = field(default_factory=list)


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def _axes(size: tuple[float, float] = PANEL_SIZE):
    with plt.rc_context(FONT):  # type: ignore[arg-type]  # the stub wants literal rc keys
        fig, ax = plt.subplots(figsize=size)
    ax.grid(alpha=0.3)
    return fig, ax


def _finish(fig, ax, title: str, xlabel: str, ylabel: str, legend: bool = True) -> bytes:
    ax.set_title(title, fontsize=FONT["axes.titlesize"])
    ax.set_xlabel(xlabel, fontsize=FONT["axes.labelsize"])
    ax.set_ylabel(ylabel, fontsize=FONT["axes.labelsize"])
    ax.tick_params(labelsize=FONT["xtick.labelsize"])
    if legend and ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=FONT["legend.fontsize"], loc="best", framealpha=0.85)
    fig.tight_layout()
    return _png(fig)


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in name)


def _band(ax, c: pd.DataFrame, col: str, color: str, label: str, scale: float = 1.0,
          ls: str = "-") -> None:
    if c.empty or f"{col}_mean" not in c:
        return
    x = c["epoch"].to_numpy(dtype=float)
    ax.plot(x, c[f"{col}_mean"] * scale, color=color, lw=1.6 if ls == "-" else 1.1, ls=ls,
            label=label)
    if ls == "-":
        ax.fill_between(x, c[f"{col}_min"] * scale, c[f"{col}_max"] * scale, color=color,
                        alpha=0.18, lw=0)


def _names(data: Mapping[str, T], order: list[str], ok: Callable[[T], bool]) -> list[str]:
    return [v for v in order if v in data and ok(data[v])][:MAX_PANELS]


def curves_figure(curves: dict[str, pd.DataFrame], order: list[str], baseline: str | None,
                  kind: str, label: Labeler = str,
                  markers: Mapping[str, list[tuple[float, str]]] | None = None) -> Figure | None:
    """One panel per variant: train and val (mean, min..max band over seeds), baseline dashed.

    markers: per variant, vertical lines (epoch, label), e.g. the mean best-val epoch and,
    for early stopping, the mean stop epoch.
    """
    names = _names(curves, order, lambda c: not c.empty)
    if not names:
        return None
    acc = kind == "acc"
    scale, ylabel = (100.0, "accuracy (%)") if acc else (1.0, "loss")
    base = curves.get(baseline) if baseline else None
    panels = []
    for name in names:
        fig, ax = _axes()
        c = curves[name]
        if base is not None and name != baseline and not base.empty:
            _band(ax, base, f"train_{kind}", BASE_COLOR, "baseline train", scale, "--")
            _band(ax, base, f"val_{kind}", BASE_COLOR, "baseline val", scale, ":")
        _band(ax, c, f"train_{kind}", TRAIN_COLOR, "train", scale)
        _band(ax, c, f"val_{kind}", VAL_COLOR, "val", scale)
        for i, (epoch, text) in enumerate((markers or {}).get(name, [])):
            ax.axvline(epoch, color=("#2ca02c", "#9467bd")[i % 2], lw=1, ls="-.", label=text)
        ax.xaxis.get_major_locator().set_params(integer=True)
        n = int(c["n"].max()) if "n" in c and len(c) else 0
        title = f"{label(name)} (n={n})"
        panels.append(Panel(f"curves_{kind}_{_slug(name)}", title,
                            _finish(fig, ax, title, "epoch", ylabel)))
    what = "accuracy" if acc else "loss"
    return Figure(f"curves_{kind}", f"Train and val {what} per variant",
                  "Mean over seeds, band = min..max over seeds; train = eval-mode pass on the "
                  "training subset when recorded. Baseline dashed (train) and dotted (val); "
                  "vertical lines: mean best-val epoch (and mean stop epoch with early stopping).",
                  panels)


def gap_figure(curves: dict[str, pd.DataFrame], order: list[str], baseline: str | None,
               label: Labeler = str) -> Figure | None:
    names = _names(curves, order, lambda c: not c.empty)
    if not names:
        return None
    fig, ax = _axes((5.6, 3.4))
    cmap = plt.get_cmap("tab10" if len(names) <= 10 else "tab20")
    for i, name in enumerate(names):
        c = curves[name]
        color = "black" if name == baseline else cmap(i % cmap.N)
        x = c["epoch"].to_numpy(dtype=float)
        ax.plot(x, c["gap_loss_mean"], color=color, lw=2 if name == baseline else 1.3,
                ls="--" if name == baseline else "-", label=label(name))
        ax.fill_between(x, c["gap_loss_min"], c["gap_loss_max"], color=color, alpha=0.12, lw=0)
    ax.axhline(0, color="grey", lw=0.8)
    ax.xaxis.get_major_locator().set_params(integer=True)
    png = _finish(fig, ax, "Generalization gap", "epoch", "val loss − train loss")
    return Figure("gap", "Generalization gap per epoch",
                  "val loss minus train loss (mean over seeds, band = min..max); baseline black "
                  "dashed.", [Panel("gap", "Generalization gap per epoch", png)])


def _sweep_panel(s: pd.DataFrame, base: pd.Series | None, metric: str, ylabel: str,
                 xlabel: str, scale: float, base_label: str, name: str) -> Panel:
    fig, ax = _axes()
    x = s["swept_value"].to_numpy(dtype=float)
    if base is not None and math.isfinite(float(base.get(f"{metric}_mean", math.nan))):
        m = float(base[f"{metric}_mean"]) * scale
        half = float(base.get(f"{metric}_ci95", math.nan)) * scale
        ax.axhline(m, color=BASE_COLOR, ls="--", lw=1.1, label=base_label)
        if math.isfinite(half):
            ax.axhspan(m - half, m + half, color=BASE_COLOR, alpha=0.15, lw=0,
                       label=f"{base_label}, 95% CI")
    ax.errorbar(x, s[f"{metric}_mean"] * scale, yerr=s[f"{metric}_ci95"].fillna(0) * scale,
                color="#2ca02c", marker="o", ms=4, capsize=3, label="variant (95% CI)")
    if len(x) > 2 and x.min() > 0 and x.max() / x.min() >= 50:
        ax.set_xscale("log")
    ax.set_xticks(x)
    ax.set_xticklabels([f"{v:g}" for v in x])
    title = f"{ylabel} vs {xlabel}"
    return Panel(f"sweep_{name}", title, _finish(fig, ax, title, xlabel, ylabel))


def sweep_figure(summary: pd.DataFrame, param_label: str, baseline: str | None,
                 baseline_value: object = None) -> Figure | None:
    """Final metrics vs the swept value, error bars = 95% CI over seeds, baseline as a band."""
    if summary.empty or "swept_value" not in summary:
        return None
    s = summary[np.isfinite(summary["swept_value"].astype(float))].sort_values("swept_value")
    s = s[s["best_test_acc_n"] > 0]
    if len(s) < 2:
        return None
    rows = summary[summary["variant"] == baseline] if baseline else summary.iloc[0:0]
    base = rows.iloc[0] if len(rows) and rows.iloc[0]["variant"] not in set(s["variant"]) \
        else None
    base_label = "baseline" + (f" ({param_label} = {baseline_value:g})"
                               if isinstance(baseline_value, (int, float)) else "")
    panels = [_sweep_panel(s, base, "best_test_acc", "test accuracy (%)", param_label, 100.0,
                           base_label, "acc"),
              _sweep_panel(s, base, "gap_loss", "val − train loss", param_label, 1.0,
                           base_label, "gap")]
    return Figure("sweep", f"Final metrics vs {param_label}",
                  "Mean over seeds with 95% CI error bars (t distribution); the baseline's mean "
                  "and 95% CI as a grey line and band. Accuracy at the best-val epoch; loss gap "
                  "at the last epoch.", panels)


def reliability_figure(bins: dict[str, dict[str, np.ndarray]], order: list[str],
                       baseline: str | None, label: Labeler = str) -> Figure | None:
    """Reliability diagrams (per-bin accuracy vs confidence, pooled over seeds) per variant."""
    names = _names(bins, order, lambda b: b["count"].sum() > 0)
    if not names:
        return None
    panels = []
    for name in names:
        fig, ax = _axes((3.6, 3.2))
        b = bins[name]
        m = len(b["count"])
        edges = np.linspace(0, 1, m + 1)
        centers = (edges[:-1] + edges[1:]) / 2
        has = b["count"] > 0
        ax.bar(centers[has], b["accuracy"][has], width=1 / m, color="#1f77b4", alpha=0.75,
               edgecolor="white", label="accuracy")
        ax.bar(centers[has], b["confidence"][has] - b["accuracy"][has], bottom=b["accuracy"][has],
               width=1 / m, color="#d62728", alpha=0.3, label="gap to confidence")
        ax.plot([0, 1], [0, 1], color="grey", ls="--", lw=0.8)
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        title = f"{label(name)}: ECE {b.get('ece', float('nan')):.3f}"
        panels.append(Panel(f"reliability_{_slug(name)}", title,
                            _finish(fig, ax, title, "confidence", "accuracy")))
    return Figure("reliability", "Reliability diagrams (test set)",
                  "Per confidence bin: accuracy (blue) and the gap to mean confidence (red), "
                  "pooled over seeds; diagonal = perfect calibration.", panels)
