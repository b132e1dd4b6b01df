"""Report figures as PNG bytes (matplotlib, Agg backend; no display needed).

One panel per image: the HTML lays panels out in a grid that reflows with the page width, so
a panel keeps readable text on a phone instead of shrinking a wide strip of panels.
"""

from __future__ import annotations

import io
import warnings
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
MARKER_COLORS = ("#2ca02c", "#9467bd", "#8c564b")
FONT = {"axes.titlesize": 10, "axes.labelsize": 9.5, "xtick.labelsize": 8.5,
        "ytick.labelsize": 8.5, "legend.fontsize": 8}

Labeler = Callable[[str], str]  # variant name -> readable label
T = TypeVar("T")  # what a figure draws per variant (curves, reliability bins)


@dataclass
class Panel:
    name: str  # file stem: figures/<name>.<kind>
    label: str  # alt text and the panel's title
    png: bytes  # the file's bytes (SVG markup for kind "svg")
    kind: str = "png"  # "svg" panels are inlined in report.html


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
    with warnings.catch_warnings():  # labels too long for the panel: savefig's tight
        warnings.filterwarnings("ignore", "Tight layout not applied")  # bbox still fits them
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
    part = held_out_part(curves, names)
    panels = []
    for name in names:
        fig, ax = _axes()
        c = curves[name]
        if base is not None and name != baseline and not base.empty:
            _band(ax, base, f"train_{kind}", BASE_COLOR, "baseline train", scale, "--")
            _band(ax, base, f"{part}_{kind}", BASE_COLOR, f"baseline {part}", scale, ":")
        _band(ax, c, f"train_{kind}", TRAIN_COLOR, "train", scale)
        _band(ax, c, f"{part}_{kind}", VAL_COLOR, part, scale)
        for i, (epoch, text) in enumerate((markers or {}).get(name, [])):
            ax.axvline(epoch, color=MARKER_COLORS[i % len(MARKER_COLORS)], lw=1.1,
                       ls=("-.", "--", ":")[i % 3], label=text)
        ax.xaxis.get_major_locator().set_params(integer=True)
        n = int(c["n"].max()) if "n" in c and len(c) else 0
        title = f"{label(name)} (n={n})"
        panels.append(Panel(f"curves_{kind}_{_slug(name)}", title,
                            _finish(fig, ax, title, "epoch", ylabel)))
    what = "accuracy" if acc else "loss"
    return Figure(f"curves_{kind}", f"Train and {part} {what} per variant",
                  "Mean over seeds, band = min..max over seeds; train = eval-mode pass on the "
                  f"training subset when recorded. Baseline dashed (train) and dotted ({part})"
                  + ("" if part == "val" else "; no validation split, so the held-out curve is "
                     "the test set's") + ". Vertical lines: the epochs named in the legend "
                  "(mean over seeds): the best-val checkpoint, and with early stopping the "
                  "restored epoch and the stop.", panels)


def held_out_part(curves: Mapping[str, pd.DataFrame], names: list[str]) -> str:
    """'val', or 'test' for a study without a validation split."""
    for n in names:
        col = curves[n].get("val_loss_mean")
        if col is not None and np.isfinite(col.to_numpy(dtype=float)).any():
            return "val"
    return "test"


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
