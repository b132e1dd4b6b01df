"""A tuning search as a source of work: each pop asks Optuna for a trial, samples its params
and hands the worker an ordinary run (test set off) that reports its validation metric
every epoch, so the pruner can stop it.

The search is the Optuna study `<study>:tune` in the study's one storage (beside the run
queue `<study>:runs` of its retrain), and holds the study definition too, so
`harness worker --study NAME --storage URL` needs nothing else. Trials of a dead worker go
stale (heartbeats) and are queued again with the same params.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import socket
import time
from pathlib import Path
from typing import Any

import optuna
from optuna.storages import RetryHeartbeatStaleTrialCallback
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState

from harness.config import RunConfig, build_run_config
from harness.console import console
from harness.errors import ConfigError
from harness.numerics import NUMERICS_VERSION
from harness.record.layout import SEARCH
from harness.record.numbers import finite
from harness.study.plan import RunSpec
from harness.study.queue import Job, WorkSource, wandb_link
from harness.study.spec import StudyConfig
from harness.study.storage import mask_url, open_storage
from harness.study.tune_space import (
    OBJECTIVES,
    TuneSpec,
    make_pruner,
    make_sampler,
    parse_tune,
    trial_raw,
)
from harness.tracking.wandb_tracker import TRIAL_JOB_TYPE
from harness.train.analysis import validation_ece
from harness.version import __version__

FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)
MAX_RETRY = 2  # a trial whose worker died is run again at most this many times
MAX_CONSECUTIVE_FAILURES = 5  # a worker stops after this many failed trials in a row
DEFINITION_ATTR = "harness"  # Optuna study user attr holding the study definition


def optuna_study_name(name: str) -> str:
    return f"{name}:tune"


def trials_of(ostudy: optuna.Study, *states: TrialState) -> list[FrozenTrial]:
    return ostudy.get_trials(deepcopy=False, states=states or None)


def n_finished(ostudy: optuna.Study) -> int:
    return len(trials_of(ostudy, *FINISHED))


def fingerprint(study: StudyConfig, spec: TuneSpec) -> str:
    """What makes two searches comparable: base config, space, objectives, run seed and the
    numerics that train the trials (the budget, sampler, pruner and confirmation may change
    between invocations)."""
    blob = json.dumps({"base": study.base, "space": {k: v.model_dump(mode="json")
                                                     for k, v in spec.space.items()},
                       "objectives": spec.objective_names, "search_seed": spec.search_seed,
                       "numerics": NUMERICS_VERSION}, sort_keys=True, default=str)
    return hashlib.sha1(blob.encode()).hexdigest()[:12]


def definition(study: StudyConfig, spec: TuneSpec, source: str) -> dict[str, Any]:
    return {"study": study.model_dump(mode="json", exclude_unset=True), "source": source,
            "fingerprint": fingerprint(study, spec), "harness_version": __version__}


def create_search(url: str, study: StudyConfig, spec: TuneSpec, source: str) -> optuna.Study:
    """Create (or continue) the Optuna study and store the definition in its user attrs."""
    try:
        ostudy = optuna.create_study(study_name=optuna_study_name(study.name),
                                     storage=open_storage(url),
                                     directions=[StudyDirection[d.upper()]
                                                 for d in spec.directions],
                                     load_if_exists=True)
    except Exception as err:
        raise ConfigError(f"storage {mask_url(url)}: cannot create the study "
                          f"({type(err).__name__}: {str(err).splitlines()[0][:200]})") from None
    old = ostudy.user_attrs.get(DEFINITION_ATTR)
    new = definition(study, spec, source)
    have = [d.name.lower() for d in ostudy.directions]
    if have != spec.directions or (old and old.get("fingerprint") != new["fingerprint"]):
        raise ConfigError(f"{source}: the search in {mask_url(url)} was started with another "
                          "base config, space, objective or search_seed, or by a harness of "
                          "other numerics (harness/numerics.py); continuing it would mix "
                          "incomparable trials. Rename the study or delete its storage "
                          "(results/<study>/queue.db).")
    if old != new:
        ostudy.set_user_attr(DEFINITION_ATTR, new)
    return ostudy


def worker_id(trial_number: int) -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{trial_number}"


def trial_config(study: StudyConfig, spec: TuneSpec, params: dict[str, Any],
                 number: int) -> RunConfig:
    """The run of one trial: base + sampled params, test set off, run seed = search_seed."""
    raw = trial_raw(study.base, spec.overrides(params))
    train = raw.setdefault("train", {})
    train["eval_test"] = False  # the search never reads the test split
    select = OBJECTIVES[spec.objective_names[0]].select
    if select:
        train["select"] = select  # best-val epoch by the objective itself
    tracking = raw.setdefault("tracking", {})
    tracking["tags"] = list(tracking.get("tags") or []) + ["tune"]
    raw.update(study=study.name, variant=f"trial-{number}", seed=spec.search_seed)
    return build_run_config(raw, f"trial {number}")


class Search(WorkSource):
    """The trials of a tuning search, until its budget (finished trials, or a timeout per
    worker) is spent or trials keep failing."""

    def __init__(self, url: str, name: str, *, worker: int | None = None,
                 parallel: bool = True, timeout: float | None = None,
                 data_dir: Path | None = None) -> None:
        self.data_dir = data_dir  # for an objective computed after the run (val_ece)
        self.storage = open_storage(url)
        self.storage.heartbeat_stale_trial_callback = RetryHeartbeatStaleTrialCallback(
            max_retry=MAX_RETRY)
        self.study = optuna.load_study(study_name=optuna_study_name(name),
                                       storage=self.storage)
        d = self.study.user_attrs.get(DEFINITION_ATTR)
        if not d:
            raise ConfigError(f"storage {mask_url(url)}: study {name!r} holds no definition")
        self.config = StudyConfig.model_validate(d["study"])
        self.spec = parse_tune(self.config, str(d.get("source") or name))
        w = worker if worker is not None else os.getpid() % 100_000
        self.study.sampler = make_sampler(self.spec, worker=w + 1000 * len(self.study.trials),
                                          workers=2 if parallel else 1)
        epochs = int((self.config.base.get("train") or {}).get("epochs") or 30)
        self.study.pruner = make_pruner(self.spec, epochs=epochs)
        timeout = timeout if timeout is not None else self.spec.timeout
        self.deadline = None if timeout is None else time.monotonic() + timeout
        self.failed_in_a_row = 0

    def spent(self) -> bool:
        if self.failed_in_a_row >= MAX_CONSECUTIVE_FAILURES:
            return True
        if self.deadline is not None and time.monotonic() >= self.deadline:
            return True
        return self.spec.n_trials is not None and n_finished(self.study) >= self.spec.n_trials

    def pop(self) -> Job | None:
        """A new trial (or a dead worker's, queued again), its params sampled."""
        if self.spent():
            return None
        with self.claiming():
            trial = self.study.ask()
            self.storage.record_heartbeat(trial._trial_id)
        trial.set_user_attr("worker", worker_id(trial.number))
        params = self.spec.sample(trial)
        overrides = self.spec.overrides(params)
        cfg = trial_config(self.config, self.spec, params, trial.number)
        for key, value in (("variant", cfg.variant), ("run_id", cfg.run_id()),
                           ("overrides", overrides)):
            trial.set_user_attr(key, value)
        spec = RunSpec(cfg.variant, cfg.seed, cfg, cfg.run_id(), overrides, False, overrides,
                       self.config.description or None)
        job = Job(trial, spec, wandb={"job_type": TRIAL_JOB_TYPE},
                  results_subdir=f"{self.config.name}/{SEARCH}", wait_if_busy=True)
        job.on_epoch.append(self.reporter(job))
        return job

    def reporter(self, job: Job) -> Any:
        """Report the running best of the objective every epoch (comparable with the final
        value); stop the run when the pruner says so."""
        key = OBJECTIVES[self.spec.objective_names[0]].row_key
        pick = max if self.spec.directions[0] == "maximize" else min
        best: list[float] = []

        def report(epoch: int, row: dict[str, Any]) -> None:
            job.epochs_trained += 1
            if self.spec.multi or key is None or not finite(row.get(key)):
                return
            best.append(float(row[key]) if not best else pick(best[-1], float(row[key])))
            job.trial.report(best[-1], epoch)
            if job.trial.should_prune():
                job.trial.set_user_attr("pruned_at", epoch)
                raise optuna.TrialPruned(f"pruned at epoch {epoch}")

        return report

    def complete(self, job: Job, result: Any) -> None:
        trial, s = job.trial, result.summary
        trial.set_user_attr("epochs_trained", job.epochs_trained)
        for k in ("status", "best_epoch", "epochs_run", "wall_time", "best_val_acc", "params"):
            if s.get(k) is not None:
                trial.set_user_attr(k, s[k])
        # The loop's best_val_loss is the val loss AT the best epoch, not W&B's val_loss.min.
        if s.get("best_val_loss") is not None:
            trial.set_user_attr("val_loss_at_best_val", s["best_val_loss"])
        if wandb_link(s):
            trial.set_user_attr("wandb", wandb_link(s))
        if s.get("status") == "pruned":
            self.failed_in_a_row = 0
            self.study.tell(trial, state=TrialState.PRUNED)
            return
        values = [self.value(name, job, result) for name in self.spec.objective_names]
        if not all(finite(v) for v in values):
            self.fail(job, f"no finite objective value (run {s.get('status')})")
            return
        self.failed_in_a_row = 0
        self.study.tell(trial, values if self.spec.multi else values[0])

    def fail(self, job: Job, error: str, failure: str = "error") -> None:
        """`final` (a problem the user must fix, such as missing data files) stops this
        worker's search at once, as every trial would fail the same way; an interruption
        does not count."""
        if failure == "final":
            self.failed_in_a_row = MAX_CONSECUTIVE_FAILURES
        elif failure != "interrupted":
            self.failed_in_a_row += 1
            if self.failed_in_a_row == MAX_CONSECUTIVE_FAILURES:
                console.print(f"[red]{MAX_CONSECUTIVE_FAILURES} trials failed in a row: this "
                              "worker stops[/]")
        job.trial.set_user_attr("failure", failure)
        job.trial.set_user_attr("epochs_trained", job.epochs_trained)
        job.trial.set_user_attr("error", error[:2000])
        self.study.tell(job.trial, state=TrialState.FAIL)

    def value(self, name: str, job: Job, result: Any) -> float:
        o = OBJECTIVES[name]
        if o.summary_key:
            v = result.summary.get(o.summary_key)
        else:
            v = validation_ece(job.spec.config, result.run_dir.path, self.data_dir)
            job.trial.set_user_attr("val_ece", v)
        return float(v) if finite(v) else math.nan


def search_progress(ostudy: optuna.Study, spec: TuneSpec) -> tuple[int, str]:
    """Finished trials, and the pruned count and best value so far (the study bar)."""
    done = trials_of(ostudy, *FINISHED)
    complete = [t for t in done if t.state == TrialState.COMPLETE and t.values]
    status = f"{len(done) - len(complete)} pruned"
    if complete and not spec.multi:
        pick = max if spec.directions[0] == "maximize" else min
        status += f"  best {spec.objective_names[0]} {pick(t.values[0] for t in complete):.4f}"
    return len(done), status
