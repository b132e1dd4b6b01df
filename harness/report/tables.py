"""Read a study folder into records and tables: runs.csv (one row per run), summary.csv (one
row per variant) and per-variant mean curves."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from harness.config import flatten_dotted, get_dotted
from harness.report import stats
from harness.tracking.store import ENV, list_run_dirs
from harness.train.analysis import load_predictions
from harness.train.calibration import CALIBRATION_KEYS

STUDY_JSON = "study.json"
INCLUDED_STATUSES = ("completed", "stopped")  # runs that count towards means
BASELINE_NAMES = ("baseline", "default")  # ad-hoc studies: the baseline by name

# Run-level metrics aggregated per variant: column -> human label.
METRICS: dict[str, str] = {
    "best_test_acc": "test acc @ best val",
    "best_test_loss": "test loss @ best val",
    "last_test_acc": "test acc @ last epoch",
    "last_test_loss": "test loss @ last epoch",
    "gap_loss": "gap (val - train loss)",
    "gap_acc": "gap (train - val acc)",
    "best_epoch": "best-val epoch",
    "best_val_acc": "val acc @ best val",
    "best_val_loss": "val loss @ best val",
    "ece": "ECE",
    "ece_ts": "ECE after temperature scaling",
    "nll": "test NLL",
    "nll_ts": "test NLL after temperature scaling",
    "confidence": "mean confidence",
    "accuracy": "accuracy (final model)",
    "overconfidence": "confidence - accuracy",
    "overconfidence_ts": "confidence - accuracy after temperature scaling",
    "temperature": "fitted temperature",
    "mia_auc": "MIA AUC",
    "mia_advantage": "MIA advantage",
    "shift_acc": "shift acc",
    "params": "params",
    "flops": "FLOPs / sample",
    "wall_time": "wall time / run (s)",
}
COMPARE_METRIC = "best_test_acc"  # what the baseline comparison and the headline use


@dataclass
class RunRecord:
    path: Path
    config: dict[str, Any]
    summary: dict[str, Any] | None
    metrics: pd.DataFrame
    env: dict[str, Any] | None

    @property
    def variant(self) -> str:
        return str(self.config.get("variant", "default"))

    @property
    def seed(self) -> int:
        return int(self.config.get("seed", 0))

    @property
    def status(self) -> str:
        return str(self.summary.get("status", "unknown")) if self.summary else "incomplete"

    @property
    def included(self) -> bool:
        return self.status in INCLUDED_STATUSES


@dataclass
class Variant:
    name: str
    overrides: dict[str, Any] = field(default_factory=dict)
    swept: dict[str, Any] = field(default_factory=dict)
    is_baseline: bool = False


@dataclass
class Study:
    name: str
    dir: Path
    meta: dict[str, Any] | None
    runs: list[RunRecord]
    variants: list[Variant]
    baseline: str | None

    def runs_of(self, variant: str, included_only: bool = True) -> list[RunRecord]:
        return [r for r in self.runs if r.variant == variant and (r.included or not included_only)]

    @property
    def design(self) -> dict[str, Any]:
        return dict((self.meta or {}).get("design") or {})


# ----------------------------------------------------------------------------- loading


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError, UnicodeDecodeError):
        return None
    return data if isinstance(data, dict) else None


def load_study(study_dir: Path) -> Study:
    study_dir = Path(study_dir)
    meta = _read_json(study_dir / STUDY_JSON)
    runs = []
    for rd in list_run_dirs(study_dir):
        config = rd.config
        if config is None:
            continue
        try:
            metrics = pd.DataFrame(rd.metrics())
        except Exception:  # a half-written or foreign metrics file: treat as no rows
            metrics = pd.DataFrame()
        if len(metrics) and "epoch" in metrics:
            metrics = metrics.apply(pd.to_numeric, errors="coerce").sort_values("epoch")
        runs.append(RunRecord(rd.path, config, rd.summary, metrics.reset_index(drop=True),
                              _read_json(rd.path / ENV)))
    variants: list[Variant] = []
    baseline = None
    if meta:
        for v in meta.get("variants") or []:
            if isinstance(v, dict) and v.get("name") is not None:
                variants.append(Variant(str(v["name"]), dict(v.get("overrides") or {}),
                                        dict(v.get("swept") or {}), bool(v.get("is_baseline"))))
        baseline = meta.get("baseline") or next((v.name for v in variants if v.is_baseline), None)
    known = {v.name for v in variants}
    for r in runs:
        if r.variant not in known:
            known.add(r.variant)
            variants.append(Variant(r.variant))
    if baseline is None:
        baseline = next((n for n in BASELINE_NAMES if n in known), None)
    if baseline is not None and baseline not in known:
        baseline = None
    for v in variants:
        v.is_baseline = v.name == baseline
    name = str((meta or {}).get("name") or study_dir.name)
    return Study(name, study_dir, meta, runs, variants, baseline)


dotted_get = get_dotted


# ----------------------------------------------------------------------------- runs.csv


def _num(v: Any) -> float:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return math.nan
    return f


def train_cols(frame_or_keys) -> tuple[str, str]:
    """The train loss/acc columns the gap uses: eval-mode train metrics when present."""
    keys = set(frame_or_keys)
    if "train_eval_loss" in keys:
        return "train_eval_loss", "train_eval_acc"
    return "train_loss", "train_acc"


def run_row(rec: RunRecord) -> dict[str, Any]:
    s = rec.summary or {}
    m = rec.metrics
    row: dict[str, Any] = {
        "variant": rec.variant, "seed": rec.seed, "run_id": rec.config.get("run_id"),
        "status": rec.status, "included": rec.included, "epochs_run": s.get("epochs_run",
                                                                            len(m)),
        "diverged_epoch": s.get("diverged_epoch"),
    }
    for k in ("best_test_acc", "best_test_loss", "last_test_acc", "last_test_loss",
              "best_val_acc", "best_val_loss"):
        row[k] = _num(s.get(k))
    # Gap at the last epoch, from the last metrics row (falls back to summary last_*).
    last = m.iloc[-1].to_dict() if len(m) else {k[5:]: v for k, v in s.items()
                                                  if k.startswith("last_")}
    tl, ta = train_cols(last)
    row["gap_loss"] = _num(last.get("val_loss")) - _num(last.get(tl))
    row["gap_acc"] = _num(last.get(ta)) - _num(last.get("val_acc"))
    row["best_epoch"] = _num(s.get("best_epoch"))
    row["ece"] = _num(s.get("final_ece"))
    for k in CALIBRATION_KEYS:
        row[k] = _num(s.get(f"final_{k}"))
    row["mia_auc"] = _num(s.get("final_mia_auc"))
    row["mia_advantage"] = _num(s.get("final_mia_advantage"))
    row["shift_acc"] = _num(s.get("final_shift_acc"))
    row["params"] = _num(s.get("params"))
    row["flops"] = _num(s.get("flops"))
    row["wall_time"] = _num(s.get("wall_time"))
    row["final_test_acc"] = _num(s.get("final_test_acc"))
    wandb = s.get("wandb") if isinstance(s.get("wandb"), dict) else {}
    row["wandb_url"] = wandb.get("url") or None
    row["error"] = s.get("error")
    row["path"] = str(rec.path)
    return row


def runs_table(study: Study) -> pd.DataFrame:
    rows = [run_row(r) for r in study.runs]
    cols = ["variant", "seed", "run_id", "status", "included", "epochs_run", "diverged_epoch",
            *METRICS, "final_test_acc", "wandb_url", "error", "path"]
    df = pd.DataFrame(rows, columns=cols)
    return df.sort_values(["variant", "seed"], kind="stable").reset_index(drop=True)


# ----------------------------------------------------------------------------- summary.csv


def sweep_parameter(study: Study) -> str | None:
    design = study.design
    if design.get("kind") == "sweep" and design.get("parameter"):
        return str(design["parameter"])
    params = design.get("parameters") or []
    if design.get("kind") == "grid" and len(params) == 1:
        return str(params[0])
    return None


def swept_value(study: Study, variant: Variant, param: str | None) -> float:
    """The numeric swept value of a variant, from study.json or the runs' configs; else nan."""
    if param is None:
        return math.nan
    for source in (variant.swept, variant.overrides):
        if param in source:
            return _num(source[param])
    for r in study.runs_of(variant.name, included_only=False):
        v = dotted_get(r.config, param)
        if v is not None:
            return _num(v)
    return math.nan


