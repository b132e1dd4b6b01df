"""Expand a study into runs: every design x every seed, each with a stable id.

The id is a hash of the resolved config and seed, so re-running a study finds
finished runs in the store and skips them. Two variants that resolve to the
same config are one run.
"""

from __future__ import annotations

import copy
import itertools
from dataclasses import dataclass, field
from typing import Any

from harness.config import RunConfig, build_run_config
from harness.dotted import flatten_dotted, set_dotted
from harness.errors import ConfigError
from harness.numerics import NUMERICS_VERSION
from harness.record.params import param_label, swept_values
from harness.study.spec import DATA_SEED_STRIDE, StudyConfig
from harness.study.upstream import Linker
from harness.version import __version__

BASELINE = "baseline"


@dataclass
class Variant:
    name: str
    overrides: dict[str, Any] = field(default_factory=dict)  # dotted key -> value
    swept: dict[str, Any] = field(default_factory=dict)
    is_baseline: bool = False
    drop: list[str] = field(default_factory=list)  # regularizers removed (leave_one_out)


@dataclass
class RunSpec:
    variant: str
    seed: int
    config: RunConfig
    run_id: str
    swept: dict[str, Any]
    is_baseline: bool
    # Every swept key's value for this run, the baseline's included (the swept values above
    # are the variant's own): the x of the study's plots, and W&B's / Optuna's params.
    params: dict[str, Any] = field(default_factory=dict)
    notes: str | None = None  # the study description (W&B notes)
    # Upstream runs (harness/study/upstream.py): the ids this run must wait for, and whether
    # this run is one (trained first, not compared in the report).
    depends_on: list[str] = field(default_factory=list)
    upstream: bool = False

    def to_json(self) -> dict[str, Any]:
        return {"variant": self.variant, "seed": self.seed, "run_id": self.run_id,
                "swept": self.swept, "is_baseline": self.is_baseline, "params": self.params,
                "notes": self.notes, "config": self.config.model_dump(mode="json"),
                "depends_on": self.depends_on, "upstream": self.upstream}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> RunSpec:
        config = RunConfig.from_plan(d["config"])  # validated when it was planned
        return cls(d["variant"], d["seed"], config, d["run_id"], d["swept"], d["is_baseline"],
                   dict(d.get("params") or {}), d.get("notes"), list(d.get("depends_on") or []),
                   bool(d.get("upstream")))

    def wandb_context(self) -> dict[str, Any]:
        """What the run's W&B run needs from the study (see tracking.wandb_run): it travels
        in the queue entry, so a worker on another machine needs no study.json."""
        return {"swept": dict(self.params), "notes": self.notes}


def short_value(v: Any) -> str:
    return f"{v:g}" if isinstance(v, float) else str(v)


flatten = flatten_dotted  # nested overrides -> dotted keys (a variant may be written either way)


def variants(study: StudyConfig) -> list[Variant]:
    d = study.design
    assert d is not None  # validated by StudyConfig
    out = [Variant(BASELINE, is_baseline=True)]
    if d.kind == "sweep":
        assert d.parameter is not None  # a sweep names its parameter (StudyConfig)
        for v in d.values or []:
            out.append(Variant(f"{param_label(d.parameter).short}={short_value(v)}",
                               {d.parameter: v}, {d.parameter: v}))
    elif d.kind == "grid":
        keys = list((d.parameters or {}).keys())
        # values are a list, or a mapping of label -> value (for whole sections)
        axes = [list(v.items()) if isinstance(v, dict) else [(short_value(x), x) for x in v]
                for v in (d.parameters or {}).values()]
        for combo in itertools.product(*axes):
            name = ",".join(f"{param_label(k).short}={tag}"
                            for k, (tag, _) in zip(keys, combo, strict=True))
            over = {k: value for k, (_, value) in zip(keys, combo, strict=True)}
            swept = {k: (value if not isinstance(value, dict) else tag)
                     for k, (tag, value) in zip(keys, combo, strict=True)}
            out.append(Variant(name, over, swept))
    elif d.kind == "one_at_a_time":
        for name, over in (d.variants or {}).items():
            out.append(Variant(name, flatten("", over)))
    elif d.kind == "leave_one_out":
        recipe = list((study.base.get("regularizers") or {}).keys())
        if not recipe:
            raise ConfigError("design: leave_one_out removes regularizers of "
                              "base.regularizers, which names none")
        for reg in d.remove or recipe:
            if reg not in recipe:
                raise ConfigError(f"design.remove: {reg!r} is not in base.regularizers "
                                  f"({', '.join(recipe) or 'empty'})")
            out.append(Variant(f"minus_{reg}", drop=[reg]))
        out[0] = Variant("full_recipe", is_baseline=True)
    return out


