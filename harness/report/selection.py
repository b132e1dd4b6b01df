"""One answer per report: which variant the report calls its best.

The study's claim chooses its variant on the validation split (harness.report.claims); that
choice is the report's best everywhere (headline, table tag, figures, index). A study without
a claim against the baseline uses the same rule (highest mean validation accuracy among the
variants). Without a validation split nothing is chosen: choosing on test would report the
luckiest draw.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from harness.record.numbers import finite

SELECT_COLUMNS = {"val_acc": ("best_val_acc_mean", True), "val_loss": ("best_val_loss_mean",
                                                                        False)}
MIN_EDGE_VALUES = 3  # a range edge is worth a note when at least this many values were tried


@dataclass(frozen=True)
class Choice:
    variant: str | None
    how: str  # "chosen on validation by the claim (highest mean val accuracy)"
    candidates: list[str] = field(default_factory=list)
    edges: list[str] = field(default_factory=list)


def best_on_validation(candidates: list[str], summary: pd.DataFrame,
                       select: str = "val_acc") -> str | None:
    column, higher = SELECT_COLUMNS[select]
    rows = summary[summary["variant"].isin(candidates)]
    scores = pd.to_numeric(rows.get(column), errors="coerce") if len(rows) else None
    if scores is None or scores.dropna().empty:
        return None
    return str(rows.loc[scores.idxmax() if higher else scores.idxmin(), "variant"])


def range_edges(chosen: str, candidates: list[str], settings: dict[str, dict[str, Any]],
                label: Any = str) -> list[str]:
    """For each numeric setting tried at >= MIN_EDGE_VALUES values among the candidates: a
    sentence when the chosen variant sits at the smallest or largest of them."""
    mine = settings.get(chosen) or {}
    out = []
    for key, value in mine.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        values = {v for c in candidates if isinstance(v := (settings.get(c) or {}).get(key),
                                                      (int, float)) and not isinstance(v, bool)}
        if len(values) < MIN_EDGE_VALUES or value not in (min(values), max(values)):
            continue
        side = "smallest" if value == min(values) else "largest"
        out.append(f"{label(chosen)} is at the edge of the range: {key} = {value:g} is the "
                   f"{side} value tried ({min(values):g} to {max(values):g}), so a better "
                   "setting may lie beyond it")
    return out


def choose(verdicts: list[Any], summary: pd.DataFrame, baseline: str | None,
           settings: dict[str, dict[str, Any]], label: Any = str) -> Choice:
    """The report's best: the first claim against the baseline with a chosen variant, else
    the same rule over every variant but the baseline."""
    names = [str(v) for v in summary["variant"]] if len(summary) else []
    others = [n for n in names if n != baseline]
    for v in verdicts:
        if v.variant is not None and v.reference == baseline and v.variant != baseline:
            how = "chosen on validation by the study's claim"
            return Choice(v.variant, how, others, range_edges(v.variant, others, settings, label))
    ok = [n for n in others if finite(_value(summary, n, "best_val_acc_mean"))]
    chosen = best_on_validation(ok, summary) if len(ok) > 1 else (ok[0] if ok else None)
    if chosen is None:
        return Choice(None, "no validation split to choose on" if others else "", others)
    how = "chosen on validation (highest mean val accuracy)" if len(ok) > 1 else \
        "the only variant"
    return Choice(chosen, how, others, range_edges(chosen, others, settings, label))


def _value(summary: pd.DataFrame, name: str, column: str) -> float:
    rows = summary[summary["variant"] == name]
    return float(rows.iloc[0][column]) if len(rows) and column in rows else float("nan")
