"""Hyperparameter search on the validation split with Optuna, then an honest confirmation.

A tuning study (`kind: tune`) searches its `tune.space` (see `harness.study.tune_space`)
with a seeded sampler and a pruner; every trial is one `train_run` with the test set OFF
(`train.eval_test: false`), reporting its validation metric every epoch. The Optuna study
(a SQLite file, a journal file for parallel local workers, or a PostgreSQL URL for workers
on many machines) is the system of record: it holds the study definition too, so
`harness worker --study NAME --storage URL` needs nothing else. Re-running continues the
same study. After the search, the best config (and the top k) is retrained with fresh seeds
WITH the test set, next to the untuned baseline, as an ordinary one_at_a_time study in the
same results folder, so the standard report compares tuned vs baseline.

Layout of results/<study>/:
    tune.db | tune.journal      the Optuna study (default storages)
    search/<study>/runs/        one run folder per search trial (variant trial-<n>)
    runs/                       baseline / tuned retrain runs (what the report reads)
    study.json                  ablation-style manifest (design one_at_a_time)
    tuning.json, tuning.md      search summary; figures/tune_*.png
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
import os
import socket
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna
from optuna.storages import RetryHeartbeatStaleTrialCallback
from optuna.study import MaxTrialsCallback
from optuna.trial import FrozenTrial, TrialState

from harness.config import RunConfig, build_run_config
from harness.console import console, make_progress
from harness.errors import ConfigError
from harness.study.execute import (
    StudyOutcome,
    build_study_report,
    default_workers,
    run_study,
    study_lock,
    threads_per_worker,
)
from harness.study.processes import install_worker_signals, make_workers, supervise
from harness.study.queue import mask_url, open_storage
from harness.study.spec import StudyConfig
from harness.study.tune_report import tuning_section, write_outputs
from harness.study.tune_space import (
    OBJECTIVES,
    TuneSpec,
    finite,
    make_pruner,
    make_sampler,
    parse_tune,
    trial_raw,
)
from harness.study.worker import EventReporter, run_lock
from harness.tracking.protocol import Tracker
from harness.tracking.store import RunDir
from harness.tracking.wandb_run import TRIAL_JOB_TYPE, wandb_run_tracker
from harness.train.loop import study_dir, train_run

warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)

__all__ = ["TuneOutcome", "run_tuning", "tune_worker_loop", "tuning_section",
           "tuning_study_exists", "open_tune_storage", "optuna_study_name"]

FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)
MAX_RETRY = 2  # a trial whose worker died is run again at most this many times
MAX_CONSECUTIVE_FAILURES = 5  # a worker stops after this many failed trials in a row
JOURNAL_PREFIX = "journal:"
DEFINITION_ATTR = "harness"  # Optuna study user attr holding the study definition

Emit = Callable[[tuple[Any, ...]], None]


@dataclass
class TuneOutcome:
    study_dir: Path
    storage: str  # masked
    n_trials: int | None  # requested
    complete: int
    pruned: int
    failed: int
    epochs: int  # epochs trained by the search trials
    best_params: dict[str, Any]
    best_values: list[float]
    search_seconds: float
    retrain: StudyOutcome | None
    seconds: float
    files: dict[str, str] = field(default_factory=dict)


# ----------------------------------------------------------------------------- storage


def optuna_study_name(name: str) -> str:
    return f"{name}:tune"


def is_journal(url: str) -> bool:
    return url.startswith(JOURNAL_PREFIX) or url.endswith(".journal")


def default_tune_storage(sdir: Path, workers: int) -> str:
    """SQLite for one process, a journal file for several; an existing one is reused so a
    re-run with another worker count continues the same study."""
    journal, db = (sdir / "tune.journal").resolve(), (sdir / "tune.db").resolve()
    if journal.exists():
        return f"{JOURNAL_PREFIX}{journal}"
    if db.exists():
        return f"sqlite:///{db}"
    return f"{JOURNAL_PREFIX}{journal}" if workers > 1 else f"sqlite:///{db}"


def open_tune_storage(url: str) -> optuna.storages.BaseStorage:
    """A journal file (no heartbeats in Optuna 5: see `requeue_orphans`) or an RDB storage
    with heartbeats whose stale trials are retried."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    if is_journal(url):
        from optuna.storages.journal import JournalFileBackend

        path = Path(url.removeprefix(JOURNAL_PREFIX))
        path.parent.mkdir(parents=True, exist_ok=True)
        return optuna.storages.JournalStorage(JournalFileBackend(str(path)))
    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    storage = open_storage(url)
    retry = RetryHeartbeatStaleTrialCallback(max_retry=MAX_RETRY)
    storage.heartbeat_stale_trial_callback = retry
    storage.failed_trial_callback = retry
    return storage


