"""Reliability diagrams as small hand-written SVG: per confidence bin, the accuracy as a bar and
the mean confidence as a separate mark, each named in the legend by what it is, and below
them the share of test samples per bin (a bin with few samples says little).

SVG, not a picture of one: the report embeds it inline, so its marks are elements a browser
test can measure against the legend (tests/test_report_browser.py).

One ECE definition everywhere: each run's ECE on its test set (15 equal-width bins, Guo et
al. 2017; harness/train/calibration.py), averaged over the variant's seeds, which is the
number the tables show. The bars pool the runs' bins (weighted by count) to draw them.
"""

from __future__ import annotations

import html
import math

import numpy as np

from harness.record import RunRecord

ACC_COLOR, CONF_COLOR, HIST_COLOR, DIAG_COLOR = "#4a7fc1", "#d6452b", "#9aa5b1", "#8c8c8c"
W, H = 380, 344
LEFT, RIGHT, TOP, PLOT_H, HIST_TOP, HIST_H = 48, 12, 30, 200, 286, 50
ECE_DEFINITION = ("ECE: expected calibration error of each run on its test set, 15 "
                  "equal-width confidence bins (Guo et al. 2017), averaged over the seeds")


def pooled_bins(records: list[RunRecord]) -> dict[str, np.ndarray] | None:
    """The runs' reliability bins summed: count, and count-weighted confidence / accuracy."""
    count = conf = acc = None
    for r in records:
        b = (r.summary or {}).get("final_reliability")
        if not isinstance(b, dict) or not b.get("count"):
            continue
        c = np.asarray(b["count"], dtype=float)
        if count is None:
            count, conf, acc = np.zeros_like(c), np.zeros_like(c), np.zeros_like(c)
        if len(c) != len(count):
            continue
        count += c
        conf += c * np.asarray(b["confidence"], dtype=float)
        acc += c * np.asarray(b["accuracy"], dtype=float)
    if count is None or conf is None or acc is None or count.sum() == 0:
        return None
    safe = np.maximum(count, 1)
    return {"count": count, "confidence": conf / safe, "accuracy": acc / safe}


def mean_ece(records: list[RunRecord]) -> float:
    values = [float(e) for r in records if isinstance(e := (r.summary or {}).get("final_ece"),
                                                      (int, float)) and math.isfinite(e)]
    return float(np.mean(values)) if values else math.nan


def _x(v: float) -> float:
    return LEFT + v * (W - LEFT - RIGHT)


def _y(v: float) -> float:
    return TOP + (1 - v) * PLOT_H


def _axes_markup() -> list[str]:
    out = [f'<rect x="{LEFT}" y="{TOP}" width="{W - LEFT - RIGHT}" height="{PLOT_H}" '
           'fill="none" stroke="#c8c8c8"/>']
    for t in (0, 0.25, 0.5, 0.75, 1):
        out.append(f'<text x="{LEFT - 5}" y="{_y(t) + 4:.1f}" text-anchor="end">{t:g}</text>')
        out.append(f'<text x="{_x(t):.1f}" y="{TOP + PLOT_H + 14}" text-anchor="middle">'
                   f'{t:g}</text>')
    out.append(f'<line class="diagonal" x1="{_x(0)}" y1="{_y(0)}" x2="{_x(1)}" y2="{_y(1)}" '
               f'stroke="{DIAG_COLOR}" stroke-dasharray="4 3"/>')
    out.append(f'<text x="{_x(0.5)}" y="{TOP + PLOT_H + 28}" text-anchor="middle">'
               'confidence (max softmax probability)</text>')
    out.append(f'<text transform="translate(12 {_y(0.5)}) rotate(-90)" text-anchor="middle">'
               'accuracy / confidence</text>')
    return out


def _legend() -> list[str]:
    x, y = LEFT + 8, TOP + 10
    return [
        '<g class="legend">',
        f'<rect x="{x - 4}" y="{y - 12}" width="150" height="50" fill="white" '
        'fill-opacity="0.85"/>',
        f'<rect class="legend-swatch legend-acc" x="{x}" y="{y - 8}" width="14" height="10" '
        f'fill="{ACC_COLOR}"/>',
        f'<text class="legend-text legend-acc-text" x="{x + 20}" y="{y + 1}">accuracy '
        '(bar)</text>',
        f'<line class="legend-swatch legend-conf" x1="{x}" x2="{x + 14}" y1="{y + 13}" '
        f'y2="{y + 13}" stroke="{CONF_COLOR}" stroke-width="3"/>',
        f'<text class="legend-text legend-conf-text" x="{x + 20}" y="{y + 17}">mean '
        'confidence (mark)</text>',
        f'<line class="legend-swatch legend-diag" x1="{x}" x2="{x + 14}" y1="{y + 29}" '
        f'y2="{y + 29}" stroke="{DIAG_COLOR}" stroke-dasharray="4 3"/>',
        f'<text class="legend-text" x="{x + 20}" y="{y + 33}">perfect calibration</text>',
        '</g>']


def reliability_svg(bins: dict[str, np.ndarray], title: str) -> str:
    """The diagram of one variant: bars, marks, diagonal, legend and the sample histogram."""
    count = np.asarray(bins["count"], dtype=float)
    m = len(count)
    share = count / max(count.sum(), 1)
    width = (W - LEFT - RIGHT) / m
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" class="reliability" viewBox="0 0 {W} '
             f'{H}" width="{W}" height="{H}" role="img" aria-label="{html.escape(title)}" '
             'font-family="sans-serif" font-size="11">',
             f'<text x="{W / 2}" y="16" text-anchor="middle" font-size="12" '
             f'font-weight="600">{html.escape(title)}</text>', *_axes_markup()]
    for i in range(m):
        if count[i] == 0:
            continue
        acc, conf = float(bins["accuracy"][i]), float(bins["confidence"][i])
        x0 = LEFT + i * width
        parts.append(f'<rect class="acc-bar" data-bin="{i}" data-value="{acc:.4f}" '
                     f'x="{x0 + 1:.2f}" y="{_y(acc):.2f}" width="{width - 2:.2f}" '
                     f'height="{_y(0) - _y(acc):.2f}" fill="{ACC_COLOR}"/>')
        parts.append(f'<line class="conf-mark" data-bin="{i}" data-value="{conf:.4f}" '
                     f'x1="{x0:.2f}" x2="{x0 + width:.2f}" y1="{_y(conf):.2f}" '
                     f'y2="{_y(conf):.2f}" stroke="{CONF_COLOR}" stroke-width="3"/>')
        top = HIST_TOP + HIST_H * (1 - share[i])
        parts.append(f'<rect class="count-bar" data-bin="{i}" data-value="{share[i]:.4f}" '
                     f'x="{x0 + 1:.2f}" y="{top:.2f}" width="{width - 2:.2f}" '
                     f'height="{HIST_TOP + HIST_H - top:.2f}" fill="{HIST_COLOR}"/>')
    parts.append(f'<line x1="{LEFT}" x2="{W - RIGHT}" y1="{HIST_TOP + HIST_H}" '
                 f'y2="{HIST_TOP + HIST_H}" stroke="#c8c8c8"/>')
    parts.append(f'<text x="{LEFT}" y="{HIST_TOP - 4}">share of test samples per bin '
                 f'(tallest {share.max():.0%})</text>')
    parts += _legend()
    parts.append("</svg>")
    return "\n".join(parts)
