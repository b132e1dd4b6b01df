"""Which runs may train together as one population, and how many at once.

Runs share a population when everything but their seed and their regularizers' own
settings is equal (data, model, optimizer, schedule, training settings, and the models
their regularizers build, compared module by module), every regularizer declares
population support (harness/regularizers/base.py, PopulationSupport), and the model's
modules have stacked forms (harness/models/population.py). A regularizer declared
`same_for_all` must be the same in every member. The run id never changes: a member is
the same run as alone.
"""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Any

import torch

from harness.config import RunConfig
from harness.data.shapes import known_shape
from harness.models import create_model, model_capabilities
from harness.models.population import population_blocker, structure
from harness.regularizers import REGULARIZERS, ModelSpec
from harness.regularizers.validate import probe_model_spec
from harness.train.build import model_options
from harness.train.preflight import BYTES_PER_PARAM, MEMORY_SHARE, physical_memory

# Work per step (parameters x samples) a population may reach: above it a step is long
# enough that batching more members gains little over training them one after another.
STEP_WORK = {"cpu": 2**28, "cuda": 2**33}
MAX_POPULATION = 64


def alone_reason(config: RunConfig) -> str | None:
    """Why this run must train alone (None: it may train in a population)."""
    if config.train.compile:
        return "train.compile"
    if config.model.init_from or config.model.freeze or config.model.freeze_body:
        return "fine-tuning (model.init_from / freeze)"
    for name in config.regularizers:
        support = REGULARIZERS.get(name).population
        if support is None:
            return f"regularizer {name} does not declare population support"
    built = built_structure(config)
    if isinstance(built, str):
        return built
    return None


def population_key(config: RunConfig) -> str | None:
    """Runs with equal keys train together; None: this run trains alone."""
    if alone_reason(config) is not None:
        return None
    dumped = config.model_dump(mode="json")
    for key in ("seed", "variant", "study", "tracking", "plugins", "regularizers"):
        dumped.pop(key, None)
    shared = {name: raw for name, raw in config.regularizers.items()
              if getattr(REGULARIZERS.get(name).population, "same_for_all", False)}
    return json.dumps({"config": dumped, "shared": shared, "model": built_structure(config)},
                      sort_keys=True, default=str)


def built_structure(config: RunConfig) -> list[tuple[str, str]] | str:
    """The model the run builds (with its regularizers' options), module by module, built
    on the meta device; or why it cannot be a population member."""
    spec = ModelSpec(config.model.name, model_options(config))
    for name, raw in config.regularizers.items():
        reg_cls = REGULARIZERS.get(name)
        spec.kwargs.update(probe_model_spec(reg_cls, reg_cls.Params.model_validate(raw or {}),
                                            spec.name).kwargs)
    shape = known_shape(config.data)
    if shape is None:
        return f"dataset {config.data.name}: its shape is known only once loaded"
    return _structure(spec.name, json.dumps(spec.kwargs, sort_keys=True),
                      json.dumps(config.model.kwargs, sort_keys=True),
                      tuple(shape.input_shape), shape.num_classes)


@lru_cache(maxsize=256)
def _structure(name: str, options: str, extra: str, input_shape: tuple[int, ...],
               num_classes: int) -> list[tuple[str, str]] | str:
    if not model_capabilities(name).population:  # said before building: the reason that holds
        return f"model {name} does not declare info.population"
    try:
        with torch.device("meta"):
            model = create_model(name, input_shape=input_shape, num_classes=num_classes,
                                 extra=json.loads(extra), **json.loads(options))
    except Exception as err:  # a model that cannot be built on the meta device trains alone
        return f"model {name} cannot be inspected ({type(err).__name__})"
    why = population_blocker(model)
    return why if why is not None else structure(model)


def population_limit(config: RunConfig, params: int | None, device: str) -> int:
    """The largest population worth forming for this run's model on `device` (cpu or cuda):
    members until a step's work (parameters x batch size per member) reaches STEP_WORK, and
    (on the CPU) as many as fit in the memory a run may plan for its parameters."""
    if params is None or params <= 0:
        return 1
    work = params * config.train.batch_size
    budget = STEP_WORK["cuda" if device.startswith("cuda") else "cpu"]
    limit = min(MAX_POPULATION, budget // work)
    memory = physical_memory()
    if memory and not device.startswith("cuda"):
        limit = min(limit, int(MEMORY_SHARE * memory) // (params * BYTES_PER_PARAM))
    return max(1, limit)


def describe_alone(configs: list[RunConfig]) -> dict[str, int]:
    """reason -> how many of `configs` must train alone for it."""
    out: dict[str, int] = {}
    for c in configs:
        why = alone_reason(c)
        if why is not None:
            out[why] = out.get(why, 0) + 1
    return out


def group(items: list[Any], key_of: Any, size: int) -> list[list[Any]]:
    """Consecutive populations of at most `size` items with equal keys (None: alone), in
    order of first appearance."""
    buckets: dict[str, list[Any]] = {}
    out: list[list[Any]] = []
    for item in items:
        key = key_of(item) if size > 1 else None
        if key is None:
            out.append([item])
            continue
        bucket = buckets.setdefault(key, [])
        if not bucket:
            out.append(bucket)
        bucket.append(item)
        if len(bucket) == size:
            buckets[key] = []
    return out