def tuning_study_exists(url: str, name: str) -> bool:
    """Whether the storage holds tuning study NAME (what `harness worker` dispatches on)."""
    local = url.removeprefix(JOURNAL_PREFIX) if is_journal(url) else \
        url.removeprefix("sqlite:///") if url.startswith("sqlite:///") else None
    if local is not None and not Path(local).is_file():
        return False  # opening would create an empty storage
    try:
        storage = open_tune_storage(url)
        return any(s.study_name == optuna_study_name(name) for s in storage.get_all_studies())
    except Exception:
        return False


def fingerprint(study: StudyConfig, spec: TuneSpec) -> str:
    """What makes two searches comparable: base config, space, objectives and run seed (the
    budget, sampler, pruner and confirmation may change between invocations)."""
    blob = json.dumps({"base": study.base, "space": {k: v.model_dump(mode="json")
                                                     for k, v in spec.space.items()},
                       "objectives": spec.objective_names, "search_seed": spec.search_seed},
                      sort_keys=True, default=str)
    return hashlib.sha1(blob.encode()).hexdigest()[:12]


def definition(study: StudyConfig, spec: TuneSpec, source: str) -> dict[str, Any]:
    import harness

    return {"study": study.model_dump(mode="json", exclude_unset=True), "source": source,
            "fingerprint": fingerprint(study, spec), "harness_version": harness.__version__}


def create_search(url: str, study: StudyConfig, spec: TuneSpec, source: str) -> optuna.Study:
    """Create (or continue) the Optuna study and store the definition in its user attrs."""
    storage = open_tune_storage(url)
    try:
        ostudy = optuna.create_study(study_name=optuna_study_name(study.name), storage=storage,
                                     directions=spec.directions, load_if_exists=True)
    except Exception as err:
        raise ConfigError(f"storage {mask_url(url)}: cannot create the study "
                          f"({type(err).__name__}: {str(err).splitlines()[0][:200]})") from None
    old = ostudy.user_attrs.get(DEFINITION_ATTR)
    new = definition(study, spec, source)
    have = [d.name.lower() for d in ostudy.directions]
    if have != spec.directions or (old and old.get("fingerprint") != new["fingerprint"]):
        raise ConfigError(f"{source}: the search in {mask_url(url)} was started with another "
                          "base config, space, objective or search_seed; continuing it would mix "
                          "incomparable trials. Rename the study or delete its storage "
                          "(results/<study>/tune.db or tune.journal).")
    if old != new:
        ostudy.set_user_attr(DEFINITION_ATTR, new)
    return ostudy


def load_definition(url: str, name: str) -> tuple[StudyConfig, str]:
    storage = open_tune_storage(url)
    try:
        ostudy = optuna.load_study(study_name=optuna_study_name(name), storage=storage)
    except KeyError:
        raise ConfigError(f"storage {mask_url(url)}: no tuning study {name!r} (start it with "
                          f"`harness tune {name} --storage URL` first)") from None
    d = ostudy.user_attrs.get(DEFINITION_ATTR)
    if not d:
        raise ConfigError(f"storage {mask_url(url)}: study {name!r} holds no definition")
    return StudyConfig.model_validate(d["study"]), str(d.get("source") or name)