def variant_settings(study: Study) -> dict[str, dict[str, Any]]:
    """Per variant, the dotted config keys (lr, regularizer strengths, ...) of its first run:
    what claims and the strength-grid section read to find where a variant sits."""
    out: dict[str, dict[str, Any]] = {}
    for v in study.variants:
        runs = study.runs_of(v.name, included_only=False)
        if runs:
            config = {k: val for k, val in runs[0].config.items()
                      if k not in ("run_id", "seed", "variant", "study")}
            out[v.name] = flatten_dotted("", config)
    return out


def variant_disagreement(study: Study, variant: str) -> tuple[float, int]:
    preds = [p for r in study.runs_of(variant) if (p := load_predictions(r.path)) is not None]
    return stats.pairwise_disagreement(preds), len(preds)


def summary_table(study: Study, runs: pd.DataFrame) -> pd.DataFrame:
    """One row per variant: counts, mean / CI half-width / n per metric, baseline comparison."""
    inc = runs[runs["included"].astype(bool)]
    param = sweep_parameter(study)
    base = inc[inc["variant"] == study.baseline] if study.baseline else inc.iloc[0:0]
    base_by_seed = dict(zip(base["seed"], base[COMPARE_METRIC], strict=True))
    rows = []
    for v in study.variants:
        all_v = runs[runs["variant"] == v.name]
        mine = inc[inc["variant"] == v.name]
        status = all_v["status"]
        row: dict[str, Any] = {
            "variant": v.name, "is_baseline": v.is_baseline,
            "swept_parameter": param, "swept_value": swept_value(study, v, param),
            "n_runs": len(all_v), "n_included": len(mine),
            "n_diverged": int((status == "diverged").sum()),
            "n_failed": int(status.isin(["failed", "interrupted", "pruned", "unknown"]).sum()),
            "n_incomplete": int((status == "incomplete").sum()),
        }
        for metric in METRICS:
            ci = stats.mean_ci(mine[metric].tolist())
            row[f"{metric}_mean"] = ci.mean
            row[f"{metric}_ci95"] = ci.half
            row[f"{metric}_sd"] = ci.sd
            row[f"{metric}_n"] = ci.n
        if study.baseline is not None and not v.is_baseline:
            c = stats.compare(dict(zip(mine["seed"], mine[COMPARE_METRIC], strict=True)),
                              base_by_seed)
            row.update(delta_best_test_acc=c.diff, p_value=c.p, test=c.test, n_pairs=c.n_pairs,
                       significant=c.significant)
        else:
            row.update(delta_best_test_acc=math.nan, p_value=math.nan, test="n/a", n_pairs=0,
                       significant=None)
        row["disagreement"], row["disagreement_n"] = variant_disagreement(study, v.name)
        rows.append(row)
    df = pd.DataFrame(rows)
    if df.empty:
        return df
    key = f"{COMPARE_METRIC}_mean"
    return df.sort_values(key, ascending=False, na_position="last", kind="stable").reset_index(
        drop=True)


