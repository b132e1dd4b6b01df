"""The study-level W&B run: one run per study (job_type `report`, group = study name) holding
the comparison table (the report's summary table), every report figure and native line plots
of the sweep (and of double descent for width sweeps). Never raises.

It reads the study through `StudyRecord` (the single reader), so W&B shows the same runs the
report does; the local store (results/<study>/) stays the source of truth.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from harness.record import RunRecord, StudyRecord
from harness.record.disk import atomic_write_json
from harness.record.layout import FIGURES, REPORT_HTML, REPORT_MD, SUMMARY_CSV
from harness.record.load import read_json
from harness.record.numbers import number
from harness.record.params import param_label, swept_parameters
from harness.record.schema import Manifest, read_manifest
from harness.study.runs_table import runs_table
from harness.tracking.wandb_client import WandbRun
from harness.tracking.wandb_tracker import variant_params

log = logging.getLogger(__name__)

REPORT_JOB_TYPE = "report"
HEADLINE_METRIC = "best_test_acc"  # test accuracy at the best-val epoch (loop summary)
HEADLINE_SUMMARY_KEY = "test_acc_at_best_val"  # the same, as WandbRun writes it to W&B
WANDB_LINKS = "wandb.json"  # results/<study>/wandb.json: study run, report URL, for the report
# Double-descent curves: errors are 1 - accuracy; "test error" is the final model's (as the
# report's double-descent section), train error is measured on the noisy training labels.
DD_SERIES = (("final", "test error"), ("train", "train error (noisy labels)"),
             ("best", "test error at best-val epoch"))
DD_SOURCES = {"final": ("final_test_acc", "last_test_acc"),
              "train": ("final_train_eval_acc", "last_train_eval_acc"),
              "best": (HEADLINE_METRIC,)}




def summarized(record: StudyRecord) -> list[RunRecord]:
    """Every trusted run that has a summary (finished or not): what W&B shows of a study."""
    return [r for r in record.runs if r.summary]


def study_tracking(study_dir: Path) -> dict[str, Any]:
    """mode / project / entity of a study, from study.json's base.tracking (config defaults)."""
    manifest = read_manifest(study_dir)
    tracking = (manifest.base if manifest else {}).get("tracking") or {}
    return {"mode": tracking.get("wandb") or "auto",
            "project": tracking.get("project") or "harness",
            "entity": tracking.get("entity") or None}


# ----------------------------------------------------------------------------- tables


def comparison_frame(study_dir: Path) -> Any:
    """The study's comparison table: summary.csv when the report wrote it, else the same
    table computed from the study record by the report's `summary_table` (one place
    computes the means). pandas and the report load here, when a study run is written."""
    import pandas as pd

    csv = Path(study_dir) / SUMMARY_CSV
    if csv.is_file():
        try:
            return pd.read_csv(csv)
        except Exception:  # empty or half-written file: rebuild below.
            log.debug("cannot read %s", csv, exc_info=True)
    from harness.report import tables

    study = tables.load_study(Path(study_dir))
    return tables.summary_table(study, runs_table(study))


def _table_rows(frame: Any) -> tuple[list[str], list[list[Any]]]:
    """Columns and JSON-safe rows (NaN -> None, numpy scalars -> Python)."""
    columns = [str(c) for c in frame.columns]
    rows = []
    for record in frame.itertuples(index=False):
        row = []
        for value in record:
            if hasattr(value, "item"):
                value = value.item()
            if isinstance(value, float) and not math.isfinite(value):
                value = None
            row.append(value)
        rows.append(row)
    return columns, rows


@dataclass
class Curve:
    """A native W&B line plot: `wandb.plot.line(Table(columns, rows), x, y, stroke)`."""

    key: str
    title: str
    x: str
    y: str
    columns: list[str]
    rows: list[list[Any]]
    stroke: str | None = None


def safe_key(text: str) -> str:
    return "".join(c if c.isalnum() or c in "_-/" else "_" for c in text)


def _mean(values: list[float]) -> float:
    return sum(values) / len(values)


