"""Run a whole study: expand, queue, start local workers, wait, gather results.

`drive_workers` is the one supervisor for ablation runs and tuning trials alike: N worker
processes (or this one), one progress display, Ctrl-C and dead workers handled. Re-running
a study skips finished runs (their ids are in the store) and queues only the missing or
failed ones, so an interrupted study resumes where it was. The CLI builds the report.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from optuna.trial import TrialState
from rich.markup import escape

from harness.console import console, make_progress
from harness.data.presence import check_data_present
from harness.errors import ConfigError
from harness.record import StudyRecord
from harness.record.disk import atomic_write_json, remove_stale_temp_files
from harness.record.layout import MODEL, STUDY_JSON
from harness.record.run_dir import RunDir
from harness.study.lock import storage_lock, study_lock
from harness.study.plan import RunSpec, expand, study_manifest
from harness.study.populate import queue_order, save_population, spec_key
from harness.study.processes import supervise, warm_worker_server, worker_server
from harness.study.queue import RunQueue, queue_study_name
from harness.study.search import optuna_study_name
from harness.study.spec import StudyConfig
from harness.study.storage import check_sqlite_file, default_storage_url, mask_url, studies_in
from harness.study.trial_files import ARTIFACT_DIR, TRAVELLING_FILES, fetch_files
from harness.study.worker import worker_loop
from harness.train.grouping import describe_alone, population_limit
from harness.train.loop import study_dir
from harness.train.preflight import check_model_sizes, parameter_count


@dataclass
class StudyOutcome:
    study_dir: Path
    total: int
    ran_before: int  # finished before this invocation
    finished: int
    failed: list[str]
    seconds: float
    imported: int = 0  # finished on other machines, rebuilt here from their queue trials
    workers: int = 0  # local worker processes it ran on


SMALL_MODEL_PARAMS = 2_000_000  # below this a step is too short for a second thread to help


def default_workers() -> int:
    """One worker per 2 cores."""
    return max(1, (os.cpu_count() or 2) // 2)


def choose_workers(specs: list[RunSpec], todo: int,
                   data_dir: Path | None = None) -> tuple[int, str]:
    """Workers for a study when the user named none, and why (printed).

    A small model's step is too short to split across threads (OpenMP start-up and, on a
    shared machine, spinning threads cost more than they save), so small models get one
    single-threaded worker per core; large ones one worker per 2 cores, each with 2 threads."""
    cores = os.cpu_count() or 1
    counts = {}
    for s in specs:
        key = repr((s.config.model.model_dump(), s.config.data.name))
        if key not in counts:
            counts[key] = parameter_count(s.config, data_dir)
    known = [n for n in counts.values() if n is not None]
    if known and max(known) <= SMALL_MODEL_PARAMS and len(known) == len(counts):
        workers = max(1, min(cores, todo))
        return workers, (f"{workers} single-threaded worker(s): small models "
                         f"(<= {max(known):,} parameters) run one per core")
    workers = min(default_workers(), max(todo, 1))
    return workers, f"{workers} worker(s) x {threads_per_worker(workers)} thread(s): " \
        "larger models use the cores inside each step"


def decide_workers(named: int | None, specs: list[RunSpec], todo: int,
                   data_dir: Path | None = None) -> tuple[int, str]:
    """The workers a study runs on (the user's number, else chosen by model size) and why;
    one decision for the run and for its dry-run estimate."""
    if named:
        return named, ""
    return choose_workers(specs, todo, data_dir)


def decide_population(named: int | None, specs: list[RunSpec], workers: int) -> PopulationPlan:
    """How many queued runs of one shape a worker trains together (the user's number, else
    chosen from the model size, the device and the runs per worker), the workers worth
    starting for the populations that makes, and the lines that say why (printed with the
    worker choice)."""
    groups: dict[str, list[RunSpec]] = {}
    for s in specs:
        key = spec_key(s)
        if key is not None:
            groups.setdefault(key, []).append(s)
    alone = describe_alone([s.config for s in specs if spec_key(s) is None])
    lines = [f"trains alone: {why} ({n} run{'s' if n != 1 else ''})"
             for why, n in alone.items()]
    if named is not None:
        size, why = named, (f"populations of up to {named} runs (--population)" if named > 1
                            else "every run trains alone (--population 1)")
    elif not groups:
        return PopulationPlan(1, workers, lines)
    else:
        largest = max(groups.values(), key=len)
        config = largest[0].config
        params = parameter_count(config)
        device = device_kind(config.train.device)
        limit = population_limit(config, params, device)
        size = max(1, min(limit, -(-len(largest) // workers)))
        model = (f"a {params or 0:,}-parameter model at batch {config.train.batch_size}: "
                 f"up to {limit} per step on {device}")
        why = (f"populations of up to {size} runs trained as one model ({len(largest)} runs "
               f"of one shape on {workers} worker(s); {model})" if size > 1 else
               f"every run trains alone ({model})")
    crews = sum(-(-len(g) // size) for g in groups.values()) + sum(alone.values())
    return PopulationPlan(size, max(1, min(workers, crews)),
                      [f"{why} (--population K to choose)", *lines])


@dataclass
class PopulationPlan:
    size: int  # queued runs a worker trains together at most
    workers: int  # workers worth starting (no more than there are populations to train)
    lines: list[str]


def device_kind(device: str) -> str:
    """cpu or cuda: where `train.device` trains on this machine."""
    if device == "auto":
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"
    return "cuda" if device.startswith("cuda") else "cpu"


def threads_per_worker(workers: int) -> int:
    return max(1, (os.cpu_count() or 1) // workers)


def finished_ids(sdir: Path, specs: list[RunSpec]) -> set[str]:
    return {s.run_id for s in specs
            if RunDir.for_run(sdir, s.variant, s.seed, s.run_id).finished}


def run_study(study: StudyConfig, *, source: str, results_dir: Path, workers: int | None = None,
              storage: str | None = None, data_dir: Path | None = None,
              on_free_core: Callable[[], None] | None = None,
              population: int | None = None,
              say: Callable[[str], None] | None = None) -> StudyOutcome:
    """`on_free_core` is called once, when worker processes train fewer runs than there are
    workers (a core is free): the CLI imports the report's modules then (harness.prefetch).
    `population`: queued runs of one shape trained together at most (None: chosen here).
    `say` gets a line per claim after each confirmation look."""
    if study.confirmation and not study.round_planned:  # screen, then confirm each claim
        # imported here: its sequential tests import scipy.stats, which no other study needs
        from harness.study.rounds import run_confirmed

        rounds = run_confirmed(study, lambda planned: run_study(
            planned, source=source, results_dir=results_dir, workers=workers, storage=storage,
            data_dir=data_dir, on_free_core=on_free_core, population=population), say=say)
        last = rounds[-1]
        return StudyOutcome(last.study_dir, last.total, rounds[0].ran_before, last.finished,
                            last.failed, sum(o.seconds for o in rounds),
                            sum(o.imported for o in rounds), last.workers)
    started = time.perf_counter()
    warm_worker_server(workers or study.workers)
    specs = expand(study, source)
    check_data_present([s.config for s in specs], data_dir)
    check_model_sizes([s.config for s in specs], source, data_dir)
    sdir = study_dir(results_dir, study.name)
    url = storage or study.storage or default_storage_url(sdir)
    local_queue = url == default_storage_url(sdir)
    done_now = finished_ids(sdir, specs)
    named = workers or study.workers
    workers, why = decide_workers(named, specs, len(specs) - len(done_now), data_dir)
    crews = decide_population(population, [s for s in specs if s.run_id not in done_now],
                              workers)
    workers = workers if named else crews.workers
    # storage checks before anything is written: a shared queue is opened now, the local
    # queue file is checked to be SQLite (it is created inside the study folder below)
    q = None if local_queue else RunQueue.open(url, study.name)
    check_sqlite_file(url)
    decide_wandb_mode(specs)
    # a shared queue is locked first, so a refused coordinator writes nothing locally
    with storage_lock(q, study.name), study_lock(sdir):
        q = q or RunQueue.open(url, study.name)
        manifest = study_manifest(study, specs)
        atomic_write_json(sdir / STUDY_JSON, manifest)
        remove_stale_temp_files(sdir)
        q.save_manifest(manifest)
        save_population(q, crews.size)
        q.distributions(specs)
        q.fail_stale(all_running=local_queue)
        done_before = finished_ids(sdir, specs)
        q.enqueue_missing(queue_order(specs) if crews.size > 1 else specs, done_before)
        todo = len(specs) - len(done_before)
        console.print(f"study [bold]{study.name}[/]: {len(specs)} runs "
                      f"({len(done_before)} already finished, {todo} to run) "
                      f"on {workers} worker(s); queue {mask_url(url)}")
        if why:
            console.print(f"  {why} (--workers N to choose)")
        for line in crews.lines if todo else []:
            console.print(f"  {line}", soft_wrap=True, highlight=False)
        if todo:
            drive_workers(url, study.name, results_dir=results_dir, data_dir=data_dir,
                          workers=workers, kinds=("runs",), total=len(specs),
                          count=lambda: (len(finished_ids(sdir, specs)), ""),
                          on_free_core=on_free_core, population=crews.size)
        imported = import_remote_results(q, specs, sdir)
    finished = finished_ids(sdir, specs)
    failed = not_finished(sdir, specs, finished)
    return StudyOutcome(sdir, len(specs), len(done_before), len(finished), failed,
                        time.perf_counter() - started, imported, workers)


def decide_wandb_mode(specs: list[RunSpec]) -> None:
    """Resolve the W&B mode once for the study: when the server cannot be reached, that is
    found here, once, and every run (and worker process) goes offline without waiting."""
    from harness.tracking.wandb_client import choose_mode

    for mode in dict.fromkeys(s.config.tracking.wandb for s in specs):
        choose_mode(mode)


def not_finished(sdir: Path, specs: list[RunSpec], finished: set[str]) -> list[str]:
    """One line per planned run that did not finish, with the reason its worker recorded."""
    reasons = {d["run_id"]: d["reason"] for d in StudyRecord.load(sdir).left_out()}
    return [f"{s.variant} seed {s.seed}: {reasons.get(s.run_id) or 'not finished'}"
            for s in specs if s.run_id not in finished]


def drive_workers(url: str, name: str, *, results_dir: Path, data_dir: Path | None,
                  workers: int, kinds: tuple[str, ...], total: int | None,
                  count: Callable[[], tuple[int, str]],
                  timeout: float | None = None,
                  on_free_core: Callable[[], None] | None = None,
                  population: int | None = None) -> None:
    """The one supervisor: `workers` worker processes (or this process for one) take the
    study's work of `kinds`, with one progress display (the study bar from `count`: done
    and a status, plus one bar per worker). After worker processes, this process finishes
    what remote or dead workers left, within `timeout` seconds of the start (one worker in
    this process has already waited for them)."""
    started = time.monotonic()
    options: dict[str, Any] = {"url": url, "study": name, "results_dir": results_dir,
                               "data_dir": data_dir, "threads": threads_per_worker(workers),
                               "kinds": kinds, "parallel": workers > 1,
                               "population": population}
    if on_free_core is not None and workers > 1 and total:  # worker processes only
        count = FreeCore(count, total, workers, on_free_core)
    with make_progress() as progress:
        hub = ProgressHub(progress, "trials" if "tune" in kinds else "study", total, count)
        if workers == 1:
            worker_loop(**options, emit=hub.handle, worker=0, wait_for_running=True,
                        timeout=timeout)
        else:
            batch = worker_server().start("harness.study.worker:worker_process",
                                          [{**options, "timeout": timeout}] * workers)
            supervise(batch, hub.handle, hub.refresh)
            # remote or dead workers may still hold work: finish it here (one worker in this
            # process has just done that: it waited for running work)
            left = None if timeout is None else timeout - (time.monotonic() - started)
            if left is None or left > 0:
                worker_loop(**options, emit=hub.handle, worker=workers, wait_for_running=True,
                            timeout=left)
        hub.refresh()


class FreeCore:
    """A study's count of finished runs that calls `callback` once, the first time fewer runs
    are left than there are workers: from then on a worker has nothing to take, and its core
    is free for this process's own work (the report's imports)."""

    def __init__(self, count: Callable[[], tuple[int, str]], total: int, workers: int,
                 callback: Callable[[], None]) -> None:
        self.count, self.total, self.workers, self.callback = count, total, workers, callback
        self.called = False

    def __call__(self) -> tuple[int, str]:
        done, status = self.count()
        if not self.called and self.total - done < self.workers:
            self.called = True
            self.callback()
        return done, status


class ProgressHub:
    """Turns worker events into progress bars: the study bar (runs finished, or search
    trials finished with the best so far) and one epoch bar per worker."""

    def __init__(self, progress: Any, label: str, total: int | None,
                 count: Callable[[], tuple[int, str]]) -> None:
        self.progress, self.count = progress, count
        self.study_task = progress.add_task(label, total=total, completed=0, status="")
        self.tasks: dict[int, Any] = {}
        self.lock = threading.Lock()
        self.refresh()

    def handle(self, event: tuple[Any, ...]) -> None:
        kind, worker = event[0], event[1]
        with self.lock:
            if kind == "start":
                _, _, run_name, epochs, first = event
                if worker in self.tasks:
                    self.progress.remove_task(self.tasks[worker])
                self.tasks[worker] = self.progress.add_task(
                    f"  w{worker} {run_name}", total=epochs, completed=first - 1, status="")
            elif kind == "epoch" and worker in self.tasks:
                self.progress.update(self.tasks[worker], completed=event[2], status=event[3])
            elif kind == "end":
                status, reason, name = (*event[2:], "", "")[:3]
                if status == "failed":
                    self.progress.console.print(f"[red]failed[/] {escape(name)}: {escape(reason)}",
                                                soft_wrap=True, highlight=False)
                self.refresh()

    def refresh(self) -> None:
        done, status = self.count()
        self.progress.update(self.study_task, completed=done, status=status)


def import_remote_results(q: RunQueue, specs: list[RunSpec], sdir: Path) -> int:
    """Rebuild run folders from completed trials whose worker ran on another machine: config,
    metrics, summary and the files that travel with a trial (env, test predictions). What
    did not travel is listed in the summary's `imported.missing`."""
    wanted = {s.run_id: s for s in specs}
    imported = 0
    for t in q.trials(TrialState.COMPLETE):
        rid = t.user_attrs.get("run_id", "")
        spec = wanted.get(rid)
        if spec is None or "summary" not in t.user_attrs:
            continue
        run_dir = RunDir.for_run(sdir, spec.variant, spec.seed, rid)
        if run_dir.finished:
            continue
        run_dir.write_config({"run_id": rid, "numerics": t.user_attrs.get("numerics", 1),
                              **spec.config.model_dump(mode="json")})
        run_dir.write_metrics(t.user_attrs.get("rows", []))
        files = fetch_files(t, run_dir.path, [sdir / ARTIFACT_DIR])
        summary = dict(t.user_attrs["summary"])
        summary["imported"] = {"host": t.user_attrs.get("host"), "trial": t.number,
                               "missing": [n for n in TRAVELLING_FILES if n not in files]
                               + [MODEL]}
        run_dir.write_summary(summary)
        imported += 1
    return imported


def import_study(url: str, name: str, sdir: Path) -> int:
    """Rebuild results/<study>/ from the queue alone (study.json from the queue's manifest,
    every finished run from its trial), for `harness report STUDY --storage URL` on a
    machine that ran nothing. Returns how many runs were imported."""
    names = studies_in(url)
    if queue_study_name(name) not in names:
        tuning = optuna_study_name(name) in names
        raise ConfigError(f"storage {mask_url(url)}: " + (
            f"{name!r} is a tuning search whose retrain has not been queued yet: let "
            "`harness tune` finish first" if tuning else
            f"no study {name!r} (check the name and the URL)"))
    q = RunQueue.open(url, name)
    manifest = q.manifest()
    if not manifest:
        raise ConfigError(f"storage {mask_url(url)}: study {name!r} holds no study definition; "
                          "build the report where it ran")
    atomic_write_json(sdir / STUDY_JSON, manifest)
    return import_remote_results(q, q.planned_specs(), sdir)
