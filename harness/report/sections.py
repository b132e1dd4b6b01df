"""Study-specific report sections: double descent, tuning, and the study's W&B links.

Each section is {"title", "markdown", "figures": [{"title", "path"}]}; the report shows its
markdown (rendered to HTML for report.html) followed by its figures.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def double_descent(study_dir: Path, fig_dir: Path) -> dict[str, Any] | None:
    from harness.report.double_descent import double_descent_figures, double_descent_section

    section = double_descent_section(study_dir)
    if not section:
        return None
    figs = double_descent_figures(study_dir, fig_dir / "double_descent", section)
    return {"title": section.get("title") or "Double descent",
            "markdown": section.get("markdown", ""),
            "figures": [{"title": t, "path": Path(p)} for t, p in figs]}


def tuning(study_dir: Path) -> dict[str, Any] | None:
    from harness.study.tune_report import tuning_section

    section = tuning_section(study_dir)
    if not section:
        return None
    return {"title": section.get("title") or "Tuning",
            "markdown": section.get("markdown", ""),
            "figures": [{"title": f["title"], "path": study_dir / f["path"]}
                        for f in section.get("figures", [])]}


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
                 lambda: wandb_links(study_dir)):
        section = make()
        if section:
            section["markdown"] = without_heading(section["markdown"])
            out.append(section)
    return out
