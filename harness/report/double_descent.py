"""Double descent, measured and drawn: model-wise (width), epoch-wise and sample-wise.

This module is the curve analysis, pure functions on numbers (threshold, peak,
description, heatmap). `double_descent_section` reads a study's points through the study
record and writes the report section; `double_descent_figures` draws it.

Errors are 1 - accuracy. "Train error" is measured in eval mode on the training samples
WITH their noisy labels (`train_eval_acc`), so 0 means the model memorised the noise:
the interpolation threshold. Test error is the final model's (`final_test_acc`, the last
epoch; with early stopping, the restored best weights), never the best epoch's.

The peak rule (`find_peak`) is documented there; a second descent is "observed" when the
peak rises above BOTH the minimum before it and the value at the largest x by more than
the seeds' spread (the largest seed standard deviation of the three points, floored by
`min_margin`).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from harness.dotted import get_dotted
from harness.record import RunRecord
from harness.record.numbers import finite, number

WIDTH_KEY = "model.width"
SIZE_KEY = "data.train_size"
Values = Sequence[float] | np.ndarray  # a curve: a list, or a row of a numpy matrix
DEFAULT_TOL = 0.01  # train error <= 1% on the noisy labels counts as interpolating
DEFAULT_MIN_MARGIN = 0.005  # a rise must beat the seeds' spread and half a point of error

# ----------------------------------------------------------------------------- pure functions


def interpolation_threshold(widths: Sequence[float], train_errors: Values,
                            tol: float = DEFAULT_TOL, largest: bool = False) -> float | None:
    """The smallest width whose train error (on the noisy labels) is <= tol, else None.

    Widths need not be sorted; missing (non-finite) errors are skipped. `largest=True`
    gives the largest x that still interpolates instead: the threshold of a train-size
    sweep, where a fixed model fits few samples exactly and many not at all.
    """
    pairs = sorted(((float(w), float(e)) for w, e in zip(widths, train_errors, strict=True)
                    if finite(w) and finite(e)), reverse=largest)
    for w, e in pairs:
        if e <= tol:
            return as_number(w)
    return None


def as_number(x: float) -> float | int:
    return int(x) if float(x).is_integer() else float(x)


@dataclass
class Peak:
    """The second-ascent peak of a test-error curve (see `find_peak` for the rule)."""

    found: bool  # a point that rises above both the minimum before it and the last value
    x: float | None  # peak location (None when not found)
    height: float | None  # test error at the peak
    index: int | None  # position in the x-sorted curve
    min_before_x: float | None  # where the minimum before the peak is
    min_before: float | None  # ... and its test error
    last_x: float | None  # the largest x
    last_value: float | None  # test error at the largest x
    prominence: float  # min(height - min_before, height - last_value); <= 0 when not found

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _smooth(y: np.ndarray, window: int) -> np.ndarray:
    """Centred running mean over `window` neighbouring points (edges use what exists)."""
    if window <= 1 or len(y) < 3:
        return y
    half = window // 2
    return np.array([np.mean(y[max(0, i - half):i + half + 1]) for i in range(len(y))])


def find_peak(xs: Sequence[float], test_errors: Values, smooth: int = 1) -> Peak:
    """Locate the peak of the second ascent in a test-error curve.

    Rule: sort by x; for every interior point j (not the first, not the last) score
    `min(y[j] - min(y[:j]), y[j] - y[-1])`, i.e. how far the point rises above the lowest
    error seen before it AND above the error at the largest x. The peak is the point with
    the highest score; it is "found" when that score is > 0. A monotone decreasing or
    increasing curve scores <= 0 everywhere and has no peak. With `smooth` > 1 the points
    are chosen on a centred running mean of that many points (less sensitive to a single
    noisy point); the reported values are always the unsmoothed ones.

    The minimum before the peak is the lowest (unsmoothed) error at x < peak x; without a
    peak, it is the lowest error of the whole curve.
    """
    pts = sorted((float(x), float(y)) for x, y in zip(xs, test_errors, strict=True)
                 if finite(x) and finite(y))
    if not pts:
        return Peak(False, None, None, None, None, None, None, None, 0.0)
    x = np.array([p[0] for p in pts])
    y = np.array([p[1] for p in pts])
    s = _smooth(y, smooth)
    last_x, last = as_number(x[-1]), float(y[-1])
    best_j, best = None, -math.inf
    for j in range(1, len(y) - 1):
        score = min(s[j] - s[:j].min(), s[j] - s[-1])
        if score > best:
            best_j, best = j, score
    if best_j is None or best <= 0:
        i = int(np.argmin(y))
        return Peak(False, None, None, None, as_number(x[i]), float(y[i]), last_x, last,
                    float(best) if best_j is not None else 0.0)
    i = int(np.argmin(y[:best_j]))
    height = float(y[best_j])
    prominence = min(height - float(y[i]), height - last)
    return Peak(True, as_number(x[best_j]), height, best_j, as_number(x[i]), float(y[i]),
                last_x, last, float(prominence))


def _as_matrix(values: Any) -> np.ndarray:
    """Seeds x points: accepts a 1-D curve (one seed), a 2-D list/array (seeds x points),
    or a list of per-point lists of seed values (ragged is fine: padded with NaN)."""
    if isinstance(values, np.ndarray):
        a = values.astype(float)
        return a[None, :] if a.ndim == 1 else a
    vals = list(values)
    if vals and all(isinstance(v, (list, tuple, np.ndarray)) for v in vals):
        # per-point lists of seeds -> transpose to seeds x points
        n = max((len(v) for v in vals), default=0)
        out = np.full((n, len(vals)), np.nan)
        for j, v in enumerate(vals):
            for i, e in enumerate(v):
                out[i, j] = float(e) if finite(e) else np.nan
        return out
    return np.array([[float(v) if finite(v) else np.nan for v in vals]])


def _stats(m: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per point: mean, sample sd (0 with one seed) and count over seeds, NaN-aware."""
    n = np.sum(np.isfinite(m), axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.nanmean(np.where(np.isfinite(m), m, np.nan), axis=0) if m.size else m
        sd = np.array([np.nanstd(m[:, j], ddof=1) if n[j] > 1 else 0.0
                       for j in range(m.shape[1])])
    return np.asarray(mean, dtype=float), sd, n


def describe_double_descent(xs: Sequence[float], test_errors: Any,
                            train_errors: Any = None, *, tol: float = DEFAULT_TOL,
                            smooth: int = 1, min_margin: float = DEFAULT_MIN_MARGIN,
                            x_name: str = "width", label: str = "",
                            threshold_largest: bool = False) -> dict[str, Any]:
    """What the data say about a second descent.

    `test_errors` / `train_errors`: per x, either one value, or the seeds' values
    (as a seeds x points matrix, or a list with one list of seed values per x).

    Returns a dict: observed, peak_x, peak_height, peak_sd, min_before_x, min_before,
    min_before_sd, last_x, last_value, last_sd, spread (the largest seed sd of the three
    points, 0 with one seed), margin (what a rise must exceed: max(spread, min_margin)),
    rise_over_min, rise_over_last, n_seeds, threshold_x (interpolation threshold or None;
    `threshold_largest`: the largest x still interpolating, for train-size sweeps),
    has_train (train errors were given), tol, peak_found (an interior peak exists at all),
    n_points,
    peak_to_threshold (peak x / threshold x), x_name, label, text (one paragraph).
    """
    xs = [float(x) for x in xs]
    test = _as_matrix(test_errors)
    if test.shape[1] != len(xs):
        raise ValueError(f"test_errors has {test.shape[1]} points for {len(xs)} x values")
    mean, sd, n = _stats(test)
    order = np.argsort(xs)
    xs_sorted = [xs[i] for i in order]
    mean, sd, n = mean[order], sd[order], n[order]
    peak = find_peak(xs_sorted, mean, smooth=smooth)
    sd_at = {x: float(s) for x, s in zip(xs_sorted, sd, strict=True)}

    threshold = None
    if train_errors is not None:
        tr_mean, _, _ = _stats(_as_matrix(train_errors))
        threshold = interpolation_threshold(xs, tr_mean, tol, largest=threshold_largest)

    n_seeds = int(n.max()) if len(n) else 0
    out: dict[str, Any] = {
        "label": label, "x_name": x_name, "n_seeds": n_seeds, "n_points": len(xs),
        "observed": False, "peak_found": peak.found,
        "peak_x": peak.x, "peak_height": peak.height,
        "peak_sd": sd_at.get(float(peak.x)) if peak.x is not None else None,
        "min_before_x": peak.min_before_x, "min_before": peak.min_before,
        "min_before_sd": (sd_at.get(float(peak.min_before_x))
                          if peak.min_before_x is not None else None),
        "last_x": peak.last_x, "last_value": peak.last_value,
        "last_sd": sd_at.get(float(peak.last_x)) if peak.last_x is not None else None,
        "threshold_x": threshold, "tol": tol, "has_train": train_errors is not None,
        "threshold_largest": threshold_largest,
        "peak_to_threshold": (float(peak.x) / float(threshold)
                              if peak.x is not None and threshold else None),
        "rise_over_min": None, "rise_over_last": None, "spread": None, "margin": None,
    }
    height, before, last = peak.height, peak.min_before, peak.last_value
    if peak.found and height is not None and before is not None and last is not None:
        spread = max(out["peak_sd"] or 0.0, out["min_before_sd"] or 0.0, out["last_sd"] or 0.0)
        margin = max(spread, min_margin)
        rise_min = height - before
        rise_last = height - last
        out.update(spread=spread, margin=margin, rise_over_min=rise_min,
                   rise_over_last=rise_last,
                   observed=bool(rise_min > margin and rise_last > margin))
    out["text"] = _statement(out)
    return out


def percent(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.1f}%"


def x_text(x: float | None) -> str:
    if x is None:
        return "n/a"
    return f"{x:g}" if isinstance(x, float) else str(x)


def _statement(d: dict[str, Any]) -> str:
    """One paragraph, from the numbers only."""
    who = f"{d['label']}: " if d["label"] else ""
    xn = d["x_name"]
    seeds = (f"{d['n_seeds']} seeds (spread = largest seed sd of the three points)"
             if d["n_seeds"] > 1 else "one seed (no seed spread; a rise must exceed "
             f"{percent(d['margin'] if d['margin'] is not None else DEFAULT_MIN_MARGIN)})")
    if d["threshold_x"] is not None:
        which = "largest" if d.get("threshold_largest") else "smallest"
        thr = (f" The interpolation threshold ({which} {xn} with train error <= "
               f"{percent(d['tol'])} on the noisy labels) is {xn} {x_text(d['threshold_x'])}.")
    elif d.get("has_train"):
        thr = (f" No {xn} reached train error <= {percent(d['tol'])} on the noisy labels: the "
               "interpolation threshold was not reached.")
    else:
        thr = ""
    if not d["peak_found"]:
        return (f"{who}No second descent: test error has no interior peak above both the "
                f"minimum before it and the value at the largest {xn} (lowest test error "
                f"{percent(d['min_before'])} at {xn} {x_text(d['min_before_x'])}; "
                f"{percent(d['last_value'])} at the largest {xn} {x_text(d['last_x'])}); "
                f"{seeds}.{thr}")
    nums = (f"test error peaks at {percent(d['peak_height'])} (sd {percent(d['peak_sd'])}) at {xn} "
            f"{x_text(d['peak_x'])}, up from a minimum of {percent(d['min_before'])} (sd "
            f"{percent(d['min_before_sd'])}) at {xn} {x_text(d['min_before_x'])} and down to "
            f"{percent(d['last_value'])} (sd {percent(d['last_sd'])}) at the largest {xn} "
            f"{x_text(d['last_x'])}; rises of {percent(d['rise_over_min'])} and "
            f"{percent(d['rise_over_last'])} against a margin of {percent(d['margin'])} "
            f"over {seeds}")
    if d["observed"]:
        return f"{who}A second descent was observed: {nums}.{thr}"
    return (f"{who}No clear second descent: {nums}; at least one rise is within the "
            f"seeds' spread.{thr}")


def width_epoch_heatmap(runs: Iterable[Any], metric: str = "test_acc",
                        x_key: str = WIDTH_KEY) -> tuple[list, list[int], np.ndarray]:
    """Test error per (width, epoch), averaged over seeds: (widths, epochs, matrix).

    `runs`: RunRecord objects (the study record's runs), or mappings with `config` (nested
    or holding `x_key` dotted) and `rows` (per-epoch metric rows), or with `width` and `rows`
    directly. The matrix
    has shape (len(epochs), len(widths)), rows = epochs ascending, columns = widths
    ascending; error = 1 - `metric` (an *_acc metric) or the metric itself (a loss or error).
    Cells no run reached (a run that stopped early) are NaN.
    """
    cells: dict[tuple[float, int], list[float]] = {}
    for run in runs:
        width, rows = _width_and_rows(run, x_key)
        if width is None:
            continue
        for r in rows:
            v, e = number(r.get(metric)), number(r.get("epoch"))
            if v is not None and e is not None:
                err = 1.0 - v if metric.endswith("acc") else v
                cells.setdefault((width, int(e)), []).append(err)
    widths = sorted({w for w, _ in cells})
    epochs = sorted({e for _, e in cells})
    m = np.full((len(epochs), len(widths)), np.nan)
    wi = {w: i for i, w in enumerate(widths)}
    ei = {e: i for i, e in enumerate(epochs)}
    for (w, e), vals in cells.items():
        m[ei[e], wi[w]] = float(np.mean(vals))
    return [as_number(w) for w in widths], epochs, m


def _width_and_rows(run: Any, x_key: str) -> tuple[float | None, list[dict[str, Any]]]:
    if isinstance(run, RunRecord):
        return number(get_dotted(run.config, x_key)), metric_rows(run)
    if isinstance(run, Mapping):
        rows = list(run.get("rows") or [])
        if "width" in run and x_key == WIDTH_KEY:
            return number(run["width"]), rows
        if "x" in run:
            return number(run["x"]), rows
        cfg = run.get("config") or {}
        v = cfg.get(x_key) if x_key in cfg else get_dotted(cfg, x_key)
        return number(v), rows
    return None, []


def metric_rows(run: RunRecord) -> list[dict[str, Any]]:
    """The run's metrics.csv rows as the record read them."""
    return run.metrics.to_dict("records") if len(run.metrics) else []
