"""Run a whole study: expand, queue, start local workers, wait, gather results, report.

Re-running a study skips finished runs (their ids are in the store) and queues
only the missing or failed ones, so an interrupted study resumes where it was.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.markup import escape

from harness.console import console, make_progress
from harness.study.lock import storage_lock, study_lock
from harness.study.plan import RunSpec, expand, study_manifest
from harness.study.processes import make_workers, supervise, warm_worker_server
from harness.study.queue import RunQueue, check_sqlite_file, default_storage_url, mask_url
from harness.study.spec import StudyConfig
from harness.study.worker import worker_loop, worker_process
from harness.tracking.store import RunDir, atomic_write_json, remove_stale_temp_files
from harness.train.loop import study_dir
from harness.train.preflight import check_model_sizes


@dataclass
class StudyOutcome:
    study_dir: Path
    total: int
    ran_before: int  # finished before this invocation
    finished: int
    failed: list[str]
    seconds: float
    imported: int = 0  # finished on other machines, rebuilt here from their queue trials


SMALL_MODEL_PARAMS = 2_000_000  # below this a step is too short for a second thread to help


def default_workers() -> int:
    """One worker per 2 cores."""
    return max(1, (os.cpu_count() or 2) // 2)


def choose_workers(specs: list[RunSpec], todo: int) -> tuple[int, str]:
    """Workers for a study when the user named none, and why (printed).

    A small model's step is too short to split across threads (OpenMP start-up and, on a
    shared machine, spinning threads cost more than they save), so small models get one
    single-threaded worker per core; large ones one worker per 2 cores, each with 2 threads."""
    from harness.train.preflight import parameter_count

    cores = os.cpu_count() or 1
    counts = {}
    for s in specs:
        key = repr((s.config.model.model_dump(), s.config.data.name))
        if key not in counts:
            counts[key] = parameter_count(s.config)
    known = [n for n in counts.values() if n is not None]
    if known and max(known) <= SMALL_MODEL_PARAMS and len(known) == len(counts):
        workers = max(1, min(cores, todo))
        return workers, (f"{workers} single-threaded worker(s): small models "
                         f"(<= {max(known):,} parameters) run one per core")
    workers = min(default_workers(), max(todo, 1))
    return workers, f"{workers} worker(s) x {threads_per_worker(workers)} thread(s): " \
        "larger models use the cores inside each step"


def decide_workers(named: int | None, specs: list[RunSpec], todo: int) -> tuple[int, str]:
    """The workers a study runs on (the user's number, else chosen by model size) and why;
    one decision for the run and for its dry-run estimate."""
    if named:
        return named, ""
    return choose_workers(specs, todo)


def threads_per_worker(workers: int) -> int:
    return max(1, (os.cpu_count() or 1) // workers)


def finished_ids(sdir: Path, specs: list[RunSpec]) -> set[str]:
    return {s.run_id for s in specs
            if RunDir.for_run(sdir, s.variant, s.seed, s.run_id).finished}


def run_study(study: StudyConfig, *, source: str, results_dir: Path, workers: int | None = None,
              storage: str | None = None, data_dir: Path | None = None,
              report: bool = True) -> StudyOutcome:
    if study.adaptive and not study.round_planned:  # seeds: {min, max, until: decided}
        from harness.study.adaptive import run_adaptive

        return run_adaptive(study, source=source, results_dir=results_dir, workers=workers,
                            storage=storage, data_dir=data_dir, report=report)
    started = time.perf_counter()
    warm_worker_server(workers or study.workers)
    specs = expand(study, source)
    check_model_sizes([s.config for s in specs], source)
    sdir = study_dir(results_dir, study.name)
    url = storage or study.storage or default_storage_url(sdir)
    done_now = finished_ids(sdir, specs)
    workers, why = decide_workers(workers or study.workers, specs, len(specs) - len(done_now))
    local_queue = storage is None and study.storage is None
    # storage checks before anything is written: a shared queue is opened now, the local
    # queue file is checked to be SQLite (it is created inside the study folder below)
    q = None if local_queue else RunQueue.open(url, study.name)
    check_sqlite_file(url)
    decide_wandb_mode(specs)
    # a shared queue is locked first, so a refused coordinator writes nothing locally
    with storage_lock(q, study.name), study_lock(sdir):
        q = q or RunQueue.open(url, study.name)
        manifest = study_manifest(study, specs)
        atomic_write_json(sdir / "study.json", manifest)
        remove_stale_temp_files(sdir)
        q.save_manifest(manifest)
        q.distributions(specs)
        q.fail_stale(all_running=local_queue)
        done_before = finished_ids(sdir, specs)
        q.enqueue_missing(specs, done_before)
        todo = len(specs) - len(done_before)
        console.print(f"study [bold]{study.name}[/]: {len(specs)} runs "
                      f"({len(done_before)} already finished, {todo} to run) "
                      f"on {workers} worker(s); queue {mask_url(url)}")
        if why:
            console.print(f"  {why} (--workers N to choose)")
        if todo:
            drive_workers(url, study.name, results_dir, data_dir, workers, len(specs),
                          len(done_before), specs, sdir)
        imported = import_remote_results(q, specs, sdir)
    finished = finished_ids(sdir, specs)
    failed = not_finished(sdir, specs, finished)
    outcome = StudyOutcome(sdir, len(specs), len(done_before), len(finished), failed,
                           time.perf_counter() - started, imported)
    if report:
        build_study_report(sdir)
        from harness.tracking.wandb_study import finish_study

        for line in finish_study(sdir):
            console.print(line)
    return outcome


def decide_wandb_mode(specs: list[RunSpec]) -> None:
    """Resolve the W&B mode once for the study: when the server cannot be reached, that is
    found here, once, and every run (and worker process) goes offline without waiting."""
    from harness.tracking.wandb_tracker import choose_mode

    for mode in dict.fromkeys(s.config.tracking.wandb for s in specs):
        choose_mode(mode)


def not_finished(sdir: Path, specs: list[RunSpec], finished: set[str]) -> list[str]:
    """One line per planned run that did not finish, with the reason its worker recorded."""
    from harness.record import StudyRecord

    reasons = {d["run_id"]: d["reason"] for d in StudyRecord.load(sdir).left_out()}
    return [f"{s.variant} seed {s.seed}: {reasons.get(s.run_id) or 'not finished'}"
            for s in specs if s.run_id not in finished]


def drive_workers(url: str, name: str, results_dir: Path, data_dir: Path | None, workers: int,
                  total: int, done: int, specs: list[RunSpec], sdir: Path) -> None:
    """Start the workers and show progress: the study bar plus one bar per worker."""
    threads = threads_per_worker(workers)
    with make_progress() as progress:
        study_task = progress.add_task("study", total=total, completed=done, status="")
        hub = ProgressHub(progress, study_task, sdir, specs)
        if workers == 1:
            worker_loop(url, name, results_dir, data_dir, threads, hub.handle, 0,
                        wait_for_running=True)
        else:
            run_worker_processes(url, name, results_dir, data_dir, workers, threads, hub)
        # remote workers may still hold runs: wait for them (or for their heartbeat to stop)
        worker_loop(url, name, results_dir, data_dir, threads, hub.handle, 0,
                    wait_for_running=True)
        hub.refresh()


def run_worker_processes(url: str, name: str, results_dir: Path, data_dir: Path | None,
                         workers: int, threads: int, hub: ProgressHub) -> None:
    procs, events = make_workers(
        worker_process, lambda i: (url, name, str(results_dir),
                                   str(data_dir) if data_dir else None, threads), workers)
    supervise(procs, events, hub.handle, hub.refresh)


class ProgressHub:
    """Turns worker events into progress bars; counts finished runs from the store."""

    def __init__(self, progress: Any, study_task: Any, sdir: Path, specs: list[RunSpec]) -> None:
        self.progress, self.study_task, self.sdir, self.specs = progress, study_task, sdir, specs
        self.tasks: dict[int, Any] = {}
        self.lock = threading.Lock()

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
        done = len(finished_ids(self.sdir, self.specs))
        self.progress.update(self.study_task, completed=done)


def import_remote_results(q: RunQueue, specs: list[RunSpec], sdir: Path) -> int:
    """Rebuild run folders from completed trials whose worker ran on another machine: config,
    metrics, summary and the files that travel with a trial (env, test predictions). What
    did not travel is listed in the summary's `imported.missing`."""
    from optuna.trial import TrialState

    from harness.study.queue import TRAVELLING_FILES, unpack_file
    from harness.tracking.store import atomic_write_bytes

    wanted = {s.run_id: s for s in specs}
    imported = 0
    for t in q.trials(TrialState.COMPLETE):
        rid = t.user_attrs.get("run_id")
        spec = wanted.get(rid)
        if spec is None or "summary" not in t.user_attrs:
            continue
        run_dir = RunDir.for_run(sdir, spec.variant, spec.seed, rid)
        if run_dir.finished:
            continue
        run_dir.write_config({"run_id": rid, **spec.config.model_dump(mode="json")})
        run_dir.write_metrics(t.user_attrs.get("rows", []))
        files = t.user_attrs.get("files") or {}
        for name, text in files.items():
            if name in TRAVELLING_FILES:
                atomic_write_bytes(run_dir.path / name, unpack_file(text))
        summary = dict(t.user_attrs["summary"])
        summary["imported"] = {"host": t.user_attrs.get("host"), "trial": t.number,
                               "missing": [n for n in TRAVELLING_FILES if n not in files]
                               + ["model.pt"]}
        run_dir.write_summary(summary)
        imported += 1
    return imported


def import_study(url: str, name: str, sdir: Path) -> int:
    """Rebuild results/<study>/ from the queue alone (study.json from the queue's manifest,
    every finished run from its trial), for `harness report STUDY --storage URL` on a
    machine that ran nothing. Returns how many runs were imported."""
    from harness.errors import ConfigError
    from harness.study.queue import queue_study_name, studies_in

    names = studies_in(url)
    if queue_study_name(name) not in names:
        tuning = f"{name}:tune" in names
        raise ConfigError(f"storage {mask_url(url)}: " + (
            f"{name!r} is a tuning search; its confirmation runs are queued on the machine "
            "that ran `harness tune`: build the report there" if tuning else
            f"no study {name!r} (check the name and the URL)"))
    q = RunQueue.open(url, name)
    manifest = q.manifest()
    if not manifest:
        raise ConfigError(f"storage {mask_url(url)}: study {name!r} was queued by an older "
                          "harness without its study definition; build the report where it ran")
    atomic_write_json(sdir / "study.json", manifest)
    return import_remote_results(q, q.planned_specs(), sdir)


def build_study_report(sdir: Path) -> Path | None:
    try:
        from harness.report.build import build_index, build_report
    except ImportError:
        return None
    paths = build_report(sdir)
    build_index(sdir.parent)
    return getattr(paths, "html", None)
