"""The study's setup as the report states it: base config, split sizes, hardware, versions,
readable variant labels, and the comparison a study declares in words."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pandas as pd

from harness.record import Comparison
from harness.record.numbers import finite
from harness.record.params import param_label
from harness.report import narrative, tables, vocabulary
from harness.report.formatting import fmt_ci
from harness.version import __version__

TEXT_DATASETS = ("tiny_shakespeare",)
Labeler = Callable[[str], str]


def base_config(study: tables.Study) -> dict[str, Any]:
    if study.meta and isinstance(study.meta.get("base"), dict):
        return study.meta["base"]
    pool = (study.runs_of(study.baseline, included_only=False) if study.baseline else []) or \
        study.runs
    if not pool:
        return {}
    return {k: v for k, v in pool[0].config.items() if k != "run_id"}


def recorded_sizes(study: tables.Study) -> dict[str, Any] | None:
    """Train/val/test sizes as the first run that recorded them saw them."""
    for r in study.runs:
        sizes = (r.summary or {}).get("split_sizes")
        if isinstance(sizes, dict) and any(v is not None for v in sizes.values()):
            return sizes
    return None


def split_sizes(study: tables.Study, base: dict[str, Any]) -> str:
    sizes = recorded_sizes(study)
    if sizes:
        return ", ".join(f"{k} {v}" for k, v in sizes.items() if v is not None)
    data = base.get("data") or {}
    keys = ("num_samples", "test_fraction", "val_fraction", "train_size", "label_noise")
    return "not recorded; config: " + ", ".join(f"{k}={data.get(k)}" for k in keys if k in data)


def hardware(study: tables.Study) -> list[str]:
    seen: dict[str, int] = {}
    for r in study.runs:
        e = r.env or {}
        if not e:
            continue
        line = (f"{e.get('device_name', '?')} ({e.get('device', '?')}, {e.get('threads', '?')} "
                f"thread(s)) on {e.get('host', '?')}; python {e.get('python', '?')}, torch "
                f"{e.get('torch', '?')}, git {str(e.get('git_commit') or 'n/a')[:10]}")
        seen[line] = seen.get(line, 0) + 1
    return [f"{line} — {n} run(s)" for line, n in seen.items()] or ["not recorded"]


def harness_version(study: tables.Study) -> str:
    if study.meta and study.meta.get("harness_version"):
        return str(study.meta["harness_version"])
    versions = sorted({str(r.env.get("harness")) for r in study.runs if r.env and
                       r.env.get("harness")})
    return ", ".join(versions) or __version__


def is_text(base: dict[str, Any]) -> bool:
    return (base.get("data") or {}).get("name") in TEXT_DATASETS


def labeler(study: tables.Study) -> Labeler:
    """Readable variant names; a sweep's baseline says which value it stands for."""
    design = study.design
    desc = None
    if design.get("kind") == "sweep" and design.get("baseline_value") is not None:
        desc = f"{param_label(design.get('parameter', '')).display} = " \
               f"{design['baseline_value']:g}" if isinstance(design["baseline_value"],
                                                             (int, float)) else None
    return lambda name: narrative.variant_label(name, study.baseline, desc)


def comparison_lines(summary: pd.DataFrame, compare: Comparison, baseline: str | None,
                     budget: int | None) -> list[str]:
    """Per variant, the study's declared comparison in words (only when a study declares one
    other than the default): each reference, the paired difference, and the epochs run."""
    if baseline is None or (compare.reference_metric == compare.metric
                            and not compare.also_against) or summary.empty:
        return []
    base = summary[summary["variant"] == baseline]
    if base.empty:
        return []
    base = base.iloc[0]
    label = tables.METRICS.get
    lines = []
    for _, row in summary.iterrows():
        if row["variant"] == baseline:
            continue
        parts = [f"{row['variant']}: {label(compare.metric, compare.metric)} "
                 f"{fmt_ci(row, compare.metric)}"]
        for i, ref in enumerate([compare.reference_metric, *compare.also_against]):
            prefix = "" if i == 0 else f"vs_{ref}_"
            d, p = row.get(f"{prefix}delta"), row.get(f"{prefix}p_value")
            diff = f"{float(d) * 100:+.1f} pts" if finite(d) else "difference n/a"
            ptxt = f", p {vocabulary.p_is(float(p))}" if finite(p) else ""
            parts.append(f"vs baseline {label(ref, ref)} {fmt_ci(base, ref)} ({diff}{ptxt})")
        epochs = row.get("epochs_run_mean")
        if finite(epochs):
            text = f"ran {fmt_ci(row, 'epochs_run', 1)} epochs"
            if budget:
                text += f" of {budget} ({(1 - float(epochs) / budget) * 100:.0f}% compute saved)"
            parts.append(text)
        lines.append("; ".join(parts) + ".")
    return lines


def compare_label(compare: Comparison) -> str:
    metric = tables.METRICS.get(compare.metric, compare.metric)
    if compare.reference_metric == compare.metric:
        return metric
    ref = compare.reference_metric
    return f"{metric} (baseline: {tables.METRICS.get(ref, ref)})"
