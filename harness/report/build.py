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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import markdown
import numpy as np
import pandas as pd
import yaml

import harness
from harness.record import Comparison
from harness.report import claims, diagnosis, figures, render, stats, tables
from harness.report.files import atomic_write_bytes, atomic_write_text
from harness.report.index import CLAIMS_JSON, build_index
from harness.report.regime import regime
from harness.report.sections import extra_sections, summary_sections

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


# ----------------------------------------------------------------------------- formatting


def data_uri(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(Path(path).read_bytes()).decode("ascii")


def _finite(x: Any) -> bool:
    try:
        return x is not None and math.isfinite(float(x))
    except (TypeError, ValueError):
        return False


def fmt(x: Any, digits: int = 3) -> str:
    if not _finite(x):
        return "n/a"
    x = float(x)
    if x != 0 and (abs(x) >= 1e5 or abs(x) < 10 ** -(digits + 1)):
        return f"{x:.{digits - 1}e}"
    return f"{x:.{digits}f}"


def fmt_int(x: Any) -> str:
    if not _finite(x):
        return "n/a"
    x = float(x)
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(x) >= scale:
            return f"{x / scale:.3g}{unit}"
    return f"{x:.0f}"


def fmt_ci(row: pd.Series | dict, metric: str, digits: int = 3) -> str:
    mean, half = row.get(f"{metric}_mean"), row.get(f"{metric}_ci95")
    if not _finite(mean):
        return "n/a"
    if not _finite(half):
        return f"{fmt(mean, digits)} (n={int(row.get(f'{metric}_n', 0))})"
    return f"{fmt(mean, digits)} ± {fmt(half, digits)}"


def fmt_seconds(s: float) -> str:
    if not _finite(s):
        return "n/a"
    s = float(s)
    if s < 120:
        return f"{s:.1f} s"
    if s < 7200:
        return f"{s / 60:.1f} min"
    return f"{s / 3600:.2f} h"


def fmt_p(p: Any) -> str:
    return "n/a" if not _finite(p) else (f"{p:.2g}" if p >= 0.001 else "<0.001")


# ----------------------------------------------------------------------------- pieces


def headline(summary: pd.DataFrame, baseline: str | None,
             compare: Comparison | None = None) -> str:
    compare = compare or Comparison()
    metric, ref = compare.metric, compare.reference_metric
    key = f"{metric}_mean"
    ok = summary[summary[key].apply(_finite)] if len(summary) and key in summary else \
        summary.iloc[0:0]
    if ok.empty:
        return "No completed runs yet."
    best = ok.iloc[0]
    text = f"{tables.METRICS.get(metric, metric)} {fmt_ci(best, metric)}"
    if baseline is None or baseline not in set(summary["variant"]):
        return f"Best: {best['variant']}, {text} (no baseline to compare with)."
    base = summary[summary["variant"] == baseline].iloc[0]
    base_text = f"{tables.METRICS.get(ref, ref)} {fmt_ci(base, ref)}"
    if ref != metric:
        others = ok[ok["variant"] != baseline]
        if others.empty:
            return f"Baseline only: {base_text}."
        return (f"Best: {others.iloc[0]['variant']}, {tables.METRICS.get(metric, metric)} "
                f"{fmt_ci(others.iloc[0], metric)} vs baseline {base_text} "
                f"({_delta(others.iloc[0])}).")
    if best["variant"] == baseline:
        others = ok[ok["variant"] != baseline]
        if others.empty:
            return f"Baseline only: {text}."
        nxt = others.iloc[0]
        return (f"Best: baseline, {text}; no variant beat it (next: {nxt['variant']}, "
                f"{_delta(nxt)}).")
    return f"Best: {best['variant']}, {text} vs baseline {base_text} ({_delta(best)})."


def _delta(row: pd.Series) -> str:
    d = row.get("delta")
    if not _finite(d):
        return "difference n/a"
    p = row.get("p_value")
    ptxt = f"p={fmt_p(p)}" if _finite(p) else "not testable"
    return f"{float(d) * 100:+.1f} pts, {ptxt}"


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
    return ", ".join(versions) or harness.__version__


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
    if row.get("is_baseline") or row.get("test") is None:
        return None
    if row.get("test") == "n/a" and not _finite(row.get("delta")):
        return None
    p = float(row["p_value"]) if _finite(row.get("p_value")) else math.nan
    return stats.Comparison(float(row["delta"]), p, str(row["test"]),
                            int(row.get("n_pairs") or 0))


def _variant_rows(summary: pd.DataFrame, baseline: str | None,
                  metric: str = tables.COMPARE_METRIC) -> list[dict[str, Any]]:
    rows = []
    best_key = f"{metric}_mean"
    best_variant = next((r["variant"] for _, r in summary.iterrows() if _finite(r[best_key])),
                        None)
    for _, r in summary.iterrows():
        sig = r.get("significant")
        n_bad = int(r["n_diverged"] + r["n_failed"] + r["n_incomplete"] + r["n_rejected"]
                    + r["n_missing"])
        rows.append({
            "variant": r["variant"], "is_baseline": bool(r["is_baseline"]),
            "is_best": r["variant"] == best_variant,
            "n": f"{int(r['n_included'])}" + (f" (+{n_bad} excl.)" if n_bad else ""),
            "swept": f"{float(r['swept_value']):g}" if _finite(r.get("swept_value")) else "",
            "best_acc": fmt_ci(r, "best_test_acc"), "best_loss": fmt_ci(r, "best_test_loss"),
            "last_acc": fmt_ci(r, "last_test_acc"), "last_loss": fmt_ci(r, "last_test_loss"),
            "delta": "baseline" if r["is_baseline"] else (
                f"{float(r['delta']) * 100:+.1f} pts"
                if _finite(r.get("delta")) else "n/a"),
            "p": fmt_p(r.get("p_value")), "test": r.get("test") or "n/a",
            "significant": "n/a" if sig is None or (isinstance(sig, float) and math.isnan(sig))
            else ("yes" if sig else "no"),
            "gap_loss": fmt_ci(r, "gap_loss"), "gap_acc": fmt_ci(r, "gap_acc"),
            "best_epoch": fmt_ci(r, "best_epoch", 1), "ece": fmt_ci(r, "ece"),
            "mia": fmt_ci(r, "mia_advantage"), "shift": fmt_ci(r, "shift_acc"),
            "disagreement": fmt(r.get("disagreement")),
            "params": fmt_int(r.get("params_mean")), "flops": fmt_int(r.get("flops_mean")),
            "wall": fmt_seconds(r.get("wall_time_mean")),
        })
    return rows


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
            diff = f"{float(d) * 100:+.1f} pts" if _finite(d) else "difference n/a"
            ptxt = f", p={fmt_p(p)}" if _finite(p) else ""
            parts.append(f"vs baseline {label(ref, ref)} {fmt_ci(base, ref)} ({diff}{ptxt})")
        epochs = row.get("epochs_run_mean")
        if _finite(epochs):
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
    """Read results/<study>/ and write the report files; returns their paths."""
    study_dir = Path(study_dir)
    study = tables.load_study(study_dir)
    runs = tables.runs_table(study)
    summary = tables.summary_table(study, runs)
    order = list(summary["variant"]) if len(summary) else [v.name for v in study.variants]
    base = _base_config(study)
    text = _is_text(base)

    # Curves and diagnosis per variant.
    curves = {v.name: tables.variant_curves(study.runs_of(v.name)) for v in study.variants}
    diag: dict[str, list[diagnosis.Finding]] = {}
    for _, row in summary.iterrows():
        name = row["variant"]
        all_runs = study.runs_of(name, included_only=False)
        failures = [f"seed {r.seed} diverged at epoch {(r.summary or {}).get('diverged_epoch')}"
                    for r in all_runs if r.status == "diverged"]
        run_curves = [(f"seed {r.seed}", r.metrics) for r in all_runs
                      if len(r.metrics) and r.status not in ("incomplete",)]
        diag[name] = diagnosis.diagnose(tables.mean_curve(curves[name]), run_curves, failures,
                                        _comparison(row), classification=not text)

    # Figures.
    param = tables.sweep_parameter(study)
    reliability = {v: b for v in order if (b := _pooled_reliability(study.runs_of(v)))}
    candidates = (
        figures.curves_figure(curves, order, study.baseline, "loss"),
        figures.curves_figure(curves, order, study.baseline, "acc"),
        figures.gap_figure(curves, order, study.baseline),
        figures.sweep_figure(summary, param, study.baseline) if param else None,
        figures.reliability_figure(reliability, order, study.baseline),
    )
    figs = [f for f in candidates if f is not None]
    fig_dir = study_dir / FIGURE_DIR
    fig_paths = []
    for f in figs:
        path = fig_dir / f"{f.name}.png"
        atomic_write_bytes(path, f.png)
        fig_paths.append(path)
    if fig_dir.is_dir():  # figures this build no longer draws would mislead readers of report.md
        for stale in fig_dir.glob("*.png"):
            if stale not in fig_paths:
                stale.unlink(missing_ok=True)

    settings = tables.variant_settings(study)
    verdicts = claims.evaluate_claims(claims.study_claims(study.meta, study.name), summary, runs,
                                      settings, study.baseline)
    sections = extra_sections(study_dir, fig_dir) + summary_sections(summary, settings, fig_dir)
    for section in sections:
        fig_paths += [f["path"] for f in section["figures"]]
    excluded = study.left_out()
    head = (f"{headline(summary, study.baseline, study.compare)} "
            f"{regime(base, _recorded_sizes(study))}")
    wandb_links = [{"label": f"{r.variant} seed {r.seed}", "url": r.wandb_url}
                   for r in runs.itertuples() if isinstance(r.wandb_url, str) and r.wandb_url]
    seeds = (study.meta or {}).get("seeds") or sorted({r.seed for r in study.runs})
    context = {
        "name": study.name,
        "headline": head,
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
        "hardware": _hardware(study),
        "compute": fmt_seconds(float(np.nansum(runs["wall_time"].to_numpy(dtype=float)))
                               if len(runs) else math.nan),
        "harness_version": _harness_version(study),
        "created_at": (study.meta or {}).get("created_at"),
        "generated": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "baseline": study.baseline,
        "n_runs": len(runs), "n_included": int(runs["included"].sum()) if len(runs) else 0,
        "n_planned": study.planned_count,
        "variants": _variant_rows(summary, study.baseline, study.compare.metric),
        "diagnosis": [{"variant": v, "findings": diag.get(v, [])} for v in order],
        "excluded": excluded,
        "wandb_links": wandb_links,
        "alpha": stats.ALPHA,
        "compare_metric": _compare_label(study.compare),
        "comparison_lines": comparison_lines(summary, study.compare, study.baseline,
                                             (base.get("train") or {}).get("epochs")),
    }
    html_sections = [{"title": x["title"], "html": markdown.markdown(x["markdown"],
                                                                     extensions=["tables"]),
                      "figures": [{"title": f["title"], "src": data_uri(f["path"])}
                                  for f in x["figures"]]} for x in sections]
    md_sections = [{"title": x["title"], "markdown": x["markdown"],
                    "figures": [{"title": f["title"],
                                 "src": Path(f["path"]).relative_to(study_dir).as_posix()}
                                for f in x["figures"]]} for x in sections]
    html_figs = [{"title": f.title, "caption": f.caption,
                  "src": "data:image/png;base64," + base64.b64encode(f.png).decode("ascii")}
                 for f in figs]
    md_figs = [{"title": f.title, "caption": f.caption, "src": f"{FIGURE_DIR}/{f.name}.png"}
               for f in figs]

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
