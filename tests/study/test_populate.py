"""Populations in a study (harness/study/populate.py, execute.py): the size the study
chooses, the runs a worker gathers, and a whole study trained in populations leaving the
queue results and W&B runs it leaves trained run by run."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
from conftest import tiny_raw

from harness.train.loop import RunRequest, train_runs

TIMING = ("seconds", "samples_per_sec", "wall_time", "setup_time")


def close(a: Any, b: Any) -> bool:
    """Equal, numbers within 1e-5 relative (tests/train/test_population.py says why)."""
    if isinstance(a, float) and isinstance(b, float):
        return (math.isnan(a) and math.isnan(b)) or math.isclose(a, b, rel_tol=1e-5,
                                                                 abs_tol=1e-6)
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(close(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(close(x, y) for x, y in zip(a, b, strict=True))
    return a == b


def without_timing(d: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in d.items() if not any(t in k for t in TIMING)}


def test_the_study_chooses_the_population_size_and_says_why() -> None:
    from harness.study.execute import decide_population
    from harness.study.plan import expand
    from harness.study.spec import StudyConfig

    def plan(base: dict[str, Any], seeds: int = 3) -> list[Any]:
        return expand(StudyConfig(name="k", base=base, seeds=seeds, design={
            "kind": "sweep", "parameter": "regularizers.dropout.p", "values": [0.1, 0.3],
            "baseline_value": 0.0}))

    specs = plan(tiny_raw())  # 9 runs of one shape
    chosen = decide_population(None, specs, workers=2)
    assert (chosen.size, chosen.workers) == (5, 2)  # ceil(9 / 2) per worker
    assert "populations of up to 5 runs" in chosen.lines[0]
    assert decide_population(None, specs, workers=16).workers == 9  # one run per population
    alone = decide_population(1, specs, workers=2)
    assert alone.size == 1 and "every run trains alone" in alone.lines[0]
    mixed = decide_population(None, plan(tiny_raw(regularizers={"l1": {}})), workers=2)
    assert mixed.size == 1
    assert mixed.lines == ["trains alone: regularizer l1 does not declare population support "
                           "(9 runs)"]
    # a model too big for a population on the CPU: a step's work caps the size
    params = 40 * 1024 + 1024 + 1024 * 1024 + 1024 + 1024 * 10 + 10
    wide = decide_population(None, plan(tiny_raw(model={"width": 1024}), seeds=10), workers=1)
    assert wide.size == 2**28 // (64 * params) == 3
    wider = decide_population(None, plan(tiny_raw(model={"width": 4096})), workers=1)
    assert wider.size == 1 and wider.lines[0].startswith("every run trains alone (a ")


def test_a_worker_takes_the_next_queued_runs_of_its_shape(tmp_path: Path) -> None:
    """gather pops runs while the next queued one shares the first one's key, and never
    more than the size; a run of another shape stays queued for the next population."""
    from harness.study.plan import expand
    from harness.study.populate import gather
    from harness.study.queue import RunQueue
    from harness.study.spec import StudyConfig

    specs = expand(StudyConfig(name="g", base=tiny_raw(), seeds=2, design={
        "kind": "one_at_a_time", "variants": {"p3": {"regularizers": {"dropout": {"p": 0.3}}},
                                              "wide": {"model": {"width": 32}},
                                              "p5": {"regularizers": {"dropout": {"p": 0.5}}}}}))
    queue = RunQueue.open(f"sqlite:///{tmp_path / 'q.db'}", "g")
    queue.distributions(specs)
    queue.enqueue_missing(specs, set())  # in plan order: variant by variant
    variants = []
    while (job := queue.pop()) is not None:
        crew, carried = gather(queue, job, 3)
        assert carried is None  # nobody else pops here
        variants.append([j.spec.variant for j in crew])
    assert variants == [["baseline", "baseline", "p3"], ["p3"], ["wide", "wide"],
                        ["p5", "p5"]]

    # queued with the runs of one shape next to each other, the same runs make full ones
    from harness.study.populate import queue_order

    assert [s.variant for s in queue_order(specs)] == [
        "baseline", "baseline", "p3", "p3", "p5", "p5", "wide", "wide"]


def study_record(results_dir: Path, population: int,
                 monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """Train a tiny dropout study (2 variants x 2 seeds, W&B offline) with populations of
    `population`; what each run left in its folder, its queue trial and its W&B run."""
    from harness.study import worker
    from harness.study.execute import run_study

    sizes: list[int] = []

    def counted(requests: list[RunRequest], **kwargs: Any) -> Any:
        sizes.append(len(requests))
        return train_runs(requests, **kwargs)

    monkeypatch.setattr(worker, "train_runs", counted)
    from wandb_offline import read_offline_run

    from harness.study.queue import RunQueue
    from harness.study.spec import StudyConfig

    raw = tiny_raw(tracking={"wandb": "offline", "project": "harness-test"})
    study = StudyConfig(name="pop", base=raw, seeds=2,
                        design={"kind": "sweep", "parameter": "regularizers.dropout.p",
                                "values": [0.3], "baseline_value": 0.0})
    out = run_study(study, source="test", results_dir=results_dir, workers=1,
                    population=population)
    assert out.finished == out.total == 4 and not out.failed
    assert sizes == [population] * (4 // population)  # in-process worker: every run queued
    queue = RunQueue.open(f"sqlite:///{out.study_dir / 'queue.db'}", "pop")
    record: dict[str, Any] = {}
    for trial in queue.trials():
        attrs = trial.user_attrs
        summary = attrs["summary"]
        wandb_run = read_offline_run(Path(summary["wandb"]["run_dir"]))
        record[attrs["run_id"]] = {
            "state": trial.state.name, "params": trial.params, "attrs": sorted(attrs),
            "summary": without_timing(summary), "rows": [without_timing(r) for r in
                                                          attrs["rows"]],
            "files": sorted(attrs.get("files", {})),
            "wandb": {"id": wandb_run.run_id, "name": wandb_run.name,
                      "group": wandb_run.group, "job_type": wandb_run.job_type,
                      "config": wandb_run.config, "complete": wandb_run.complete,
                      "summary": sorted(wandb_run.summary),
                      "history": [sorted(r) for r in wandb_run.history]}}
    return record


@pytest.mark.slow
def test_a_study_trained_in_populations_records_what_it_records_alone(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Run folders aside (compared above), the queue's results and the W&B runs of a study
    trained in populations are those of the study trained run by run."""
    together = study_record(tmp_path / "together", 4, monkeypatch)
    alone = study_record(tmp_path / "alone", 1, monkeypatch)
    assert together.keys() == alone.keys() and len(together) == 4
    for run_id, want in alone.items():
        got = together[run_id]
        for part in ("state", "params", "attrs", "files", "wandb"):
            got_part, want_part = got[part], want[part]
            if part == "wandb":  # the W&B run's folder (and so its path) holds a timestamp
                got_part = {k: v for k, v in got_part.items() if k != "path"}
                want_part = {k: v for k, v in want_part.items() if k != "path"}
            assert close(got_part, want_part), (run_id, part)
        summary_got = {k: v for k, v in got["summary"].items() if k != "wandb"}
        summary_want = {k: v for k, v in want["summary"].items() if k != "wandb"}
        assert close(summary_got, summary_want), run_id
        assert close(got["rows"], want["rows"]), run_id


