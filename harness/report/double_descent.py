"""Double descent, measured and drawn: model-wise (width), epoch-wise and sample-wise.

Pure functions first (threshold, peak, description, heatmap), then the study reader and
the figures. The report calls two entry points:

    section = double_descent_section(study_dir)          # dict, or None (not a DD study)
    figures = double_descent_figures(study_dir, out_dir)  # [(title, png_path), ...]

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

import io
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from harness.config import flatten_dotted, get_dotted
from harness.record import StudyRecord
from harness.tracking.store import RunDir, atomic_write_bytes

WIDTH_KEY = "model.width"
SIZE_KEY = "data.train_size"
DEFAULT_TOL = 0.01  # train error <= 1% on the noisy labels counts as interpolating
DEFAULT_MIN_MARGIN = 0.005  # a rise must beat the seeds' spread and half a point of error

# ----------------------------------------------------------------------------- pure functions


def _finite(x: Any) -> bool:
    try:
        return x is not None and math.isfinite(float(x))
    except (TypeError, ValueError):
        return False


def interpolation_threshold(widths: Sequence[float], train_errors: Sequence[float],
                            tol: float = DEFAULT_TOL, largest: bool = False) -> float | None:
    """The smallest width whose train error (on the noisy labels) is <= tol, else None.

    Widths need not be sorted; missing (non-finite) errors are skipped. `largest=True`
    gives the largest x that still interpolates instead: the threshold of a train-size
    sweep, where a fixed model fits few samples exactly and many not at all.
    """
    pairs = sorted(((float(w), float(e)) for w, e in zip(widths, train_errors, strict=True)
                    if _finite(w) and _finite(e)), reverse=largest)
    for w, e in pairs:
        if e <= tol:
            return _as_number(w)
    return None


def _as_number(x: float) -> float | int:
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


def find_peak(xs: Sequence[float], test_errors: Sequence[float], smooth: int = 1) -> Peak:
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
                 if _finite(x) and _finite(y))
    if not pts:
        return Peak(False, None, None, None, None, None, None, None, 0.0)
    x = np.array([p[0] for p in pts])
    y = np.array([p[1] for p in pts])
    s = _smooth(y, smooth)
    last_x, last = _as_number(x[-1]), float(y[-1])
    best_j, best = None, -math.inf
    for j in range(1, len(y) - 1):
        score = min(s[j] - s[:j].min(), s[j] - s[-1])
        if score > best:
            best_j, best = j, score
    if best_j is None or best <= 0:
        i = int(np.argmin(y))
        return Peak(False, None, None, None, _as_number(x[i]), float(y[i]), last_x, last,
                    float(best) if best_j is not None else 0.0)
    i = int(np.argmin(y[:best_j]))
    height = float(y[best_j])
    prominence = min(height - float(y[i]), height - last)
    return Peak(True, _as_number(x[best_j]), height, best_j, _as_number(x[i]), float(y[i]),
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
                out[i, j] = float(e) if _finite(e) else np.nan
        return out
    return np.array([[float(v) if _finite(v) else np.nan for v in vals]])


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
    if peak.found:
        spread = max(out["peak_sd"] or 0.0, out["min_before_sd"] or 0.0, out["last_sd"] or 0.0)
        margin = max(spread, min_margin)
        rise_min = peak.height - peak.min_before
        rise_last = peak.height - peak.last_value
        out.update(spread=spread, margin=margin, rise_over_min=rise_min,
                   rise_over_last=rise_last,
                   observed=bool(rise_min > margin and rise_last > margin))
    out["text"] = _statement(out)
    return out


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.1f}%"


def _xs(x: float | None) -> str:
    if x is None:
        return "n/a"
    return f"{x:g}" if isinstance(x, float) else str(x)


def _statement(d: dict[str, Any]) -> str:
    """One paragraph, from the numbers only."""
    who = f"{d['label']}: " if d["label"] else ""
    xn = d["x_name"]
    seeds = (f"{d['n_seeds']} seeds (spread = largest seed sd of the three points)"
             if d["n_seeds"] > 1 else "one seed (no seed spread; a rise must exceed "
             f"{_pct(d['margin'] if d['margin'] is not None else DEFAULT_MIN_MARGIN)})")
    if d["threshold_x"] is not None:
        which = "largest" if d.get("threshold_largest") else "smallest"
        thr = (f" The interpolation threshold ({which} {xn} with train error <= "
               f"{_pct(d['tol'])} on the noisy labels) is {xn} {_xs(d['threshold_x'])}.")
    elif d.get("has_train"):
        thr = (f" No {xn} reached train error <= {_pct(d['tol'])} on the noisy labels: the "
               "interpolation threshold was not reached.")
    else:
        thr = ""
    if not d["peak_found"]:
        return (f"{who}No second descent: test error has no interior peak above both the "
                f"minimum before it and the value at the largest {xn} (lowest test error "
                f"{_pct(d['min_before'])} at {xn} {_xs(d['min_before_x'])}; "
                f"{_pct(d['last_value'])} at the largest {xn} {_xs(d['last_x'])}); "
                f"{seeds}.{thr}")
    nums = (f"test error peaks at {_pct(d['peak_height'])} (sd {_pct(d['peak_sd'])}) at {xn} "
            f"{_xs(d['peak_x'])}, up from a minimum of {_pct(d['min_before'])} (sd "
            f"{_pct(d['min_before_sd'])}) at {xn} {_xs(d['min_before_x'])} and down to "
            f"{_pct(d['last_value'])} (sd {_pct(d['last_sd'])}) at the largest {xn} "
            f"{_xs(d['last_x'])}; rises of {_pct(d['rise_over_min'])} and "
            f"{_pct(d['rise_over_last'])} against a margin of {_pct(d['margin'])} "
            f"over {seeds}")
    if d["observed"]:
        return f"{who}A second descent was observed: {nums}.{thr}"
    return (f"{who}No clear second descent: {nums}; at least one rise is within the "
            f"seeds' spread.{thr}")


def width_epoch_heatmap(runs: Iterable[Any], metric: str = "test_acc",
                        x_key: str = WIDTH_KEY) -> tuple[list, list[int], np.ndarray]:
    """Test error per (width, epoch), averaged over seeds: (widths, epochs, matrix).

    `runs`: RunDir objects, or mappings with `config` (nested or holding `x_key` dotted)
    and `rows` (per-epoch metric rows), or with `width` and `rows` directly. The matrix
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
            v, e = r.get(metric), r.get("epoch")
            if _finite(v) and _finite(e):
                err = 1.0 - float(v) if metric.endswith("acc") else float(v)
                cells.setdefault((width, int(e)), []).append(err)
    widths = sorted({w for w, _ in cells})
    epochs = sorted({e for _, e in cells})
    m = np.full((len(epochs), len(widths)), np.nan)
    wi = {w: i for i, w in enumerate(widths)}
    ei = {e: i for i, e in enumerate(epochs)}
    for (w, e), vals in cells.items():
        m[ei[e], wi[w]] = float(np.mean(vals))
    return [_as_number(w) for w in widths], epochs, m