def trials_of(ostudy: optuna.Study, *states: TrialState) -> list[FrozenTrial]:
    return ostudy.get_trials(deepcopy=False, states=states or None)


def n_finished(ostudy: optuna.Study) -> int:
    return len(trials_of(ostudy, *FINISHED))


# ----------------------------------------------------------------------------- one trial


def worker_id(trial_number: int) -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{trial_number}"


def trial_config(study: StudyConfig, spec: TuneSpec, params: dict[str, Any], number: int,
                 threads: int | None) -> RunConfig:
    """The run of one trial: base + sampled params, test set off, run seed = search_seed."""
    raw = trial_raw(study.base, spec.overrides(params))
    train = raw.setdefault("train", {})
    train["eval_test"] = False  # the search never reads the test split
    select = OBJECTIVES[spec.objective_names[0]].select
    if select:
        train["select"] = select  # best-val epoch by the objective itself
    if threads:
        train["threads"] = threads
    tracking = raw.setdefault("tracking", {})
    tracking["tags"] = list(tracking.get("tags") or []) + ["tune"]
    raw.update(study=study.name, variant=f"trial-{number}", seed=spec.search_seed)
    return build_run_config(raw, f"trial {number}")


def search_results_dir(results_dir: Path, name: str) -> Path:
    """Search trial runs live apart from the retrain runs the report compares."""
    return study_dir(results_dir, name) / "search"


class TrialObjective:
    """`study.optimize` calls this once per trial: sample, train, report, return."""

    def __init__(self, study: StudyConfig, spec: TuneSpec, results_dir: Path,
                 data_dir: Path | None, threads: int | None, reporter: Any) -> None:
        self.study, self.spec, self.threads, self.reporter = study, spec, threads, reporter
        self.results_dir, self.data_dir = Path(results_dir), data_dir
        self.search_dir = search_results_dir(self.results_dir, study.name)
        self.ran = 0

    def __call__(self, trial: optuna.Trial) -> float | list[float]:
        self.ran += 1
        trial.set_user_attr("worker", worker_id(trial.number))
        params = self.spec.sample(trial)
        cfg = trial_config(self.study, self.spec, params, trial.number, self.threads)
        trial.set_user_attr("variant", cfg.variant)
        trial.set_user_attr("run_id", cfg.run_id())
        trial.set_user_attr("overrides", self.spec.overrides(params))
        epochs = [0]
        try:
            result = self.train(trial, cfg, epochs)
        finally:
            trial.set_user_attr("epochs_trained", epochs[0])
        s = result.summary
        for k in ("status", "best_epoch", "epochs_run", "wall_time", "best_val_acc", "params"):
            if s.get(k) is not None:
                trial.set_user_attr(k, s[k])
        # The loop's best_val_loss is the val loss AT the best epoch, not W&B's val_loss.min.
        if s.get("best_val_loss") is not None:
            trial.set_user_attr("val_loss_at_best_val", s["best_val_loss"])
        link = {k: v for k, v in (s.get("wandb") or {}).items()
                if k in ("url", "path", "run_dir") and v}
        if link:
            trial.set_user_attr("wandb", link)
        values = [self.value(name, cfg, result, trial) for name in self.spec.objective_names]
        if not all(finite(v) for v in values):
            trial.set_user_attr("error", f"no finite objective value (run {s.get('status')})")
        return values if self.spec.multi else values[0]

    def train(self, trial: optuna.Trial, cfg: RunConfig, epochs: list[int]) -> Any:
        key = OBJECTIVES[self.spec.objective_names[0]].row_key
        maximize = self.spec.directions[0] == "maximize"
        best: list[float] = []

        def report(epoch: int, row: dict[str, Any]) -> None:
            epochs[0] += 1
            if self.spec.multi or key is None or not finite(row.get(key)):
                return
            v = float(row[key])
            best.append(v if not best else (max if maximize else min)(best[-1], v))
            trial.report(best[-1], epoch)  # running best: comparable with the final value
            if trial.should_prune():
                trial.set_user_attr("pruned_at", epoch)
                raise optuna.TrialPruned(f"pruned at epoch {epoch}")

        run_dir = RunDir.for_run(study_dir(self.search_dir, cfg.study), cfg.variant, cfg.seed,
                                 cfg.run_id())
        while True:  # the same params drawn twice at once: the second waits and reuses
            with run_lock(run_dir.path) as held:
                if held:
                    return train_run(cfg, results_dir=self.search_dir, data_dir=self.data_dir,
                                     reporter=self.reporter, on_epoch=[report],
                                     tracker=self.trial_tracker(trial, cfg))
            time.sleep(1.0)

    def trial_tracker(self, trial: optuna.Trial, config: RunConfig) -> Tracker:
        """W&B for a search trial: one job type `trial` for all of them, the sampled values
        as flat config keys, and the trial number linking it back to Optuna."""
        context = {"job_type": TRIAL_JOB_TYPE, "notes": self.study.description or None,
                   "swept": trial.user_attrs.get("overrides") or {},
                   "config": {"optuna_study": optuna_study_name(self.study.name),
                              "optuna_trial": trial.number}}
        return wandb_run_tracker(config, self.search_dir, context)

    def value(self, name: str, cfg: RunConfig, result: Any, trial: optuna.Trial) -> float:
        o = OBJECTIVES[name]
        if o.summary_key:
            v = result.summary.get(o.summary_key)
        else:
            v = validation_ece(cfg, result, self.data_dir)
            trial.set_user_attr("val_ece", v)
        return float(v) if finite(v) else math.nan


