"""The one worker: take work from a study's storage, train it with a heartbeat, record the
outcome, repeat. Work is a tuning study's search trials (until the budget is spent), then
the queued runs of an ablation study or of a search's retrain.

`harness worker --study NAME --storage URL` runs this loop on any machine; a coordinator
starts N of them as processes (harness/study/execute.py).
"""

from __future__ import annotations

import contextlib
import os
import socket
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import optuna

from harness.console import epoch_status, error_line
from harness.errors import ConfigError, HarnessError, one_line
from harness.failures import FULL, describe
from harness.numerics import NUMERICS_VERSION
from harness.record.disk import atomic_write_json
from harness.record.layout import FAILURE
from harness.record.run_dir import RunDir
from harness.record.schema import first_line
from harness.study.lock import run_lock
from harness.study.populate import gather, queue_population
from harness.study.queue import Job, RunQueue, WorkSource, queue_study_name
from harness.study.search import Search, optuna_study_name
from harness.study.storage import mask_url, studies_in
from harness.tracking.protocol import TrackerFactory
from harness.tracking.wandb_tracker import wandb_run_tracker
from harness.train.loop import RunRequest, RunResult, study_dir, train_runs

Emit = Callable[[tuple[Any, ...]], None]


class EventReporter:
    """Sends a run's progress as small tuples (to a console bar or across processes)."""

    def __init__(self, emit: Emit, worker: int) -> None:
        self.emit, self.worker = emit, worker

    def start(self, name: str, epochs: int, first_epoch: int) -> None:
        self.emit(("start", self.worker, name, epochs, first_epoch))

    def epoch(self, row: dict[str, Any]) -> None:
        self.emit(("epoch", self.worker, row["epoch"], epoch_status(row)))

    def end(self, summary: dict[str, Any]) -> None:
        self.emit(("end", self.worker, summary.get("status"), summary.get("error") or "",
                   f"{summary.get('variant', '?')} seed {summary.get('seed', '?')}"))


def note_failure(run_dir: RunDir, job: Job, reason: str, status: str = "failed") -> None:
    """Keep why a run did not finish beside its results, where the study record reads it
    (the queue keeps it too, but the run folder is the source of truth)."""
    atomic_write_json(run_dir.path / FAILURE, {
        "run_id": job.spec.run_id, "variant": job.spec.variant, "seed": job.spec.seed,
        "status": status, "reason": reason, "worker_host": socket.gethostname(),
        "at": time.strftime("%Y-%m-%dT%H:%M:%S%z")})


def failure_reason(err: BaseException) -> str:
    """One line: what went wrong, as the user would want to read it."""
    if isinstance(err, HarnessError):
        return str(err)
    return first_line(traceback.format_exception_only(type(err), err)[-1]) or type(err).__name__


def job_trackers(jobs: list[Job], source: WorkSource, results_dir: Path) -> TrackerFactory:
    """A tracker factory for popped work: W&B gets what the job carries (swept values,
    study description, job type) plus the Optuna trial it came from, never study.json."""
    by_run = {j.spec.run_id: j for j in jobs}

    def factory(config: Any) -> Any:
        job = by_run.get(config.run_id())
        if job is None:
            return wandb_run_tracker(config, results_dir)
        context = {**job.spec.wandb_context(), **job.wandb}
        context["config"] = {"optuna_study": source.study.study_name,
                             "optuna_trial": job.trial.number}
        return wandb_run_tracker(config, results_dir, context,
                                 on_open=lambda info: source.link_wandb(job, info))

    return factory


class ProgressLines:
    """A worker's progress as readable console lines (a remote worker has no bars):
    `dropout.p=0.3 seed 0: epoch 2/5 loss 1.234 val acc 0.456`."""

    def __init__(self, write: Callable[[str], None]) -> None:
        self.write = write
        self.runs: dict[int, tuple[str, int]] = {}

    def __call__(self, event: tuple[Any, ...]) -> None:
        kind, worker = event[0], event[1]
        if kind == "start":
            _, _, name, epochs, first = event
            self.runs[worker] = (name, epochs)
            resumed = f", resuming at epoch {first}" if first > 1 else ""
            self.write(f"{name}: training {epochs} epochs{resumed}")
            return
        name, epochs = self.runs.get(worker, ("run", 0))
        if kind == "epoch":
            self.write(f"{name}: epoch {event[2]}/{epochs} {event[3]}")
        elif kind == "end":  # ("end", worker, status[, error, name])
            error = f" ({event[3]})" if len(event) > 3 and event[3] else ""
            self.write(f"{event[4] if len(event) > 4 else name}: {event[2]}{error}")


