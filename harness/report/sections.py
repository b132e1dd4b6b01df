"""Study-specific report sections: double descent, tuning, and the study's W&B links.

Each section is {"title", "markdown", "figures": [{"title", "path"}]}; the report shows its
markdown (rendered to HTML for report.html) followed by its figures.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from harness.report import bias_variance_report, strength_grid
from harness.report.double_descent_figures import double_descent_figures
from harness.report.double_descent_section import double_descent_section

CALIBRATION_CHANGE = 0.01  # |Δ (confidence - accuracy)| below this is no change worth a sentence


def double_descent(study_dir: Path, fig_dir: Path) -> dict[str, Any] | None:
    section = double_descent_section(study_dir)
    if not section:
        return None
    figs = double_descent_figures(study_dir, fig_dir / "double_descent", section)
    return {"title": section.get("title") or "Double descent",
            "markdown": section.get("markdown", ""),
            "figures": [{"title": t, "path": Path(p)} for t, p in figs]}


def tuning(study_dir: Path) -> dict[str, Any] | None:
    from harness.report.tune_report import tuning_section  # imports optuna: tuning studies only

    section = tuning_section(study_dir)
    if not section:
        return None
    return {"title": section.get("title") or "Tuning",
            "markdown": section.get("markdown", ""),
            "figures": [{"title": f["title"], "path": study_dir / f["path"]}
                        for f in section.get("figures", [])]}


def fine_tuning(study_dir: Path) -> dict[str, Any] | None:
    from harness.report.fine_tuning import fine_tuning_section

    return fine_tuning_section(study_dir)


def wandb_links(study_dir: Path) -> dict[str, Any] | None:
    """What the end-of-study W&B step recorded (wandb.json): the Report URL or how to make it."""
    path = study_dir / "wandb.json"
    if not path.is_file():
        return None
    try:
        info = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    lines = []
    if info.get("report_url"):
        lines.append(f"W&B report: <{info['report_url']}>")
    if info.get("report_hint"):
        lines.append(str(info["report_hint"]))
    study_run = info.get("study_run") or {}
    if study_run.get("url"):
        lines.append(f"W&B study run: <{study_run['url']}>")
    if not lines:
        return None
    return {"title": "Weights & Biases", "markdown": "\n\n".join(lines), "figures": []}


def without_heading(markdown: str) -> str:
    """The section's own title is the report's heading: drop a leading '#' line."""
    lines = markdown.strip().splitlines()
    while lines and lines[0].lstrip().startswith("#"):
        lines = lines[1:]
    return "\n".join(lines).strip()


def extra_sections(study_dir: Path, fig_dir: Path) -> list[dict[str, Any]]:
    out = []
    for make in (lambda: double_descent(study_dir, fig_dir), lambda: tuning(study_dir),
                 lambda: bias_variance_report.section(study_dir, fig_dir),
                 lambda: fine_tuning(study_dir), lambda: wandb_links(study_dir)):
        section = make()
        if section:
            section["markdown"] = without_heading(section["markdown"])
            out.append(section)
    return out


def calibration(summary: pd.DataFrame) -> dict[str, Any] | None:
    """Per variant: accuracy vs mean confidence (the direction ECE hides), NLL and ECE before
    and after temperature scaling fitted on the validation split (Guo et al. 2017)."""
    from harness.train.calibration import direction

    if summary.empty or "overconfidence_mean" not in summary or \
            not np.isfinite(summary["overconfidence_mean"].to_numpy(dtype=float)).any():
        return None

    def f(r: pd.Series, key: str, scale: float = 1.0) -> str:
        v = float(r.get(f"{key}_mean", np.nan))
        return f"{v * scale:.3f}" if np.isfinite(v) else "n/a"

    lines = ["Test set, final model, mean over seeds. Confidence: mean max-softmax probability; "
             "confidence − accuracy > 0 is over-confident, < 0 under-confident (ECE alone hides "
             "which). T: temperature fitted on the validation split by minimising its NLL "
             "(Guo et al. 2017); T > 1 cools an over-confident model, T < 1 sharpens an "
             "under-confident one.", "",
             "| variant | accuracy | confidence | confidence − accuracy | direction | NLL | ECE "
             "| T | NLL after T | ECE after T |", "|---|---|---|---|---|---|---|---|---|---|"]
    for _, r in summary.iterrows():
        name = f"{r['variant']}{' (baseline)' if r.get('is_baseline') else ''}"
        lines.append(
            f"| {name} | {f(r, 'accuracy')} | {f(r, 'confidence')} | "
            f"{f(r, 'overconfidence')} | {direction(float(r.get('overconfidence_mean')))} | "
            f"{f(r, 'nll')} | {f(r, 'ece')} | {f(r, 'temperature')} | {f(r, 'nll_ts')} | "
            f"{f(r, 'ece_ts')} |")
    finding = calibration_finding(summary)
    if finding:
        lines[:0] = [finding, ""]
    return {"title": "Calibration", "markdown": "\n".join(lines), "figures": []}


def calibration_finding(summary: pd.DataFrame) -> str | None:
    """The variant that moves confidence - accuracy furthest from the baseline's, in words:
    which way, its ECE, and whether one temperature fitted on validation undoes it."""
    from harness.train.calibration import direction

    if "is_baseline" not in summary or not summary["is_baseline"].astype(bool).any():
        return None
    base = summary[summary["is_baseline"].astype(bool)].iloc[0]
    keys = ("overconfidence_mean", "ece_mean", "ece_ts_mean", "temperature_mean")
    if not all(np.isfinite(float(base.get(k, np.nan))) for k in keys):
        return None
    others = [r for _, r in summary.iterrows() if not r.get("is_baseline")
              and all(np.isfinite(float(r.get(k, np.nan))) for k in keys)]
    if not others:
        return None
    b_over = float(base["overconfidence_mean"])
    r = max(others, key=lambda r: abs(float(r["overconfidence_mean"]) - b_over))
    over = float(r["overconfidence_mean"])
    if abs(over - b_over) <= CALIBRATION_CHANGE:
        return None
    # a temperature undoes it when it lowers the variant's ECE to about the baseline's own
    # after-temperature level
    undone = float(r["ece_ts_mean"]) < float(r["ece_mean"]) and \
        float(r["ece_ts_mean"]) <= 1.5 * float(base["ece_ts_mean"]) + 0.01
    return (f"The largest change: {r['variant']} moves confidence − accuracy from "
            f"{b_over:+.3f} (baseline, {direction(b_over)}) to {over:+.3f} "
            f"({direction(over)}), ECE {float(base['ece_mean']):.3f} → "
            f"{float(r['ece_mean']):.3f}. A temperature fitted on validation "
            f"(T = {float(r['temperature_mean']):.3f}) brings its ECE to "
            f"{float(r['ece_ts_mean']):.3f} (baseline after its own T: "
            f"{float(base['ece_ts_mean']):.3f}): "
            + ("one scalar undoes the miscalibration, so it is a uniform shift of confidence."
               if undone else "one scalar does not undo it.") + " Means over seeds.")


def summary_sections(summary: pd.DataFrame, settings: dict[str, dict[str, Any]],
                     fig_dir: Path) -> list[dict[str, Any]]:
    """Sections computed from the summary table (any study): calibration with its direction,
    and the lr x weight decay heatmaps where a study varies both."""
    made = (calibration(summary), strength_grid.section(summary, settings, fig_dir))
    return [s for s in made if s]