def validation_ece(cfg: RunConfig, result: Any, data_dir: Path | None) -> float | None:
    """ECE (15 bins, Guo et al. 2017) of the final eval model on the VALIDATION split."""
    import torch

    from harness.regularizers import RegularizerStack
    from harness.train import build
    from harness.train.analysis import expected_calibration_error
    from harness.train.metrics import predict_logits

    device = torch.device("cpu")
    data = build.build_data(cfg, data_dir, device)
    if not len(data.val.y):
        return None
    model = result.model
    if model is None:  # a finished run found in the store: rebuild its model
        ctx = build.run_context(cfg, data, device)
        model = build.build_model(cfg, data, RegularizerStack.from_config(cfg, ctx))
    model = copy.deepcopy(model).to(device)
    weights = result.run_dir.path / "model.pt"
    if weights.is_file():  # the eval model (EMA/SWA averages when in use)
        try:
            model.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
        except RuntimeError:
            pass
    model.eval()
    with torch.no_grad():
        logits = predict_logits(model, data.val.x, data.prepare, cfg.train.eval_batch_size)
    probs = logits.float().softmax(-1)
    ece, _ = expected_calibration_error(probs.reshape(-1, probs.size(-1)),
                                        data.val.y.reshape(-1).to(probs.device))
    return ece


class FailureGuard:
    """Stop a worker whose trials keep failing (a broken config would loop forever)."""

    def __init__(self) -> None:
        self.in_a_row = 0

    def __call__(self, study: optuna.Study, trial: FrozenTrial) -> None:
        self.in_a_row = self.in_a_row + 1 if trial.state == TrialState.FAIL else 0
        if self.in_a_row >= MAX_CONSECUTIVE_FAILURES:
            console.print(f"[red]{self.in_a_row} trials failed in a row: this worker stops[/]")
            study.stop()


# ----------------------------------------------------------------------------- workers