def swept_params(study: StudyConfig, variant: Variant, config: RunConfig) -> dict[str, Any]:
    """Each swept key's value in this run (record/params.py says how)."""
    design = study.design.model_dump(mode="json") if study.design else None
    return swept_values(design, variant.swept, variant.is_baseline,
                        config.model_dump(mode="json"))


def resolve(study: StudyConfig, variant: Variant, seed: int, source: str,
            data_seed: int | None = None) -> RunConfig:
    raw = copy.deepcopy(study.base)
    for reg in variant.drop:
        raw.get("regularizers", {}).pop(reg, None)
    for key, value in variant.overrides.items():
        set_dotted(raw, key, value)
    if data_seed is not None:  # a resampled training set (val split, subset, label noise)
        set_dotted(raw, "data.seed", data_seed)
    raw.update(study=study.name, variant=variant.name, seed=seed)
    return build_run_config(raw, f"{source}: variant {variant.name!r}")


def seed_pairs(study: StudyConfig, variant: str) -> list[tuple[int | None, int]]:
    """(data seed, run seed) of each run of a variant. With data_seeds the run seed is
    seed + DATA_SEED_STRIDE x data seed: every run of a variant has its own seed, and runs
    of two variants with the same seed share their training set and initialisation (the
    report's matched-seed comparisons stay matched)."""
    return [(d, s if d is None else s + DATA_SEED_STRIDE * d)
            for d in study.data_seed_list() for s in study.seed_list(variant)]


def expand(study: StudyConfig, source: str = "study") -> list[RunSpec]:
    """All runs of a study, validated; duplicates (same resolved config) kept once. Upstream
    runs come first (the queue hands runs out oldest first)."""
    specs: list[RunSpec] = []
    seen: set[str] = set()
    linker = Linker(study.upstream, study.base, source)
    try:
        planned = variants(study)
    except ConfigError as err:  # the design's own words, with the file they are about
        raise ConfigError(f"{source}: {err}") from None
    for variant in planned:
        for data_seed, seed in seed_pairs(study, variant.name):
            cfg, needs = linker.link(resolve(study, variant, seed, source, data_seed))
            run_id = cfg.run_id()
            if run_id in seen:
                continue
            seen.add(run_id)
            specs.append(RunSpec(variant.name, seed, cfg, run_id, variant.swept,
                                 variant.is_baseline, swept_params(study, variant, cfg),
                                 study.description or None, needs))
    names = [v.name for v in planned]
    clash = sorted({u.name for u in linker.runs.values()} & set(names))
    if clash:
        raise ConfigError(f"{source}: upstream run {clash[0]!r} has the name of a variant; "
                          "rename one of them")
    study.check_claim_variants(names + ([BASELINE] if BASELINE not in names else []), source)
    upstream = [RunSpec(u.name, u.config.seed, u.config, u.run_id, {}, False, {},
                        study.description or None, u.depends_on, upstream=True)
                for u in linker.runs.values() if u.run_id not in seen]
    return upstream + specs


def study_manifest(study: StudyConfig, specs: list[RunSpec]) -> dict[str, Any]:
    """What the report reads about the study (results/<study>/study.json)."""
    import time

    names: dict[str, dict[str, Any]] = {}
    upstream = [s for s in specs if s.upstream]
    specs = [s for s in specs if not s.upstream]
    for v in variants(study):
        if any(s.variant == v.name for s in specs):
            params = next(s.params for s in specs if s.variant == v.name)
            names[v.name] = {"name": v.name, "overrides": v.overrides, "swept": v.swept,
                             "params": params, "is_baseline": v.is_baseline, "removed": v.drop}
    return {
        "name": study.name, "description": study.description, "kind": study.kind,
        "design": study.design.model_dump(mode="json") if study.design else None,
        "analysis": study.analysis,
        "base": specs[0].config.model_dump(mode="json") if specs else study.base,
        "seeds": sorted({s.seed for s in specs}) or study.seed_list(),
        "data_seeds": [d for d in study.data_seed_list() if d is not None],
        "screen_seeds": study.screen_seeds(),
        "confirm": (study.confirmation.model_dump(mode="json") if study.confirmation
                    else None),
        "baseline": next((v["name"] for v in names.values() if v["is_baseline"]), None),
        "variants": list(names.values()), "runs": len(specs),
        "claims": [c.model_dump(mode="json") for c in study.claim],
        "planned": [{"run_id": s.run_id, "variant": s.variant, "seed": s.seed} for s in specs],
        "upstream": [{"run_id": s.run_id, "variant": s.variant, "seed": s.seed}
                     for s in upstream],
        "compare": study.compare.model_dump(mode="json"),
        "overrides": study.overrides,  # --set key=value on top of the study file
        "harness_version": __version__,
        "numerics": NUMERICS_VERSION,  # the version every planned run id hashes
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