def gather_all(url: str, name: str, out: Any) -> None:
    """A worker's pop path: pop a run, gather its population, carry the misfit over."""
    from harness.study.populate import gather, spec_key
    from harness.study.queue import RunQueue

    queue = RunQueue.open(url, name)
    crews, carried = [], None
    while (job := carried or queue.pop()) is not None:
        crew, carried = gather(queue, job, 4)
        crews.append(([j.trial.number for j in crew], {spec_key(j.spec) for j in crew}))
    out.put(crews)


@pytest.mark.slow
def test_workers_gathering_populations_take_each_queued_run_once(tmp_path: Path) -> None:
    """Four processes gather populations from one SQLite queue at once: every pop of a
    population holds the queue's lock (harness/study/queue.py claiming), so every run is
    taken exactly once and no population mixes shapes."""
    import multiprocessing

    from harness.study.plan import expand
    from harness.study.populate import queue_order
    from harness.study.queue import RunQueue
    from harness.study.spec import StudyConfig

    specs = queue_order(expand(StudyConfig(name="race", base=tiny_raw(), seeds=10, design={
        "kind": "sweep", "parameter": "model.width", "values": [8, 12]})))
    url = f"sqlite:///{tmp_path / 'queue.db'}"
    queue = RunQueue.open(url, "race")
    queue.distributions(specs)
    assert queue.enqueue_missing(specs, set()) == len(specs) == 30
    fork = multiprocessing.get_context("fork")
    out = fork.Queue()
    workers = [fork.Process(target=gather_all, args=(url, "race", out)) for _ in range(4)]
    for w in workers:
        w.start()
    crews = [crew for _ in workers for crew in out.get(timeout=120)]
    for w in workers:
        w.join()
    assert all(w.exitcode == 0 for w in workers)
    assert sorted(n for crew, _ in crews for n in crew) == list(range(len(specs)))
    assert all(len(keys) == 1 for _, keys in crews)  # one shape per population
    assert max(len(crew) for crew, _ in crews) > 1  # populations were gathered
    assert not RunQueue.open(url, "race").waiting()