def study_curves(study_dir: Path, runs: list[RunRecord] | None = None,
                 manifest: Manifest | None = None) -> list[Curve]:
    """Sweep curves (mean best_test_acc vs each numeric swept parameter) and, for width
    sweeps, the double-descent curves (test error of the final model, train error on the
    noisy labels and test error at the best-val epoch, vs width)."""
    if runs is None or manifest is None:
        record = StudyRecord.load(study_dir)
        runs, manifest = summarized(record), record.manifest
    params = swept_parameters(manifest.design if manifest else None)
    if not params:
        return []
    by_variant: dict[str, dict[str, Any]] = {}
    for r in runs:
        if r.variant not in by_variant:
            by_variant[r.variant] = variant_params(manifest, r.variant)
    curves = []
    for param in params:
        axis = param_label(param).short
        others = [p for p in params if p != param]
        points: dict[tuple[float, str], dict[str, list[float]]] = {}
        for r in runs:
            summary = r.summary or {}
            if summary.get("status") not in (None, "completed", "stopped"):
                continue
            x = number(by_variant[r.variant].get(param))
            if x is None:
                continue
            mine = by_variant[r.variant]
            series = ",".join(f"{param_label(o).short}={mine.get(o)}" for o in others)
            bucket = points.setdefault((x, series), {k: [] for k, _ in DD_SERIES})
            for k, _ in DD_SERIES:
                value = next((v for s in DD_SOURCES[k] if (v := number(summary.get(s)))
                              is not None), None)
                if value is not None:
                    bucket[k].append(value)
        if len({x for x, _ in points}) < 2:
            continue
        ordered = sorted(points.items())
        stroke = "series" if others else None
        rows = [[x, _mean(b["best"]), len(b["best"])] + ([s] if stroke else [])
                for (x, s), b in ordered if b["best"]]
        curves.append(Curve(
            key=safe_key(f"sweep/{HEADLINE_METRIC}_vs_{axis}"),
            title=f"Test accuracy at best-val epoch vs {axis} (mean over seeds)",
            x=axis, y=f"mean_{HEADLINE_METRIC}",
            columns=[axis, f"mean_{HEADLINE_METRIC}", "n"] + ([stroke] if stroke else []),
            rows=rows, stroke=stroke))
        if axis == "width":
            dd_rows = []
            for (x, s), b in ordered:
                for k, name in DD_SERIES:
                    if b[k]:
                        dd_rows.append([x, 1.0 - _mean(b[k]), f"{s}, {name}" if s else name])
            curves.append(Curve(key="double_descent/error_vs_width",
                                title="Double descent: error vs width (mean over seeds)",
                                x="width", y="error", columns=["width", "error", "curve"],
                                rows=dd_rows, stroke="curve"))
    return curves


# ----------------------------------------------------------------------------- study run


@dataclass
class StudyRunInfo:
    """What log_study_run did; `failed`/`error` follow WandbRun's policy (warned once)."""

    study: str
    mode: str
    failed: bool = False
    error: str | None = None
    run_dir: str | None = None
    url: str | None = None
    sync_command: str | None = None
    report_path: str | None = None
    table_rows: int = 0
    images: list[str] = field(default_factory=list)
    plots: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def local_report_path(study_dir: Path) -> Path:
    """report.html when built, else report.md, else where report.html will be."""
    study_dir = Path(study_dir).resolve()
    for name in (REPORT_HTML, REPORT_MD):
        if (study_dir / name).is_file():
            return study_dir / name
    return study_dir / REPORT_HTML


