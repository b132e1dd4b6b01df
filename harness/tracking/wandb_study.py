"""A study as a readable W&B dashboard: the study-level run, the Report spec, and sync.

- `log_study_run`: one W&B run per study (job_type `report`, group = study name) holding the
  comparison table, every report figure, native line plots of the sweep (and of double
  descent for width sweeps) and the path of the local report. Never raises.
- `build_report_spec` / `save_report`: a W&B Report per study (learning curves grouped by
  variant with seed bands, generalization gap, the headline plot), built as a plain dict
  offline and turned into a `wandb_workspaces` Report (optional extra `workspaces`) only
  when saving, which needs W&B online.
- `sync_study`: `wandb sync` for every offline run of one study, telling synced from failed.
- `flat_keys` / `swept_values` / `gap_metrics`: what every training run should carry so
  W&B can group, scatter and plot by the swept values.

The local store (results/<study>/) stays the source of truth; all of this reads it.
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from harness.config import get_dotted
from harness.study.plan import param_label as plan_param_label

log = logging.getLogger(__name__)

REPORT_JOB_TYPE = "report"
HEADLINE_METRIC = "best_test_acc"  # test accuracy at the best-val epoch (loop summary)
HEADLINE_SUMMARY_KEY = "test_acc_at_best_val"  # the same, as WandbTracker writes it to W&B
SYNC_TIMEOUT_S = 300.0
FIGURE_DIR = "figures"
WANDB_LINKS = "wandb.json"  # results/<study>/wandb.json: study run, report URL, for the report
LATER_HINT = "create it later with `harness wandb-report {study}` once online (`wandb login`)"
# Double-descent curves: errors are 1 - accuracy; "test error" is the final model's (as the
# report's double-descent section), train error is measured on the noisy training labels.
DD_SERIES = (("final", "test error"), ("train", "train error (noisy labels)"),
             ("best", "test error at best-val epoch"))
DD_SOURCES = {"final": ("final_test_acc", "last_test_acc"),
              "train": ("final_train_eval_acc", "last_train_eval_acc"),
              "best": (HEADLINE_METRIC,)}


# ----------------------------------------------------------------------------- reading


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def load_manifest(study_dir: Path) -> dict[str, Any]:
    """results/<study>/study.json (written by run_study), or {} for ad-hoc runs."""
    return _read_json(Path(study_dir) / "study.json")


def study_name(study_dir: Path, manifest: Mapping[str, Any] | None = None) -> str:
    manifest = load_manifest(study_dir) if manifest is None else manifest
    return str(manifest.get("name") or Path(study_dir).name)


def study_tracking(study_dir: Path) -> dict[str, Any]:
    """mode / project / entity of a study, from study.json's base.tracking (config defaults)."""
    base = load_manifest(study_dir).get("base") or {}
    tracking = base.get("tracking") or {} if isinstance(base, dict) else {}
    return {"mode": tracking.get("wandb") or "auto",
            "project": tracking.get("project") or "harness",
            "entity": tracking.get("entity") or None}


@dataclass
class StoredRun:
    variant: str
    seed: Any
    config: dict[str, Any]
    summary: dict[str, Any]
    path: Path


def load_runs(study_dir: Path) -> list[StoredRun]:
    """Every trusted run of the study that has a summary (finished or not), read through the
    study record, so W&B shows the same runs the report does."""
    from harness.record import StudyRecord

    return [StoredRun(r.variant, r.seed, r.config, r.summary, r.path)
            for r in StudyRecord.load(study_dir).runs if r.summary]


dotted_get = get_dotted


param_label = plan_param_label  # regularizers.dropout.p -> dropout.p


def _num(value: Any) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    try:
        x = float(value)
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None


def _scalar(value: Any) -> bool:
    return value is None or isinstance(value, (bool, int, float, str))


# ----------------------------------------------------------------------------- flat keys


