"""Report figures as PNG bytes (matplotlib, Agg backend; no display needed)."""

from __future__ import annotations

import io
import math
from dataclasses import dataclass

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

DPI = 110
PANEL_W, PANEL_H = 3.4, 2.5  # inches per small-multiple panel
MAX_COLS = 4
MAX_PANELS = 24  # beyond this, only the first variants (by rank) get panels
TRAIN_COLOR, VAL_COLOR, BASE_COLOR = "#1f77b4", "#d62728", "#555555"


@dataclass
class Figure:
    name: str  # file stem: figures/<name>.png
    title: str
    caption: str
    png: bytes


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def _grid(n: int):
    cols = min(MAX_COLS, max(1, n))
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(PANEL_W * cols, PANEL_H * rows),
                             squeeze=False, sharex=True)
    flat = axes.ravel()
    for ax in flat[n:]:
        ax.set_visible(False)
    return fig, flat[:n]


def _legend(fig, axes) -> None:
    """One legend for the whole figure, with every line label that appears in any panel."""
    seen: dict[str, object] = {}
    for ax in axes:
        for h, lab in zip(*ax.get_legend_handles_labels(), strict=True):
            seen.setdefault(lab, h)
    if seen:
        fig.legend(list(seen.values()), list(seen.keys()), loc="lower center", fontsize=8,
                   ncol=min(len(seen), 4), frameon=False, bbox_to_anchor=(0.5, 1.0))


def _band(ax, c: pd.DataFrame, col: str, color: str, label: str, dashed: bool = False) -> None:
    if c.empty or f"{col}_mean" not in c:
        return
    x = c["epoch"].to_numpy(dtype=float)
    ax.plot(x, c[f"{col}_mean"], color=color, lw=1.1 if dashed else 1.6,
            ls="--" if dashed else "-", label=label)
    if not dashed:
        ax.fill_between(x, c[f"{col}_min"], c[f"{col}_max"], color=color, alpha=0.18, lw=0)


def curves_figure(curves: dict[str, pd.DataFrame], order: list[str], baseline: str | None,
                  kind: str) -> Figure | None:
    """One panel per variant: train and val (mean, min..max band over seeds), baseline dashed."""
    names = [v for v in order if v in curves and not curves[v].empty][:MAX_PANELS]
    if not names:
        return None
    label = "loss" if kind == "loss" else "accuracy"
    fig, axes = _grid(len(names))
    base = curves.get(baseline) if baseline else None
    for ax, name in zip(axes, names, strict=True):
        c = curves[name]
        if base is not None and name != baseline and not base.empty:
            _band(ax, base, f"train_{kind}", BASE_COLOR, "baseline train", dashed=True)
            ax.plot(base["epoch"], base[f"val_{kind}_mean"], color=BASE_COLOR, lw=1.1, ls=":",
                    label="baseline val")
        _band(ax, c, f"train_{kind}", TRAIN_COLOR, "train")
        _band(ax, c, f"val_{kind}", VAL_COLOR, "val")
        n = int(c["n"].max()) if "n" in c and len(c) else 0
        ax.set_title(f"{name}{' (baseline)' if name == baseline else ''}  n={n}", fontsize=9)
        ax.set_xlabel("epoch", fontsize=8)
        ax.set_ylabel(label, fontsize=8)
        ax.tick_params(labelsize=7)
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    _legend(fig, axes)
    return Figure(f"curves_{kind}", f"Train and val {label} per variant",
                  "Mean over seeds, band = min..max over seeds; train = eval-mode pass on the "
                  "training subset when recorded. Baseline dashed (train) / dotted (val).",
                  _png(fig))


