"""Build a study's report: report.html (self-contained), report.md + figures/, summary.csv,
runs.csv, and refresh results/index.html.

    from harness.report import build_report
    paths = build_report(Path("results/my_study"))
"""

from __future__ import annotations

import base64
import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import markdown
import numpy as np
import pandas as pd
import yaml

from harness.record import Comparison
from harness.report import (
    claims,
    confirmation,
    diagnosis,
    figures,
    narrative,
    render,
    rows,
    stats,
    tables,
)
from harness.report.files import atomic_write_bytes, atomic_write_text
from harness.report.forked import run_tasks
from harness.report.formatting import finite, fmt_ci, fmt_p, fmt_seconds
from harness.report.index import CLAIMS_JSON, build_index
from harness.report.regime import regime
from harness.report.sections import extra_sections, summary_sections
from harness.study.runs_table import runs_table
from harness.version import __version__

TEXT_DATASETS = ("tiny_shakespeare",)
FIGURE_DIR = "figures"


@dataclass
class ReportPaths:
    html: Path
    markdown: Path
    summary_csv: Path
    runs_csv: Path
    index: Path | None
    figures: list[Path] = field(default_factory=list)
    headline: str = ""


# ----------------------------------------------------------------------------- pieces


def data_uri(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(Path(path).read_bytes()).decode("ascii")


def _base_config(study: tables.Study) -> dict[str, Any]:
    if study.meta and isinstance(study.meta.get("base"), dict):
        return study.meta["base"]
    pool = (study.runs_of(study.baseline, included_only=False) if study.baseline else []) or \
        study.runs
    if not pool:
        return {}
    return {k: v for k, v in pool[0].config.items() if k != "run_id"}


def _recorded_sizes(study: tables.Study) -> dict[str, Any] | None:
    """Train/val/test sizes as the first run that recorded them saw them."""
    for r in study.runs:
        sizes = (r.summary or {}).get("split_sizes")
        if isinstance(sizes, dict) and any(v is not None for v in sizes.values()):
            return sizes
    return None


def _split_sizes(study: tables.Study, base: dict[str, Any]) -> str:
    sizes = _recorded_sizes(study)
    if sizes:
        return ", ".join(f"{k} {v}" for k, v in sizes.items() if v is not None)
    data = base.get("data") or {}
    keys = ("num_samples", "test_fraction", "val_fraction", "train_size", "label_noise")
    return "not recorded; config: " + ", ".join(f"{k}={data.get(k)}" for k in keys if k in data)


def _hardware(study: tables.Study) -> list[str]:
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


def _harness_version(study: tables.Study) -> str:
    if study.meta and study.meta.get("harness_version"):
        return str(study.meta["harness_version"])
    versions = sorted({str(r.env.get("harness")) for r in study.runs if r.env and
                       r.env.get("harness")})
    return ", ".join(versions) or __version__


def _is_text(base: dict[str, Any]) -> bool:
    return (base.get("data") or {}).get("name") in TEXT_DATASETS


def _pooled_reliability(records: list[tables.RunRecord]) -> dict[str, np.ndarray] | None:
    count = conf = acc = None
    for r in records:
        b = (r.summary or {}).get("final_reliability")
        if not isinstance(b, dict) or not b.get("count"):
            continue
        c = np.asarray(b["count"], dtype=float)
        if count is None:
            count, conf, acc = np.zeros_like(c), np.zeros_like(c), np.zeros_like(c)
        if len(c) != len(count):
            continue
        count += c
        conf += c * np.asarray(b["confidence"], dtype=float)
        acc += c * np.asarray(b["accuracy"], dtype=float)
    if count is None or count.sum() == 0:
        return None
    safe = np.maximum(count, 1)
    out = {"count": count, "confidence": conf / safe, "accuracy": acc / safe}
    out["ece"] = float(np.sum(count / count.sum() * np.abs(out["accuracy"] - out["confidence"])))
    return out


def _comparison(row: pd.Series) -> stats.Comparison | None:
    """The baseline comparison as the diagnosis cites it: Holm-adjusted p."""
    if row.get("is_baseline") or row.get("test") is None:
        return None
    if row.get("test") == "n/a" and not finite(row.get("delta")):
        return None
    p = float(row["p_holm"]) if finite(row.get("p_holm")) else math.nan
    test = f"{row['test']}, {stats.MULTIPLE_TESTING}-adjusted" if finite(p) else str(row["test"])
    return stats.Comparison(float(row["delta"]), p, test,
                            int(row.get("n_pairs") or 0), float(row.get("delta_ci_lo", math.nan)),
                            float(row.get("delta_ci_hi", math.nan)),
                            float(row.get("effect_dz", math.nan)), float(row.get("mde", math.nan)))


def _labeler(study: tables.Study) -> figures.Labeler:
    """Readable variant names; a sweep's baseline says which value it stands for."""
    design = study.design
    desc = None
    if design.get("kind") == "sweep" and design.get("baseline_value") is not None:
        desc = f"{narrative.param_label(design.get('parameter', ''))} = " \
               f"{design['baseline_value']:g}" if isinstance(design["baseline_value"],
                                                             (int, float)) else None
    return lambda name: narrative.variant_label(name, study.baseline, desc)


def _regularizers(study: tables.Study, variant: str) -> set[str]:
    runs = study.runs_of(variant, included_only=False)
    regs = (runs[0].config.get("regularizers") if runs else None) or {}
    return set(regs) if isinstance(regs, dict) else set()


def _markers(study: tables.Study, runs: pd.DataFrame) -> dict[str, list[tuple[float, str]]]:
    """Vertical lines on the curves: mean best-val epoch, and the mean early-stopping epoch."""
    out: dict[str, list[tuple[float, str]]] = {}
    inc = runs[runs["included"].astype(bool)]
    for v in study.variants:
        marks = []
        best = inc.loc[inc["variant"] == v.name, "best_epoch"].astype(float).dropna()
        if len(best):
            marks.append((float(best.mean()), "best-val epoch (mean)"))
        stops = [float(s) for r in study.runs_of(v.name)  # type: ignore[arg-type]  # finite()
                 if finite(s := (r.summary or {}).get("stop_epoch"))]
        if stops:
            marks.append((float(np.mean(stops)), "early stop (mean)"))
        out[v.name] = marks
    return out


def _figures(study: tables.Study, summary: pd.DataFrame, runs: pd.DataFrame,
             curves: dict[str, pd.DataFrame], order: list[str],
             label: figures.Labeler) -> list[figures.Figure]:
    param = tables.sweep_parameter(study)
    reliability = {v: b for v in order if (b := _pooled_reliability(study.runs_of(v)))}
    markers = _markers(study, runs)
    draw: list[Callable[[], figures.Figure | None]] = [  # the longest first (forked.py)
        lambda: figures.curves_figure(curves, order, study.baseline, "acc", label, markers),
        lambda: figures.curves_figure(curves, order, study.baseline, "loss", label, markers),
        lambda: figures.reliability_figure(reliability, order, study.baseline, label),
        lambda: figures.gap_figure(curves, order, study.baseline, label),
        lambda: figures.sweep_figure(summary, narrative.param_label(param), study.baseline,
                                     study.design.get("baseline_value")) if param else None,
    ]
    drawn = run_tasks(draw)
    return [f for f in (drawn[0], drawn[1], drawn[4], drawn[3], drawn[2]) if f is not None]


def _write_figures(figs: list[figures.Figure], fig_dir: Path) -> list[Path]:
    paths = []
    for f in figs:
        for panel in f.panels:
            path = fig_dir / f"{panel.name}.png"
            atomic_write_bytes(path, panel.png)
            paths.append(path)
    if fig_dir.is_dir():  # figures this build no longer draws would mislead readers of report.md
        for stale in fig_dir.glob("*.png"):
            if stale not in paths:
                stale.unlink(missing_ok=True)
    return paths


def section_html(text: str) -> str:
    """A study-specific section's Markdown as HTML, each table in a scroll box so a wide one
    scrolls inside the page instead of widening it (phones)."""
    html = markdown.markdown(text, extensions=["tables"])
    return html.replace("<table>", '<div class="table-wrap"><table class="detail">').replace(
        "</table>", "</table></div>")


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
            ptxt = f", p={fmt_p(p)}" if finite(p) else ""
            parts.append(f"vs baseline {label(ref, ref)} {fmt_ci(base, ref)} ({diff}{ptxt})")
        epochs = row.get("epochs_run_mean")
        if finite(epochs):
            text = f"ran {fmt_ci(row, 'epochs_run', 1)} epochs"
            if budget:
                text += f" of {budget} ({(1 - float(epochs) / budget) * 100:.0f}% compute saved)"
            parts.append(text)
        lines.append("; ".join(parts) + ".")
    return lines


def _compare_label(compare: Comparison) -> str:
    metric = tables.METRICS.get(compare.metric, compare.metric)
    if compare.reference_metric == compare.metric:
        return metric
    ref = compare.reference_metric
    return f"{metric} (baseline: {tables.METRICS.get(ref, ref)})"


# ----------------------------------------------------------------------------- build


def build_report(study_dir: Path | str, *, index: bool = True) -> ReportPaths:
    """Read results/<study>/ and write the report files; returns their paths. The study's
    claims (study.json) are judged from the same tables and shown right under the answer."""
    study_dir = Path(study_dir)
    study = tables.load_study(study_dir)
    runs = runs_table(study)
    summary = tables.summary_table(study, runs)
    order = list(summary["variant"]) if len(summary) else [v.name for v in study.variants]
    base = _base_config(study)
    text = _is_text(base)
    label = _labeler(study)
    best = narrative.best_variant(summary)

    # Curves, evidence against the baseline and diagnosis per variant.
    curves = {v.name: tables.variant_curves(study.runs_of(v.name)) for v in study.variants}
    moved = {name: narrative.evidence(runs, name, study.baseline) for name in order}
    per_variant = []
    for _, row in summary.iterrows():
        name = row["variant"]
        all_runs = study.runs_of(name, included_only=False)
        failures = [f"seed {r.seed} diverged at epoch {(r.summary or {}).get('diverged_epoch')}"
                    for r in all_runs if r.status == "diverged"]
        run_curves = [(f"seed {r.seed}", r.metrics) for r in all_runs
                      if len(r.metrics) and r.status not in ("incomplete",)]
        findings = diagnosis.diagnose(tables.mean_curve(curves[name]), run_curves, failures,
                                      _comparison(row), classification=not text,
                                      regularizers=_regularizers(study, name))
        per_variant.append({"variant": name, "label": label(name),
                            "is_baseline": name == study.baseline, "is_best": name == best,
                            "findings": findings,
                            "evidence": narrative.evidence_lines(moved.get(name, []))})

    figs = _figures(study, summary, runs, curves, order, label)
    fig_dir = study_dir / FIGURE_DIR
    fig_paths = _write_figures(figs, fig_dir)
    settings = tables.variant_settings(study)
    meta = study.meta or {}
    sizes = _recorded_sizes(study) or {}
    verdicts = claims.evaluate_claims(
        claims.study_claims(study.meta, study.name), runs, study.baseline,
        meta.get("screen_seeds") or meta.get("seeds") or sorted({r.seed for r in study.runs}),
        claims.study_confirm(study.meta), settings, [v.name for v in study.variants],
        sizes.get("test") if isinstance(sizes.get("test"), int) else None)
    confirmed = confirmation.section(study_dir, verdicts)
    sections = ([confirmed] if confirmed else []) + extra_sections(study_dir, fig_dir) \
        + summary_sections(summary, settings, fig_dir)
    for section in sections:
        fig_paths += [f["path"] for f in section["figures"]]

    answer = narrative.answer(summary, moved, study.baseline, label)
    head = answer[0]
    excluded = study.left_out()
    answer[0] = f"{answer[0]} {regime(base, _recorded_sizes(study))}".strip()
    head = answer[0]
    wandb_links = [{"label": f"{r.variant} seed {r.seed}", "url": r.wandb_url}
                   for r in runs.itertuples() if isinstance(r.wandb_url, str) and r.wandb_url]
    seeds = (study.meta or {}).get("seeds") or sorted({r.seed for r in study.runs})
    n_included = int(runs["included"].sum()) if len(runs) else 0
    context = {
        "name": study.name,
        "headline": head,
        "answer": answer,
        "claim": [v.to_json() for v in verdicts],
        "description": (study.meta or {}).get("description")
        or "Ad-hoc runs (no study.json): variants come from the runs' configs.",
        "design": study.design,
        "sweep_parameter": tables.sweep_parameter(study),
        "base_yaml": yaml.safe_dump(base, sort_keys=False, default_flow_style=False).rstrip(),
        "dataset": (base.get("data") or {}).get("name", "n/a"),
        "model": (base.get("model") or {}).get("name", "n/a"),
        "split_sizes": _split_sizes(study, base),
        "seeds": ", ".join(str(s) for s in seeds) or "none",
        "n_seeds": len(seeds),
        "hardware": _hardware(study),
        "compute": fmt_seconds(float(np.nansum(runs["wall_time"].to_numpy(dtype=float)))
                               if len(runs) else math.nan),
        "harness_version": _harness_version(study),
        "created_at": (study.meta or {}).get("created_at"),
        "overrides": " ".join(f"--set {k}={v}" for k, v in
                              ((study.meta or {}).get("overrides") or {}).items()),
        "generated": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "baseline": study.baseline,
        "baseline_label": label(study.baseline) if study.baseline else None,
        "n_runs": len(runs), "n_included": n_included,
        "n_planned": study.planned_count,
        "compact": rows.compact_rows(summary, best, label),
        "details": rows.detail_tables(summary, runs, best, label,
                                      (base.get("train") or {}).get("epochs")),
        "variants_detail": per_variant,
        "excluded": excluded,
        "wandb_links": wandb_links,
        "alpha": stats.ALPHA,
        "power": stats.POWER,
        "correction": stats.MULTIPLE_TESTING,
        "confidence": stats.CONFIDENCE,
        "compare_metric": _compare_label(study.compare),
        "comparison_lines": comparison_lines(summary, study.compare, study.baseline,
                                             (base.get("train") or {}).get("epochs")),
    }
    html_sections = [{"title": x["title"], "html": section_html(x["markdown"]),
                      "figures": [{"title": f["title"], "src": data_uri(f["path"])}
                                  for f in x["figures"]]} for x in sections]
    md_sections = [{"title": x["title"], "markdown": x["markdown"],
                    "figures": [{"title": f["title"],
                                 "src": Path(f["path"]).relative_to(study_dir).as_posix()}
                                for f in x["figures"]]} for x in sections]
    html_figs = [{"title": f.title, "caption": f.caption,
                  "panels": [{"label": p.label, "src": "data:image/png;base64,"
                              + base64.b64encode(p.png).decode("ascii")} for p in f.panels]}
                 for f in figs]
    md_figs = [{"title": f.title, "caption": f.caption,
                "panels": [{"label": p.label, "src": f"{FIGURE_DIR}/{p.name}.png"}
                           for p in f.panels]} for f in figs]

    paths = ReportPaths(html=study_dir / "report.html", markdown=study_dir / "report.md",
                        summary_csv=study_dir / "summary.csv", runs_csv=study_dir / "runs.csv",
                        index=None, figures=fig_paths, headline=head)
    atomic_write_text(paths.runs_csv, runs.to_csv(index=False))
    atomic_write_text(paths.summary_csv, summary.to_csv(index=False))
    atomic_write_text(study_dir / CLAIMS_JSON, json.dumps(claims.claims_record(verdicts), indent=1))
    atomic_write_text(paths.html, render.render("report.html.j2", **context, figures=html_figs,
                                                sections=html_sections))
    atomic_write_text(paths.markdown, render.render("report.md.j2", **context, figures=md_figs,
                                                    sections=md_sections))
    if index:
        paths.index = build_index(study_dir.parent)
    return paths
