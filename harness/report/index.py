"""results/index.html: every study folder, linked to its report, with its headline finding,
its run counts and when its report was generated (all as stored in the report itself)."""

from __future__ import annotations

import html
import json
import re
import time
from pathlib import Path

from harness.record.disk import atomic_write_text
from harness.record.layout import CLAIMS_JSON, REPORT_HTML, run_folders, runs_dir
from harness.report import atlas, render

META = re.compile(r'<meta name="harness-([a-z]+)" content="([^"]*)"')


def read_meta(report_html: Path) -> dict[str, str]:
    """The <meta name="harness-*"> tags a report stores in its head: headline, generated, runs."""
    try:
        with report_html.open(encoding="utf-8") as f:
            head = f.read(20000)
    except OSError:
        return {}
    return {k: html.unescape(v) for k, v in META.findall(head)}


def _runs_text(meta: dict[str, str], study_dir: Path) -> str:
    if meta.get("runs", "").isdigit():
        runs, included = int(meta["runs"]), meta.get("included", "")
        return f"{runs} runs" + (f" ({included} in the means)" if included.isdigit() and
                                 int(included) != runs else "")
    n = len(run_folders(study_dir))
    return f"{n} run folder(s)"


def read_claims(study_dir: Path) -> dict:
    """claims.json as written by the study's report ({} when none)."""
    try:
        data = json.loads((study_dir / CLAIMS_JSON).read_text())
    except (OSError, json.JSONDecodeError, UnicodeDecodeError):
        return {}
    return data if isinstance(data, dict) else {}


def read_claim_verdict(study_dir: Path) -> str:
    """The study's overall claim verdict ('held', 'did not hold', 'undecided', 'mixed (...)',
    'no claim'); '' when no report has evaluated it."""
    return str(read_claims(study_dir).get("overall", ""))


def build_index(results_dir: Path | str) -> Path:
    """Write results/index.html listing every study folder (with or without a report)."""
    results_dir = Path(results_dir)
    studies = []
    for d in sorted(p for p in results_dir.iterdir() if p.is_dir()) if results_dir.is_dir() \
            else []:
        report = d / REPORT_HTML
        if not report.is_file() and not runs_dir(d).is_dir():
            continue
        meta = read_meta(report) if report.is_file() else {}
        claims = read_claims(d)
        studies.append({
            "name": d.name,
            "href": f"{d.name}/{REPORT_HTML}" if report.is_file() else None,
            "headline": meta.get("headline") or ("no report yet" if not report.is_file()
                                                 else ""),
            "generated": meta.get("generated", ""),
            "runs": _runs_text(meta, d),
            "claim": str(claims.get("overall", "")),
            "chosen": claims.get("chosen") or "",
        })
    rows = atlas.read(results_dir, [str(s["name"]) for s in studies])
    path = results_dir / "index.html"
    atomic_write_text(path, render.render(
        "index.html.j2", studies=studies, atlas=atlas.forest_png(rows),
        atlas_rows=[{"study": r.study, "line": r.line, "word": r.word} for r in rows],
        generated=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())))
    return path
