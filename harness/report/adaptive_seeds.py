"""The report's adaptive-seeds section: the sequential test used, each variant's decision,
the seeds it got (counted from the study record) and the compute saved against giving
every variant the maximum."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from harness.record.layout import ADAPTIVE_JSON
from harness.record.load import StudyRecord


def _read(study_dir: Path) -> dict[str, Any] | None:
    try:
        data = json.loads((study_dir / ADAPTIVE_JSON).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _interval(d: dict[str, Any]) -> str:
    lo, hi = d.get("lo"), d.get("hi")
    if not all(isinstance(x, (int, float)) and math.isfinite(x) for x in (lo, hi)):
        return "n/a"
    return f"[{lo:+.4f}, {hi:+.4f}] at level {1 - d['alpha_k']:.4f}"


def section(study_dir: Path) -> dict[str, Any] | None:
    info = _read(study_dir)
    if info is None:
        return None
    record = StudyRecord.load(study_dir)
    names = [str(n) for n in info.get("variants") or []]
    seeds = {n: len(record.runs_of(n)) for n in names}
    fixed = len(names) * int(info["max_seeds"])
    used = sum(seeds.values())
    lines = [f"Seeds were added round by round ({len(info.get('rounds') or [])} rounds) only to "
             f"variants whose comparison with the baseline was undecided. Test: {info['test']}. "
             f"Metric: {info['metric']} (variant - baseline over matched seeds); 'differs' = "
             "the interval excludes 0; 'equivalent' = it lies within ±"
             f"{info['min_effect']:g}.", "",
             f"Runs: {used} instead of {fixed} with {info['max_seeds']} seeds for every "
             f"variant: {fixed - used} runs saved ({(fixed - used) / max(fixed, 1):.0%}).", "",
             "| variant | seeds | decision | difference | interval |", "|---|---|---|---|---|"]
    decisions = info.get("decisions") or {}
    for n in names:
        d = decisions.get(n)
        if d is None:
            lines.append(f"| {n} (baseline) | {seeds[n]} | | | |")
            continue
        diff = d.get("diff")
        shown = f"{diff:+.4f}" if isinstance(diff, (int, float)) and math.isfinite(diff) else "n/a"
        lines.append(f"| {n} | {seeds[n]} | {d['state']} | {shown} | {_interval(d)} |")
    return {"title": "Adaptive seeds", "markdown": "\n".join(lines), "figures": []}
