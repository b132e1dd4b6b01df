"""Study files: studies/NAME.yaml -> a validated StudyConfig.

A study names a base run config, a design (sweep, one_at_a_time, leave_one_out,
grid) and the seeds. Everything is validated before any run starts, so a typo
costs nothing.
"""

from __future__ import annotations

import difflib
import fnmatch
import re
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError, field_validator, model_validator

import harness
from harness.config import Strict, format_validation_error, load_yaml
from harness.errors import ConfigError
from harness.record.schema import COMPARABLE_METRICS, DEFAULT_COMPARE_METRIC
from harness.registry import unknown_name_message

NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,79}$")


class DesignConfig(Strict):
    kind: Literal["sweep", "one_at_a_time", "leave_one_out", "grid"]
    parameter: str | None = None  # sweep: dotted key, e.g. regularizers.dropout.p
    values: list[Any] | None = None  # sweep
    baseline_value: Any = None  # sweep: where the baseline sits on the x axis of figures
    variants: dict[str, dict[str, Any]] | None = None  # one_at_a_time: name -> overrides
    remove: list[str] | None = None  # leave_one_out: regularizers to drop (default: all)
    parameters: dict[str, list[Any] | dict[str, Any]] | None = None  # grid: key -> values

    @model_validator(mode="after")
    def _fields_for_kind(self) -> DesignConfig:
        need = {"sweep": ("parameter", "values"), "one_at_a_time": ("variants",),
                "grid": ("parameters",), "leave_one_out": ()}[self.kind]
        for field in need:
            if not getattr(self, field):
                raise ValueError(f"design kind {self.kind!r} needs design.{field}")
        return self


# What a claim may be about: a metric of the runs table (report/tables.py) and its short name.
CLAIM_METRICS = ("test_acc", "test_loss", "last_test_acc", "final_test_acc", "ece", "ece_ts",
                 "nll", "nll_ts", "overconfidence", "gap_acc", "gap_loss", "shift_acc",
                 "mia_advantage")


class ClaimConfig(Strict):
    """What a study expects to show, checked in its report (harness/report/claims.py).

    The best of `variants` (chosen on the validation split by `select`) is compared over
    matched seeds with the best of `versus`; `direction` says which way `metric` should move.
    """

    metric: Literal[CLAIM_METRICS]  # type: ignore[valid-type]
    direction: Literal["up", "down"]
    source: str = Field(min_length=1)  # the paper (or reason) the expectation comes from
    statement: str = ""  # the claim in words; default: built from the fields
    variants: list[str] | None = None  # names or glob patterns; default: every non-baseline
    versus: list[str] = Field(default_factory=lambda: ["baseline"])  # names or glob patterns
    select: Literal["val_acc", "val_loss"] = "val_acc"  # how the best of a group is chosen
    min_effect: float = Field(0.01, gt=0)  # in the metric's units: smaller counts as no effect

    @field_validator("variants", "versus", mode="before")
    @classmethod
    def _one_or_many(cls, v: Any) -> Any:
        return [v] if isinstance(v, str) else v
class CompareConfig(Strict):
    """What the report compares: `metric` of each variant against `reference` of the
    baseline (default: test accuracy at the best-val epoch on both sides)."""

    metric: Literal[COMPARABLE_METRICS] = DEFAULT_COMPARE_METRIC  # type: ignore[valid-type]
    reference: Literal[COMPARABLE_METRICS] | None = None  # type: ignore[valid-type]
    also_against: list[Literal[COMPARABLE_METRICS]] = Field(  # type: ignore[valid-type]
        default_factory=list)
    report: list[str] = Field(default_factory=list)


