"""results/index.html: every study folder, linked to its report, with its headline finding."""

from __future__ import annotations

import html
import json
import re
import time
from pathlib import Path

from harness.report import render
from harness.report.files import atomic_write_text

CLAIMS_JSON = "claims.json"  # written by build_report: {"overall": ..., "claims": [...]}
HEADLINE_META = re.compile(r'<meta name="harness-headline" content="([^"]*)"')


def read_headline(report_html: Path) -> str:
    """The headline a report stored in its <meta name="harness-headline"> tag."""
    try:
        with report_html.open(encoding="utf-8") as f:
            head = f.read(20000)
    except OSError:
        return ""
    m = HEADLINE_META.search(head)
    return html.unescape(m.group(1)) if m else ""


def read_claim_verdict(study_dir: Path) -> str:
    """The study's overall claim verdict ('held', 'did not hold', 'undecided', 'mixed (...)',
    'no claim'); '' when no report has evaluated it."""
    try:
        data = json.loads((study_dir / CLAIMS_JSON).read_text())
    except (OSError, json.JSONDecodeError, UnicodeDecodeError):
        return ""
    return str(data.get("overall", "")) if isinstance(data, dict) else ""


def build_index(results_dir: Path | str) -> Path:
    """Write results/index.html listing every study folder (with or without a report)."""
    results_dir = Path(results_dir)
    studies = []
    for d in sorted(p for p in results_dir.iterdir() if p.is_dir()) if results_dir.is_dir() \
            else []:
        report = d / "report.html"
        if not report.is_file() and not (d / "runs").is_dir():
            continue
        n_runs = sum(1 for p in (d / "runs").iterdir() if p.is_dir()) \
            if (d / "runs").is_dir() else 0
        studies.append({
            "name": d.name,
            "href": f"{d.name}/report.html" if report.is_file() else None,
            "headline": read_headline(report) if report.is_file() else "no report yet",
            "updated": time.strftime("%Y-%m-%d %H:%M", time.localtime(report.stat().st_mtime))
            if report.is_file() else "",
            "n_runs": n_runs,
            "claim": read_claim_verdict(d),
        })
    path = results_dir / "index.html"
    atomic_write_text(path, render.render("index.html.j2", studies=studies,
                                          generated=time.strftime("%Y-%m-%d %H:%M:%S %Z")))
    return path