def wait_for_study(url: str, name: str, wait_s: float = 0.0, poll_s: float = 2.0) -> str:
    """`tune` or `runs`: which kind of study NAME the storage holds, waiting up to wait_s
    seconds for a coordinator to create it (and, for a run queue, to queue its runs).

    Raises ConfigError (one line, exit 2) when it is not there; nothing is created."""
    deadline = time.monotonic() + wait_s
    while True:
        names = studies_in(url)
        if optuna_study_name(name) in names:
            return "tune"
        if queue_study_name(name) in names:
            queue = RunQueue.open(url, name)
            if queue.trials() or time.monotonic() >= deadline:
                return "runs"
        elif time.monotonic() >= deadline:
            known = sorted({n.rsplit(":", 1)[0] for n in names})
            raise ConfigError(
                f"storage {mask_url(url)}: no study {name!r} "
                f"({'it holds: ' + ', '.join(known) if known else 'it holds no study'}); "
                "check --study, or start the coordinator first (--wait SECONDS waits for it)")
        time.sleep(max(0.0, min(poll_s, deadline - time.monotonic())))


def run_job(job: Job, queue: WorkSource, results_dir: Path, data_dir: Path | None,
            threads: int | None, reporter: Any) -> str:
    """Train one popped run (see run_jobs); its status."""
    return run_jobs([job], queue, results_dir, data_dir, threads, reporter)[0]


def run_jobs(jobs: list[Job], queue: WorkSource, results_dir: Path, data_dir: Path | None,
             threads: int | None, reporter: Any, keep_alive: tuple[Job, ...] = ()) -> list[str]:
    """Train popped runs, several of one shape as one population (harness/train/loop.py),
    each recorded in the queue exactly as if it had trained alone. `keep_alive`: popped
    work that waits its turn (its heartbeat goes on meanwhile). The status of each job."""
    for job in jobs:
        if threads and job.spec.config.train.threads is None:  # the study's own choice wins
            job.spec.config.train.threads = threads
    root = Path(results_dir) / jobs[0].results_subdir
    dirs = [run_dir_of(job, root) for job in jobs]
    statuses = ["failed" if refused(job, queue, reporter) else "duplicate" for job in jobs]
    with contextlib.ExitStack() as held_open:
        for job in (*jobs, *keep_alive):
            held_open.enter_context(queue.heartbeat(job))
        mine = []
        for i, job in enumerate(jobs):
            if statuses[i] == "failed":
                continue
            if held_open.enter_context(run_lock(dirs[i].path, job.wait_if_busy)):
                mine.append(i)
            else:  # a duplicate of a run another local worker is training
                queue.fail(job, "duplicate: the run is being trained by another worker",
                           "duplicate")
        if not mine:
            return statuses
        trackers = job_trackers([jobs[i] for i in mine], queue, root)
        requests = [RunRequest(jobs[i].spec.config, trackers(jobs[i].spec.config),
                               list(jobs[i].on_epoch)) for i in mine]
        try:
            results = train_runs(requests, results_dir=root, data_dir=data_dir,
                                 reporter=reporter)
        except optuna.TrialPruned:  # a decided outcome: the run stored its summary
            results = [RunResult(dirs[i], dirs[i].summary or {}, dirs[i].metrics())
                       for i in mine]
            for result in results:
                reporter.end(result.summary)
        except KeyboardInterrupt:
            for i in mine:
                queue.fail(jobs[i], "interrupted", "interrupted")
            raise
        except Exception as err:
            for i in mine:
                statuses[i] = record_failure(err, jobs[i], queue, dirs[i], reporter)
            return statuses
    for i, result in zip(mine, results, strict=True):
        (dirs[i].path / FAILURE).unlink(missing_ok=True)
        queue.complete(jobs[i], result)
        statuses[i] = str(result.summary.get("status"))
    return statuses


def refused(job: Job, queue: WorkSource, reporter: Any) -> bool:
    """A run queued by a harness of other numerics or identity (its config hashes to
    another id here) is failed, not trained: its results would not be that run's."""
    cfg = job.spec.config
    if cfg.run_id() == job.spec.run_id:
        return False
    reason = (f"run {job.spec.run_id} was queued by another harness version (this one "
              f"hashes its config to {cfg.run_id()}, numerics version {NUMERICS_VERSION}); "
              "run the workers with the coordinator's harness version")
    queue.fail(job, reason, "final")
    reporter.end({"status": "failed", "error": reason, "variant": job.spec.variant,
                  "seed": job.spec.seed})
    return True


def record_failure(err: Exception, job: Job, queue: WorkSource, run_dir: RunDir,
                   reporter: Any) -> str:
    """A run that raised: its queue entry and its run folder say why (a full disk is not
    the run's fault: no attempt used, and the worker stops)."""
    if isinstance(err, OSError) and err.errno in FULL:
        queue.fail(job, f"disk full: {err}", "environment")
        raise err
    reason = failure_reason(err)
    if isinstance(err, HarnessError):
        queue.fail(job, reason, "final")
    else:
        queue.fail(job, "".join(traceback.format_exception(err)))
    note_failure(run_dir, job, reason)
    reporter.end({"status": "failed", "error": reason, "variant": job.spec.variant,
                  "seed": job.spec.seed})
    return "failed"


KINDS = ("tune", "runs")  # a tuning study's search first, then queued runs