def log_study_run(study_dir: Path, *, mode: str, project: str, entity: str | None,
                  tracker_factory: Callable[..., Any] | None = None) -> StudyRunInfo:
    """Write the study-level W&B run (job_type `report`, group = study, name `<study>-report`).

    Logs, in one history row: `comparison` (wandb.Table of summary.csv or a minimal table),
    `figures/<name>` (wandb.Image per results/<study>/figures/*.png), and one native line
    plot per sweep curve (`sweep/...`, `double_descent/...`). config and summary carry
    `report_path` (absolute path of the local report) and `report_url` (file:// URL).
    Never raises: a failure is one warning and `info.failed`.
    """
    study_dir = Path(study_dir)
    record = StudyRecord.load(study_dir)
    manifest, name = record.manifest, record.name
    report = local_report_path(study_dir)
    info = StudyRunInfo(study=name, mode=mode, report_path=str(report))
    tracker = None
    try:
        runs = summarized(record)
        frame = comparison_frame(study_dir)
        figures = sorted((study_dir / FIGURES).glob("*.png"))
        config = {"study": name, "report_path": str(report), "report_url": report.as_uri(),
                  "design": manifest.design if manifest else None,
                  "description": manifest.description if manifest else None,
                  "n_runs": len(runs), "variants": sorted({r.variant for r in runs})}
        tracker = (tracker_factory or WandbRun)(
            mode=mode, project=project, entity=entity, group=name, job_type=REPORT_JOB_TYPE,
            name=f"{name}-report", tags=["study-report"], config=config,
            run_id=f"{name}-report", root=study_dir, epoch_metrics=False)
        info.mode = tracker.mode
        if tracker.mode == "disabled" or tracker.failed:
            return _finish_info(info, tracker)
        data = _study_payload(frame, figures, study_curves(study_dir, runs, manifest), info)
        tracker.log(data)
        summary = {"report_path": str(report), "report_url": report.as_uri(),
                   "n_runs": len(runs), "n_variants": int(len(frame))}
        best_key = f"{HEADLINE_METRIC}_mean"
        if len(frame) and best_key in frame.columns:
            best = frame.sort_values(best_key, ascending=False, na_position="last").iloc[0]
            if number(best[best_key]) is not None:
                summary.update(best_variant=str(best["variant"]),
                               best_variant_test_acc=float(best[best_key]))
        tracker.set_summary(summary)
    except Exception as exc:
        _warn_once(info, f"W&B study run failed: {type(exc).__name__}: {exc}")
    finally:
        if tracker is not None:
            tracker.finish(exit_code=1 if info.failed else 0)
    return _finish_info(info, tracker)


def _study_payload(frame: Any, figures: list[Path], curves: list[Curve],
                   info: StudyRunInfo) -> dict[str, Any]:
    import wandb

    columns, rows = _table_rows(frame)
    data: dict[str, Any] = {"comparison": wandb.Table(columns=list[str | int](columns), data=rows,
                                                      allow_mixed_types=True)}
    info.table_rows = len(rows)
    for path in figures:
        key = f"figures/{safe_key(path.stem)}"
        data[key] = wandb.Image(str(path), caption=path.stem.replace("_", " "))
        info.images.append(key)
    for curve in curves:
        table = wandb.Table(columns=list[str | int](curve.columns), data=curve.rows,
                            allow_mixed_types=True)
        data[curve.key] = wandb.plot.line(table, curve.x, curve.y, stroke=curve.stroke,
                                          title=curve.title)
        info.plots.append(curve.key)
    return data


def _finish_info(info: StudyRunInfo, tracker: Any) -> StudyRunInfo:
    if tracker is not None:
        info.mode = getattr(tracker, "mode", info.mode)
        tinfo = getattr(tracker, "info", {}) or {}
        run_dir = getattr(tracker, "run_dir", None)
        info.run_dir = str(run_dir) if run_dir else info.run_dir
        info.url = tinfo.get("url") or info.url
        info.sync_command = tinfo.get("sync_command") or info.sync_command
        if getattr(tracker, "failed", False):
            info.failed = True
            info.error = info.error or tinfo.get("error")
    return info


def _warn_once(info: StudyRunInfo, message: str) -> None:
    if not info.failed:
        log.warning("%s; the local report is unaffected", message)
    info.failed = True
    info.error = info.error or message


def write_wandb_links(study_dir: Path, **entries: Any) -> Path:
    """Merge entries (study_run, report_url, report_hint) into results/<study>/wandb.json,
    where the local report can pick the W&B links up."""
    path = Path(study_dir) / WANDB_LINKS
    data = read_json(path) or {}
    data.update({k: v for k, v in entries.items() if v is not None})
    atomic_write_json(path, data)
    return path


