"""Double-descent figures: error vs width / train size / parameter count per series, the
series overlaid, the width x epoch heatmap and epoch-wise curves, drawn from the analysis'
section (`double_descent.double_descent_section`). The report calls

    figures = double_descent_figures(study_dir, out_dir)  # [(title, png_path), ...]
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from harness.record.disk import atomic_write_bytes
from harness.record.numbers import finite
from harness.report.double_descent import metric_rows, width_epoch_heatmap
from harness.report.double_descent_section import RunPoint, collect_points, double_descent_section

COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#17becf"]


def _save(fig: Any, path: Path) -> Path:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())
    return path


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _arr(v: list[float | None]) -> np.ndarray:
    return np.array([np.nan if x is None else x for x in v], dtype=float)


def _curve_panel(ax: Any, xs: Sequence[float], s: dict[str, Any], color: str, label: str,
                 train: bool = True, marks: bool = True) -> None:
    x = np.asarray(xs, dtype=float)
    tm, tsd = _arr(s["test_mean"]), _arr(s["test_sd"])
    ax.plot(x, tm, "-o", color=color, ms=3, lw=1.6, label=f"test {label}".strip())
    ax.fill_between(x, tm - tsd, tm + tsd, color=color, alpha=0.2, lw=0)
    if train and any(v is not None for v in s["train_mean"]):
        rm, rsd = _arr(s["train_mean"]), _arr(s["train_sd"])
        ax.plot(x, rm, "--", color=color, lw=1.1, label=f"train (noisy labels) {label}".strip())
        ax.fill_between(x, rm - rsd, rm + rsd, color=color, alpha=0.1, lw=0)
    if not marks:
        return
    d = s["description"]
    xmap = dict(zip([float(v) for v in s["xs"]], x, strict=True))
    if d.get("threshold_x") is not None:
        tx = xmap.get(float(d["threshold_x"]))
        if tx is not None:
            ax.axvline(tx, color=color, ls=":", lw=1.2,
                       label=f"interpolation threshold {label}".strip())
    if d.get("peak_x") is not None:
        px = xmap.get(float(d["peak_x"]))
        if px is not None:
            ax.plot([px], [d["peak_height"]], marker="*", ms=13, color=color, mec="black",
                    ls="none", label=f"peak {label}".strip() +
                    (" (second descent)" if d["observed"] else " (within spread)"))


def double_descent_figures(study_dir: Path | str, out_dir: Path | str,
                           section: dict | None = None) -> list[tuple[str, Path]]:
    """Draw the study's double-descent figures as PNGs under out_dir.
    Why long: one block per figure, in the order the report shows them.

    Returns [(title, png_path), ...] in reading order ([] when not a double-descent study):
    width kind: per series "Test and train error vs width", one "... vs parameter count"
    (log x, all series), "Test error over width x epoch" heatmaps, and for more than one
    series "Test error vs width, overlaid" (e.g. regularized vs unregularized);
    samples kind: "Test and train error vs train size"; epochs kind: "Test error vs epoch".
    """
    study_dir, out_dir = Path(study_dir), Path(out_dir)
    section = section if section is not None else double_descent_section(study_dir)
    if section is None:
        return []
    plt = _plt()
    kind = section["kind"]
    out: list[tuple[str, Path]] = []
    series = [s for s in section["series"] if s["xs"]]
    x_label = {"width": "width (hidden units / channels)", "samples": "training samples",
               "epochs": "width"}[kind]

    if kind in ("width", "samples"):
        for i, s in enumerate(series):
            fig, ax = plt.subplots(figsize=(6.4, 4.0))
            _curve_panel(ax, s["xs"], s, COLORS[i % len(COLORS)], "")
            ax.set_xscale("log")
            _log_ticks(ax, s["xs"])
            what = "width" if kind == "width" else "train size"
            title = f"Test and train error vs {what} ({s['label']})"
            _labels(ax, x_label, "error (1 - accuracy)", title, legend_size=7)
            out.append((title, _save(fig, out_dir / f"dd_{kind}_{_slug(s['label'])}.png")))

    if kind == "width" and any(any(p for p in s["params"]) for s in series):
        fig, ax = plt.subplots(figsize=(6.4, 4.0))
        for i, s in enumerate(series):
            keep = [j for j, p in enumerate(s["params"]) if p]
            sub = _subset(s, keep)
            _curve_panel(ax, [s["params"][j] for j in keep], sub, COLORS[i % len(COLORS)],
                         s["label"] if len(series) > 1 else "")
        ax.set_xscale("log")
        _labels(ax, "parameters", "error (1 - accuracy)", "Test and train error vs parameter count")
        out.append(("Test and train error vs parameter count",
                    _save(fig, out_dir / "dd_params.png")))

    if kind == "width" and len(series) > 1:
        fig, ax = plt.subplots(figsize=(6.4, 4.0))
        for i, s in enumerate(series):
            _curve_panel(ax, s["xs"], s, COLORS[i % len(COLORS)], s["label"], train=False)
        ax.set_xscale("log")
        _log_ticks(ax, [x for s in series for x in s["xs"]])
        _labels(ax, x_label, "test error", "Test error vs width, overlaid")
        out.append(("Test error vs width, overlaid", _save(fig, out_dir / "dd_overlaid.png")))

    if kind in ("width", "epochs"):
        _, points = collect_points(study_dir)
        by_series: dict[str, list[RunPoint]] = {}
        for p in points:
            by_series.setdefault(p.series, []).append(p)
        for label, pts in sorted(by_series.items()):
            widths, epochs, m = width_epoch_heatmap(
                [{"width": p.x, "rows": metric_rows(p.run)} for p in pts])
            if len(widths) < 2 or len(epochs) < 2:
                continue
            fig, ax = plt.subplots(figsize=(6.4, 4.0))
            wx = _edges(np.log10(np.asarray(widths, dtype=float)))
            ey = _edges(np.log10(np.asarray(epochs, dtype=float)))
            mesh = ax.pcolormesh(10 ** wx, 10 ** ey, np.ma.masked_invalid(m), cmap="viridis",
                                 shading="flat")
            ax.set_xscale("log")
            ax.set_yscale("log")
            _log_ticks(ax, widths)
            _log_ticks(ax, [e for e in (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000)
                            if e <= max(epochs)], "y")
            ax.set_xlabel(x_label)
            ax.set_ylabel("epoch")
            fig.colorbar(mesh, ax=ax, label="test error")
            suffix = f" ({label})"
            ax.set_title(f"Test error over width x epoch{suffix}", fontsize=10)
            out.append((f"Test error over width x epoch{suffix}",
                        _save(fig, out_dir / f"dd_heatmap_{_slug(label)}.png")))

    if kind == "epochs" and section["epoch_curves"]:
        fig, ax = plt.subplots(figsize=(6.4, 4.0))
        for i, e in enumerate(section["epoch_curves"]):
            c = COLORS[i % len(COLORS)]
            x = np.asarray(e["epochs"], dtype=float)
            tm, tsd = np.asarray(e["test_mean"]), np.asarray(e["test_sd"])
            ax.plot(x, tm, color=c, lw=1.5, label=f"test {e['label']}")
            ax.fill_between(x, tm - tsd, tm + tsd, color=c, alpha=0.2, lw=0)
            ax.plot(x, e["train_mean"], color=c, ls="--", lw=1.0,
                    label=f"train (noisy labels) {e['label']}")
            d = e["description"]
            if d["peak_x"] is not None:
                ax.plot([d["peak_x"]], [d["peak_height"]], marker="*", ms=12, color=c,
                        mec="black", ls="none")
        ax.set_xscale("log")
        _labels(ax, "epoch", "error (1 - accuracy)", "Test error vs epoch", legend_size=7)
        out.append(("Test error vs epoch", _save(fig, out_dir / "dd_epochs.png")))
    return out


def _labels(ax: Any, xlabel: str, ylabel: str, title: str, legend_size: int = 6) -> None:
    """Axis labels, title, legend and grid of one error-curve panel."""
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=legend_size)
    ax.grid(alpha=0.3)


def _log_ticks(ax: Any, values: Sequence[float], axis: str = "x") -> None:
    """Plain numbers (not 2 x 10^0) at the data's own positions, at most ~10 of them."""
    from matplotlib.ticker import FixedLocator, NullLocator

    vals = sorted({float(v) for v in values if finite(v) and float(v) > 0})
    if not vals:
        return
    step = max(1, math.ceil(len(vals) / 10))
    ticks = vals[::step]
    a = ax.xaxis if axis == "x" else ax.yaxis
    a.set_major_locator(FixedLocator(ticks))
    a.set_minor_locator(NullLocator())
    a.set_ticklabels([_tick(v) for v in ticks])


