"""A study's double descent: its points, read through `StudyRecord` (the single reader), and
the report section that `double_descent.describe_double_descent` writes about each curve.

    section = double_descent_section(study_dir)   # dict, or None (not a DD study)

Which double descent a study shows comes from its design: a design that varies model.width
(width-wise) or data.train_size (sample-wise), or the study file's
`analysis: double_descent_epochs` (epoch-wise; also double_descent_width / _samples), never
from its name. Test error is the final model's; train error is on the noisy labels.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from harness.dotted import flatten_dotted, get_dotted
from harness.record import RunRecord, StudyRecord
from harness.record.numbers import finite, number
from harness.record.params import param_label, swept_parameters
from harness.record.schema import Manifest, read_manifest
from harness.report.double_descent import (
    DEFAULT_TOL,
    SIZE_KEY,
    WIDTH_KEY,
    as_number,
    describe_double_descent,
    metric_rows,
    percent,
    x_text,
)

# `analysis:` in a study file -> the kind of double descent it shows
ANALYSES = {"double_descent_width": "width", "double_descent_samples": "samples",
            "double_descent_epochs": "epochs"}


@dataclass
class RunPoint:
    run: RunRecord
    series: str
    x: float
    seed: int
    params: float | None
    test_error: float | None
    train_error: float | None
    config: dict[str, Any] = field(default_factory=dict)


def _design_keys(design: Mapping[str, Any]) -> list[str]:
    """The dotted keys a study's design varies (one_at_a_time: every key its variants set)."""
    if design.get("kind") in ("sweep", "grid"):
        return swept_parameters(design)
    if design.get("kind") == "one_at_a_time":
        keys: list[str] = []
        for over in (design.get("variants") or {}).values():
            keys += [k for k in flatten_dotted("", over) if k not in keys]
        return keys
    return []


def study_kind(study_dir: Path, manifest: Manifest | None = None) -> str | None:
    """'width', 'samples', 'epochs' or None (not a double-descent study), from the study's
    design: its `analysis` when the study file names one, else what the design varies
    (model.width: width-wise, data.train_size: sample-wise)."""
    m = manifest if manifest is not None else read_manifest(study_dir)
    if m is None:
        return None
    if m.analysis in ANALYSES:
        return ANALYSES[m.analysis]
    keys = _design_keys(m.design or {})
    if WIDTH_KEY in keys:
        return "width"
    if SIZE_KEY in keys:
        return "samples"
    return None


def _error(summary: Mapping[str, Any], metric: str) -> float | None:
    for k in (f"final_{metric}", f"last_{metric}"):
        if finite(summary.get(k)):
            return 1.0 - float(summary[k])
    return None


def _series_label(swept: Mapping[str, Any], x_key: str, config: Mapping[str, Any]) -> str:
    """What a run's curve is called: the design's other axes (grid: `regularizers=none`),
    else the model's name plus its regularizers (`mlp`, `cnn + weight_decay`)."""
    parts = [f"{param_label(k).short}={v}" for k, v in swept.items() if k != x_key]
    if parts:
        return ", ".join(parts)
    name = str(get_dotted(config, "model.name") or "model")
    regs = sorted((config.get("regularizers") or {}).keys())
    return name + (f" + {', '.join(regs)}" if regs else "")


def collect_points(study_dir: Path,
                   x_key: str | None = None) -> tuple[str | None, list[RunPoint]]:
    """(kind, one RunPoint per finished trusted run) of a double-descent study."""
    record = StudyRecord.load(Path(study_dir))
    kind = study_kind(Path(study_dir), record.manifest) if record.manifest else None
    if kind is None:
        return None, []
    x_key = x_key or (SIZE_KEY if kind == "samples" else WIDTH_KEY)
    swept_of = {v.name: v.params for v in record.variants}
    points: list[RunPoint] = []
    for rec in record.runs:  # trusted runs only (stale ones left out)
        summary, cfg = rec.summary, rec.config
        if not summary or summary.get("status") not in ("completed", "stopped", "diverged"):
            continue
        swept = swept_of.get(rec.variant) or {}
        x = number(get_dotted(cfg, x_key))  # None: full training set, no place on the axis
        if x is None:
            continue
        label = _series_label(swept, x_key, cfg)
        points.append(RunPoint(rec, label, x, rec.seed, number(summary.get("params")),
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
        s["xs"] = [as_number(x) for x in xs]
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
        a = np.array([x for x in v if finite(x)], dtype=float)
        means.append(float(a.mean()) if a.size else None)
        sds.append(float(a.std(ddof=1)) if a.size > 1 else (0.0 if a.size else None))
    return means, sds


def _epoch_curves(runs: list[RunPoint], metric: str) -> tuple[list[int], np.ndarray, np.ndarray]:
    """Per epoch: mean and sd over the runs of 1 - metric."""
    by_epoch: dict[int, list[float]] = {}
    for p in runs:
        for r in metric_rows(p.run):
            if finite(r.get(metric)) and finite(r.get("epoch")):
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
                epochs, ep_te, ep_tsd = _epoch_curves(runs, "test_acc")
                _, ep_tr, _ = _epoch_curves(runs, "train_eval_acc")
                if not epochs:
                    continue
                name = f"{label}, width {x}"
                per_epoch = [[1.0 - float(r["test_acc"]) for r in metric_rows(p.run)
                              if finite(r.get("test_acc"))] for p in runs]
                n = min(len(v) for v in per_epoch)
                desc = describe_double_descent(
                    epochs[:n], np.array([v[:n] for v in per_epoch]),
                    None, tol=tol, x_name="epoch", label=name)
                epoch_out.append({"label": name, "epochs": epochs, "test_mean": ep_te.tolist(),
                                  "test_sd": ep_tsd.tolist(), "train_mean": ep_tr.tolist(),
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
                f"{x_text(d['peak_x'])} | {percent(d['peak_height'])} | {percent(d['min_before'])} "
                f"({x_text(d['min_before_x'])}) | {percent(d['last_value'])} | "
                f"{percent(d['spread'])} | {x_text(d['threshold_x'])} |")
    return "\n".join(lines) + "\n"
