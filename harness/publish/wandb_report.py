"""The W&B Report of a study: learning curves grouped by variant with seed bands, the
generalization gap, the headline plot and the study run's table and figures.

Built as a plain dict offline (`build_report_spec`, written by `--dry-run`) and turned into a
`wandb_workspaces` Report (optional extra `workspaces`) only when saving, which needs W&B
online. Reads the study through `StudyRecord`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.publish.study_run import (
    HEADLINE_SUMMARY_KEY,
    REPORT_JOB_TYPE,
    WANDB_LINKS,
    local_report_path,
    safe_key,
    study_tracking,
    summarized,
    write_wandb_links,
)
from harness.record import StudyRecord
from harness.record.disk import atomic_write_json
from harness.record.layout import FIGURES
from harness.record.params import param_label, swept_parameters
from harness.record.schema import study_name
from harness.tracking.wandb_client import choose_mode
from harness.tracking.wandb_tracker import TRIAL_JOB_TYPE

log = logging.getLogger(__name__)

LATER_HINT = "create it later with `harness wandb-report {study}` once online (`wandb login`)"
REPORT_SPEC = "wandb_report.json"


def _filter_expr(name: str, job_type: str, op: str) -> str:
    return f"Metric('Group') == {name!r} and Metric('JobType') {op} {job_type!r}"


def _training_filter(name: str) -> str:
    """The study's training runs: neither its report run nor (tuning) its search trials."""
    return (_filter_expr(name, REPORT_JOB_TYPE, "!=")
            + f" and Metric('JobType') != {TRIAL_JOB_TYPE!r}")


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
    Why long: the Report's sections are one spec, in the order W&B shows them.
    """
    study_dir = Path(study_dir)
    record = StudyRecord.load(study_dir)
    manifest, name = record.manifest, record.name
    runs = summarized(record)
    train_key = ("train_eval" if any("best_train_eval_loss" in (r.summary or {}) for r in runs)
                 else "train")
    params = swept_parameters(manifest.design if manifest else None)
    labels = [param_label(p).wandb for p in params]
    train_runset = {"name": f"{name} runs", "filters": _training_filter(name),
                    "where": {"group": name,
                              "job_type_not": [REPORT_JOB_TYPE, TRIAL_JOB_TYPE]},
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
    for key in labels:
        if key == "width":
            headline.append({"type": "scatter", "title": "Double descent: test error vs width",
                             "x": f"config.{key}", "y": "summary.test_error_final",
                             "log_x": True})
            headline.append({"type": "scatter", "title": "Train error (noisy labels) vs width",
                             "x": f"config.{key}", "y": "summary.train_error_final",
                             "log_x": True})
            headline.append({"type": "scatter", "title": "Test error at best-val epoch vs width",
                             "x": f"config.{key}", "y": "summary.test_error_at_best_val",
                             "log_x": True})
        else:
            headline.append({"type": "scatter",
                             "title": f"Test accuracy at best-val epoch vs {key}",
                             "x": f"config.{key}", "y": f"summary.{HEADLINE_SUMMARY_KEY}"})
    if labels:
        headline.append({"type": "parallel_coordinates", "title": "Swept values -> test accuracy",
                         "columns": [f"config.{label}" for label in labels]
                         + ["summary.val_acc.max", f"summary.{HEADLINE_SUMMARY_KEY}"]})
    else:
        headline.append({"type": "bar", "title": "Test accuracy at best-val epoch by variant",
                         "metrics": [HEADLINE_SUMMARY_KEY], "groupby": "variant",
                         "groupby_aggfunc": "mean", "groupby_rangefunc": "stddev"})
    figures = sorted((study_dir / FIGURES).glob("*.png"))
    study_panels: list[dict[str, Any]] = [{"type": "summary_table", "title": "Comparison table",
                                           "table": "comparison"}]
    if figures:
        study_panels.append({"type": "media", "title": "Report figures",
                             "media_keys": [f"figures/{safe_key(p.stem)}" for p in figures]})
    report = local_report_path(study_dir)
    description = (manifest.description if manifest else "").strip()
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



def write_report_spec(study_dir: Path, *, project: str | None = None,
                      entity: str | None = None) -> Path:
    """`harness wandb-report STUDY --dry-run`: the Report spec as JSON, no network."""
    defaults = study_tracking(study_dir)
    spec = build_report_spec(study_dir, project=project or defaults["project"],
                             entity=entity or defaults["entity"])
    path = Path(study_dir) / REPORT_SPEC
    atomic_write_json(path, spec)
    return path


def create_wandb_report(study_dir: Path, *, project: str | None = None,
                        entity: str | None = None, mode: str | None = None,
                        from_command: bool = False) -> ReportOutcome:
    """`harness wandb-report STUDY` and the end of a study: build + save when online,
    else one line saying how to create it later. Records the URL in wandb.json. Never raises."""
    study_dir = Path(study_dir)
    defaults = study_tracking(study_dir)
    name = study_name(study_dir)
    hint = LATER_HINT.format(study=name)
    try:
        resolved, reason = choose_mode(mode or defaults["mode"])
    except ValueError as exc:
        return ReportOutcome(None, f"W&B report skipped: {exc}", False)
    if resolved == "disabled":
        return ReportOutcome(None, "W&B report skipped: W&B is disabled for this study", True)
    if resolved != "online":
        if from_command:  # the user ran the command the hint names: say what to change
            return ReportOutcome(None, f"W&B is offline ({reason}): `wandb login` and run "
                                 "this again, or write the Report spec with --dry-run", False)
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


