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

from pydantic import (
    Field,
    PrivateAttr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from harness.config import SEED_MAX, Strict, load_yaml, parse_override, refuse_old_spellings
from harness.config_errors import format_validation_error
from harness.dotted import set_dotted
from harness.errors import ConfigError, one_line
from harness.record.schema import COMPARABLE_METRICS, DEFAULT_COMPARE_METRIC
from harness.registry import unknown_name_message
from harness.study.claim_config import ClaimConfig, ConfirmConfig
from harness.version import PACKAGE_DIR

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
        for key, axis in (self.parameters or {}).items() if self.kind == "grid" else ():
            if not axis:  # an empty axis makes the grid empty: only the baseline would train
                raise ValueError(f"a grid axis without values: parameters.{key} = {axis!r} "
                                 "(give it at least one value)")
        return self


class LauncherConfig(Strict):
    """Where the worker jobs of a study run (`launcher:` in the study file; CLI flags win).

    `local` starts them as subprocesses through submitit's local executor, `slurm` as a
    Slurm job array; both need a queue storage every job can reach (PostgreSQL on a cluster).
    """

    name: Literal["local", "slurm"] = "slurm"
    partition: str | None = None
    gpus_per_task: int | None = Field(None, ge=0)
    cpus_per_task: int | None = Field(None, ge=1)
    mem_gb: float | None = Field(None, gt=0)
    timeout_min: int = Field(60, ge=1)  # per job; a job that times out leaves its run to others
    array_parallelism: int = Field(2, ge=1)  # worker jobs submitted (and running at once)
    account: str | None = None
    qos: str | None = None
    constraint: str | None = None
    additional: dict[str, Any] = Field(default_factory=dict)  # any other sbatch option
    setup: list[str] = Field(default_factory=list)  # shell lines before the worker starts


DATA_SEED_STRIDE = 1000  # with data_seeds, a run's seed is seed + 1000 x data seed


class CompareConfig(Strict):
    """What the report compares: `metric` of each variant against `reference` of the
    baseline (default: test accuracy at the best-val epoch on both sides)."""

    # Literal[...] of a runtime tuple: pydantic validates against it; mypy wants literals.
    metric: Literal[COMPARABLE_METRICS] = DEFAULT_COMPARE_METRIC  # type: ignore[valid-type]
    reference: Literal[COMPARABLE_METRICS] | None = None  # type: ignore[valid-type]  # above
    also_against: list[Literal[COMPARABLE_METRICS]] = Field(  # type: ignore[valid-type]  # above
        default_factory=list)
    report: list[str] = Field(default_factory=list)


class StudyConfig(Strict):
    plugins: list[str] = Field(default_factory=list)  # modules imported first; copied into base
    name: str
    description: str = ""
    kind: Literal["ablation", "tune"] = "ablation"
    base: dict[str, Any] = Field(default_factory=dict)  # a run config mapping
    design: DesignConfig | None = None
    # What the report analyses beyond the comparison, when the design alone does not say it
    # (a width or train_size sweep already reads as double descent; epoch-wise must be asked)
    analysis: Literal["double_descent_width", "double_descent_samples",
                      "double_descent_epochs"] | None = None
    # Runs other runs start from, trained first (harness/study/upstream.py): name -> run
    # config overrides on `base`, referred to by `model.init_from` or a distillation teacher.
    upstream: dict[str, dict[str, Any]] = Field(default_factory=dict)
    # Screening seeds: every variant trains on these; a claim's variant is chosen on them.
    seeds: int | list[int] = 3
    # Confirmation of each claim on fresh seeds (default on for ablation studies with a
    # claim; false: fixed seeds). None until validated: see _confirm_default.
    confirm: ConfirmConfig | bool | None = None
    # resampled training sets: each run also gets data.seed = one of these (bias-variance)
    data_seeds: int | list[int] | None = None
    workers: int | None = Field(None, ge=1)
    storage: str | None = None  # queue storage URL (default: SQLite file in results/<study>/)
    tune: dict[str, Any] | None = None  # tuning studies: search space, sampler, budget
    launcher: LauncherConfig | None = None  # worker jobs through submitit (Slurm or local)
    # `--set key=value` overrides applied on top of the file (recorded in study.json)
    _overrides: dict[str, Any] = PrivateAttr(default_factory=dict)
    # confirmation rounds: the seeds each variant has in the current round (study/confirm.py)
    _round_seeds: dict[str, list[int]] = PrivateAttr(default_factory=dict)

    @property
    def overrides(self) -> dict[str, Any]:
        return dict(self._overrides)

    def with_overrides(self, overrides: dict[str, Any]) -> StudyConfig:
        """Record the command-line overrides this config was built with."""
        self._overrides = dict(overrides)
        return self


    claim: list[ClaimConfig] = Field(default_factory=list)  # one mapping or a list of them

    @field_validator("claim", mode="before")
    @classmethod
    def _claims(cls, v: Any) -> Any:
        return [] if v is None else [v] if isinstance(v, dict) else v
    compare: CompareConfig = Field(default_factory=CompareConfig)

    @model_validator(mode="before")
    @classmethod
    def _no_old_spellings(cls, raw: Any) -> Any:
        refuse_old_spellings(raw, "study")
        return raw

    @model_validator(mode="before")
    @classmethod
    def _import_plugins(cls, raw: Any) -> Any:
        """Import plug-ins before the base config is checked, and hand them to every run
        (workers validate each run's config, so they import them too)."""
        plugins = raw.get("plugins") if isinstance(raw, dict) else None
        if isinstance(plugins, list) and plugins:
            from harness.plugins import import_plugins

            import_plugins(plugins)
            base = dict(raw.get("base") or {})
            if isinstance(base.get("plugins", []), list):
                base["plugins"] = list(dict.fromkeys([*plugins, *base.get("plugins", [])]))
            raw = {**raw, "base": base}
        return raw

    @field_validator("name")
    @classmethod
    def _safe_name(cls, v: str) -> str:
        if not NAME_PATTERN.match(v):
            raise ValueError("a study name is letters, digits, '_', '-' and '.', "
                             "starting with a letter or digit (it names a folder in results/)")
        return v

    @field_validator("seeds", mode="before")
    @classmethod
    def _no_adaptive_seeds(cls, v: Any) -> Any:
        if isinstance(v, dict):
            raise ValueError("a mapping of adaptive seeds is no longer read: write the "
                             "screening seeds here (a count or a list) and the adaptive part "
                             "under confirm: {min, max, step, minutes}")
        return v

    @field_validator("confirm", mode="before")
    @classmethod
    def _confirm_mapping(cls, v: Any) -> Any:
        """Checked here so a mistake reads as one line about its key (not as every member
        of the mapping | bool union failing)."""
        if v is True:
            return ConfirmConfig()
        if not isinstance(v, dict):
            return v
        try:
            return ConfirmConfig.model_validate(v)
        except ValidationError as err:
            e = err.errors()[0]
            key = ".".join(str(p) for p in e["loc"])
            msg = e["msg"].removeprefix("Value error, ")
            if e["type"] == "extra_forbidden":
                msg = f"unknown key (allowed: {', '.join(ConfirmConfig.model_fields)})"
            raise ValueError(f"{key}: {msg}" if key else msg) from None

    @field_validator("seeds", "data_seeds")
    @classmethod
    def _seeds(cls, v: Any, info: ValidationInfo) -> Any:
        key = info.field_name
        if isinstance(v, int) and v < 1:
            raise ValueError(f"{key} must be >= 1 (a count) or a list of seeds")
        if isinstance(v, list) and (not v or len(set(v)) != len(v)):
            raise ValueError(f"{key} must be a non-empty list of distinct integers")
        if isinstance(v, list) and min(v) < 0:
            raise ValueError(f"{key} must be integers >= 0 (a seed names a random stream)")
        if isinstance(v, list) and max(v) > SEED_MAX:
            raise ValueError(f"{key} must be at most {SEED_MAX} (torch seeds are 64-bit)")
        if isinstance(v, int) and v > 10_000:
            raise ValueError(f"{key} (a count) must be at most 10000")
        return v

    @model_validator(mode="after")
    def _design_for_kind(self) -> StudyConfig:
        if self.kind == "ablation" and self.design is None:
            raise ValueError("an ablation study needs a design")
        if self.kind == "tune" and not self.tune:
            raise ValueError("a tuning study needs a tune section")
        if isinstance(self.confirm, ConfirmConfig) and (
                self.kind == "tune" or self.data_seeds is not None or not self.claim):
            raise ValueError("confirm: confirmation seeds test claims of ablation studies "
                             "without data_seeds; this study has none to confirm")
        if self.confirm is None:
            self.confirm = (ConfirmConfig() if self.kind == "ablation" and self.claim
                            and self.data_seeds is None else False)
        if self.data_seeds is not None and max(self.seed_list()) >= DATA_SEED_STRIDE:
            raise ValueError(f"seeds: with data_seeds, seeds must be below {DATA_SEED_STRIDE} "
                             f"(a run's seed is seed + {DATA_SEED_STRIDE} x data seed)")
        if self.kind == "tune" and self.upstream:
            raise ValueError("upstream: runs are planned by ablation studies only; pretrain "
                             "in an ablation study and give its run folder as "
                             "base.model.init_from")
        return self

    @property
    def confirmation(self) -> ConfirmConfig | None:
        return self.confirm if isinstance(self.confirm, ConfirmConfig) else None

    @property
    def round_planned(self) -> bool:
        """Confirmation: this copy holds one round's seeds (for_round)."""
        return bool(self._round_seeds)

    def screen_seeds(self) -> list[int]:
        """The seeds every variant trains on (the screening seeds when claims confirm)."""
        return list(range(self.seeds)) if isinstance(self.seeds, int) else list(self.seeds)

    def seed_list(self, variant: str | None = None) -> list[int]:
        """The seeds of a variant in this round (all variants: the most any has)."""
        rounds = self._round_seeds
        if not rounds:
            return self.screen_seeds()
        if variant is None:
            return max(rounds.values(), key=len)
        return list(rounds.get(variant, self.screen_seeds()))

    def data_seed_list(self) -> list[int | None]:
        """Training-set seeds (data.seed of each run); [None]: the base config's own."""
        d = self.data_seeds
        return [None] if d is None else list(range(d)) if isinstance(d, int) else list(d)

    def for_round(self, seeds: dict[str, list[int]]) -> StudyConfig:
        """This study with the given seeds per variant (one round of confirmation)."""
        out = self.model_copy()
        out._overrides = dict(self._overrides)
        out._round_seeds = {k: list(v) for k, v in seeds.items()}
        return out

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
    repo = PACKAGE_DIR.parent / "studies"
    return [here] if here.resolve() == repo.resolve() else [here, repo]


def find_study_file(name_or_path: str) -> Path:
    p = Path(name_or_path)
    if p.suffix in (".yaml", ".yml"):
        if p.is_dir():
            raise ConfigError(f"{p}: is a folder, not a study file")
        if not p.is_file():
            raise ConfigError(f"{p}: study file not found")
        return p
    for d in studies_dirs():
        cand = d / f"{name_or_path}.yaml"
        if cand.is_file():
            return cand
    raise ConfigError(unknown_name_message("study", name_or_path, [n for n, _ in list_studies()]))


def list_studies(kind: str | None = None) -> list[tuple[str, str]]:
    """(name, one-line description) of every study file found. A file that does not load
    is listed with its one-line problem: one bad file never hides the others."""
    seen: dict[str, str] = {}
    for d in studies_dirs():
        for f in sorted(d.glob("*.yaml")) if d.is_dir() else []:
            if f.stem in seen or not f.is_file():
                continue
            try:
                study = load_study(f)
            except Exception as err:  # listed, never raised
                seen[f.stem] = f"(invalid: {one_line(err)})"
                continue
            if kind is None or study.kind == kind:
                seen[f.stem] = study.summary_line()
    return sorted(seen.items())


def parse_overrides(items: list[str] | None) -> dict[str, Any]:
    """`--set key.path=value` items -> {key.path: value} (values parsed as YAML)."""
    return dict(parse_override(item) for item in items or [])


def override_source(path: Path, overrides: dict[str, Any]) -> str:
    """How errors name a study built with overrides: the file plus what was set."""
    if not overrides:
        return str(path)
    sets = " ".join(f"--set {k}={v}" for k, v in overrides.items())
    return f"{path} with {sets}"


def load_study(name_or_path: str | Path, overrides: dict[str, Any] | None = None) -> StudyConfig:
    """The validated study; `overrides` (dotted keys of the study file, e.g.
    `base.train.epochs` or `seeds`) are applied on top and recorded."""
    path = find_study_file(str(name_or_path))
    raw = load_yaml(path)
    raw.setdefault("name", path.stem)
    for key, value in (overrides or {}).items():
        set_dotted(raw, key, value)
    source = override_source(path, overrides or {})
    try:
        return StudyConfig.model_validate(raw).with_overrides(overrides or {})
    except ValidationError as err:
        e = err.errors()[0]
        if e["type"] == "extra_forbidden" and len(e["loc"]) == 1:
            key = str(e["loc"][0])
            close = difflib.get_close_matches(key, list(StudyConfig.model_fields), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            allowed = ", ".join(StudyConfig.model_fields)
            raise ConfigError(f"{source}: unknown key {key!r}{hint}; allowed: {allowed}") from None
        raise ConfigError(format_validation_error(err, source, raw, StudyConfig)) from None
    except ConfigError as err:  # a plug-in that failed to import
        raise ConfigError(f"{source}: {err}") from None