def open_sources(url: str, study: str, kinds: tuple[str, ...], *, worker: int | None,
                 parallel: bool, timeout: float | None,
                 data_dir: Path | None) -> list[WorkSource]:
    """The work study STUDY's storage holds, of the kinds asked for, in KINDS order."""
    names = studies_in(url)
    sources: list[WorkSource] = []
    if "tune" in kinds and optuna_study_name(study) in names:
        sources.append(Search(url, study, worker=worker, parallel=parallel, timeout=timeout,
                              data_dir=data_dir))
    if "runs" in kinds and queue_study_name(study) in names:
        sources.append(RunQueue.open(url, study))
    return sources


def worker_loop(url: str, study: str, results_dir: Path, data_dir: Path | None = None,
                threads: int | None = None, emit: Emit | None = None, worker: int | None = None,
                *, wait_for_running: bool = False, kinds: tuple[str, ...] = KINDS,
                parallel: bool = True, timeout: float | None = None,
                population: int | None = None) -> int:
    """Take work until none is left (a search: until its budget is spent; `timeout` seconds
    at most). Returns how many runs this worker trained. `wait_for_running` waits for work
    other workers hold (a dead worker's comes back when its heartbeat stops); `parallel`:
    other workers share the search (TPE's constant liar); `population`: queued runs trained
    together at most (None: the size the coordinator wrote into the queue)."""
    reporter = EventReporter(emit or (lambda event: None), worker or 0)
    return sum(drain(source, Path(results_dir), data_dir, threads, reporter, wait_for_running,
                     population)
               for source in open_sources(url, study, kinds, worker=worker, parallel=parallel,
                                          timeout=timeout, data_dir=data_dir))


def drain(source: WorkSource, results_dir: Path, data_dir: Path | None, threads: int | None,
          reporter: EventReporter, wait_for_running: bool,
          population: int | None = None) -> int:
    """Take one source's work until none is waiting. A queued run whose upstream run is not
    trained yet goes back to the end of the queue; queued runs of one shape train together,
    `population` at most (harness/study/populate.py)."""
    size = 1
    if isinstance(source, RunQueue):
        size = population or queue_population(source)
    ran = deferred = 0
    carried: Job | None = None
    while True:
        if carried is None:
            source.recover()
            job = source.pop()
        else:
            job, carried = carried, None
        if job is None:
            if wait_for_running and source.running():
                time.sleep(2)
                continue
            return ran
        blocked = upstream_blocker(job, source, results_dir) \
            if isinstance(source, RunQueue) else None
        if blocked == WAIT:  # its upstream run is queued or training: take another run
            assert isinstance(source, RunQueue)
            source.defer(job)
            deferred += 1
            if deferred >= source.waiting():  # every waiting run waits: let upstream train
                time.sleep(2)
                deferred = 0
            continue
        deferred = 0
        if blocked:
            source.fail(job, blocked, "final")
            note_failure(run_dir_of(job, results_dir), job, blocked)
            reporter.end({"status": "failed", "error": blocked, "variant": job.spec.variant,
                          "seed": job.spec.seed})
            continue
        crew = [job]
        if isinstance(source, RunQueue):
            crew, carried = gather(source, job, size)
        run_jobs(crew, source, results_dir, data_dir, threads, reporter,
                 keep_alive=() if carried is None else (carried,))
        ran += len(crew)


WAIT = "wait"


def run_dir_of(job: Job, results_dir: Path) -> RunDir:
    return RunDir.for_run(study_dir(results_dir, job.spec.config.study), job.spec.variant,
                          job.spec.seed, job.spec.run_id)


def upstream_blocker(job: Job, queue: RunQueue, results_dir: Path) -> str | None:
    """None when every upstream run of the job has finished here (its model.pt is in this
    results folder); WAIT while one is queued or training; else why the job cannot run."""
    sdir = study_dir(results_dir, job.spec.config.study)
    for rid in job.spec.depends_on:
        if any(RunDir(p).finished for p in sdir.glob(f"runs/*-{rid}")):
            continue
        state = queue.upstream_state(rid)
        if state in ("queued", "running"):
            return WAIT
        if state == "finished":
            return (f"upstream run {rid} finished on another machine; its model.pt is not in "
                    f"{results_dir} (upstream runs need a results folder all workers share)")
        return f"upstream run {rid} did not finish ({state}); see its run folder or the queue"
    return None


def worker_process(options: dict[str, Any], emit: Emit, worker: int) -> None:
    """Entry point of a local worker process (forked by harness/study/worker_server.py,
    its options read from JSON): `worker_loop(**options)`. An error that stops the worker is
    printed as one line and the process exits 1 (the coordinator goes on)."""
    os.environ.setdefault("WANDB_SILENT", "true")
    options = {**options, "results_dir": Path(options["results_dir"]),
               "data_dir": Path(options["data_dir"]) if options.get("data_dir") else None,
               "kinds": tuple(options.get("kinds", KINDS))}
    try:
        worker_loop(**options, worker=worker, emit=emit)
    except KeyboardInterrupt:
        pass
    except Exception as err:
        error_line(f"worker {worker}: {one_line(describe(err))}")
        sys.exit(1)
