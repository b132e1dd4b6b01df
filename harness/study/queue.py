"""The run queue: an Optuna study whose enqueued trials are runs.

Optuna gives us, for free, a queue that works from one process to many
machines: a SQLite file locally, a PostgreSQL URL across machines. Popping a
waiting trial is atomic (two workers never get the same run), and heartbeats
let a dead worker's run be failed and queued again elsewhere.

Why about 450 lines: the RunQueue's operations (enqueue, pop, defer, fail, complete,
recover, upstream states) share one Optuna study and its trial attributes; how a storage
is opened and checked lives in storage.py.
"""

from __future__ import annotations

import math
import os
import socket
import threading
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
    distribution_to_json,
    json_to_distribution,
)
from optuna.storages import RDBStorage
from optuna.trial import TrialState

from harness.errors import ConfigError
from harness.numerics import NUMERICS_VERSION
from harness.record.layout import POP_LOCK_SUFFIX
from harness.record.params import param_label
from harness.study.lock import file_lock
from harness.study.plan import RunSpec
from harness.study.storage import heartbeat_interval, mask_url, open_storage, sqlite_path
from harness.study.trial_files import ARTIFACT_DIR, ARTIFACTS_ATTR, upload_files

# The queue uses heartbeats with ask/tell (we run our own beat thread) and fail_stale_trials,
# both marked experimental by Optuna; their notices are noise for users.
warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
warnings.filterwarnings("ignore", message="Heartbeat of storage is supposed to be used")

MAX_ATTEMPTS = 3  # a run that fails this many times is left failed (the report lists it)
DISTRIBUTIONS_ATTR = "param_distributions"  # queue study attr: Optuna param -> distribution
MANIFEST_ATTR = "manifest"  # queue study attr: study.json, for a report built from the queue


def optuna_params(spec: RunSpec) -> dict[str, Any]:
    """The run's swept values as Optuna params (flat labels), so optuna-dashboard's history,
    slice and importance views work for an ablation; designs that sweep nothing: `variant`."""
    if not spec.params:
        return {"variant": spec.variant}
    return {param_label(k).wandb: v for k, v in spec.params.items() if v is not None}


def param_distributions(specs: list[RunSpec]) -> dict[str, BaseDistribution]:
    """One distribution per axis over the study's values: int/float ranges for numbers,
    categorical otherwise."""
    values: dict[str, list[Any]] = {}
    for spec in specs:
        for name, value in optuna_params(spec).items():
            values.setdefault(name, []).append(value)
    out: dict[str, BaseDistribution] = {}
    for name, vs in values.items():
        numbers = [v for v in vs if isinstance(v, (int, float)) and not isinstance(v, bool)]
        low, high = (min(numbers), max(numbers)) if numbers else (0, 0)
        if len(numbers) < len(vs) or low == high:
            out[name] = CategoricalDistribution(list(dict.fromkeys(vs)))
        elif all(isinstance(v, int) for v in numbers):
            out[name] = IntDistribution(int(low), int(high))
        else:
            out[name] = FloatDistribution(float(low), float(high))
    return out


def suggest_fixed(trial: optuna.trial.Trial, params: dict[str, Any],
                  dists: dict[str, BaseDistribution]) -> None:
    """Record the enqueued (fixed) params on the trial with their distributions."""
    for name in params:
        dist = dists.get(name)
        if isinstance(dist, FloatDistribution):
            trial.suggest_float(name, dist.low, dist.high, log=dist.log)
        elif isinstance(dist, IntDistribution):
            trial.suggest_int(name, dist.low, dist.high)
        elif isinstance(dist, CategoricalDistribution):
            trial.suggest_categorical(name, dist.choices)


def epoch_reporter(trial: optuna.trial.Trial) -> Callable[[int, dict[str, Any]], None]:
    """Each epoch's validation accuracy as the trial's intermediate value (the trial's value
    is the best of them), so optuna-dashboard draws an ablation's learning curves."""

    def report(epoch: int, row: dict[str, Any]) -> None:
        value = row.get("val_acc")
        if isinstance(value, (int, float)) and math.isfinite(value):
            with _ignore_finished():
                trial.report(float(value), epoch)

    return report


