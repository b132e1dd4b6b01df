"""Upstream runs: runs other runs start from (pretraining for fine-tuning, a distillation
teacher), planned and trained first.

A study declares them under `upstream:` (name -> run config overrides on the study's base,
its regularizers and fine-tuning keys left out); a run refers to one by name in
`model.init_from` or `regularizers.distillation.teacher.upstream`, and a distillation
`teacher.config` is one too (overrides on the student's own config). Linking replaces each
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

from harness.config import RunConfig, build_run_config
from harness.dotted import deep_merge, set_dotted
from harness.errors import ConfigError
from harness.tracking.store import slug

MAX_DEPTH = 8  # upstream of upstream of ...: deeper than this is a cycle


@dataclass
class UpstreamRun:
    name: str  # its variant name in the study folder
    config: RunConfig
    run_id: str
    depends_on: list[str] = field(default_factory=list)  # its own upstream runs' ids


def folder_ref(config: RunConfig, run_id: str) -> str:
    """The run's folder relative to the results folder (RunDir.for_run's naming)."""
    return f"{config.study}/runs/{slug(config.variant)}-s{config.seed}-{run_id}"


def overridden(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """`overrides` (nested mappings or dotted keys) on top of `base`."""
    merged = deep_merge(base, {k: v for k, v in overrides.items() if "." not in k})
    for k, v in overrides.items():
        if "." in k:
            set_dotted(merged, k, v)
    return merged


def declared_config(name: str, overrides: dict[str, Any], base: dict[str, Any], study: str,
                    seed: int, source: str) -> RunConfig:
    """A study's upstream run NAME: its overrides on the base, without the base's
    regularizers and fine-tuning keys (it is trained from scratch unless it says otherwise)."""
    raw = copy.deepcopy(base)
    raw["regularizers"] = {}
    for key in ("init_from", "freeze", "freeze_body"):
        raw.get("model", {}).pop(key, None)
    raw.get("optim", {}).pop("body_lr_scale", None)
    raw = overridden(raw, overrides)
    raw.update(study=study, variant=name, seed=raw.get("seed", seed))
    return build_run_config(raw, f"{source}: upstream.{name}")


class Linker:
    """Links the runs of one study (or one `harness run`) to their upstream runs."""

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
            raw["model"]["init_from"] = self.plan(self.upstream_of(ref, config), needs, depth)
        teacher = (config.regularizers.get("distillation") or {}).get("teacher") or {}
        make: Callable[[], RunConfig] | None = None
        if teacher.get("upstream") is not None:
            make = lambda: self.upstream_of(teacher["upstream"], config)  # noqa: E731
        elif teacher.get("config") is not None:
            make = lambda: teacher_config(config, teacher["config"])  # noqa: E731
        if make is not None:
            raw["regularizers"]["distillation"]["teacher"] = {"run": self.plan(make(), needs,
                                                                               depth)}
        if not needs:
            return config, []
        return build_run_config(raw, self.source), needs

    def upstream_of(self, name: str, config: RunConfig) -> RunConfig:
        if name not in self.declared:
            known = ", ".join(sorted(self.declared)) or "none declared"
            raise ConfigError(f"{self.source}: regularizers.distillation.teacher.upstream = "
                              f"{name!r}: not an upstream run of this study ({known})")
        return declared_config(name, self.declared[name], self.base, config.study, config.seed,
                               self.source)

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


def teacher_config(student: RunConfig, overrides: dict[str, Any]) -> RunConfig:
    """The distillation teacher's run config; its module (PyTorch) is imported only for a
    study that has one, so planning and the first pass of checks stay free of it."""
    from harness.regularizers.distillation import teacher_run_config

    config: RunConfig = teacher_run_config(student, overrides)
    return config