def _tick(v: float) -> str:
    if v >= 10_000:
        return f"{v / 1000:.0f}k"
    return f"{v:g}"


def _subset(s: dict[str, Any], keep: list[int]) -> dict[str, Any]:
    columns = ("xs", "test_mean", "test_sd", "train_mean", "train_sd", "params")
    sub: dict[str, Any] = {k: [s[k][j] for j in keep] for k in columns}
    d = dict(s["description"])
    # marks are drawn at parameter counts: translate the marked widths
    pmap = {float(x): p for x, p in zip(s["xs"], s["params"], strict=True) if p}
    for k in ("threshold_x", "peak_x"):
        d[k] = pmap.get(float(d[k])) if d.get(k) is not None else None
    sub["xs"] = [s["params"][j] for j in keep]
    sub["description"] = d
    return sub


def _edges(c: np.ndarray) -> np.ndarray:
    """Cell edges around centres (in whatever space the centres are given)."""
    if len(c) == 1:
        return np.array([c[0] - 0.5, c[0] + 0.5])
    mid = (c[1:] + c[:-1]) / 2
    return np.concatenate([[c[0] - (mid[0] - c[0])], mid, [c[-1] + (c[-1] - mid[-1])]])


def _slug(text: str) -> str:
    import re

    return re.sub(r"[^A-Za-z0-9_.=-]+", "_", text).strip("_")[:60] or "all"