def tune_worker_loop(url: str, study: StudyConfig | str, results_dir: Path,
                     data_dir: Path | None = None, threads: int | None = None,
                     n_trials: int | None = None, *, timeout: float | None = None,
                     worker: int | None = None, parallel: bool = True, emit: Emit | None = None,
                     source: str | None = None) -> int:
    """Run trials of tuning study `study` (a StudyConfig, or a name whose definition is read
    from the storage) until the study has n_trials finished (complete + pruned) trials or
    `timeout` seconds passed. What `harness worker --study NAME --storage URL` runs for a
    tuning study. Returns how many trials this worker ran."""
    if isinstance(study, str):
        study, source = load_definition(url, study)
    source = source or study.name
    spec = parse_tune(study, source)
    storage = open_tune_storage(url)
    probe = optuna.load_study(study_name=optuna_study_name(study.name), storage=storage)
    done_before = len(probe.trials)
    n = n_trials if n_trials is not None else spec.n_trials
    if n is not None and n_finished(probe) >= n:
        return 0
    requeue_orphans(probe)  # this machine's dead workers' trials (journal: no heartbeats)
    w = worker if worker is not None else os.getpid() % 100_000
    sampler = make_sampler(spec, worker=w + 1000 * done_before, workers=2 if parallel else 1)
    epochs = int((study.base.get("train") or {}).get("epochs") or 30)
    ostudy = optuna.load_study(study_name=optuna_study_name(study.name), storage=storage,
                               sampler=sampler, pruner=make_pruner(spec, epochs=epochs))
    reporter = EventReporter(emit or (lambda event: None), w)
    objective = TrialObjective(study, spec, Path(results_dir), data_dir, threads, reporter)
    callbacks: list[Any] = [FailureGuard()]
    if n is not None:
        callbacks.append(MaxTrialsCallback(n, states=FINISHED))
    ostudy.optimize(objective, timeout=timeout if timeout is not None else spec.timeout,
                    callbacks=callbacks, catch=(Exception,), gc_after_trial=False)
    return objective.ran


def tune_worker_process(url: str, name: str, results_dir: str, data_dir: str | None,
                        threads: int | None, events: Any, worker: int) -> None:
    """Entry point of a local worker process (spawned): reads the study from the storage."""
    os.environ.setdefault("WANDB_SILENT", "true")
    install_worker_signals()
    try:
        tune_worker_loop(url, name, Path(results_dir), Path(data_dir) if data_dir else None,
                         threads, worker=worker, parallel=True, emit=events.put)
    except KeyboardInterrupt:
        pass


def requeue_orphans(ostudy: optuna.Study, dead_pids: set[int] | None = None) -> int:
    """Fail the RUNNING trials of this machine's dead worker processes and queue them again
    (what heartbeats do for RDB storages; the journal storage has none in Optuna 5, so there a
    killed worker's trial would stay RUNNING forever). `dead_pids`: pids known dead."""
    host, requeued = socket.gethostname(), 0
    retry = RetryHeartbeatStaleTrialCallback(max_retry=MAX_RETRY)
    for t in trials_of(ostudy, TrialState.RUNNING):
        parts = str(t.user_attrs.get("worker", "")).rsplit(":", 2)
        if len(parts) != 3 or parts[0] != host or parts[2] != str(t.number):
            continue  # another machine's, or a copied attr of a retried trial not yet started
        pid = int(parts[1])
        if dead_pids is not None and pid not in dead_pids:
            continue
        if dead_pids is None and pid_alive(pid):
            continue
        try:
            if ostudy._storage.set_trial_state_values(t._trial_id, state=TrialState.FAIL) \
                    is False:
                continue
        except optuna.exceptions.UpdateFinishedTrialError:
            continue  # its heartbeat already failed it (and queued the retry)
        retry(ostudy, ostudy._storage.get_trial(t._trial_id))
        requeued += 1
    return requeued


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class TuneHub:
    """Trials bar (finished / n_trials, best so far) plus one epoch bar per worker."""

    def __init__(self, progress: Any, ostudy: optuna.Study, spec: TuneSpec) -> None:
        self.progress, self.ostudy, self.spec = progress, ostudy, spec
        self.task = progress.add_task("trials", total=spec.n_trials, completed=0, status="")
        self.bars: dict[int, Any] = {}
        self.refresh()

    def handle(self, event: tuple[Any, ...]) -> None:
        kind, worker = event[0], event[1]
        if kind == "start":
            if worker in self.bars:
                self.progress.remove_task(self.bars[worker])
            self.bars[worker] = self.progress.add_task(f"  w{worker} {event[2]}", total=event[3],
                                                       completed=event[4] - 1, status="")
        elif kind == "epoch" and worker in self.bars:
            self.progress.update(self.bars[worker], completed=event[2], status=event[3])
        elif kind == "end":
            self.refresh()

    def refresh(self) -> None:
        done = trials_of(self.ostudy, *FINISHED)
        complete = [t for t in done if t.state == TrialState.COMPLETE and t.values]
        status = f"{len(done) - len(complete)} pruned"
        if complete and not self.spec.multi:
            pick = max if self.spec.directions[0] == "maximize" else min
            status += f"  best {self.spec.objective_names[0]} {pick(t.value for t in complete):.4f}"
        self.progress.update(self.task, completed=len(done), status=status)


