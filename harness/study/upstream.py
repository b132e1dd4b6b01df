"""Upstream runs: runs other runs start from (pretraining for fine-tuning, a distillation
teacher), planned and trained first.

A study declares them under `upstream:` (name -> run config overrides on the study's base,
its regularizers and fine-tuning keys left out); a run refers to one by name in
`model.init_from`, and a regularizer declares the runs it needs in its `upstream` (a
distillation teacher: a study's upstream run by name, or overrides on the student's own
config). No plug-in is named here. Linking replaces each
reference by the upstream run's folder relative to the results folder, which carries its
run id: a changed upstream config changes the downstream run's identity, so it re-runs.
Each upstream run takes the seed of the run that refers to it unless its overrides fix
`seed`; runs that refer to the same upstream config share it.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.config import STRUCTURE_ONLY, RunConfig, build_run_config
from harness.dotted import deep_merge, set_dotted
from harness.errors import ConfigError
from harness.record.layout import RUNS, run_folder_name

MAX_DEPTH = 8  # upstream of upstream of ...: deeper than this is a cycle
# left out of an upstream run (it trains from scratch unless its overrides say otherwise)
FINE_TUNING_KEYS = ("model.init_from", "model.freeze", "model.freeze_body", "optim.body_lr_scale")


@dataclass
class UpstreamRun:
    name: str  # its variant name in the study folder
    config: RunConfig
    run_id: str
    depends_on: list[str] = field(default_factory=list)  # its own upstream runs' ids


def folder_ref(config: RunConfig, run_id: str) -> str:
    """The run's folder relative to the results folder (RunDir.for_run's naming)."""
    return f"{config.study}/{RUNS}/{run_folder_name(config.variant, config.seed, run_id)}"


def overridden(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """`overrides` (nested mappings or dotted keys) on top of `base`."""
    merged = deep_merge(base, {k: v for k, v in overrides.items() if "." not in k})
    for k, v in overrides.items():
        if "." in k:
            set_dotted(merged, k, v)
    return merged


def upstream_config(base: dict[str, Any], overrides: dict[str, Any], study: str,
                    variant: str, seed: int, source: str) -> RunConfig:
    """An upstream run: `overrides` on `base` (a study's base, or the config of the run that
    needs it) without its regularizers and fine-tuning keys, so it trains from scratch unless
    the overrides say otherwise; the seed is `seed` unless the overrides fix one."""
    raw = copy.deepcopy(base)
    raw["regularizers"] = {}
    for key in FINE_TUNING_KEYS:
        section, _, name = key.partition(".")
        raw.get(section, {}).pop(name, None)
    raw = overridden(raw, overrides)
    raw.update(study=study, variant=variant, seed=raw.get("seed", seed) if "seed" in overrides
               else seed)
    return build_run_config(raw, source)


def regularizer_class(name: str) -> Any:
    """A regularizer by name. Its package imports PyTorch, so it is imported here, when a
    run's regularizers are asked, never by the structure-only first pass of the checks."""
    from harness.regularizers import REGULARIZERS

    return REGULARIZERS.get(name)


class Linker:
    """Links the runs of one study (or one `harness run`) to their upstream runs: a study's
    declared ones named in `model.init_from`, and those a regularizer declares (its
    `upstream`, e.g. a distillation teacher)."""

    def __init__(self, declared: dict[str, dict[str, Any]] | None = None,
                 base: dict[str, Any] | None = None, source: str = "config") -> None:
        self.declared, self.base, self.source = declared or {}, base or {}, source
        self.runs: dict[str, UpstreamRun] = {}  # run id -> upstream run, first-planned first

    def link(self, config: RunConfig, depth: int = 0) -> tuple[RunConfig, list[str]]:
        """(config with every upstream reference replaced by a run folder, the ids of the
        upstream runs it needs). Plans each upstream run (and its own upstream) once."""
        raw = config.model_dump(mode="json")
        needs: list[str] = []
        ref = config.model.init_from
        if ref in self.declared:
            up = self.declared_run(ref, config, "model.init_from")
            raw["model"]["init_from"] = self.plan(up, needs, depth)
        # a structure-only check (before PyTorch loads) cannot ask the regularizers yet
        declared = {} if STRUCTURE_ONLY.get() else config.regularizer_params()
        for name, params in declared.items():
            reg = regularizer_class(name)
            for need in reg.upstream(params):
                key = f"regularizers.{name}.{need.key}"
                up = (self.declared_run(need.name, config, key) if need.name is not None else
                      upstream_config(raw, need.overrides or {}, config.study, need.variant,
                                      config.seed, f"{self.source}: {key}"))
                raw["regularizers"][name] = reg.linked(raw["regularizers"][name], need,
                                                       self.plan(up, needs, depth))
        if not needs:
            return config, []
        return build_run_config(raw, self.source), needs

    def declared_run(self, name: str, config: RunConfig, key: str) -> RunConfig:
        """The study's upstream run `name`, for the run `config` (its seed)."""
        if name not in self.declared:
            known = ", ".join(sorted(self.declared)) or "none declared"
            raise ConfigError(f"{self.source}: {key} = {name!r}: not an upstream run of this "
                              f"study ({known})")
        return upstream_config(self.base, self.declared[name], config.study, name, config.seed,
                               f"{self.source}: upstream.{name}")

    def plan(self, config: RunConfig, needs: list[str], depth: int) -> str:
        if depth >= MAX_DEPTH:
            raise ConfigError(f"{self.source}: upstream {config.variant!r}: upstream runs refer "
                              f"to each other more than {MAX_DEPTH} deep (a cycle?)")
        linked, own = self.link(config, depth + 1)
        run_id = linked.run_id()
        self.runs.setdefault(run_id, UpstreamRun(linked.variant, linked, run_id, own))
        needs.append(run_id)
        return folder_ref(linked, run_id)


def train_with_upstream(config: RunConfig, train: Callable[..., Any], *,
                        results_dir: str | Path, **kwargs: Any) -> Any:
    """One run outside a study (`harness run`, harness.run): its upstream runs (a
    distillation teacher.config) first, each reused when finished, then the run itself.
    `train` is train_run; `kwargs` go to the run itself."""
    linker = Linker(source="config")
    linked, _ = linker.link(config)
    tracker_for = kwargs.pop("tracker_for", None)  # the run's own tracker, of its linked config
    for up in linker.runs.values():
        train(up.config, results_dir=results_dir, data_dir=kwargs.get("data_dir"))
    if tracker_for is not None:
        kwargs["tracker"] = tracker_for(linked)
    return train(linked, results_dir=results_dir, **kwargs)
