"""The report's bias-variance section: per variant the decompositions of its runs' saved test
probabilities (harness/report/bias_variance.py), a table, statements computed from it, and
bias and variance against width next to test error.

Shown for studies with `data_seeds` (each variant trained on resampled training sets): then
the variance is over training sets and initialisations, as in Domingos (2000) and Yang et al.
(2020). Test labels are never noised (label noise goes into training labels only), so the
noise term is 0 and the 0-1 error is bias + net variance.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from harness.record.load import StudyRecord
from harness.report.bias_variance import decompose
from harness.train.analysis import load_probabilities

TEST_LABEL_NOISE = 0.0  # test labels are the dataset's own: no injected noise


def variant_rows(record: StudyRecord) -> tuple[list[dict[str, Any]], list[str]]:
    """One row of decompositions per variant with >= 2 runs that kept probabilities, and
    notes on the variants left out (with why)."""
    rows, notes = [], []
    for v in record.variants:
        runs = record.runs_of(v.name)
        saved = [(r, s) for r in runs if (s := load_probabilities(r.path)) is not None]
        if len(saved) < 2:
            notes.append(f"{v.name}: {len(saved)} run(s) with saved test probabilities "
                         "(2 or more needed)")
            continue
        labels = saved[0][1][1]
        if any(not np.array_equal(s[1], labels) for _, s in saved):
            notes.append(f"{v.name}: its runs were scored on different test labels")
            continue
        probs = np.stack([s[0] for _, s in saved]).astype(np.float64)
        config = saved[0][0].config
        data_seeds = {(r.config.get("data") or {}).get("seed") for r, _ in saved}
        rows.append({"variant": v.name, "is_baseline": v.is_baseline,
                     "width": (config.get("model") or {}).get("width"),
                     "data_seeds": len(data_seeds),
                     **decompose(probs, labels, TEST_LABEL_NOISE)})
    return rows, notes


def _f(x: float) -> str:
    return f"{x:.3f}" if math.isfinite(x) else "n/a"


def table(rows: list[dict[str, Any]]) -> list[str]:
    lines = ["| variant | width | models (training sets) | test error | 0-1 bias | 0-1 variance "
             "| 0-1 net variance | noise | MSE bias² | MSE variance | CE bias | CE variance |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        name = f"{r['variant']}{' (baseline)' if r['is_baseline'] else ''}"
        lines.append(
            f"| {name} | {r['width'] if r['width'] is not None else 'default'} | "
            f"{int(r['models'])} ({r['data_seeds']}) | {_f(r['zero_one_clean_error'])} | "
            f"{_f(r['zero_one_bias'])} | {_f(r['zero_one_variance'])} | "
            f"{_f(r['zero_one_net_variance'])} | {_f(r['zero_one_noise'])} | "
            f"{_f(r['mse_bias'])} | {_f(r['mse_variance'])} | {_f(r['ce_bias'])} | "
            f"{_f(r['ce_variance'])} |")
    return lines


def by_width(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rows sorted by width when variants differ in width (else [])."""
    widths = [r["width"] for r in rows]
    if any(not isinstance(w, int) for w in widths) or len(set(widths)) < 2:
        return []
    return sorted(rows, key=lambda r: r["width"])


def statements(rows: list[dict[str, Any]]) -> list[str]:
    """What the numbers say, computed from them."""
    ordered = by_width(rows)
    if len(ordered) < 3:
        return []
    widths = [r["width"] for r in ordered]

    def peak(key: str) -> tuple[int, float]:
        i = int(np.argmax([r[key] for r in ordered]))
        return widths[i], ordered[i][key]

    vw, vv = peak("zero_one_variance")
    ew, ev = peak("zero_one_clean_error")
    mw, mv = peak("mse_variance")
    first, last = ordered[0], ordered[-1]
    where = ("at the smallest width" if vw == widths[0] else "at the largest width"
             if vw == widths[-1] else "at an intermediate width (a peak, then a fall)")
    same = "the same width as" if vw == ew else f"not the width of (test error peaks at {ew})"
    return [
        f"0-1 variance is largest at width {vw} ({vv:.3f}), {where}; that is {same} the "
        f"highest test error ({ev:.3f} at width {ew}). The squared-loss variance on "
        f"probabilities peaks at width {mw} ({mv:.3f}).",
        f"0-1 bias goes from {first['zero_one_bias']:.3f} at width {widths[0]} to "
        f"{last['zero_one_bias']:.3f} at width {widths[-1]}; squared-loss bias² from "
        f"{first['mse_bias']:.3f} to {last['mse_bias']:.3f}.",
    ]


def figures(rows: list[dict[str, Any]], fig_dir: Path) -> list[dict[str, Any]]:
    """Bias and variance against width (or variant) next to test error: 0-1 and squared loss."""
    from harness.record.disk import atomic_write_bytes
    from harness.report.figures import _axes, _finish

    ordered = by_width(rows)
    numeric = bool(ordered)
    ordered = ordered or rows
    xs = [r["width"] for r in ordered] if numeric else list(range(len(ordered)))
    panels = {"zero_one": ("0-1 loss (Domingos 2000)", [
        ("zero_one_clean_error", "test error"), ("zero_one_bias", "bias"),
        ("zero_one_variance", "variance"), ("zero_one_net_variance", "net variance")]),
        "mse": ("squared loss on probabilities (Yang et al. 2020)", [
            ("mse_loss", "expected MSE"), ("mse_bias", "bias²"), ("mse_variance", "variance")])}
    out = []
    for name, (title, series) in panels.items():
        fig, ax = _axes()
        for key, label in series:
            ax.plot(xs, [r[key] for r in ordered], marker="o", label=label)
        if numeric:
            ax.set_xscale("log", base=2)
        else:
            ax.set_xticks(xs, [r["variant"] for r in ordered], rotation=30, ha="right")
        png = _finish(fig, ax, title, "width" if numeric else "variant", "mean over test set")
        path = fig_dir / "bias_variance" / f"{name}.png"
        atomic_write_bytes(path, png)
        out.append({"title": f"Bias and variance: {title}", "path": path})
    return out


def section(study_dir: Path, fig_dir: Path) -> dict[str, Any] | None:
    """The section, or None for a study without data seeds."""
    record = StudyRecord.load(study_dir)
    if not (record.meta or {}).get("data_seeds"):
        return None
    rows, notes = variant_rows(record)
    text = ["Each variant's models were trained on resampled training sets (data seeds "
            f"{(record.meta or {}).get('data_seeds')}) and initialisations; the decompositions "
            "use their saved test-set probabilities. 0-1 loss: Domingos (2000); main prediction "
            "= the most frequent label over models, bias = main prediction wrong, variance = "
            "P(prediction differs from the main one), net variance = variance where the main "
            "prediction is right minus P(right) where it is wrong, so test error = bias + net "
            "variance + noise. Noise is 0: test labels carry no injected noise. Squared loss "
            "and cross-entropy on probabilities: Yang et al. (2020) (CE bias uses the "
            "normalised geometric mean of the models' probabilities).", ""]
    if rows:
        text += [*statements(rows), "", *table(rows)]
    text += [f"Left out: {n}." for n in notes]
    return {"title": "Bias-variance decomposition", "markdown": "\n".join(text).strip(),
            "figures": figures(rows, fig_dir) if rows else []}
