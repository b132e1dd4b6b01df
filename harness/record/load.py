"""The one reader of a study folder: `StudyRecord.load(results/<study>)`.

Everything that turns results into conclusions (the report, the W&B study run, the
double-descent analysis, the tuning report, the Python API) reads through here, so every
one of them sees the same runs and leaves out the same ones for the same reasons:

- the folder is a real folder inside the study (no links to elsewhere);
- its config still hashes to its run id, and the folder is named after that id;
- the run belongs to the current plan (study.json lists the planned run ids);
- a finished run has one metrics row per epoch it ran, and its summary agrees with them;
- a run id appears in one folder only.

A run that fails a check is kept on disk, left out of every mean, and listed with why.
Planned runs that never finished are listed with the reason their worker recorded.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
from pydantic import ValidationError

from harness.numerics import numerics_of
from harness.record.disk import read_json
from harness.record.identity import identity_of, run_id_of
from harness.record.layout import (
    CONFIG,
    ENV,
    FAILURE,
    METRICS,
    STUDY_JSON,
    SUMMARY,
    run_folders,
    runs_dir,
)
from harness.record.schema import (
    FINISHED_STATUSES,
    INCLUDED_STATUSES,
    Comparison,
    FailureNote,
    Manifest,
    RunSummary,
    first_line,
)

BASELINE_NAMES = ("baseline", "default")  # ad-hoc folders: the baseline by name
NOT_PLANNED = "not in the current plan"
UPSTREAM_REASON = "an upstream run (others start from it), not a compared variant"
AGREE_TOL = 1e-9  # summary vs metrics row: the same float written twice


def read_metrics(path: Path) -> pd.DataFrame:
    """metrics.csv as numbers sorted by epoch; an unreadable file reads as no rows."""
    p = path / METRICS
    if not p.is_file():
        return pd.DataFrame()
    try:
        frame = pd.read_csv(p)
    except (OSError, ValueError, pd.errors.ParserError):
        return pd.DataFrame()
    if len(frame) and "epoch" in frame:
        frame = frame.apply(pd.to_numeric, errors="coerce").sort_values("epoch")
    return frame.reset_index(drop=True)


@dataclass
class RunRecord:
    path: Path
    config: dict[str, Any]
    summary: dict[str, Any] | None
    metrics: pd.DataFrame
    env: dict[str, Any] | None
    failure: FailureNote | None = None
    problem: str | None = None  # why the run cannot be trusted; None when it passed every check

    @property
    def run_id(self) -> str:
        return str(self.config.get("run_id") or (self.summary or {}).get("run_id") or "")

    @property
    def variant(self) -> str:
        return str(self.config.get("variant", "default"))

    @property
    def seed(self) -> int:
        try:
            return int(self.config.get("seed", 0))
        except (TypeError, ValueError):
            return 0

    @property
    def status(self) -> str:
        if self.summary:
            return str(self.summary.get("status", "unknown"))
        return self.failure.status if self.failure else "incomplete"

    @property
    def included(self) -> bool:
        return self.problem is None and self.status in INCLUDED_STATUSES

    @property
    def reason(self) -> str:
        """Why the run is not in the means ('' when it is)."""
        if self.problem:
            return self.problem
        if self.included:
            return ""
        if self.status == "diverged":
            return f"diverged at epoch {(self.summary or {}).get('diverged_epoch')}"
        error = (self.summary or {}).get("error") or (self.failure.reason if self.failure else "")
        return f"{self.status}: {first_line(error)}" if error else self.status


@dataclass
class MissingRun:
    """A planned run with no trustworthy folder: never started, or failed before writing."""

    run_id: str
    variant: str
    seed: int
    reason: str


@dataclass
class Variant:
    name: str
    overrides: dict[str, Any] = field(default_factory=dict)
    swept: dict[str, Any] = field(default_factory=dict)  # its own values (it is named after)
    is_baseline: bool = False
    params: dict[str, Any] = field(default_factory=dict)  # every swept key (record/params.py)


@dataclass
class StudyRecord:
    name: str
    dir: Path
    meta: dict[str, Any] | None  # study.json as written (None for ad-hoc folders)
    manifest: Manifest | None
    runs: list[RunRecord]  # runs that passed the checks, whatever their status
    rejected: list[RunRecord]  # runs that failed a check (kept on disk, never in a mean)
    missing: list[MissingRun]
    variants: list[Variant]
    baseline: str | None

    # ------------------------------------------------------------------ queries
    def runs_of(self, variant: str, included_only: bool = True) -> list[RunRecord]:
        return [r for r in self.runs if r.variant == variant and (r.included or not included_only)]

    @property
    def included(self) -> list[RunRecord]:
        return [r for r in self.runs if r.included]

    @property
    def design(self) -> dict[str, Any]:
        return dict((self.meta or {}).get("design") or {})

    @property
    def compare(self) -> Comparison:
        return self.manifest.compare if self.manifest else Comparison()

    @property
    def planned_count(self) -> int:
        if self.manifest and self.manifest.planned is not None:
            return len(self.manifest.planned)
        return len(self.runs)

    @property
    def complete(self) -> bool:
        """Every planned run finished and was trusted."""
        return not self.missing and not self.rejected and all(
            r.included for r in self.runs)

    def left_out(self) -> list[dict[str, Any]]:
        """Every run not in the means, with why: failed checks, unfinished, never run."""
        out = [{"variant": r.variant, "seed": r.seed, "run_id": r.run_id, "status": r.status,
                "reason": r.reason, "path": r.path.name}
               for r in [*self.runs, *self.rejected] if not r.included]
        out += [{"variant": m.variant, "seed": m.seed, "run_id": m.run_id,
                 "status": "not run", "reason": m.reason, "path": ""} for m in self.missing]
        return sorted(out, key=lambda d: (str(d["variant"]), int(d["seed"]), d["run_id"]))

    # ------------------------------------------------------------------ loading
    @classmethod
    def load(cls, study_dir: Path | str) -> StudyRecord:
        study_dir = Path(study_dir)
        meta = read_json(study_dir / STUDY_JSON)
        manifest = _manifest(meta)
        planned = ({p.run_id: p for p in manifest.planned}
                   if manifest and manifest.planned is not None else None)
        upstream = {p.run_id for p in manifest.upstream} if manifest else set()
        good: list[RunRecord] = []
        rejected: list[RunRecord] = []
        failures: dict[str, FailureNote] = {}
        seen: dict[str, RunRecord] = {}
        for folder in run_folders(study_dir):
            note = _failure(folder)
            if note is not None:
                failures.setdefault(note.run_id, note)
            rec = _read_run(folder, note)
            if rec is None:
                continue
            rec.problem = check_run(rec, study_dir, planned,
                                    manifest.numerics if manifest else None)
            if rec.run_id in upstream and (rec.problem or "").startswith(NOT_PLANNED):
                rec.problem = UPSTREAM_REASON
            if rec.problem is None and rec.run_id in seen:
                rec.problem = f"a second folder of run {rec.run_id} ({seen[rec.run_id].path.name})"
            (rejected if rec.problem else good).append(rec)
            if rec.problem is None:
                seen[rec.run_id] = rec
        missing = [MissingRun(p.run_id, p.variant, p.seed,
                              _missing_reason(failures.get(p.run_id)))
                   for p in (planned or {}).values()
                   if p.run_id not in seen and p.run_id not in {r.run_id for r in rejected}]
        variants, baseline = _variants(meta, good)
        name = str((meta or {}).get("name") or study_dir.name)
        return cls(name, study_dir, meta, manifest, good, rejected, missing, variants, baseline)


# ----------------------------------------------------------------------------- checks


def check_run(rec: RunRecord, study_dir: Path, planned: dict[str, Any] | None,
              numerics: int | None = None) -> str | None:
    """The first integrity problem of one run folder, as a sentence; None when it is sound.
    `numerics`: the version the study's runs are planned for (a run of another is never
    averaged with them)."""
    runs_root = runs_dir(study_dir).resolve()
    if rec.path.is_symlink() or rec.path.resolve().parent != runs_root:
        return "the folder is a link to outside the study folder"
    run_id = rec.run_id
    if not run_id:
        return "config.json has no run id"
    if not rec.path.name.endswith(f"-{run_id}"):
        return f"folder name does not carry its run id {run_id} (copied or renamed)"
    recomputed = recompute_id(rec.config)
    if recomputed is None:
        return "config.json is not a run config"
    if recomputed != run_id:
        return f"config.json hashes to {recomputed}, not its run id {run_id} (edited)"
    trained_by = numerics_of(rec.config)
    if numerics is not None and trained_by != numerics:
        return (f"{NOT_PLANNED}: trained by numerics version {trained_by}, the plan by version "
                f"{numerics} (another harness version; never averaged with them)")
    if planned is not None and run_id not in planned:
        return f"{NOT_PLANNED} (left from an earlier version of the study)"
    s = rec.summary
    if s is None:
        return None  # unfinished: listed by status, nothing to cross-check
    if s.get("run_id") not in (None, run_id):
        return f"summary.json belongs to run {s.get('run_id')}"
    return _metrics_problem(rec, s)


def _metrics_problem(rec: RunRecord, s: dict[str, Any]) -> str | None:
    if rec.status not in FINISHED_STATUSES:
        return None
    m = rec.metrics
    epochs_run = s.get("epochs_run")
    n = len(m)
    if isinstance(epochs_run, int) and n != epochs_run:
        return f"metrics.csv has {n} rows but the run reports {epochs_run} epochs (truncated)"
    if n and "epoch" in m and list(m["epoch"]) != list(range(1, n + 1)):
        return "metrics.csv epochs are not 1..N in order"
    for prefix, epoch in (("best_", s.get("best_epoch")), ("last_", n or None)):
        if epoch is None or not n or "epoch" not in m:
            continue
        row = m[m["epoch"] == epoch]
        if row.empty:
            return f"summary {prefix}epoch {epoch} has no metrics row"
        for col in ("test_acc", "val_acc", "val_loss"):
            a, b = s.get(prefix + col), row.iloc[0].get(col)
            if _disagree(a, b):
                return (f"summary {prefix}{col} = {a} but metrics.csv epoch {epoch} says {b} "
                        "(summary and metrics disagree)")
    return None


def _disagree(a: Any, b: Any) -> bool:
    """Two numbers that differ (nan only agrees with nan); anything else never disagrees."""
    try:
        fa, fb = float(a), float(b)
    except (TypeError, ValueError):
        return False
    if math.isnan(fa) or math.isnan(fb):
        return math.isnan(fa) != math.isnan(fb)
    return abs(fa - fb) > AGREE_TOL * max(1.0, abs(fa))


def recompute_id(config: dict[str, Any]) -> str | None:
    """The id `config` hashes to as saved (how the run that wrote it computed it; no
    validation, so a plug-in that is not installed here does not matter); None when it is
    not a run config at all."""
    try:
        return run_id_of(identity_of({k: v for k, v in config.items() if k != "run_id"}))
    except (KeyError, TypeError, AttributeError):
        return None


# ----------------------------------------------------------------------------- reading


def _manifest(meta: dict[str, Any] | None) -> Manifest | None:
    if meta is None:
        return None
    try:
        return Manifest.model_validate(meta)
    except ValidationError:
        return None


def _failure(folder: Path) -> FailureNote | None:
    data = read_json(folder / FAILURE)
    if data is None:
        return None
    try:
        return FailureNote.model_validate(data)
    except ValidationError:
        return None


def _read_run(folder: Path, note: FailureNote | None) -> RunRecord | None:
    config = read_json(folder / CONFIG)
    if config is None:
        return None  # nothing trained here yet (a failure note alone is read as `missing`)
    summary = read_json(folder / SUMMARY)
    if summary is not None:
        try:
            RunSummary.model_validate(summary)
        except ValidationError as err:
            return RunRecord(folder, config, None, pd.DataFrame(), None, note,
                             problem=f"summary.json is malformed ({err.errors()[0]['msg']})")
    return RunRecord(folder, config, summary, read_metrics(folder), read_json(folder / ENV), note)


def _missing_reason(note: FailureNote | None) -> str:
    if note is None:
        return "not run yet (run the study again to train it)"
    return f"{note.status}: {first_line(note.reason)}"


def _variants(meta: dict[str, Any] | None,
              runs: list[RunRecord]) -> tuple[list[Variant], str | None]:
    variants: list[Variant] = []
    baseline = None
    if meta:
        for v in meta.get("variants") or []:
            if isinstance(v, dict) and v.get("name") is not None:
                variants.append(Variant(str(v["name"]), dict(v.get("overrides") or {}),
                                        dict(v.get("swept") or {}), bool(v.get("is_baseline")),
                                        dict(v.get("params") or {})))
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
    return variants, baseline
