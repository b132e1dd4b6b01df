"""The report's confirmation section: how each claim's seeds were spent. The rounds, the stop
reason and the minutes come from results/<study>/confirm.json (written by study/rounds.py
after each round); the looks are the verdicts' own (claims.json), replayed from the runs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from harness.record.layout import CONFIRM_JSON
from harness.record.numbers import number
from harness.report.claims import Verdict, fmt_effect, fmt_level
from harness.study.claim_config import verdict_word


def _read(study_dir: Path) -> dict[str, Any] | None:
    try:
        data = json.loads((study_dir / CONFIRM_JSON).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _look_row(metric: str, direction: str, look: dict[str, Any]) -> str:
    """One look; its decision in the report's word (better / worse follow the metric)."""
    lo, hi = number(look.get("lo")), number(look.get("hi"))
    interval = (f"{fmt_effect(metric, lo)} to {fmt_effect(metric, hi)}"
                if lo is not None and hi is not None else "n/a")
    return (f"| {look['n']} | {fmt_effect(metric, look['diff'])} | "
            f"{fmt_level(look['level'])} | {interval} | "
            f"{verdict_word(look['state'], look['diff'], metric, direction)} |")


def section(study_dir: Path, verdicts: list[Verdict],
            directions: list[str]) -> dict[str, Any] | None:
    """`directions`: each verdict's claimed direction, in the order of `verdicts`."""
    info = _read(study_dir)
    sequential = [(v, d) for v, d in zip(verdicts, directions, strict=True)
                  if v.sequential and v.variant and v.reference]
    if info is None and not sequential:
        return None
    plan = (info or {}).get("confirm") or {}
    rounds = (info or {}).get("rounds") or []
    lines = ["Every variant trained on the screening seeds; each claim's pair was chosen on "
             "their validation split and then tested on confirmation seeds, added look by "
             "look until the claim was decided or the budget was spent "
             f"(at most {plan.get('max', '?')} seeds and {plan.get('minutes', '?')} minutes; "
             f"{plan.get('spending', '?')} alpha spending, alpha {plan.get('alpha', '?')}, "
             "union bound over the looks).", ""]
    if info is not None:
        runs = sum(rounds[-1].values()) if rounds else 0
        stopped = info.get("stopped") or "the study is still running"
        lines += [f"{len(rounds)} round(s), {runs} runs in all, {info.get('minutes', 0):g} "
                  f"minutes; stopped because {stopped}.", ""]
    for v, direction in sequential:
        lines += [f"**{v.statement}**: {v.variant} vs {v.reference}, margin "
                  f"{fmt_effect(v.metric, v.margin).lstrip('+')}.", "",
                  "| seeds | difference | level | interval | decision |",
                  "|---|---|---|---|---|",
                  *[_look_row(v.metric, direction, x) for x in v.looks], ""]
    return {"title": "Confirmation", "markdown": "\n".join(lines).strip(), "figures": []}
