"""Per variant, what the report says under "Each variant against the baseline": which weights
its final model is, the secondary metrics that moved (narrative.py) and the diagnosis of its
curves (diagnosis.py), all judged with the same words as the tables."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from harness.record import Comparison, StudyRecord
from harness.record.numbers import finite
from harness.report import diagnosis, narrative, tables, weights
from harness.report import vocabulary as vocab

Labeler = Callable[[str], str]


@dataclass
class Details:
    rows: list[dict[str, Any]] = field(default_factory=list)  # for the templates
    evidence: dict[str, list[narrative.Moved]] = field(default_factory=dict)
    underfits: dict[str, str] = field(default_factory=dict)  # variant -> "train accuracy 48.5%"


def _num(row: pd.Series, key: str) -> float:
    v = row.get(key)
    return float(v) if finite(v) else float("nan")


def _judgement(row: pd.Series) -> vocab.Judgement | None:
    if row.get("is_baseline") or str(row.get("verdict")) not in vocab.WORDS:
        return None
    return vocab.Judgement(str(row["verdict"]), str(row.get("verdict_reason") or ""))


def _weights_line(study: StudyRecord, name: str, regs: dict[str, Any]) -> str:
    text = f"Final model: {weights.final_model(regs)}"
    restored = weights.restored_epochs(study.runs_of(name))
    if restored:
        text += f", epoch {weights.epochs_text(restored)} (median (min–max) over seeds)"
    return text + "."


def details(study: StudyRecord, summary: pd.DataFrame, runs: pd.DataFrame,
            curves: dict[str, pd.DataFrame], compare: Comparison, label: Labeler,
            chosen: str | None, classification: bool, phrase: str) -> Details:
    out = Details()
    base_regs = weights.regularizers_of(study, study.baseline) if study.baseline else {}
    final_gaps = compare.metric.startswith("final_")
    for _, row in summary.iterrows():
        name = str(row["variant"])
        regs = weights.regularizers_of(study, name)
        all_runs = study.runs_of(name, included_only=False)
        failures = [f"seed {r.seed} diverged at epoch {(r.summary or {}).get('diverged_epoch')}"
                    for r in all_runs if r.status == "diverged"]
        run_curves = [(f"seed {r.seed}", r.metrics) for r in all_runs
                      if len(r.metrics) and r.status != "incomplete"]
        curve = tables.mean_curve(curves.get(name, pd.DataFrame()))
        findings = diagnosis.diagnose(
            curve, run_curves, failures, _judgement(row), classification=classification,
            regularizers=set(regs), metric=phrase,
            calibration=(_num(row, "overconfidence_mean"), _num(row, "ece_mean"),
                         _num(row, "temperature_mean")))
        if any(f.kind == "underfitting" for f in findings):
            acc = pd.to_numeric(curve.get("train_acc"), errors="coerce").dropna()
            out.underfits[name] = f"train accuracy {acc.iloc[-1]:.1%}" if len(acc) else \
                "train loss stays high"
        moved = narrative.evidence(runs, name, study.baseline,
                                   (weights.final_tag(regs), weights.final_tag(base_regs)),
                                   final_gaps, skip=(compare.metric, compare.reference_metric))
        out.evidence[name] = moved
        out.rows.append({"variant": name, "label": label(name),
                         "is_baseline": name == study.baseline, "is_best": name == chosen,
                         "weights": _weights_line(study, name, regs),
                         "findings": findings,
                         "evidence": narrative.evidence_lines(moved, out.underfits.get(name,
                                                                                       ""))})
    return out