def _width_and_rows(run: Any, x_key: str) -> tuple[float | None, list[dict[str, Any]]]:
    if isinstance(run, RunDir):
        cfg = run.config or {}
        return _num(get_dotted(cfg, x_key)), run.metrics()
    if isinstance(run, Mapping):
        rows = list(run.get("rows") or [])
        if "width" in run and x_key == WIDTH_KEY:
            return _num(run["width"]), rows
        if "x" in run:
            return _num(run["x"]), rows
        cfg = run.get("config") or {}
        v = cfg.get(x_key) if x_key in cfg else get_dotted(cfg, x_key)
        return _num(v), rows
    return None, []


def _num(v: Any) -> float | None:
    return float(v) if _finite(v) else None


# ----------------------------------------------------------------------------- study reading


@dataclass
class RunPoint:
    run_dir: RunDir
    series: str
    x: float
    seed: int
    params: float | None
    test_error: float | None
    train_error: float | None
    config: dict[str, Any] = field(default_factory=dict)


def _read_manifest(study_dir: Path) -> dict[str, Any]:
    try:
        return json.loads((Path(study_dir) / "study.json").read_text())
    except (OSError, json.JSONDecodeError, UnicodeDecodeError):
        return {}


def _design_keys(manifest: Mapping[str, Any]) -> list[str]:
    """The dotted keys a study's design varies (one_at_a_time: every key its variants set)."""
    d = manifest.get("design") or {}
    if d.get("kind") == "sweep" and d.get("parameter"):
        return [d["parameter"]]
    if d.get("kind") == "grid":
        return list((d.get("parameters") or {}).keys())
    if d.get("kind") == "one_at_a_time":
        keys: list[str] = []
        for over in (d.get("variants") or {}).values():
            keys += [k for k in _flatten("", over) if k not in keys]
        return keys
    return []


_flatten = flatten_dotted