def queue_study_name(name: str) -> str:
    return f"{name}:runs"


def worker_identity() -> dict[str, Any]:
    """Who is training a run: host, pid and the batch job (Slurm array task or submitit
    local job), so `harness status` can say where each run is."""
    env = os.environ
    job: str | None
    if env.get("SLURM_ARRAY_JOB_ID") and env.get("SLURM_ARRAY_TASK_ID"):
        job = f"{env['SLURM_ARRAY_JOB_ID']}_{env['SLURM_ARRAY_TASK_ID']}"
    else:
        job = env.get("SLURM_JOB_ID") or env.get("SUBMITIT_LOCAL_JOB_ID")
    return {"host": socket.gethostname(), "pid": os.getpid(), "job_id": job}


@dataclass
class RunState:
    """Where one run stands in the queue (what `harness status` shows)."""

    run_id: str
    variant: str
    seed: int
    state: str  # finished | running | queued | failed | not queued
    attempts: int  # trials that failed with an error (kills do not count)
    status: str | None = None  # the finished run's status (completed, diverged, ...)
    host: str | None = None
    pid: int | None = None
    job_id: str | None = None
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


def run_state(run_id: str, variant: str, seed: int,
              trials: list[optuna.trial.FrozenTrial]) -> RunState:
    """One run's state from its trials, newest first: finished > running > queued > failed."""
    trials = sorted(trials, key=lambda t: t.number, reverse=True)
    attempts = sum(t.state == TrialState.FAIL and t.user_attrs.get("failure") == "error"
                   for t in trials)
    pick = {"finished": [t for t in trials if t.state == TrialState.COMPLETE
                         and t.user_attrs.get("status") != "failed"],
            "running": [t for t in trials if t.state == TrialState.RUNNING],
            "queued": [t for t in trials if t.state == TrialState.WAITING],
            "failed": [t for t in trials if t.state in (TrialState.FAIL, TrialState.COMPLETE)]}
    for state, found in pick.items():
        if found:
            t = found[0]
            who = t.user_attrs.get("worker") or {}
            error = t.user_attrs.get("error")
            return RunState(run_id, variant, seed, state, attempts, t.user_attrs.get("status"),
                            who.get("host"), who.get("pid"), who.get("job_id"),
                            str(error).strip().splitlines()[-1][:200] if error else None)
    return RunState(run_id, variant, seed, "not queued", attempts)


@dataclass
class Job:
    """One piece of work a worker takes: a run to train, popped as an Optuna trial of its
    source (a queued ablation run, or a search trial whose params were just sampled)."""

    trial: optuna.trial.Trial
    spec: RunSpec
    on_epoch: list[Callable[[int, dict[str, Any]], None]] = field(default_factory=list)
    wandb: dict[str, Any] = field(default_factory=dict)  # W&B context beyond the spec's
    results_subdir: str = ""  # where the run folder goes, below the results folder
    wait_if_busy: bool = False  # the run folder is locked: wait (and reuse) vs a duplicate
    epochs_trained: int = 0


