"""A worker's populations: after popping a queued run, it takes the next queued runs that
can train with it (harness/train/grouping.py), up to the study's population size, and
trains them as one model. The coordinator writes the size it chose into the queue, so a
worker on another machine uses it too (`harness worker --population K` overrides it)."""

from __future__ import annotations

from optuna.trial import TrialState

from harness.study.plan import RunSpec
from harness.study.queue import Job, RunQueue
from harness.train.grouping import population_key

POPULATION_ATTR = "population"  # queue study attr: the population size the coordinator chose


def save_population(queue: RunQueue, size: int) -> None:
    if queue.study.user_attrs.get(POPULATION_ATTR) != size:
        queue.study.set_user_attr(POPULATION_ATTR, size)


def queue_population(queue: RunQueue) -> int:
    """The population size the coordinator chose (1 when it chose none)."""
    size = queue.study.user_attrs.get(POPULATION_ATTR)
    return int(size) if isinstance(size, int) and size > 0 else 1


def spec_key(spec: RunSpec) -> str | None:
    """A queued run's population key; None (alone) for upstream runs and runs that wait
    for one."""
    if spec.depends_on or spec.upstream:
        return None
    return population_key(spec.config)


def next_waiting_key(queue: RunQueue) -> str | None:
    """The population key of the run the queue hands out next, without taking it."""
    waiting = queue.trials(TrialState.WAITING)
    if not waiting:
        return None
    spec = min(waiting, key=lambda t: t.number).user_attrs.get("spec")
    return spec_key(RunSpec.from_json(spec)) if spec else None


def gather(queue: RunQueue, first: Job, size: int) -> tuple[list[Job], Job | None]:
    """`first` and the runs queued after it that share its key, at most `size` in all, and
    the run popped that did not fit (another worker took the one looked at meanwhile): it
    starts the worker's next population."""
    key = spec_key(first.spec) if size > 1 else None
    crew = [first]
    while key is not None and len(crew) < size and next_waiting_key(queue) == key:
        job = queue.pop()
        if job is None:
            break
        if spec_key(job.spec) != key:
            return crew, job
        crew.append(job)
    return crew, None


def queue_order(specs: list[RunSpec]) -> list[RunSpec]:
    """The plan's runs with those of one shape next to each other (in the order each shape
    first appears; runs that train alone keep their place among them, upstream runs first),
    so that workers, taking queued runs in order, find full populations."""
    first: dict[str | None, int] = {}
    rank = []
    for i, spec in enumerate(specs):
        key = spec_key(spec)
        rank.append(first.setdefault(key, i) if key is not None else i)
    return [spec for _, spec in sorted(zip(rank, specs, strict=True), key=lambda t: t[0])]