def drive_search(url: str, study: StudyConfig, spec: TuneSpec, source: str, ostudy: optuna.Study,
                 results_dir: Path, data_dir: Path | None, workers: int) -> None:
    threads = threads_per_worker(workers)
    with make_progress() as progress:
        hub = TuneHub(progress, ostudy, spec)

        def finish_locally(index: int) -> None:
            tune_worker_loop(url, study, results_dir, data_dir, threads, worker=index,
                             parallel=workers > 1, emit=hub.handle, source=source)

        if workers == 1:
            finish_locally(0)
        else:
            started = time.monotonic()
            run_processes(url, study.name, results_dir, data_dir, workers, threads, hub)
            left = None if spec.timeout is None else spec.timeout - (time.monotonic() - started)
            # a worker that died leaves its (requeued) trial: finish here, within the budget
            if (spec.n_trials and n_finished(ostudy) < spec.n_trials
                    and (left is None or left > 0)):
                tune_worker_loop(url, study, results_dir, data_dir, threads, timeout=left,
                                 worker=workers, parallel=True, emit=hub.handle, source=source)
        hub.refresh()


def run_processes(url: str, name: str, results_dir: Path, data_dir: Path | None, workers: int,
                  threads: int, hub: TuneHub) -> None:

    procs, events = make_workers(
        tune_worker_process, lambda i: (url, name, str(results_dir),
                                        str(data_dir) if data_dir else None, threads), workers)
    supervise(procs, events, hub.handle, hub.refresh,
              on_failed_exit=lambda p: requeue_orphans(hub.ostudy, {p.pid}))


# ----------------------------------------------------------------------------- after the search


def top_trials(ostudy: optuna.Study, spec: TuneSpec, k: int) -> list[FrozenTrial]:
    """The k best complete trials with distinct configs (multi-objective: the Pareto front,
    best first objective first)."""
    complete = [t for t in trials_of(ostudy, TrialState.COMPLETE)
                if t.values and all(finite(v) for v in t.values)]
    if spec.multi:
        front = {t.number for t in ostudy.best_trials}
        pool = [t for t in complete if t.number in front]
    else:
        pool = complete
    sign = 1.0 if spec.directions[0] == "maximize" else -1.0
    pool.sort(key=lambda t: (-sign * t.values[0], t.number))
    out: list[FrozenTrial] = []
    seen: set[str] = set()
    for t in pool:
        key = json.dumps(spec.overrides(t.params), sort_keys=True, default=str)
        if key not in seen:
            seen.add(key)
            out.append(t)
        if len(out) == k:
            break
    return out


def tuned_variants(spec: TuneSpec, top: list[FrozenTrial]) -> dict[str, dict[str, Any]]:
    return {("tuned" if i == 0 else f"tuned_{i + 1}"): spec.overrides(t.params)
            for i, t in enumerate(top)}


def confirmation_study(study: StudyConfig, spec: TuneSpec,
                       variants: dict[str, dict[str, Any]]) -> StudyConfig:
    """The retrain as an ablation-style study: baseline (the base config) and the tuned
    variants, fresh seeds, test set ON, in the same results folder."""
    base = copy.deepcopy(study.base)
    base.setdefault("train", {})["eval_test"] = True
    raw = study.model_dump(mode="json", exclude_unset=True)
    raw.update(base=base, seeds=spec.confirm_seed_list(), storage=None, workers=None,
               launcher=None, design={"kind": "one_at_a_time", "variants": variants})
    return StudyConfig.model_validate(raw).with_overrides(study.overrides)