def gap_figure(curves: dict[str, pd.DataFrame], order: list[str],
               baseline: str | None) -> Figure | None:
    names = [v for v in order if v in curves and not curves[v].empty][:MAX_PANELS]
    if not names:
        return None
    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    cmap = plt.get_cmap("tab10" if len(names) <= 10 else "tab20")
    for i, name in enumerate(names):
        c = curves[name]
        color = "black" if name == baseline else cmap(i % cmap.N)
        x = c["epoch"].to_numpy(dtype=float)
        ax.plot(x, c["gap_loss_mean"], color=color, lw=2 if name == baseline else 1.3,
                ls="--" if name == baseline else "-", label=name)
        ax.fill_between(x, c["gap_loss_min"], c["gap_loss_max"], color=color, alpha=0.12, lw=0)
    ax.axhline(0, color="grey", lw=0.8)
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.set_xlabel("epoch")
    ax.set_ylabel("val loss - train loss")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=2 if len(names) > 6 else 1, loc="best")
    fig.tight_layout()
    return Figure("gap", "Generalization gap per epoch",
                  "val loss minus train loss (mean over seeds, band = min..max); baseline black "
                  "dashed.", _png(fig))


def sweep_figure(summary: pd.DataFrame, param: str, baseline: str | None) -> Figure | None:
    """Final metrics vs the swept value, error bars = 95% CI over seeds."""
    if summary.empty or "swept_value" not in summary:
        return None
    s = summary[np.isfinite(summary["swept_value"].astype(float))].sort_values("swept_value")
    s = s[s["best_test_acc_n"] > 0]
    if len(s) < 2:
        return None
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(9.0, 3.4))
    x = s["swept_value"].to_numpy(dtype=float)
    for metric, color, lab in (("best_test_acc", "#2ca02c", "test acc @ best val"),
                               ("last_test_acc", "#9467bd", "test acc @ last epoch")):
        ax1.errorbar(x, s[f"{metric}_mean"], yerr=s[f"{metric}_ci95"].fillna(0), color=color,
                     marker="o", ms=4, capsize=3, label=lab)
    ax2.errorbar(x, s["gap_loss_mean"], yerr=s["gap_loss_ci95"].fillna(0), color="#ff7f0e",
                 marker="o", ms=4, capsize=3, label="val - train loss (last epoch)")
    base = summary[summary["variant"] == baseline] if baseline else summary.iloc[0:0]
    if len(base) and not np.isfinite(float(base["swept_value"].iloc[0])):
        ax1.axhline(float(base["best_test_acc_mean"].iloc[0]), color=BASE_COLOR, ls="--", lw=1,
                    label="baseline (best val)")
        ax2.axhline(float(base["gap_loss_mean"].iloc[0]), color=BASE_COLOR, ls="--", lw=1,
                    label="baseline")
    for ax, yl in ((ax1, "test accuracy"), (ax2, "generalization gap (loss)")):
        ax.set_xlabel(param)
        ax.set_ylabel(yl)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
        if len(x) > 2 and x.min() > 0 and x.max() / x.min() >= 50:
            ax.set_xscale("log")
    fig.tight_layout()
    return Figure("sweep", f"Final metrics vs {param}",
                  "Mean over seeds with 95% CI error bars (t distribution).", _png(fig))


def reliability_figure(bins: dict[str, dict[str, np.ndarray]], order: list[str],
                       baseline: str | None) -> Figure | None:
    """Reliability diagrams (per-bin accuracy vs confidence, pooled over seeds) per variant."""
    names = [v for v in order if v in bins and bins[v]["count"].sum() > 0][:MAX_PANELS]
    if not names:
        return None
    fig, axes = _grid(len(names))
    for ax, name in zip(axes, names, strict=True):
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
        ax.set_title(f"{name}{' (baseline)' if name == baseline else ''}"
                     f"  pooled ECE={b.get('ece', float('nan')):.3f}", fontsize=9)
        ax.set_xlabel("confidence", fontsize=8)
        ax.set_ylabel("accuracy", fontsize=8)
        ax.tick_params(labelsize=7)
    fig.tight_layout()
    _legend(fig, axes)
    return Figure("reliability", "Reliability diagrams (test set)",
                  "Per confidence bin: accuracy (blue) and the gap to mean confidence (red), "
                  "pooled over seeds; diagonal = perfect calibration.", _png(fig))
