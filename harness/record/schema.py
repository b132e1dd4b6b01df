"""The typed shapes of what a study leaves on disk: the manifest (study.json) and a run's
summary.json and failure.json. Reading through these models turns a foreign or damaged file
into a reason the report can show, instead of a silently wrong number."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from harness.record.disk import read_json
from harness.record.layout import STUDY_JSON

FINISHED_STATUSES = ("completed", "diverged", "stopped")
INCLUDED_STATUSES = ("completed", "stopped")  # what counts towards the means
DEFAULT_COMPARE_METRIC = "best_test_acc"
# Per-run columns a study may compare on (higher is better for every one of them).
COMPARABLE_METRICS = ("best_test_acc", "last_test_acc", "final_test_acc")


class Loose(BaseModel):
    """Known fields are typed; unknown ones are kept (the store grows new keys over time)."""

    model_config = ConfigDict(extra="allow")


class PlannedRun(Loose):
    run_id: str
    variant: str
    seed: int


class VariantEntry(Loose):
    name: str
    overrides: dict[str, Any] = Field(default_factory=dict)
    swept: dict[str, Any] = Field(default_factory=dict)  # its own values (it is named after)
    params: dict[str, Any] = Field(default_factory=dict)  # every swept key (record/params.py)
    is_baseline: bool = False
    removed: list[str] = Field(default_factory=list)


class Comparison(Loose):
    """What a study compares: `metric` of every variant against `reference` of the baseline.

    The default (test accuracy at the best-val epoch for both sides) fits studies that change
    training; early stopping changes when training ends, so it compares the restored model
    (`final_test_acc`) with the baseline's last epoch and, as a second reference, with the
    baseline's retrospective best-val checkpoint."""

    metric: str = DEFAULT_COMPARE_METRIC
    reference: str | None = None  # the baseline's column; None: the same as metric
    also_against: list[str] = Field(default_factory=list)  # further baseline columns
    report: list[str] = Field(default_factory=list)  # extra per-variant columns to show

    @property
    def reference_metric(self) -> str:
        return self.reference or self.metric


class Manifest(Loose):
    name: str
    description: str = ""
    kind: str | None = None
    design: dict[str, Any] | None = None
    analysis: str | None = None  # e.g. double_descent_epochs (the study file's `analysis`)
    base: dict[str, Any] = Field(default_factory=dict)
    seeds: list[int] = Field(default_factory=list)
    baseline: str | None = None
    variants: list[VariantEntry] = Field(default_factory=list)
    runs: int | None = None
    planned: list[PlannedRun] | None = None  # None: written before plans were recorded
    upstream: list[PlannedRun] = Field(default_factory=list)  # trained first, not compared
    compare: Comparison = Field(default_factory=Comparison)
    harness_version: str | None = None
    # The numerics version of the planned runs; None: written before versioning (its planned
    # run ids already tell its runs apart from later versions')
    numerics: int | None = None
    created_at: str | None = None


class RunSummary(Loose):
    run_id: str | None = None
    status: str = "unknown"
    epochs_run: int | None = None
    best_epoch: int | None = None
    error: str | None = None


class FailureNote(Loose):
    """Why a run did not finish, written by the worker that gave up on it."""

    run_id: str
    variant: str
    seed: int
    status: str = "failed"
    reason: str
    worker_host: str | None = None
    at: str | None = None


def read_manifest(study_dir: Path | str) -> Manifest | None:
    """results/<study>/study.json alone (no run folders), for a run that needs its study's
    design and description; None for ad-hoc folders and files that do not validate."""
    data = read_json(Path(study_dir) / STUDY_JSON)
    try:
        return Manifest.model_validate(data) if data is not None else None
    except ValidationError:
        return None


def study_name(study_dir: Path | str) -> str:
    """The study's name from its manifest, else its folder's name (ad-hoc runs)."""
    manifest = read_manifest(study_dir)
    return manifest.name if manifest else Path(study_dir).name


def first_line(text: str) -> str:
    """The line of an error worth showing: the last non-empty line of a traceback."""
    lines = [ln.strip() for ln in str(text).strip().splitlines() if ln.strip()]
    if not lines:
        return ""
    return lines[-1] if lines[0].startswith("Traceback") else lines[0]
