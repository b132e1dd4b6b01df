"""Which figures a report draws, in which order, and how they reach report.html (PNG as data
URIs, SVG inline) and report.md (files under figures/).

The lead figures (forest plot, the overlay of every variant's curves, the sweep) come right
after the compact table; the per-variant curves, the gap and the reliability diagrams follow
the detail tables.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from harness.record import StudyRecord
from harness.record.disk import atomic_write_bytes
from harness.record.layout import FIGURES
from harness.record.numbers import finite, number_or_nan
from harness.report import figures, paper_figures, reliability, weights
from harness.report.paper_figures import Pairing
from harness.report.parallel_draw import run_tasks

FIGURE_DIR = FIGURES
Labeler = Callable[[str], str]


@dataclass
class Plan:
    """What the figures need besides the tables."""

    study: StudyRecord
    summary: pd.DataFrame
    runs: pd.DataFrame
    curves: dict[str, pd.DataFrame]
    order: list[str]
    label: Labeler
    chosen: str | None
    metric: str
    reference: str
    margin: float
    phrase: str
    param_label: str | None
    select: str = "val_acc"


def markers(study: StudyRecord, runs: pd.DataFrame,
            select: str) -> dict[str, list[tuple[float, str]]]:
    """Vertical lines on the curves: the mean best-val checkpoint epoch (named by what chose
    it), and with early stopping the mean restored and stop epochs."""
    out: dict[str, list[tuple[float, str]]] = {}
    inc = runs[runs["included"].astype(bool)]
    for v in study.variants:
        marks = []
        best = inc.loc[inc["variant"] == v.name, "best_epoch"].astype(float).dropna()
        if len(best):
            marks.append((float(best.mean()), f"best-val checkpoint ({select.replace('_', ' ')})"))
        restored = weights.restored_epochs(study.runs_of(v.name))
        if restored and weights.restores(weights.regularizers_of(study, v.name)):
            marks.append((float(np.mean(restored)), "restored epoch (early stopping)"))
        stops = [s for r in study.runs_of(v.name)
                 if finite(s := number_or_nan((r.summary or {}).get("stop_epoch")))]
        if stops:
            marks.append((float(np.mean(stops)), "early stop"))
        out[v.name] = marks
    return out


def _reliability(p: Plan) -> figures.Figure | None:
    panels = []
    for v in p.order[:figures.MAX_PANELS]:
        records = p.study.runs_of(v)
        bins = reliability.pooled_bins(records)
        if bins is None:
            continue
        ece = reliability.mean_ece(records)
        title = f"{p.label(v)}: ECE {ece:.3f} (mean of {len(records)} run(s))"
        svg = reliability.reliability_svg(bins, title)
        panels.append(figures.Panel(f"reliability_{figures._slug(v)}", title, svg.encode(),
                                    "svg"))
    if not panels:
        return None
    return figures.Figure("reliability", "Reliability diagrams (test set, final model)",
                          "Per confidence bin: accuracy (bar) and mean confidence (mark), the "
                          "runs' bins pooled; a mark above its bar is over-confidence, below it "
                          "under-confidence; the diagonal is perfect calibration; below, the "
                          f"share of test samples per bin. {reliability.ECE_DEFINITION}.",
                          panels)


def draw(p: Plan) -> tuple[list[figures.Figure], list[figures.Figure]]:
    """(lead figures, the rest), each list in reading order."""
    pairing = Pairing(p.runs, p.metric, p.reference, p.study.baseline) \
        if p.study.baseline else None
    marks = markers(p.study, p.runs, p.select)
    base = p.study.baseline
    tasks: list[Callable[[], Any]] = [  # the longest first (forked.py)
        lambda: figures.curves_figure(p.curves, p.order, base, "acc", p.label, marks),
        lambda: figures.curves_figure(p.curves, p.order, base, "loss", p.label, marks),
        lambda: paper_figures.overlay_figure(p.curves, p.order, base, p.chosen, p.label),
        lambda: paper_figures.forest_figure(p.summary, pairing, p.margin, p.chosen, p.label,
                                            p.phrase) if pairing else None,
        lambda: paper_figures.sweep_figure(p.summary, pairing, p.param_label,
                                           p.study.design.get("baseline_value"), p.margin,
                                           p.phrase) if pairing and p.param_label else None,
        lambda: figures.gap_figure(p.curves, p.order, base, p.label),
        lambda: _reliability(p),
    ]
    d = run_tasks(tasks)
    lead = [f for f in (d[3], d[2], d[4]) if f is not None]
    rest = [f for f in (d[0], d[1], d[5], d[6]) if f is not None]
    return lead, rest


def write(figs: list[figures.Figure], fig_dir: Path) -> list[Path]:
    paths = []
    for f in figs:
        for panel in f.panels:
            path = fig_dir / f"{panel.name}.{panel.kind}"
            atomic_write_bytes(path, panel.png)
            paths.append(path)
    if fig_dir.is_dir():  # figures this build no longer draws would mislead readers of report.md
        for stale in [*fig_dir.glob("*.png"), *fig_dir.glob("*.svg")]:
            if stale not in paths:
                stale.unlink(missing_ok=True)
    return paths


def for_html(figs: list[figures.Figure]) -> list[dict[str, Any]]:
    return [{"title": f.title, "caption": f.caption, "name": f.name,
             "panels": [{"label": p.label, "kind": p.kind,
                         "svg": p.png.decode() if p.kind == "svg" else "",
                         "src": "" if p.kind == "svg" else "data:image/png;base64,"
                         + base64.b64encode(p.png).decode("ascii")} for p in f.panels]}
            for f in figs]


def for_markdown(figs: list[figures.Figure]) -> list[dict[str, Any]]:
    return [{"title": f.title, "caption": f.caption,
             "panels": [{"label": p.label, "src": f"{FIGURE_DIR}/{p.name}.{p.kind}"}
                        for p in f.panels]} for f in figs]