def study_kind(study_dir: Path, manifest: Mapping[str, Any] | None = None) -> str | None:
    """'width', 'samples', 'epochs' or None (not a double-descent study).

    A study is one when its design sweeps model.width or data.train_size, or its name starts
    with "double_descent". The epoch-wise kind: the name mentions "epoch".
    """
    m = manifest if manifest is not None else _read_manifest(study_dir)
    name = str(m.get("name") or Path(study_dir).name)
    keys = _design_keys(m)
    is_dd = name.startswith("double_descent")
    if is_dd and "epoch" in name:
        return "epochs"
    if WIDTH_KEY in keys:
        return "width"
    if SIZE_KEY in keys:
        return "samples"
    if is_dd:
        return "epochs"
    return None


def _error(summary: Mapping[str, Any], metric: str) -> float | None:
    for k in (f"final_{metric}", f"last_{metric}"):
        if _finite(summary.get(k)):
            return 1.0 - float(summary[k])
    return None


def _swept_by_run_id(manifest: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """run id -> the grid/sweep point it is (so the baseline run, which dedupes a grid
    point of the same config, lands in its series). Empty when it cannot be rebuilt."""
    try:
        from harness.study.plan import resolve, variants
        from harness.study.spec import StudyConfig

        base = dict(manifest.get("base") or {})
        for k in ("study", "variant", "seed"):
            base.pop(k, None)
        study = StudyConfig.model_validate({"name": manifest["name"], "design":
                                            manifest["design"], "base": base,
                                            "seeds": manifest.get("seeds") or [0]})
        out: dict[str, dict[str, Any]] = {}
        for v in variants(study):
            if v.is_baseline:
                continue
            for seed in study.seed_list():
                rid = resolve(study, v, seed, "report").run_id()
                out.setdefault(rid, dict(v.swept))
        return out
    except Exception:  # an old or hand-edited manifest: fall back to the run's own variant
        return {}


def _series_label(swept: Mapping[str, Any], x_key: str, config: Mapping[str, Any]) -> str:
    """What a run's curve is called: the design's other axes (grid: `regularizers=none`),
    else the model's name plus its regularizers (`mlp`, `cnn + weight_decay`)."""
    parts = [f"{_short_key(k)}={v}" for k, v in swept.items() if k != x_key]
    if parts:
        return ", ".join(parts)
    name = str(get_dotted(config, "model.name") or "model")
    regs = sorted((config.get("regularizers") or {}).keys())
    return name + (f" + {', '.join(regs)}" if regs else "")


def _short_key(key: str) -> str:
    parts = key.split(".")
    return ".".join(parts[1:]) if len(parts) > 1 else key


def collect_points(study_dir: Path, x_key: str | None = None) -> tuple[str | None, list[RunPoint]]:
    """(kind, one RunPoint per finished run) of a double-descent study."""
    study_dir = Path(study_dir)
    manifest = _read_manifest(study_dir)
    kind = study_kind(study_dir, manifest)
    if kind is None:
        return None, []
    x_key = x_key or (SIZE_KEY if kind == "samples" else WIDTH_KEY)
    variants_swept = {v.get("name"): v.get("swept") or {}
                      for v in manifest.get("variants") or []}
    by_id = _swept_by_run_id(manifest)
    points: list[RunPoint] = []
    for rec in StudyRecord.load(study_dir).runs:  # trusted runs only (stale ones left out)
        rd, summary, cfg = RunDir(rec.path), rec.summary, rec.config
        if not summary or summary.get("status") not in ("completed", "stopped", "diverged"):
            continue
        swept = by_id.get(str(cfg.get("run_id") or summary.get("run_id")))
        if swept is None:
            swept = variants_swept.get(cfg.get("variant"), {})
        x = _num(get_dotted(cfg, x_key))  # None: full training set, no place on the axis
        if x is None:
            continue
        label = _series_label(swept, x_key, cfg)
        points.append(RunPoint(rd, label, x, int(cfg.get("seed") or 0),
                               _num(summary.get("params")),
                               _error(summary, "test_acc"), _error(summary, "train_eval_acc"),
                               cfg))
    return kind, points


def _series_table(points: list[RunPoint]) -> dict[str, dict[str, Any]]:
    """series -> {xs, params, test (per-x seed lists), train (per-x seed lists), runs}."""
    out: dict[str, dict[str, Any]] = {}
    for p in points:
        s = out.setdefault(p.series, {"by_x": {}})
        s["by_x"].setdefault(p.x, []).append(p)
    for s in out.values():
        xs = sorted(s["by_x"])
        s["xs"] = [_as_number(x) for x in xs]
        s["test"] = [[p.test_error for p in s["by_x"][x] if p.test_error is not None]
                     for x in xs]
        s["train"] = [[p.train_error for p in s["by_x"][x] if p.train_error is not None]
                      for x in xs]
        s["params"] = [next((p.params for p in s["by_x"][x] if p.params), None) for x in xs]
        s["runs"] = [list(s["by_x"][x]) for x in xs]
    return out


def _mean_sd(per_x: list[list[float]]) -> tuple[list[float | None], list[float | None]]:
    means, sds = [], []
    for v in per_x:
        a = np.array([x for x in v if _finite(x)], dtype=float)
        means.append(float(a.mean()) if a.size else None)
        sds.append(float(a.std(ddof=1)) if a.size > 1 else (0.0 if a.size else None))
    return means, sds


def _epoch_curves(runs: list[RunPoint], metric: str) -> tuple[list[int], np.ndarray, np.ndarray]:
    """Per epoch: mean and sd over the runs of 1 - metric."""
    by_epoch: dict[int, list[float]] = {}
    for p in runs:
        for r in p.run_dir.metrics():
            if _finite(r.get(metric)) and _finite(r.get("epoch")):
                by_epoch.setdefault(int(r["epoch"]), []).append(1.0 - float(r[metric]))
    epochs = sorted(by_epoch)
    mean = np.array([np.mean(by_epoch[e]) for e in epochs])
    sd = np.array([np.std(by_epoch[e], ddof=1) if len(by_epoch[e]) > 1 else 0.0
                   for e in epochs])
    return epochs, mean, sd


# ----------------------------------------------------------------------------- section


def double_descent_section(study_dir: Path | str, tol: float = DEFAULT_TOL) -> dict | None:
    """The numbers and statements of a double-descent study, or None when it is not one.

    Returns {
      "kind": "width" | "samples" | "epochs",
      "x_key": "model.width" | "data.train_size",
      "x_name": "width" | "train size" | "epoch",
      "title": str,
      "series": [ {"label", "xs", "params", "test_mean", "test_sd", "train_mean",
                   "train_sd", "n_seeds", "description": describe_double_descent(...) dict} ],
      "epoch_curves": [ {"label", "epochs", "test_mean", "test_sd", "train_mean",
                         "description"} ]   (epochs kind only; else []),
      "statements": [str, ...]   one paragraph per series (or epoch curve),
      "markdown": str            the statements plus a table, ready to paste,
    }
    """
    study_dir = Path(study_dir)
    kind, points = collect_points(study_dir)
    if kind is None:
        return None
    x_key = SIZE_KEY if kind == "samples" else WIDTH_KEY
    x_name = {"width": "width", "samples": "train size", "epochs": "width"}[kind]
    series_out: list[dict[str, Any]] = []
    for label, s in sorted(_series_table(points).items()):
        tm, tsd = _mean_sd(s["test"])
        rm, rsd = _mean_sd(s["train"])
        desc = describe_double_descent(
            s["xs"], s["test"], s["train"] if any(s["train"]) else None, tol=tol,
            x_name=x_name, label=label, threshold_largest=kind == "samples")
        series_out.append({"label": label, "xs": s["xs"], "params": s["params"],
                           "test_mean": tm, "test_sd": tsd, "train_mean": rm, "train_sd": rsd,
                           "n_seeds": max((len(v) for v in s["test"]), default=0),
                           "description": desc})
    epoch_out: list[dict[str, Any]] = []
    if kind == "epochs":
        for label, s in sorted(_series_table(points).items()):
            for x, runs in zip(s["xs"], s["runs"], strict=True):
                epochs, te, tsd = _epoch_curves(runs, "test_acc")
                _, tr, _ = _epoch_curves(runs, "train_eval_acc")
                if not epochs:
                    continue
                name = f"{label}, width {x}"
                per_epoch = [[1.0 - float(r["test_acc"]) for r in p.run_dir.metrics()
                              if _finite(r.get("test_acc"))] for p in runs]
                n = min(len(v) for v in per_epoch)
                desc = describe_double_descent(
                    epochs[:n], np.array([v[:n] for v in per_epoch]),
                    None, tol=tol, x_name="epoch", label=name)
                epoch_out.append({"label": name, "epochs": epochs, "test_mean": te.tolist(),
                                  "test_sd": tsd.tolist(), "train_mean": tr.tolist(),
                                  "description": desc})
    statements = [s["description"]["text"] for s in series_out
                  if kind != "epochs" or len(s["xs"]) > 2]
    statements += [e["description"]["text"] for e in epoch_out]
    title = {"width": "Double descent: test error vs width",
             "samples": "Double descent: test error vs train size",
             "epochs": "Double descent: test error vs epoch"}[kind]
    section = {"kind": kind, "x_key": x_key, "x_name": x_name if kind != "epochs" else "epoch",
               "title": title, "series": series_out, "epoch_curves": epoch_out,
               "statements": statements}
    section["markdown"] = _markdown(section)
    return section


def _markdown(section: dict[str, Any]) -> str:
    lines = [f"## {section['title']}", ""]
    lines += [f"{t}\n" for t in section["statements"]]
    rows = [s["description"] for s in section["series"]] + \
        [e["description"] for e in section["epoch_curves"]]
    if rows:
        lines += ["| series | observed | peak at | peak | min before (at) | at largest x | "
                  "spread | threshold |", "|---|---|---|---|---|---|---|---|"]
        for d in rows:
            lines.append(
                f"| {d['label']} | {'yes' if d['observed'] else 'no'} | "
                f"{_xs(d['peak_x'])} | {_pct(d['peak_height'])} | {_pct(d['min_before'])} "
                f"({_xs(d['min_before_x'])}) | {_pct(d['last_value'])} | "
                f"{_pct(d['spread'])} | {_xs(d['threshold_x'])} |")
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------- figures

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
            ax.set_xlabel(x_label)
            ax.set_ylabel("error (1 - accuracy)")
            what = "width" if kind == "width" else "train size"
            suffix = f" ({s['label']})"
            ax.set_title(f"Test and train error vs {what}{suffix}", fontsize=10)
            ax.legend(fontsize=7)
            ax.grid(alpha=0.3)
            title = f"Test and train error vs {what}{suffix}"
            out.append((title, _save(fig, out_dir / f"dd_{kind}_{_slug(s['label'])}.png")))

    if kind == "width" and any(any(p for p in s["params"]) for s in series):
        fig, ax = plt.subplots(figsize=(6.4, 4.0))
        for i, s in enumerate(series):
            keep = [j for j, p in enumerate(s["params"]) if p]
            sub = _subset(s, keep)
            _curve_panel(ax, [s["params"][j] for j in keep], sub, COLORS[i % len(COLORS)],
                         s["label"] if len(series) > 1 else "")
        ax.set_xscale("log")
        ax.set_xlabel("parameters")
        ax.set_ylabel("error (1 - accuracy)")
        ax.set_title("Test and train error vs parameter count", fontsize=10)
        ax.legend(fontsize=6)
        ax.grid(alpha=0.3)
        out.append(("Test and train error vs parameter count",
                    _save(fig, out_dir / "dd_params.png")))

    if kind == "width" and len(series) > 1:
        fig, ax = plt.subplots(figsize=(6.4, 4.0))
        for i, s in enumerate(series):
            _curve_panel(ax, s["xs"], s, COLORS[i % len(COLORS)], s["label"], train=False)
        ax.set_xscale("log")
        _log_ticks(ax, [x for s in series for x in s["xs"]])
        ax.set_xlabel(x_label)
        ax.set_ylabel("test error")
        ax.set_title("Test error vs width, overlaid", fontsize=10)
        ax.legend(fontsize=6)
        ax.grid(alpha=0.3)
        out.append(("Test error vs width, overlaid", _save(fig, out_dir / "dd_overlaid.png")))

    if kind in ("width", "epochs"):
        _, points = collect_points(study_dir)
        by_series: dict[str, list[RunPoint]] = {}
        for p in points:
            by_series.setdefault(p.series, []).append(p)
        for label, pts in sorted(by_series.items()):
            widths, epochs, m = width_epoch_heatmap(
                [{"width": p.x, "rows": p.run_dir.metrics()} for p in pts])
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
        ax.set_xlabel("epoch")
        ax.set_ylabel("error (1 - accuracy)")
        ax.set_title("Test error vs epoch", fontsize=10)
        ax.legend(fontsize=7)
        ax.grid(alpha=0.3)
        out.append(("Test error vs epoch", _save(fig, out_dir / "dd_epochs.png")))
    return out


def _log_ticks(ax: Any, values: Sequence[float], axis: str = "x") -> None:
    """Plain numbers (not 2 x 10^0) at the data's own positions, at most ~10 of them."""
    from matplotlib.ticker import FixedLocator, NullLocator

    vals = sorted({float(v) for v in values if _finite(v) and float(v) > 0})
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
    sub = {k: [s[k][j] for j in keep] for k in ("xs", "test_mean", "test_sd", "train_mean",
                                                 "train_sd", "params")}
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