def design_parameters(manifest: Mapping[str, Any]) -> list[str]:
    """The dotted keys a sweep/grid study varies (empty for other designs)."""
    design = manifest.get("design") or {}
    if design.get("kind") == "sweep" and design.get("parameter"):
        return [str(design["parameter"])]
    if design.get("kind") == "grid":
        return [str(k) for k in (design.get("parameters") or {})]
    return []


def swept_values(study_dir: Path, variant: str, config: Any = None) -> dict[str, Any]:
    """Dotted key -> value of every swept parameter for one variant of a study.

    From study.json: the variant's own swept values; for the baseline (or a variant that
    does not set a parameter) the sweep's baseline_value or the value in the run's config.
    {} when the study has no study.json (ad-hoc runs) or no sweep.
    """
    manifest = load_manifest(study_dir)
    params = design_parameters(manifest)
    if not params:
        return {}
    cfg = _config_dict(config)
    mine = next((v for v in manifest.get("variants") or [] if v.get("name") == variant), {})
    swept = dict(mine.get("swept") or {})
    design = manifest.get("design") or {}
    out: dict[str, Any] = {}
    for key in params:
        if key in swept:
            out[key] = swept[key]
        elif mine.get("is_baseline") and design.get("baseline_value") is not None:
            out[key] = design["baseline_value"]
        elif (value := dotted_get(cfg, key)) is not None and _scalar(value):
            out[key] = value
    return out


def _config_dict(config: Any) -> dict[str, Any]:
    if config is None:
        return {}
    if hasattr(config, "model_dump"):
        return config.model_dump(mode="json")
    return dict(config)