class StudyConfig(Strict):
    name: str
    description: str = ""
    kind: Literal["ablation", "tune"] = "ablation"
    base: dict[str, Any] = Field(default_factory=dict)  # a run config mapping
    design: DesignConfig | None = None
    seeds: int | list[int] = 3
    workers: int | None = Field(None, ge=1)
    storage: str | None = None  # queue storage URL (default: SQLite file in results/<study>/)
    seed_batch: bool = False  # train a variant's seeds as one vmapped model where possible
    tune: dict[str, Any] | None = None  # tuning studies: search space, sampler, budget
    claim: list[ClaimConfig] = Field(default_factory=list)  # one mapping or a list of them

    @field_validator("claim", mode="before")
    @classmethod
    def _claims(cls, v: Any) -> Any:
        return [] if v is None else [v] if isinstance(v, dict) else v
    compare: CompareConfig = Field(default_factory=CompareConfig)

    @field_validator("name")
    @classmethod
    def _safe_name(cls, v: str) -> str:
        if not NAME_PATTERN.match(v):
            raise ValueError("a study name is letters, digits, '_', '-' and '.', "
                             "starting with a letter or digit (it names a folder in results/)")
        return v

    @field_validator("seeds")
    @classmethod
    def _seeds(cls, v: int | list[int]) -> int | list[int]:
        if isinstance(v, int) and v < 1:
            raise ValueError("seeds must be >= 1 (a count) or a list of seeds")
        if isinstance(v, list) and (not v or len(set(v)) != len(v)):
            raise ValueError("seeds must be a non-empty list of distinct integers")
        return v

    @model_validator(mode="after")
    def _design_for_kind(self) -> StudyConfig:
        if self.kind == "ablation" and self.design is None:
            raise ValueError("an ablation study needs a design")
        if self.kind == "tune" and not self.tune:
            raise ValueError("a tuning study needs a tune section")
        return self

    def seed_list(self) -> list[int]:
        return list(range(self.seeds)) if isinstance(self.seeds, int) else list(self.seeds)

    def check_claim_variants(self, names: list[str], source: str) -> None:
        """Every claim pattern must name at least one variant of the expanded study."""
        for i, claim in enumerate(self.claim):
            for key in ("variants", "versus"):
                for pattern in getattr(claim, key) or []:
                    if not fnmatch.filter(names, pattern):
                        raise ConfigError(
                            f"{source}: claim.{i}.{key}: {pattern!r} matches no variant; "
                            f"variants: {', '.join(names)}")

    def summary_line(self) -> str:
        return self.description.strip().splitlines()[0] if self.description.strip() else ""


def studies_dirs() -> list[Path]:
    """Where study names are looked up: ./studies, then the repository's studies/."""
    here = Path.cwd() / "studies"
    repo = Path(harness.__file__).resolve().parents[1] / "studies"
    return [here] if here.resolve() == repo.resolve() else [here, repo]


def find_study_file(name_or_path: str) -> Path:
    p = Path(name_or_path)
    if p.suffix in (".yaml", ".yml"):
        if not p.is_file():
            raise ConfigError(f"{p}: study file not found")
        return p
    for d in studies_dirs():
        cand = d / f"{name_or_path}.yaml"
        if cand.is_file():
            return cand
    raise ConfigError(unknown_name_message("study", name_or_path, [n for n, _ in list_studies()]))


def list_studies(kind: str | None = None) -> list[tuple[str, str]]:
    """(name, one-line description) of every study file found."""
    seen: dict[str, str] = {}
    for d in studies_dirs():
        for f in sorted(d.glob("*.yaml")) if d.is_dir() else []:
            if f.stem in seen:
                continue
            try:
                study = load_study(f)
            except ConfigError as err:
                seen[f.stem] = f"(invalid: {err})"
                continue
            if kind is None or study.kind == kind:
                seen[f.stem] = study.summary_line()
    return sorted(seen.items())


def load_study(name_or_path: str | Path) -> StudyConfig:
    path = find_study_file(str(name_or_path))
    raw = load_yaml(path)
    raw.setdefault("name", path.stem)
    try:
        return StudyConfig.model_validate(raw)
    except ValidationError as err:
        e = err.errors()[0]
        if e["type"] == "extra_forbidden" and len(e["loc"]) == 1:
            key = str(e["loc"][0])
            close = difflib.get_close_matches(key, list(StudyConfig.model_fields), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            allowed = ", ".join(StudyConfig.model_fields)
            raise ConfigError(f"{path}: unknown key {key!r}{hint}; allowed: {allowed}") from None
        raise ConfigError(format_validation_error(err, str(path), raw, StudyConfig)) from None
