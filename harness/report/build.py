"""Build a study's report: report.html (self-contained), report.md + figures/, summary.csv,
runs.csv, claims.json, and refresh results/index.html.

    from harness.report import build_report
    paths = build_report(Path("results/my_study"))

One answer per report: the variant the study's claim chooses on validation (selection.py) is
the report's best in the headline, the table, the figures and the index, and every verdict
is one of the words of vocabulary.py.
"""

from __future__ import annotations

import base64
import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import markdown
import numpy as np
import pandas as pd
import yaml

from harness.record.disk import atomic_write_text
from harness.record.layout import CLAIMS_JSON, REPORT_HTML, REPORT_MD, RUNS_CSV, SUMMARY_CSV
from harness.record.params import param_label
from harness.report import (
    claim_words,
    claims,
    confirmation,
    figure_set,
    headline,
    render,
    selection,
    setup_info,
    table_rows,
    tables,
    variants,
    vocabulary,
    weights,
)
from harness.report.formatting import fmt_seconds
from harness.report.index import build_index
from harness.report.regime import regime
from harness.report.sections import extra_sections, summary_sections
from harness.stats import compare as stats
from harness.study.runs_table import runs_table

FIGURE_DIR = figure_set.FIGURE_DIR


@dataclass
class ReportPaths:
    html: Path
    markdown: Path
    summary_csv: Path
    runs_csv: Path
    index: Path | None
    figures: list[Path] = field(default_factory=list)
    headline: str = ""


def section_html(text: str) -> str:
    """A study-specific section's Markdown as HTML, each table in a scroll box so a wide one
    scrolls inside the page instead of widening it, and stackable on a phone (every cell
    carries its column's name)."""
    html = markdown.markdown(text, extensions=["tables"])
    return render.stackable(html)


def study_margin(claim_list: list[Any]) -> float:
    """The smallest effect of interest for the table's accuracy comparisons: the first
    accuracy claim's margin, else vocabulary.DEFAULT_MARGIN."""
    for c in claim_list:
        if vocabulary.unit_of(getattr(c, "metric", "")) is vocabulary.POINTS:
            return claim_words.margin_of(None, c)
    return vocabulary.DEFAULT_MARGIN


def _restored_notes(study: tables.Study) -> dict[str, str]:
    """The compact table's name cell: which epoch an early-stopping variant restored."""
    out = {}
    for v in study.variants:
        epochs = weights.restored_epochs(study.runs_of(v.name))
        if epochs and weights.restores(weights.regularizers_of(study, v.name)):
            out[v.name] = f"restored epoch {weights.epochs_text(epochs)}"
    return out


def _sections(study_dir: Path, sections: list[dict[str, Any]]) -> tuple[list, list]:
    html = [{"title": x["title"], "html": section_html(x["markdown"]),
             "figures": [{"title": f["title"], "src": data_uri(f["path"])}
                         for f in x["figures"]]} for x in sections]
    md = [{"title": x["title"], "markdown": x["markdown"],
           "figures": [{"title": f["title"],
                        "src": Path(f["path"]).relative_to(study_dir).as_posix()}
                       for f in x["figures"]]} for x in sections]
    return html, md