def flat_keys(config: Any, swept: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Flat W&B config keys for grouping, scatter and parallel-coordinates panels.

    Beyond what loop.wandb_config already writes (run_id, study, variant, seed, width,
    label_noise, train_size, `<reg>.<param>`): the optimizer's headline knobs (lr,
    weight_decay, batch_size, epochs, depth) and every swept value under its short label
    (`dropout.p`, `width`, `train_size`, `lr`, ...). Grid axes whose values are whole
    sections (a label -> mapping) are written as the label.
    """
    cfg = _config_dict(config)
    out: dict[str, Any] = {}
    for key, label in (("optim.lr", "lr"), ("optim.weight_decay", "weight_decay"),
                       ("train.batch_size", "batch_size"), ("train.epochs", "epochs"),
                       ("model.depth", "depth")):
        value = dotted_get(cfg, key)
        if value is not None and _scalar(value):
            out[label] = value
    for key, value in (swept or {}).items():
        if _scalar(value):
            out[param_label(key)] = value
        elif isinstance(value, Mapping):
            out[param_label(key)] = json.dumps(value, sort_keys=True)
    return out


def gap_metrics(row: Mapping[str, Any]) -> dict[str, float]:
    """Per-epoch generalization gap (the loop logs it; see harness.train.metrics)."""
    from harness.train.metrics import generalization_gap

    return generalization_gap(row)


# ----------------------------------------------------------------------------- tables


def comparison_frame(study_dir: Path, runs: list[StoredRun] | None = None) -> Any:
    """The study's comparison table: summary.csv when the report wrote it, else the same
    table computed from the study record (one place computes the means)."""
    import pandas as pd

    csv = Path(study_dir) / "summary.csv"
    if csv.is_file():
        try:
            return pd.read_csv(csv)
        except Exception:  # empty or half-written file: rebuild below.
            log.debug("cannot read %s", csv, exc_info=True)
    from harness.report import tables

    study = tables.load_study(Path(study_dir))
    return tables.summary_table(study, tables.runs_table(study))


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


def _safe_key(text: str) -> str:
    return "".join(c if c.isalnum() or c in "_-/" else "_" for c in text)


def _mean(values: list[float]) -> float:
    return sum(values) / len(values)


def study_curves(study_dir: Path, runs: list[StoredRun] | None = None,
                 manifest: Mapping[str, Any] | None = None) -> list[Curve]:
    """Sweep curves (mean best_test_acc vs each numeric swept parameter) and, for width
    sweeps, the double-descent curves (test error of the final model, train error on the
    noisy labels and test error at the best-val epoch, vs width)."""
    manifest = load_manifest(study_dir) if manifest is None else manifest
    params = design_parameters(manifest)
    if not params:
        return []
    runs = load_runs(study_dir) if runs is None else runs
    by_variant: dict[str, dict[str, Any]] = {}
    for r in runs:
        if r.variant not in by_variant:
            by_variant[r.variant] = swept_values(study_dir, r.variant, r.config)
    curves = []
    for param in params:
        label = param_label(param)
        others = [p for p in params if p != param]
        points: dict[tuple[float, str], dict[str, list[float]]] = {}
        for r in runs:
            if r.summary.get("status") not in (None, "completed", "stopped"):
                continue
            x = _num(by_variant[r.variant].get(param))
            if x is None:
                continue
            series = ",".join(f"{param_label(o)}={by_variant[r.variant].get(o)}" for o in others)
            bucket = points.setdefault((x, series), {k: [] for k, _ in DD_SERIES})
            for k, _ in DD_SERIES:
                value = next((v for s in DD_SOURCES[k] if (v := _num(r.summary.get(s)))
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
            key=_safe_key(f"sweep/{HEADLINE_METRIC}_vs_{label}"),
            title=f"Test accuracy at best-val epoch vs {label} (mean over seeds)",
            x=label, y=f"mean_{HEADLINE_METRIC}",
            columns=[label, f"mean_{HEADLINE_METRIC}", "n"] + ([stroke] if stroke else []),
            rows=rows, stroke=stroke))
        if label == "width":
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
    """What log_study_run did; `failed`/`error` follow WandbTracker's policy (warned once)."""

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
    for name in ("report.html", "report.md"):
        if (study_dir / name).is_file():
            return study_dir / name
    return study_dir / "report.html"


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
    manifest = load_manifest(study_dir)
    name = study_name(study_dir, manifest)
    report = local_report_path(study_dir)
    info = StudyRunInfo(study=name, mode=mode, report_path=str(report))
    tracker = None
    try:
        from harness.tracking.wandb_tracker import WandbTracker

        runs = load_runs(study_dir)
        frame = comparison_frame(study_dir, runs)
        figures = sorted((study_dir / FIGURE_DIR).glob("*.png"))
        config = {"study": name, "report_path": str(report), "report_url": report.as_uri(),
                  "design": manifest.get("design"), "description": manifest.get("description"),
                  "n_runs": len(runs), "variants": sorted({r.variant for r in runs})}
        tracker = (tracker_factory or WandbTracker)(
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
            if _num(best[best_key]) is not None:
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
    data: dict[str, Any] = {"comparison": wandb.Table(columns=columns, data=rows,
                                                      allow_mixed_types=True)}
    info.table_rows = len(rows)
    for path in figures:
        key = f"figures/{_safe_key(path.stem)}"
        data[key] = wandb.Image(str(path), caption=path.stem.replace("_", " "))
        info.images.append(key)
    for curve in curves:
        table = wandb.Table(columns=curve.columns, data=curve.rows, allow_mixed_types=True)
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
    from harness.tracking.store import atomic_write_json

    path = Path(study_dir) / WANDB_LINKS
    data = _read_json(path)
    data.update({k: v for k, v in entries.items() if v is not None})
    atomic_write_json(path, data)
    return path


# ----------------------------------------------------------------------------- report spec


def _filter_expr(name: str, job_type: str, op: str) -> str:
    return f"Metric('Group') == {name!r} and Metric('JobType') {op} {job_type!r}"


def _line(title: str, y: str, *, groupby: str = "variant") -> dict[str, Any]:
    return {"type": "line", "title": title, "x": "epoch", "y": [y], "groupby": groupby,
            "groupby_aggfunc": "mean", "groupby_rangefunc": "minmax"}


def build_report_spec(study_dir: Path, *, project: str, entity: str | None) -> dict[str, Any]:
    """The W&B Report of one study as a plain dict (no network, no wandb_workspaces needed).

    Sections: learning curves (train/val loss and accuracy vs epoch, one line per variant =
    mean over seeds with a min/max band), generalization gap (gap_loss, gap_acc per epoch),
    the headline plot (sweep/grid: test accuracy at the best-val epoch vs the swept value as
    a scatter plus parallel coordinates; width sweeps: test error vs width; other designs:
    a bar per variant), and the study run's table and figures. Training runs are selected by
    group == study and job_type != report; `save_report` turns this into a Report.
    """
    study_dir = Path(study_dir)
    manifest = load_manifest(study_dir)
    name = study_name(study_dir, manifest)
    runs = load_runs(study_dir)
    train_key = "train_eval" if any("best_train_eval_loss" in r.summary for r in runs) else "train"
    params = design_parameters(manifest)
    labels = [param_label(p) for p in params]
    train_runset = {"name": f"{name} runs", "filters": _filter_expr(name, REPORT_JOB_TYPE, "!="),
                    "where": {"group": name, "job_type_not": REPORT_JOB_TYPE},
                    "groupby": ["config.variant"]}
    study_runset = {"name": f"{name} study run",
                    "filters": _filter_expr(name, REPORT_JOB_TYPE, "=="),
                    "where": {"group": name, "job_type": REPORT_JOB_TYPE}, "groupby": []}
    curves = [_line("Train loss" + (" (eval mode)" if train_key == "train_eval" else ""),
                    f"{train_key}_loss"),
              _line("Validation loss", "val_loss"),
              _line("Train accuracy" + (" (eval mode)" if train_key == "train_eval" else ""),
                    f"{train_key}_acc"),
              _line("Validation accuracy", "val_acc")]
    gap = [_line("Generalization gap: val loss - train loss", "gap_loss"),
           _line("Generalization gap: train acc - val acc", "gap_acc")]
    headline: list[dict[str, Any]] = []
    for label in labels:
        if label == "width":
            headline.append({"type": "scatter", "title": "Double descent: test error vs width",
                             "x": f"config.{label}", "y": "summary.test_error_final",
                             "log_x": True})
            headline.append({"type": "scatter", "title": "Train error (noisy labels) vs width",
                             "x": f"config.{label}", "y": "summary.train_error_final",
                             "log_x": True})
            headline.append({"type": "scatter", "title": "Test error at best-val epoch vs width",
                             "x": f"config.{label}", "y": "summary.test_error_at_best_val",
                             "log_x": True})
        else:
            headline.append({"type": "scatter",
                             "title": f"Test accuracy at best-val epoch vs {label}",
                             "x": f"config.{label}", "y": f"summary.{HEADLINE_SUMMARY_KEY}"})
    if labels:
        headline.append({"type": "parallel_coordinates", "title": "Swept values -> test accuracy",
                         "columns": [f"config.{label}" for label in labels]
                         + ["summary.val_acc.max", f"summary.{HEADLINE_SUMMARY_KEY}"]})
    else:
        headline.append({"type": "bar", "title": "Test accuracy at best-val epoch by variant",
                         "metrics": [HEADLINE_SUMMARY_KEY], "groupby": "variant",
                         "groupby_aggfunc": "mean", "groupby_rangefunc": "stddev"})
    figures = sorted((study_dir / FIGURE_DIR).glob("*.png"))
    study_panels = [{"type": "summary_table", "title": "Comparison table",
                     "table": "comparison"}]
    if figures:
        study_panels.append({"type": "media", "title": "Report figures",
                             "media_keys": [f"figures/{_safe_key(p.stem)}" for p in figures]})
    report = local_report_path(study_dir)
    description = str(manifest.get("description") or "").strip()
    return {
        "title": f"{name}: regularization study"[:128],
        "description": description[:1000],
        "project": project,
        "entity": entity,
        "study": name,
        "report_path": str(report),
        "intro": (f"Study `{name}`: {len(runs)} runs. Lines are the mean over seeds per "
                  f"variant (config `variant`), bands the min/max over seeds. Full local "
                  f"report: `{report}`."),
        "runsets": {"train": train_runset, "study": study_runset},
        "sections": [
            {"title": "Learning curves", "runset": "train", "panels": curves},
            {"title": "Generalization gap", "runset": "train", "panels": gap},
            {"title": "Headline", "runset": "train", "panels": headline},
            {"title": "Study summary", "runset": "study", "panels": study_panels},
        ],
    }


def _metric_ref(wr: Any, ref: str) -> Any:
    section, _, key = ref.partition(".")
    if section == "config":
        return wr.Config(key)
    if section == "summary":
        return wr.SummaryMetric(key)
    return ref


def _panel(wr: Any, spec: Mapping[str, Any]) -> Any:
    kind = spec["type"]
    if kind == "line":
        return wr.LinePlot(title=spec["title"], x=spec["x"], y=list(spec["y"]),
                           groupby=wr.Config(spec["groupby"]),
                           groupby_aggfunc=spec["groupby_aggfunc"],
                           groupby_rangefunc=spec["groupby_rangefunc"])
    if kind == "scatter":
        return wr.ScatterPlot(title=spec["title"], x=_metric_ref(wr, spec["x"]),
                              y=_metric_ref(wr, spec["y"]), log_x=spec.get("log_x"))
    if kind == "parallel_coordinates":
        return wr.ParallelCoordinatesPlot(
            title=spec["title"],
            columns=[wr.ParallelCoordinatesPlotColumn(metric=_metric_ref(wr, c))
                     for c in spec["columns"]])
    if kind == "bar":
        return wr.BarPlot(title=spec["title"], metrics=list(spec["metrics"]),
                          groupby=wr.Config(spec["groupby"]),
                          groupby_aggfunc=spec["groupby_aggfunc"],
                          groupby_rangefunc=spec["groupby_rangefunc"])
    if kind == "summary_table":
        return wr.WeavePanelSummaryTable(table_name=spec["table"])
    if kind == "media":
        return wr.MediaBrowser(title=spec["title"], media_keys=list(spec["media_keys"]))
    raise ValueError(f"unknown panel type {kind!r}")


def report_from_spec(spec: Mapping[str, Any]) -> Any:
    """A wandb_workspaces Report built from the spec, not saved (no network).

    Raises ImportError with the install hint when the optional extra is missing.
    """
    try:
        import wandb_workspaces.reports.v2 as wr
    except ImportError as exc:
        raise ImportError("W&B Reports need the optional extra: "
                          "pip install 'harness[workspaces]' (wandb-workspaces)") from exc
    runsets = {key: wr.Runset(entity=spec.get("entity") or "", project=spec["project"],
                              name=rs["name"], filters=rs["filters"], groupby=list(rs["groupby"]))
               for key, rs in spec["runsets"].items()}
    blocks: list[Any] = [wr.MarkdownBlock(text=spec["intro"])]
    for section in spec["sections"]:
        blocks.append(wr.H2(text=section["title"]))
        blocks.append(wr.PanelGrid(runsets=[runsets[section["runset"]]],
                                   panels=[_panel(wr, p) for p in section["panels"]]))
    # entity must be given: the default asks the W&B API for the user's entity.
    return wr.Report(project=spec["project"], entity=spec.get("entity") or "",
                     title=spec["title"], description=spec["description"], blocks=blocks,
                     width="fluid")


def save_report(spec: dict[str, Any]) -> str:
    """Save the Report to W&B (needs W&B online and logged in) and return its URL."""
    from harness.tracking.wandb_tracker import choose_mode

    mode, reason = choose_mode("auto")
    if mode != "online":
        raise RuntimeError(f"cannot save a W&B Report: {reason}")
    spec = dict(spec)
    if not spec.get("entity"):
        import wandb

        spec["entity"] = wandb.Api().default_entity
    report = report_from_spec(spec)
    report.save()
    return str(report.url)


@dataclass
class ReportOutcome:
    url: str | None
    message: str  # one line for the console
    ok: bool


def create_wandb_report(study_dir: Path, *, project: str | None = None,
                        entity: str | None = None, mode: str | None = None) -> ReportOutcome:
    """`harness wandb-report STUDY` and the end of a study: build + save when online,
    else one line saying how to create it later. Records the URL in wandb.json. Never raises."""
    from harness.tracking.wandb_tracker import choose_mode

    study_dir = Path(study_dir)
    defaults = study_tracking(study_dir)
    name = study_name(study_dir)
    hint = LATER_HINT.format(study=name)
    try:
        resolved, _ = choose_mode(mode or defaults["mode"])
    except ValueError as exc:
        return ReportOutcome(None, f"W&B report skipped: {exc}", False)
    if resolved == "disabled":
        return ReportOutcome(None, "W&B report skipped: W&B is disabled for this study", True)
    if resolved != "online":
        return ReportOutcome(None, f"W&B report skipped (W&B offline): {hint}", True)
    try:
        spec = build_report_spec(study_dir, project=project or defaults["project"],
                                 entity=entity or defaults["entity"])
        url = save_report(spec)
    except Exception as exc:
        first = (str(exc).strip().splitlines() or [""])[0]
        log.warning("W&B report failed: %s: %s", type(exc).__name__, first)
        return ReportOutcome(None, f"W&B report failed ({type(exc).__name__}: {first}); "
                             f"retry with `harness wandb-report {name}`", False)
    try:
        write_wandb_links(study_dir, report_url=url)
    except OSError:
        log.debug("cannot write %s", WANDB_LINKS, exc_info=True)
    return ReportOutcome(url, f"W&B report: {url}", True)


def finish_study(study_dir: Path) -> list[str]:
    """End-of-study W&B step: the study run, then the Report (online) or the hint (offline).

    Returns the console lines to print. Never raises; wandb.json records what happened.
    """
    study_dir = Path(study_dir)
    settings = study_tracking(study_dir)
    from harness.tracking.wandb_tracker import choose_mode

    try:
        mode, _ = choose_mode(settings["mode"])
    except ValueError:
        mode = "offline"
    if mode == "disabled":
        return []
    info = log_study_run(study_dir, mode=mode, project=settings["project"],
                         entity=settings["entity"])
    lines = []
    if info.failed:
        lines.append(f"W&B study run failed: {info.error}")
    elif info.url:
        lines.append(f"W&B study run: {info.url}")
    elif info.run_dir:
        lines.append(f"W&B study run saved offline: {info.run_dir}")
    outcome = create_wandb_report(study_dir, mode=info.mode)
    lines.append(outcome.message)
    try:
        write_wandb_links(study_dir, study_run=info.to_dict(),
                          report_hint=None if outcome.url else outcome.message)
    except OSError:
        log.debug("cannot write %s", WANDB_LINKS, exc_info=True)
    return lines


# ----------------------------------------------------------------------------- sync


@dataclass
class SyncResult:
    """Outcome of `sync_study`: folders synced, failed (folder -> first error line), skipped."""

    study: str
    synced: list[Path] = field(default_factory=list)
    failed: dict[Path, str] = field(default_factory=dict)
    skipped: dict[Path, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.failed

    def lines(self) -> list[str]:
        out = [f"W&B sync of {self.study}: {len(self.synced)} synced, {len(self.failed)} failed"
               + (f", {len(self.skipped)} skipped" if self.skipped else "")]
        out += [f"  synced  {p.name}" for p in self.synced]
        out += [f"  FAILED  {p.name}: {why}" for p, why in self.failed.items()]
        out += [f"  skipped {p.name}: {why}" for p, why in self.skipped.items()]
        return out


def offline_run_dirs(study_dir: Path) -> list[Path]:
    """The offline-run-* folders (holding a .wandb file) of one study."""
    root = Path(study_dir) / "wandb"
    if not root.is_dir():
        return []
    return sorted(p for p in root.glob("offline-run-*") if p.is_dir() and any(p.glob("*.wandb")))


def wandb_command() -> list[str]:
    """The `wandb` CLI of this interpreter's environment."""
    exe = Path(sys.executable).with_name("wandb")
    if exe.is_file():
        return [str(exe)]
    found = shutil.which("wandb")
    return [found] if found else [sys.executable, "-m", "wandb"]


def _run_command(cmd: list[str], timeout: float) -> subprocess.CompletedProcess:
    """subprocess.run, no stdin (a login prompt must fail, never wait). Tests replace this."""
    return subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                          timeout=timeout, check=False, env={**os.environ, "WANDB_SILENT": "false"})


def _first_error(text: str) -> str:
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    for ln in lines:
        if "error" in ln.lower() or "failed" in ln.lower():
            return ln
    return lines[-1] if lines else "no output"


def sync_study(study_dir: Path, *, timeout_s: float = SYNC_TIMEOUT_S,
               include_synced: bool = False, check_login: bool = True) -> SyncResult:
    """`wandb sync <dir>` for every offline run of one study, one subprocess each.

    Folders already uploaded (a `.wandb.synced` marker from wandb) are skipped unless
    include_synced. Without W&B credentials nothing is attempted: every run is reported
    failed with the login hint (wandb would otherwise prompt on a terminal).
    """
    study_dir = Path(study_dir)
    result = SyncResult(study=study_name(study_dir))
    dirs = offline_run_dirs(study_dir)
    if check_login and dirs:
        from harness.tracking.wandb_tracker import find_credentials

        source, problem = find_credentials()
        if source is None or problem:
            why = problem or "not logged in to W&B: run `wandb login` or set WANDB_API_KEY"
            result.failed = dict.fromkeys(dirs, why)
            return result
    cmd = wandb_command()
    for run_dir in dirs:
        if not include_synced and any(run_dir.glob("*.wandb.synced")):
            result.skipped[run_dir] = "already synced"
            continue
        try:
            proc = _run_command([*cmd, "sync", str(run_dir)], timeout_s)
        except subprocess.TimeoutExpired:
            result.failed[run_dir] = f"timed out after {timeout_s:.0f} s"
            continue
        except OSError as exc:
            result.failed[run_dir] = f"cannot run wandb: {exc}"
            continue
        output = f"{proc.stderr or ''}\n{proc.stdout or ''}"
        if proc.returncode != 0 or "ERROR" in output:
            result.failed[run_dir] = _first_error(output)
        else:
            result.synced.append(run_dir)
    return result


# ----------------------------------------------------------------------------- checks


def offline_charts(run_dir: Path) -> dict[str, dict[str, Any]]:
    """Native W&B charts (wandb.plot.*) recorded by an offline run: key -> panel config.

    They live in config `_wandb.visualize`, which read_offline_run drops with `_wandb`.
    """
    from wandb.proto import wandb_internal_pb2 as pb

    from harness.tracking.wandb_reader import split_records

    files = sorted(Path(run_dir).glob("run-*.wandb"))
    if not files:
        return {}
    payloads, _ = split_records(files[0].read_bytes())
    charts: dict[str, dict[str, Any]] = {}
    for payload in payloads:
        record = pb.Record()
        try:
            record.ParseFromString(payload)
        except Exception:
            break
        kind = record.WhichOneof("record_type")
        updates = (record.config.update if kind == "config"
                   else record.run.config.update if kind == "run" else [])
        for item in updates:
            path = [item.key] if item.key else list(item.nested_key)
            value = json.loads(item.value_json) if item.value_json else None
            if path[:2] == ["_wandb", "visualize"] and len(path) == 3:
                charts[path[2]] = value
            elif path == ["_wandb"] and isinstance(value, dict):
                charts.update(value.get("visualize") or {})
    return charts