class WorkSource:
    """An Optuna study whose trials are work: popped atomically, kept alive by a heartbeat,
    recovered when their worker dies. Subclasses say how work is popped and recorded."""

    storage: RDBStorage
    study: optuna.Study

    def trials(self, *states: TrialState) -> list[optuna.trial.FrozenTrial]:
        return self.study.get_trials(deepcopy=False, states=states or None)

    def running(self) -> int:
        return len(self.trials(TrialState.RUNNING))

    def recover(self) -> None:
        """Fail the trials whose worker stopped beating (and queue them again)."""
        optuna.storages.fail_stale_trials(self.study)

    def pop(self) -> Job | None:
        raise NotImplementedError

    @contextmanager
    def claiming(self) -> Iterator[None]:
        """Hold while taking a waiting trial. Optuna marks a waiting trial RUNNING with a read
        then a write; PostgreSQL locks the row between them (SELECT ... FOR UPDATE), but
        SQLite (through pysqlite) reads outside any transaction, so two processes could both
        see a trial waiting and both take it (18 of 100 trials went to two of 4 workers,
        measured). Processes sharing a SQLite file are on one machine: an flock beside it
        makes the read and the write one step."""
        path = sqlite_path(str(self.storage.url))
        if path is None:
            yield
            return
        with file_lock(path.with_name(path.name + POP_LOCK_SUFFIX), wait=True):
            yield

    def complete(self, job: Job, result: Any) -> None:
        raise NotImplementedError

    def fail(self, job: Job, error: str, failure: str = "error") -> None:
        raise NotImplementedError

    def link_wandb(self, job: Job, info: dict[str, Any]) -> None:
        """Point the trial at its W&B run as soon as the run opens (user attr `wandb`), so
        every trial that trained, whatever its end (pruned, failed, killed), has the link."""
        link = wandb_link({"wandb": info})
        if link:
            with _ignore_finished():
                job.trial.set_user_attr("wandb", link)

    @contextmanager
    def heartbeat(self, job: Job) -> Iterator[None]:
        stop = threading.Event()
        tid = job.trial._trial_id

        def beat() -> None:
            while not stop.wait(heartbeat_interval()):
                try:
                    self.storage.record_heartbeat(tid)
                except Exception:  # a blip in the database: try again next beat
                    pass

        self.storage.record_heartbeat(tid)
        thread = threading.Thread(target=beat, daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join(timeout=5)


class RunQueue(WorkSource):
    """The runs of a study, enqueued as Optuna trials with fixed params."""

    def __init__(self, storage: RDBStorage, name: str) -> None:
        self.storage = storage
        self.name = name
        self.study = optuna.create_study(study_name=queue_study_name(name), storage=storage,
                                         load_if_exists=True, direction="maximize")

    @classmethod
    def open(cls, url: str, name: str) -> RunQueue:
        return cls(open_storage(url), name)

    @classmethod
    def existing(cls, url: str, name: str) -> RunQueue:
        """The queue of study NAME, refusing to create one (a reader must not leave an empty
        study behind a typo)."""
        storage = open_storage(url)
        if not any(s.study_name == queue_study_name(name) for s in storage.get_all_studies()):
            raise ConfigError(f"storage {mask_url(url)}: no study {name!r} in it (start it with "
                              f"`harness ablation {name} --storage URL`)")
        return cls(storage, name)

    # --- the plan travels with the queue, for readers on machines that ran nothing -------
    def save_manifest(self, manifest: dict[str, Any]) -> None:
        """Keep study.json in the queue: `harness report STUDY --storage URL` on a machine
        that ran nothing rebuilds the study folder from it."""
        if self.study.user_attrs.get(MANIFEST_ATTR) != manifest:
            self.study.set_user_attr(MANIFEST_ATTR, manifest)

    def manifest(self) -> dict[str, Any] | None:
        return self.study.user_attrs.get(MANIFEST_ATTR)

    def planned_specs(self) -> list[RunSpec]:
        """Every run ever queued (one spec per run id), oldest first."""
        specs: dict[str, RunSpec] = {}
        for t in sorted(self.trials(), key=lambda t: t.number):
            rid, spec = t.user_attrs.get("run_id"), t.user_attrs.get("spec")
            if rid and spec and rid not in specs:
                specs[rid] = RunSpec.from_json(spec)
        return list(specs.values())

    def states(self, plan: list[tuple[str, str, int]]) -> list[RunState]:
        """(run id, variant, seed) of each planned run -> its state in the queue."""
        trials = self.by_run()
        return [run_state(rid, variant, seed, trials.get(rid, [])) for rid, variant, seed in plan]

    # --- bookkeeping ----------------------------------------------------------------
    def by_run(self) -> dict[str, list[optuna.trial.FrozenTrial]]:
        out: dict[str, list[optuna.trial.FrozenTrial]] = {}
        for t in self.trials():
            rid = t.user_attrs.get("run_id")
            if rid:
                out.setdefault(rid, []).append(t)
        return out

    def fail_stale(self, all_running: bool = False) -> None:
        """Fail RUNNING trials whose worker stopped beating (or all, when we know every
        worker that could hold them is gone)."""
        if all_running:
            for t in self.trials(TrialState.RUNNING):
                with _ignore_finished():
                    self.storage.set_trial_state_values(t._trial_id, state=TrialState.FAIL)
        else:
            optuna.storages.fail_stale_trials(self.study)

    def recover(self) -> None:
        self.fail_stale()
        self.requeue_failed()

    def enqueue_missing(self, specs: list[RunSpec], finished: set[str]) -> int:
        """Queue each unfinished run that is neither waiting nor running, within its
        attempt budget. Returns how many were queued."""
        trials = self.by_run()
        queued = 0
        for spec in specs:
            if spec.run_id in finished:
                continue
            mine = trials.get(spec.run_id, [])
            states = [t.state for t in mine]
            if TrialState.WAITING in states or TrialState.RUNNING in states:
                continue
            if TrialState.COMPLETE in states and any(
                t.user_attrs.get("status") != "failed" for t in mine
                if t.state == TrialState.COMPLETE
            ):
                continue
            errors = [t for t in mine if t.state == TrialState.FAIL
                      and t.user_attrs.get("failure") == "error"]
            if len(errors) >= MAX_ATTEMPTS:  # kills, Ctrl-C and duplicates do not count
                continue
            self.enqueue(spec)
            queued += 1
        return queued

    def enqueue(self, spec: RunSpec) -> None:
        self.study.enqueue_trial(optuna_params(spec),
                                 user_attrs={"run_id": spec.run_id, "variant": spec.variant,
                                             "seed": spec.seed, "spec": spec.to_json()})

    def defer(self, job: Job) -> None:
        """Put a popped run back at the end of the queue: it waits for an upstream run
        (`depends_on`) that is queued or training. Not an attempt, not a failure."""
        with _ignore_finished():
            job.trial.set_user_attr("failure", "waiting")
            self.study.tell(job.trial, state=TrialState.PRUNED)
        self.enqueue(job.spec)

    def upstream_state(self, run_id: str) -> str:
        """An upstream run's state in this queue (queued, running, finished, failed or
        not queued), with a failed run that `requeue_failed` would retry counted as queued."""
        return run_state(run_id, "", 0, self.by_run().get(run_id, [])).state

    def distributions(self, specs: list[RunSpec] | None = None) -> dict[str, BaseDistribution]:
        """The study's param distributions, stored once (from all its runs) in the queue."""
        stored = self.study.user_attrs.get(DISTRIBUTIONS_ATTR)
        if stored is None and specs:
            stored = {k: distribution_to_json(d) for k, d in param_distributions(specs).items()}
            self.study.set_user_attr(DISTRIBUTIONS_ATTR, stored)
        elif stored is not None and specs:
            self.check_same_choices(stored, param_distributions(specs))
        return {k: json_to_distribution(v) for k, v in (stored or {}).items()}

    def check_same_choices(self, stored: dict[str, str],
                           planned: dict[str, BaseDistribution]) -> None:
        """Optuna fixes a parameter's choices at its first trial: a design that gained values
        since cannot share this queue. Said in one line, with the way out."""
        for name, dist in planned.items():
            old = json_to_distribution(stored[name]) if name in stored else None
            added = [c for c in getattr(dist, "choices", ())
                     if old is not None and c not in getattr(old, "choices", ())]
            if added:
                raise ConfigError(
                    f"study {self.name!r}: {name} gained {', '.join(map(repr, added))} since "
                    "its queue was created, and a queue keeps each parameter's first choices; "
                    "move the study's queue.db aside (finished runs are kept and skipped) and "
                    "run again")

    def requeue_failed(self) -> int:
        """Queue again the runs whose last attempt failed (a killed worker, a crash)."""
        specs = []
        for trials in self.by_run().values():
            states = {t.state for t in trials}
            if states & {TrialState.WAITING, TrialState.RUNNING, TrialState.COMPLETE}:
                continue
            if trials[-1].user_attrs.get("failure") == "final":
                continue  # would fail the same way again; the next invocation retries it
            specs.append(RunSpec.from_json(trials[-1].user_attrs["spec"]))
        return self.enqueue_missing(specs, set())

    def waiting(self) -> int:
        return len(self.trials(TrialState.WAITING))

    # --- worker side ------------------------------------------------------------------
    def pop(self) -> Job | None:
        """Take the next waiting run, or None when nothing is waiting. The popped trial gets
        a heartbeat at once, so it is recovered if this worker dies before training it."""
        dists = None
        while self.waiting():
            with self.claiming():
                trial = self.study.ask()
                self.storage.record_heartbeat(trial._trial_id)
            spec = trial.user_attrs.get("spec")
            if spec is None:  # the queue emptied between the check and the pop
                self.study.tell(trial, state=TrialState.PRUNED)
                return None
            if self.taken_elsewhere(trial):
                trial.set_user_attr("failure", "duplicate")
                self.study.tell(trial, state=TrialState.PRUNED)
                continue
            run = RunSpec.from_json(spec)
            dists = self.distributions() if dists is None else dists
            suggest_fixed(trial, optuna_params(run), dists)
            trial.set_user_attr("host", socket.gethostname())
            trial.set_user_attr("worker", worker_identity())
            return Job(trial, run, on_epoch=[epoch_reporter(trial)])
        return None

    def taken_elsewhere(self, trial: optuna.trial.Trial) -> bool:
        """Another trial of the same run is running or done (two workers re-queued a failed
        run at the same moment): this copy must not train it again."""
        rid = trial.user_attrs.get("run_id", "")
        return any(t.number != trial.number and t.state in (TrialState.RUNNING,
                                                            TrialState.COMPLETE)
                   for t in self.by_run().get(rid, []))

    def complete(self, job: Job, result: Any) -> None:
        """Record the outcome (a train_run result); the results (summary, epoch rows, env
        and test predictions) travel with the trial so a coordinator on another machine can
        rebuild the run folder without a shared filesystem. `wandb` links the trial to its
        W&B run."""
        summary, rows, folder = result.summary, result.rows, Path(result.run_dir.path)
        value = summary.get("best_val_acc")
        with _ignore_finished():  # failed as stale meanwhile: the local store still has it
            job.trial.set_user_attr("status", summary.get("status"))
            job.trial.set_user_attr("numerics", NUMERICS_VERSION)
            job.trial.set_user_attr("summary", summary)
            job.trial.set_user_attr("rows", rows)
            files = upload_files(job.trial, folder, folder.parent.parent / ARTIFACT_DIR)
            if files:
                job.trial.set_user_attr(ARTIFACTS_ATTR, files)
            link = wandb_link(summary)
            if link:
                job.trial.set_user_attr("wandb", link)
            self.study.tell(job.trial, float(value) if value is not None else 0.0)

    def fail(self, job: Job, error: str, failure: str = "error") -> None:
        """failure: "error" counts toward the attempt limit; "interrupted", "duplicate" and
        "environment" (a full disk) do not (a kill or Ctrl-C never uses up a run's attempts);
        "final" (a problem the user must fix, such as missing data files) is not retried in
        this invocation and not counted, so the same command retries it once fixed."""
        with _ignore_finished():
            job.trial.set_user_attr("error", error[:2000])
            job.trial.set_user_attr("failure", failure)
            self.study.tell(job.trial, state=TrialState.FAIL)


def wandb_link(summary: dict[str, Any]) -> dict[str, Any]:
    """Where a run's W&B run is (URL, path or offline folder): a trial's user attr `wandb`."""
    return {k: v for k, v in (summary.get("wandb") or {}).items()
            if k in ("url", "path", "run_dir", "mode") and v}


@contextmanager
def _ignore_finished() -> Iterator[None]:
    try:
        yield
    except (optuna.exceptions.UpdateFinishedTrialError, RuntimeError, ValueError):
        pass