# ----------------------------------------------------------------------------- curves

CURVE_COLUMNS = ("train_loss", "val_loss", "train_acc", "val_acc", "gap_loss")


def run_curve(metrics: pd.DataFrame) -> pd.DataFrame:
    """epoch, train_loss, train_acc (eval-mode train metrics when present), val_*, gap_loss."""
    if metrics.empty or "epoch" not in metrics:
        return pd.DataFrame(columns=["epoch", *CURVE_COLUMNS])
    tl, ta = train_cols(metrics.columns)
    out = pd.DataFrame({"epoch": metrics["epoch"]})
    out["train_loss"] = metrics.get(tl)
    out["train_acc"] = metrics.get(ta)
    out["val_loss"] = metrics.get("val_loss")
    out["val_acc"] = metrics.get("val_acc")
    out["gap_loss"] = out["val_loss"] - out["train_loss"]
    return out.apply(pd.to_numeric, errors="coerce")


def variant_curves(records: list[RunRecord]) -> pd.DataFrame:
    """Per epoch over seeds: <col>_mean, <col>_min, <col>_max, <col>_sd and n."""
    frames = [run_curve(r.metrics).assign(seed=r.seed) for r in records if len(r.metrics)]
    frames = [f for f in frames if len(f)]
    if not frames:
        return pd.DataFrame()
    long = pd.concat(frames, ignore_index=True)
    g = long.groupby("epoch")
    out = pd.DataFrame({"epoch": sorted(long["epoch"].dropna().unique())}).set_index("epoch")
    for c in CURVE_COLUMNS:
        out[f"{c}_mean"] = g[c].mean()
        out[f"{c}_min"] = g[c].min()
        out[f"{c}_max"] = g[c].max()
        out[f"{c}_sd"] = g[c].std(ddof=1)
    out["n"] = g["seed"].count()
    return out.reset_index()


def mean_curve(curves: pd.DataFrame) -> pd.DataFrame:
    """The mean columns under their plain names (what diagnosis reads)."""
    if curves.empty:
        return pd.DataFrame(columns=["epoch", *CURVE_COLUMNS])
    return pd.DataFrame({"epoch": curves["epoch"],
                         **{c: curves[f"{c}_mean"] for c in CURVE_COLUMNS}})