def retrain(study: StudyConfig, spec: TuneSpec, top: list[FrozenTrial], *, source: str,
            results_dir: Path, workers: int, data_dir: Path | None) -> StudyOutcome:
    confirm = confirmation_study(study, spec, tuned_variants(spec, top))
    console.print(f"retraining {len(top)} tuned config(s) and the baseline with seeds "
                  f"{spec.confirm_seed_list()} (test set on)")
    return run_study(confirm, source=source, results_dir=results_dir, workers=workers,
                     storage=None, data_dir=data_dir, report=False)


def run_tuning(study: StudyConfig, *, source: str, results_dir: Path, workers: int | None = None,
               storage: str | None = None, data_dir: Path | None = None,
               report: bool = True) -> TuneOutcome:
    """Search (or continue searching), retrain the best with fresh seeds next to the baseline,
    write tuning.json / tuning.md / figures and the study report."""
    started = time.perf_counter()
    if study.kind != "tune":
        raise ConfigError(f"{source}: kind {study.kind!r} is not a tuning study (kind: tune)")
    spec = parse_tune(study, source)
    results_dir = Path(results_dir)
    sdir = study_dir(results_dir, study.name)
    workers = workers or study.workers or default_workers()
    url = storage or study.storage or default_tune_storage(sdir, workers)
    if storage or study.storage:  # a shared storage is checked before anything is written
        open_tune_storage(url)
    with study_lock(sdir):
        ostudy = create_search(url, study, spec, source)
        requeue_orphans(ostudy)
        done = n_finished(ostudy)
        budget = f"{spec.n_trials} trials" if spec.n_trials else ""
        if spec.timeout:
            budget += f"{' or ' if budget else ''}{spec.timeout:g} s per worker"
        console.print(f"tuning [bold]{study.name}[/]: {budget} ({done} finished before), "
                      f"{'/'.join(spec.objective_names)} on the validation split, sampler "
                      f"{spec.sampler_name}, pruner {spec.pruner_name}, {workers} worker(s); "
                      f"storage {mask_url(url)}")
        t0 = time.perf_counter()
        if spec.n_trials is None or done < spec.n_trials:
            drive_search(url, study, spec, source, ostudy, results_dir, data_dir, workers)
        search_seconds = time.perf_counter() - t0
    top = top_trials(ostudy, spec, spec.retrain_top_k)
    confirm = None
    if top:
        confirm = retrain(study, spec, top, source=source, results_dir=results_dir,
                          workers=workers, data_dir=data_dir)
    else:
        console.print("[red]no trial completed: nothing to retrain[/]")
    files = write_outputs(sdir, ostudy, spec, study, storage_url=mask_url(url), top=top,
                          search_seconds=search_seconds)
    if report and confirm is not None:
        build_study_report(sdir)
        from harness.tracking.wandb_study import finish_study

        for line in finish_study(sdir):  # the study-level W&B run, as for an ablation
            console.print(line, soft_wrap=True)
    counts = {s: len(trials_of(ostudy, s)) for s in (TrialState.COMPLETE, TrialState.PRUNED,
                                                      TrialState.FAIL)}
    epochs = sum(trial_epochs(t) for t in trials_of(ostudy))
    return TuneOutcome(sdir, mask_url(url), spec.n_trials, counts[TrialState.COMPLETE],
                       counts[TrialState.PRUNED], counts[TrialState.FAIL], epochs,
                       dict(top[0].params) if top else {},
                       list(top[0].values) if top else [], search_seconds, confirm,
                       time.perf_counter() - started, files)


def trial_epochs(t: FrozenTrial) -> int:
    e = t.user_attrs.get("epochs_trained")
    return int(e) if e is not None else len(t.intermediate_values)