def data_uri(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(Path(path).read_bytes()).decode("ascii")


def _relative_paths(runs: pd.DataFrame, study_dir: Path) -> pd.DataFrame:
    """runs.csv names run folders relative to the study folder, so it stays true when the
    folder moves (the committed examples)."""
    def rel(path: str) -> str:
        p = Path(path)
        return p.relative_to(study_dir).as_posix() if p.is_relative_to(study_dir) else path

    return runs.assign(path=[rel(str(p)) for p in runs["path"]]) if len(runs) else runs


def _claim_on_choice(verdicts: list[Any], claim_list: list[Any], chosen: str | None,
                     baseline: str | None, compare: Any) -> tuple[Any, float] | None:
    """The first claim that tests the chosen variant against the baseline on the compared
    metric, as (its judgement, its difference): the answer states it."""
    for v, c in zip(verdicts, claim_list, strict=True):
        column = claim_words.CLAIM_COLUMNS.get(v.metric, v.metric)
        if (chosen and v.variant == chosen and v.reference == baseline
                and column == compare.metric and math.isfinite(v.diff)):
            return claim_words.judgement(v, c), float(v.diff)
    return None


def build_report(study_dir: Path | str, *, index: bool = True) -> ReportPaths:
    """Read results/<study>/ and write the report files; returns their paths.
    Why long: the templates' context is one mapping, beside the files it is written to."""
    study_dir = Path(study_dir)
    study = tables.load_study(study_dir)
    runs = runs_table(study)
    compare = tables.effective_compare(study, runs)
    claim_list = claims.study_claims(study.meta, study.name)
    margin = study_margin(claim_list)
    summary = tables.summary_table(study, runs, compare, margin)
    settings = tables.variant_settings(study)
    meta = study.meta or {}
    sizes = setup_info.recorded_sizes(study) or {}
    verdicts = claims.evaluate_claims(
        claim_list, runs, study.baseline,
        meta.get("screen_seeds") or meta.get("seeds") or sorted({r.seed for r in study.runs}),
        claims.study_confirm(study.meta), settings, [v.name for v in study.variants],
        sizes.get("test") if isinstance(sizes.get("test"), int) else None)
    base = setup_info.base_config(study)
    label = setup_info.labeler(study)
    order = list(summary["variant"]) if len(summary) else [v.name for v in study.variants]
    choice = selection.choose(verdicts, summary, study.baseline, settings, label)
    best = choice.variant if len(choice.candidates) > 1 else None
    select = str((base.get("train") or {}).get("select") or "val_acc")
    regs = weights.regularizers_of(study, choice.variant) if choice.variant else {}
    phrase = weights.compared_phrase(compare.metric, compare.reference_metric, select,
                                     weights.final_tag(regs))
    has_val = tables.has_validation(runs)
    seeds = (study.meta or {}).get("seeds") or sorted({r.seed for r in study.runs})
    n_pairs = int(pd.to_numeric(summary.get("n_pairs"), errors="coerce").max()) \
        if len(summary) and "n_pairs" in summary and summary["n_pairs"].notna().any() else 0

    curves = {v.name: tables.variant_curves(study.runs_of(v.name)) for v in study.variants}
    detail = variants.details(study, summary, runs, curves, compare, label, best,
                              not setup_info.is_text(base), phrase)
    param = tables.sweep_parameter(study)
    plan = figure_set.Plan(study, summary, runs, curves, order, label, choice.variant,
                           compare.metric, compare.reference_metric, margin, phrase,
                           param_label(param).display if param else None, select)
    lead_figs, more_figs = figure_set.draw(plan)
    fig_dir = study_dir / FIGURE_DIR
    fig_paths = figure_set.write(lead_figs + more_figs, fig_dir)
    confirmed = confirmation.section(study_dir, verdicts,
                                     [c.direction for c in claim_list])
    sections = ([confirmed] if confirmed else []) + extra_sections(study_dir, fig_dir) \
        + summary_sections(summary, settings, fig_dir)
    for section in sections:
        fig_paths += [f["path"] for f in section["figures"]]

    on_choice = _claim_on_choice(verdicts, claim_list, choice.variant, study.baseline, compare)
    answer = headline.answer(headline.Inputs(
        summary, study.baseline, choice, compare.metric, compare.reference_metric, phrase,
        label, detail.evidence, detail.underfits, n_pairs, margin, on_choice))
    answer[0] = f"{answer[0]} {regime(base, setup_info.recorded_sizes(study))}".strip()
    noise = float((base.get("data") or {}).get("label_noise") or 0.0)
    context = _context(study, runs, summary, base, label, seeds, n_pairs) | {
        "headline": answer[0], "answer": answer,
        "claim": [claim_words.box_entry(v, c, summary, study.baseline, label, has_val, settings)
                  for v, c in zip(verdicts, claim_list, strict=True)],
        "compact": table_rows.compact_rows(summary, best, label, compare.metric,
                                     compare.reference_metric, _restored_notes(study)),
        "compact_caption": f"{phrase[0].upper()}{phrase[1:]}, {len(seeds)} seed(s) per variant",
        "details": table_rows.detail_tables(summary, runs, best, label,
                                      (base.get("train") or {}).get("epochs"), compare.metric),
        "variants_detail": detail.rows,
        "weights_facts": weights.early_stopping_facts(study, label, noise),
        "margin_text": vocabulary.POINTS.effect(margin).lstrip("+"),
        "meanings": vocabulary.MEANINGS, "has_validation": has_val,
        "claim_answer": on_choice is not None,
        "compare_metric": setup_info.compare_label(compare),
        "comparison_lines": setup_info.comparison_lines(
            summary, compare, study.baseline, (base.get("train") or {}).get("epochs")),
    }
    html_sections, md_sections = _sections(study_dir, sections)
    paths = ReportPaths(html=study_dir / REPORT_HTML, markdown=study_dir / REPORT_MD,
                        summary_csv=study_dir / SUMMARY_CSV, runs_csv=study_dir / RUNS_CSV,
                        index=None, figures=fig_paths, headline=answer[0])
    atomic_write_text(paths.runs_csv, _relative_paths(runs, study_dir).to_csv(index=False))
    atomic_write_text(paths.summary_csv, summary.to_csv(index=False))
    record = claims.claims_record(verdicts) | {
        "regime": regime(base, setup_info.recorded_sizes(study)), "chosen": choice.variant,
        "words": [c["word"] for c in context["claim"]],
        "directions": [c.direction for c in claim_list],
        "margins": [claim_words.margin_of(v, c) for v, c in zip(verdicts, claim_list,
                                                                 strict=True)]}
    atomic_write_text(study_dir / CLAIMS_JSON, json.dumps(record, indent=1))
    atomic_write_text(paths.html, render.render(
        "report.html.j2", **context, lead_figures=figure_set.for_html(lead_figs),
        figures=figure_set.for_html(more_figs), sections=html_sections))
    atomic_write_text(paths.markdown, render.render(
        "report.md.j2", **context, lead_figures=figure_set.for_markdown(lead_figs),
        figures=figure_set.for_markdown(more_figs), sections=md_sections))
    if index:
        paths.index = build_index(study_dir.parent)
    return paths


def _context(study: tables.Study, runs: pd.DataFrame, summary: pd.DataFrame,
             base: dict[str, Any], label: Any, seeds: list[int], n_pairs: int) -> dict[str, Any]:
    """The study's setup as the templates show it."""
    wandb_links = [{"label": f"{r.variant} seed {r.seed}", "url": r.wandb_url}
                   for r in runs.itertuples() if isinstance(r.wandb_url, str) and r.wandb_url]
    meta = study.meta or {}
    return {
        "name": study.name,
        "description": subtitle(study),
        "design": study.design,
        "sweep_parameter": tables.sweep_parameter(study),
        "base_yaml": yaml.safe_dump(base, sort_keys=False, default_flow_style=False).rstrip(),
        "dataset": (base.get("data") or {}).get("name", "n/a"),
        "model": (base.get("model") or {}).get("name", "n/a"),
        "split_sizes": setup_info.split_sizes(study, base),
        "seeds": ", ".join(str(s) for s in seeds) or "none",
        "n_seeds": len(seeds), "tested": n_pairs >= 2,
        "hardware": setup_info.hardware(study),
        "compute": fmt_seconds(float(np.nansum(runs["wall_time"].to_numpy(dtype=float)))
                               if len(runs) else math.nan),
        "harness_version": setup_info.harness_version(study),
        "created_at": meta.get("created_at"),
        "overrides": " ".join(f"--set {k}={v}" for k, v in (meta.get("overrides") or {}).items()),
        "generated": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "baseline": study.baseline,
        "baseline_label": label(study.baseline) if study.baseline else None,
        "n_runs": len(runs), "n_included": int(runs["included"].sum()) if len(runs) else 0,
        "n_planned": study.planned_count,
        "excluded": study.left_out(),
        "wandb_links": wandb_links,
        "alpha": stats.ALPHA, "power": stats.POWER, "correction": stats.MULTIPLE_TESTING,
        "confidence": stats.CONFIDENCE,
        "n_comparisons": int(summary["p_value"].notna().sum()) if len(summary) else 0,
    }


def subtitle(study: tables.Study) -> str:
    """The study file's description; without one, what study.json says the study is (the
    ad-hoc line only where there is no study.json: runs gathered without a study file)."""
    meta = study.meta or {}
    if meta.get("description"):
        return str(meta["description"])
    if not meta:
        return "Ad-hoc runs (no study.json): variants come from the runs' configs."
    kind = study.design.get("kind") or "study"
    param = tables.sweep_parameter(study)
    of = f" of `{param}`" if param else ""
    return (f"A {kind.replace('_', '-')} study{of}: {len(study.variants)} variants "
            "(the study file has no description).")
