"""The `tune:` section of a tuning study, validated whole before any trial runs.

    tune:
      objective: val_acc              # or objectives: [val_acc, val_ece] (multi-objective)
      sampler: tpe                    # tpe | random | grid | cmaes | nsga2, or {name: tpe, ...}
      pruner: median                  # median | hyperband | successive_halving | none, or a map
      seed: 0                         # sampler seed (worker w of N uses seed + w)
      search_seed: 0                  # run seed of every search trial
      n_trials: 24                    # finished (complete + pruned) trials in the study
      timeout: 600                    # seconds, per worker (either or both budgets)
      confirm_seeds: 3                # retrain seeds: a count (search_seed+1..) or a list
      retrain_top_k: 1
      space:
        regularizers.dropout.p: {type: float, low: 0.0, high: 0.5}
        regularizers.weight_decay.value: {type: float, low: 1.0e-5, high: 1.0e-2, log: true}
        use_mixup: {type: categorical, choices: [true, false]}     # a switch: no config path
        regularizers.mixup.alpha: {type: float, low: 0.1, high: 1.0, when: {use_mixup: true}}

A key with a dot (or a top-level run config field) is a config path; any other key is a
switch that only gates other params through `when` (all conditions must hold; a condition
value may be a list meaning "one of"). Grid search takes ints and categoricals as they are
and floats from an explicit `grid: [...]` list.

Why one module of about 500 lines: the section's models, the search space's parameters and
the checks that tie them together (a `when` names another parameter, a sampler limits the
parameter types, a key must be tunable) are validated as one tree by pydantic; split, each
part would need the others to validate.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any, Literal

import optuna
from pydantic import Field, ValidationError, field_validator

from harness.config import RunConfig, Strict, build_run_config
from harness.dotted import set_dotted
from harness.errors import ConfigError
from harness.record.params import param_label

SAMPLERS = ("tpe", "random", "grid", "cmaes", "nsga2")
PRUNERS = ("median", "hyperband", "successive_halving", "none")
# Keys a search may not touch: they would change what is measured (the validation split,
# the test switch) or who the run is.
FROZEN_PREFIXES = ("data.", "tracking.", "study", "variant", "seed", "train.eval_test",
                   "train.select", "train.device", "train.threads")


@dataclass(frozen=True)
class Objective:
    name: str
    direction: Literal["maximize", "minimize"]
    row_key: str | None  # per-epoch metric (reported to the pruner); None: end of run only
    summary_key: str | None  # where the value is read from the run summary
    select: str | None  # train.select for the search trials (best-val epoch by this)
    doc: str


OBJECTIVES: dict[str, Objective] = {
    o.name: o for o in (
        Objective("val_acc", "maximize", "val_acc", "best_val_acc", "val_acc",
                  "validation accuracy at the best-val-accuracy epoch"),
        Objective("val_loss", "minimize", "val_loss", "best_val_loss", "val_loss",
                  "validation loss at the best-val-loss epoch"),
        Objective("val_ece", "minimize", None, None, None,
                  "expected calibration error (15 bins) of the final model on the VALIDATION "
                  "split, computed by the tuner (the run's final_ece is on the test set)"),
        Objective("params", "minimize", None, "params", None, "number of model parameters"),
    )
}


class ParamSpec(Strict):
    type: Literal["float", "int", "categorical"]
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = None
    choices: list[Any] | None = None
    grid: list[Any] | None = None  # values the grid sampler tries (floats must list them)
    when: dict[str, Any] | None = None  # switch name -> value (or list of values)

    def check(self, sampler: str) -> None:
        """Raise ValueError (the message names no key; the caller adds it)."""
        if self.type == "categorical":
            if self.low is not None or self.high is not None or self.log or self.step:
                raise ValueError("a categorical param takes choices, not low/high/log/step")
            if not self.choices:
                raise ValueError("a categorical param needs a non-empty choices list")
            for c in self.choices:
                if c is not None and not isinstance(c, (bool, int, float, str)):
                    raise ValueError(f"choice {c!r}: choices must be numbers, strings, booleans "
                                     "or null")
            if len({repr(c) for c in self.choices}) != len(self.choices):
                raise ValueError(f"choices {self.choices} repeat a value")
            if self.grid is not None:
                raise ValueError("grid is for float/int params (categoricals use choices)")
            return
        if self.choices is not None:
            raise ValueError(f"a {self.type} param takes low/high, not choices")
        if self.low is None or self.high is None:
            raise ValueError(f"a {self.type} param needs low and high")
        if self.type == "int" and not all(float(v).is_integer() for v in (self.low, self.high)):
            raise ValueError(f"an int param needs integer low/high, got {self.low}, {self.high}")
        if not self.low < self.high:
            raise ValueError(f"low ({self.low:g}) must be below high ({self.high:g})")
        if self.log and self.low <= 0:
            raise ValueError(f"log scale needs low > 0, got low = {self.low:g}")
        if self.log and self.step is not None:
            raise ValueError("log and step cannot be combined")
        if self.step is not None and self.step <= 0:
            raise ValueError(f"step must be > 0, got {self.step:g}")
        if self.grid is not None:
            if not self.grid:
                raise ValueError("grid must be a non-empty list")
            for g in self.grid:
                if isinstance(g, bool) or not isinstance(g, (int, float)):
                    raise ValueError(f"grid value {g!r} is not a number")
                if not self.low <= g <= self.high:
                    raise ValueError(f"grid value {g:g} is outside [{self.low:g}, {self.high:g}]")
        if sampler == "grid" and self.type == "float" and self.grid is None:
            raise ValueError("the grid sampler needs the values of a float param as a list: "
                             "add grid: [v1, v2, ...]")

    def test_values(self) -> list[Any]:
        """Where validation builds the run config: the ends of the range and every choice."""
        if self.type == "categorical":
            return list(self.choices or [])
        low, high = self.low, self.high
        vals = [low, high] + list(self.grid or [])
        if self.type == "int":
            return sorted({int(v) for v in vals})
        return sorted({float(v) for v in vals})

    def grid_values(self) -> list[Any]:
        if self.type == "categorical":
            return list(self.choices or [])
        if self.grid is not None:
            return [int(v) if self.type == "int" else float(v) for v in self.grid]
        low, high = self.bounds()
        return list(range(int(low), int(high) + 1, int(self.step or 1)))

    def bounds(self) -> tuple[float, float]:
        """(low, high) of an int or float space (the validator requires both there)."""
        if self.low is None or self.high is None:
            raise ValueError(f"a {self.type} param needs low and high")
        return float(self.low), float(self.high)

    def suggest(self, trial: optuna.Trial, key: str) -> Any:
        if self.type == "categorical":
            return trial.suggest_categorical(key, list(self.choices or []))
        low, high = self.bounds()
        if self.type == "int":
            return trial.suggest_int(key, int(low), int(high), step=int(self.step or 1),
                                     log=self.log)
        return trial.suggest_float(key, low, high, step=self.step, log=self.log)


class TuneSpec(Strict):
    objective: str | None = None
    objectives: list[str] | None = None
    space: dict[str, ParamSpec]
    sampler: str | dict[str, Any] = "tpe"
    pruner: str | dict[str, Any] | None = None  # default: median (single), none (multi)
    seed: int = 0
    search_seed: int = 0
    n_trials: int | None = Field(None, ge=1)
    timeout: float | None = Field(None, gt=0)
    confirm_seeds: int | list[int] = 3
    retrain_top_k: int = Field(1, ge=1)

    @field_validator("space")
    @classmethod
    def _non_empty(cls, v: dict[str, ParamSpec]) -> dict[str, ParamSpec]:
        if not v:
            raise ValueError("the search space is empty")
        return v

    # --- derived ------------------------------------------------------------------
    @property
    def objective_names(self) -> list[str]:
        return list(self.objectives or [self.objective or "val_acc"])

    @property
    def multi(self) -> bool:
        return len(self.objective_names) > 1

    @property
    def directions(self) -> list[str]:
        return [OBJECTIVES[n].direction for n in self.objective_names]

    @property
    def sampler_name(self) -> str:
        return self.sampler if isinstance(self.sampler, str) else str(self.sampler.get("name"))

    @property
    def sampler_options(self) -> dict[str, Any]:
        return {} if isinstance(self.sampler, str) else {
            k: v for k, v in self.sampler.items() if k != "name"}

    @property
    def pruner_name(self) -> str:
        if self.pruner is None:
            return "none" if self.multi or OBJECTIVES[self.objective_names[0]].row_key is None \
                else "median"
        return self.pruner if isinstance(self.pruner, str) else str(self.pruner.get("name"))

    @property
    def pruner_options(self) -> dict[str, Any]:
        return {} if not isinstance(self.pruner, dict) else {
            k: v for k, v in self.pruner.items() if k != "name"}

    def confirm_seed_list(self) -> list[int]:
        if isinstance(self.confirm_seeds, int):
            return [self.search_seed + i for i in range(1, self.confirm_seeds + 1)]
        return list(self.confirm_seeds)

    def config_keys(self) -> list[str]:
        return [k for k in self.space if is_config_path(k)]

    def order(self) -> list[str]:
        """Params with their switches first (a topological order of `when`)."""
        done: list[str] = []

        def visit(key: str, path: tuple[str, ...]) -> None:
            if key in done:
                return
            if key in path:
                raise ValueError(f"`when` conditions form a cycle: {' -> '.join(path + (key,))}")
            for dep in (self.space[key].when or {}):
                visit(dep, path + (key,))
            done.append(key)

        for key in self.space:
            visit(key, ())
        return done

    # --- sampling -----------------------------------------------------------------
    def active(self, key: str, values: dict[str, Any]) -> bool:
        for dep, want in (self.space[key].when or {}).items():
            if dep not in values:
                return False
            options = want if isinstance(want, list) else [want]
            if values[dep] not in options:
                return False
        return True

    def label(self, key: str) -> str:
        """A space key's Optuna param name: the label the run queue and W&B use for a config
        path (regularizers.dropout.p -> dropout_p), a switch as written."""
        return param_label(key).wandb if is_config_path(key) else key

    def sample(self, trial: optuna.Trial) -> dict[str, Any]:
        """All active params of one trial (switches included), in dependency order, by
        space key (Optuna holds them under their labels)."""
        values: dict[str, Any] = {}
        for key in self.order():
            if self.active(key, values):
                values[key] = self.space[key].suggest(trial, self.label(key))
        return values

    def overrides(self, params: dict[str, Any]) -> dict[str, Any]:
        """The config-path params of a sample or of a trial's Optuna params (by label),
        switches dropped: dotted key -> value."""
        keys = {self.label(k): k for k in self.space}
        out = {}
        for name, value in params.items():
            key = name if name in self.space else keys.get(name, name)
            if is_config_path(key):
                out[key] = value
        return out

    def grid_search_space(self) -> dict[str, list[Any]]:
        return {self.label(k): p.grid_values() for k, p in self.space.items()}


def is_config_path(key: str) -> bool:
    return "." in key or key in RunConfig.model_fields


def trial_raw(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    raw = copy.deepcopy(base)
    for k, v in overrides.items():
        set_dotted(raw, k, v)
    return raw


def parse_tune(study: Any, source: str) -> TuneSpec:
    """Validate a tuning study's `tune:` section whole, or raise ConfigError naming the file
    and the key."""
    where = f"{source}: tune"
    if "seeds" in getattr(study, "model_fields_set", set()):
        raise ConfigError(f"{source}: seeds: a tuning study takes its seeds from "
                          "tune.search_seed (search trials) and tune.confirm_seeds (retrain)")
    raw = study.tune or {}
    try:
        spec = TuneSpec.model_validate(raw)
    except ValidationError as err:
        e = err.errors()[0]
        loc = [str(p) for p in e["loc"]]
        if loc and loc[0] == "space" and len(loc) >= 2:
            key = f"{where}.space.{loc[1]}"
            rest = ".".join(loc[2:])
            msg = e["msg"].removeprefix("Value error, ")
            if e["type"] == "extra_forbidden":
                allowed = ", ".join(ParamSpec.model_fields)
                raise ConfigError(f"{key}: unknown field {rest!r}; allowed: {allowed}") from None
            if e["type"] == "literal_error" and rest == "type":
                raise ConfigError(f"{key}: unknown type {e.get('input')!r}; "
                                  "expected float, int or categorical") from None
            raise ConfigError(f"{key}{'.' + rest if rest else ''}: {msg}") from None
        if e["type"] == "extra_forbidden":
            allowed = ", ".join(TuneSpec.model_fields)
            raise ConfigError(f"{where}: unknown key {loc[0]!r}; allowed: {allowed}") from None
        msg = e["msg"].removeprefix("Value error, ")
        raise ConfigError(f"{where}.{'.'.join(loc)}: {msg}") from None
    check_spec(spec, study, where)
    return spec


def check_spec(spec: TuneSpec, study: Any, where: str) -> None:
    names = spec.objective_names
    if spec.objective and spec.objectives:
        raise ConfigError(f"{where}: give objective or objectives, not both")
    for n in names:
        if n not in OBJECTIVES:
            raise ConfigError(f"{where}.objective: unknown objective {n!r}; "
                              f"expected one of {', '.join(OBJECTIVES)}")
    if len(set(names)) != len(names):
        raise ConfigError(f"{where}.objectives: {names} repeats an objective")
    if spec.n_trials is None and spec.timeout is None:
        raise ConfigError(f"{where}: give a budget: n_trials and/or timeout (seconds)")
    sampler, pruner = spec.sampler_name, spec.pruner_name
    if sampler not in SAMPLERS:
        raise ConfigError(f"{where}.sampler: unknown sampler {sampler!r}; "
                          f"expected one of {', '.join(SAMPLERS)}")
    if pruner not in PRUNERS:
        raise ConfigError(f"{where}.pruner: unknown pruner {pruner!r}; "
                          f"expected one of {', '.join(PRUNERS)}")
    if spec.multi and pruner != "none":
        raise ConfigError(f"{where}.pruner: Optuna cannot prune multi-objective studies; "
                          "use pruner: none")
    if not spec.multi and pruner != "none" and OBJECTIVES[names[0]].row_key is None:
        raise ConfigError(f"{where}.pruner: objective {names[0]!r} has no per-epoch value to "
                          "prune on; use pruner: none")
    if sampler == "cmaes" and spec.multi:
        raise ConfigError(f"{where}.sampler: cmaes is single-objective; use nsga2 or tpe")
    seeds = spec.confirm_seed_list()
    if not seeds or len(set(seeds)) != len(seeds):
        raise ConfigError(f"{where}.confirm_seeds: {seeds} must be distinct seeds (at least 1)")
    if spec.search_seed in seeds:
        raise ConfigError(f"{where}.confirm_seeds: {seeds} must not contain the search seed "
                          f"{spec.search_seed} (the confirmation must use fresh seeds)")
    labels: dict[str, str] = {}
    for key in spec.space:
        other = labels.setdefault(spec.label(key), key)
        if other != key:
            raise ConfigError(f"{where}.space: {other} and {key} share the name "
                              f"{spec.label(key)!r} in Optuna, W&B and the run queue; tune one "
                              "of them")
    for key, p in spec.space.items():
        for dep in p.when or {}:
            if dep not in spec.space:
                raise ConfigError(f"{where}.space.{key}.when: {dep!r} is not a param of the "
                                  f"search space (params: {', '.join(spec.space)})")
    try:
        order = spec.order()
    except ValueError as err:
        raise ConfigError(f"{where}.space: {err}") from None
    for key in order:
        check_param(spec, key, where)
    if sampler == "grid" and any(p.when for p in spec.space.values()):
        raise ConfigError(f"{where}.sampler: the grid sampler cannot skip conditional params "
                          "(`when`); list the combinations as categoricals instead")
    make_sampler(spec, worker=0, workers=1, where=where)  # unknown options fail here
    make_pruner(spec, epochs=2, where=where)
    check_points(spec, study, where)


def check_param(spec: TuneSpec, key: str, where: str) -> None:
    p = spec.space[key]
    name = f"{where}.space.{key}"
    try:
        p.check(spec.sampler_name)
    except ValueError as err:
        raise ConfigError(f"{name}: {err}") from None
    if is_config_path(key):
        for prefix in FROZEN_PREFIXES:
            if key == prefix.rstrip(".") or key.startswith(prefix if prefix.endswith(".")
                                                           else prefix + "."):
                raise ConfigError(f"{name}: {key} cannot be tuned (it would change what is "
                                  "measured or which run this is)")
    elif not p.when and p.type != "categorical":
        raise ConfigError(f"{name}: {key!r} is not a config path (no '.') so it can only be a "
                          "categorical switch for `when`")
    for dep, want in (p.when or {}).items():
        if dep not in spec.space:
            raise ConfigError(f"{name}.when: {dep!r} is not a param of the search space "
                              f"(params: {', '.join(spec.space)})")
        sw = spec.space[dep]
        if sw.type != "categorical":
            raise ConfigError(f"{name}.when: {dep!r} must be a categorical param to gate others")
        for w in want if isinstance(want, list) else [want]:
            if w not in (sw.choices or []):
                raise ConfigError(f"{name}.when: {dep} = {w!r} is not one of its choices "
                                  f"{sw.choices}")
    if not is_config_path(key) and not any(dep_key_uses(spec, key)):
        raise ConfigError(f"{name}: switch {key!r} gates no param (no `when: {{{key}: ...}}`); "
                          "a config path needs a dot, e.g. regularizers.dropout.p")


def dep_key_uses(spec: TuneSpec, switch: str) -> list[str]:
    return [k for k, p in spec.space.items() if switch in (p.when or {})]


def requirements(spec: TuneSpec, key: str) -> dict[str, Any]:
    """The switch values that make `key` active (first allowed value of each condition)."""
    out: dict[str, Any] = {}
    for dep, want in (spec.space[key].when or {}).items():
        out.update(requirements(spec, dep))
        out[dep] = want[0] if isinstance(want, list) else want
    return out


def check_points(spec: TuneSpec, study: Any, where: str) -> None:
    """Build the run config at sampled points, so a value the run config rejects fails now,
    not in trial 17: each param at each end of its range and at each choice (with the
    switches that make it active on, the other active params at their reference: low end /
    first choice), then every param at its reference."""
    for key in spec.order():
        if not is_config_path(key):
            continue
        for value in spec.space[key].test_values():
            p = point(spec, {**requirements(spec, key), key: value})
            build_point(spec, study, p, f"{where}.space.{key}: at {key} = {value!r}",
                        f" (with {p})" if len(p) > 1 else "")
    ref = point(spec, {})
    build_point(spec, study, ref, f"{where}.space: at the reference point {ref}", "")


def point(spec: TuneSpec, forced: dict[str, Any]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for key in spec.order():
        if key in forced:
            values[key] = forced[key]
        elif spec.active(key, values):
            values[key] = spec.space[key].test_values()[0]
    return {k: v for k, v in values.items() if k in forced or spec.active(k, values)}


def build_point(spec: TuneSpec, study: Any, params: dict[str, Any], what: str,
                detail: str) -> None:
    raw = trial_raw(study.base, spec.overrides(params))
    raw.update(study=study.name, variant="tune-check", seed=spec.search_seed)
    try:
        build_run_config(raw, "config")
    except ConfigError as err:
        why = str(err).removeprefix("config: ")
        raise ConfigError(f"{what} the run config is invalid{detail}: {why}") from None


# ----------------------------------------------------------------------------- samplers


def make_sampler(spec: TuneSpec, *, worker: int, workers: int,
                 where: str = "tune") -> optuna.samplers.BaseSampler:
    """The sampler of worker `worker` of `workers` (seed + worker: parallel workers must not
    draw the same random points)."""
    name, opts = spec.sampler_name, dict(spec.sampler_options)
    seed = spec.seed + worker
    try:
        if name == "tpe":
            opts.setdefault("constant_liar", workers > 1)
            return optuna.samplers.TPESampler(seed=seed, **opts)
        if name == "random":
            return optuna.samplers.RandomSampler(seed=seed, **opts)
        if name == "grid":
            return optuna.samplers.GridSampler(spec.grid_search_space(), seed=seed, **opts)
        if name == "cmaes":
            try:
                import cmaes  # noqa: F401
            except ImportError:
                raise ConfigError(f"{where}.sampler: cmaes needs the `cmaes` package "
                                  "(pip install cmaes)") from None
            opts.setdefault("warn_independent_sampling", False)
            return optuna.samplers.CmaEsSampler(seed=seed, **opts)
        return optuna.samplers.NSGAIISampler(seed=seed, **opts)
    except TypeError as err:
        raise ConfigError(f"{where}.sampler: bad option for {name} ({err})") from None
    except ValueError as err:
        raise ConfigError(f"{where}.sampler: {err}") from None


def make_pruner(spec: TuneSpec, *, epochs: int, where: str = "tune") -> optuna.pruners.BasePruner:
    name, opts = spec.pruner_name, dict(spec.pruner_options)
    try:
        if name == "median":
            opts.setdefault("n_startup_trials", 5)
            opts.setdefault("n_warmup_steps", 2)
            return optuna.pruners.MedianPruner(**opts)
        if name == "hyperband":
            opts.setdefault("min_resource", 1)
            opts.setdefault("max_resource", max(epochs, 2))
            return optuna.pruners.HyperbandPruner(**opts)
        if name == "successive_halving":
            return optuna.pruners.SuccessiveHalvingPruner(**opts)
        if opts:
            raise ConfigError(f"{where}.pruner: none takes no options")
        return optuna.pruners.NopPruner()
    except TypeError as err:
        raise ConfigError(f"{where}.pruner: bad option for {name} ({err})") from None
    except ValueError as err:
        raise ConfigError(f"{where}.pruner: {err}") from None


def describe_param(p: ParamSpec) -> str:
    if p.type == "categorical":
        return f"one of {p.choices}"
    scale = " (log)" if p.log else ""
    return f"{p.type} in [{p.low:g}, {p.high:g}]{scale}"
