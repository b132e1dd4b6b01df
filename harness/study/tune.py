"""Hyperparameter search on the validation split with Optuna, then an honest confirmation.

A tuning study (`kind: tune`) searches its `tune.space` (see `harness.study.tune_space`)
with a seeded sampler and a pruner. The search is work for the same workers as an ablation
(harness/study/search.py: each trial one run with the test set OFF, reporting its
validation metric every epoch), driven by the same supervisor. The study lives in ONE
storage (results/<study>/queue.db, or a PostgreSQL URL for workers on many machines)
holding both the Optuna search and the run queue of its retrain; re-running continues
the same study. After the search, the best config (and the top k) is retrained with fresh
seeds WITH the test set, next to the untuned baseline, as an ordinary one_at_a_time study
in the same results folder and storage, so the standard report compares tuned vs baseline.

Layout of results/<study>/:
    queue.db                    the search (`<study>:tune`) and the retrain queue (`:runs`)
    search/<study>/runs/        one run folder per search trial (variant trial-<n>)
    runs/                       baseline / tuned retrain runs (what the report reads)
    study.json                  ablation-style manifest (design one_at_a_time)
    tuning.json, tuning.md      search summary; figures/tuning/*.png (the CLI writes them)
"""

from __future__ import annotations

import copy
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState
from rich.markup import escape

from harness.config import build_run_config
from harness.console import console
from harness.data.presence import check_data_present
from harness.errors import ConfigError
from harness.record.numbers import finite
from harness.study.execute import (
    StudyOutcome,
    default_workers,
    drive_workers,
    run_study,
    study_lock,
)
from harness.study.processes import warm_worker_server
from harness.study.search import create_search, n_finished, search_progress, trials_of
from harness.study.spec import StudyConfig
from harness.study.storage import default_storage_url, mask_url, open_storage
from harness.study.tune_space import TuneSpec, parse_tune
from harness.train.loop import study_dir


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
    # what the tuning report (harness/report/tune_report.py) is written from
    study: StudyConfig
    spec: TuneSpec
    search: optuna.Study
    top: list[FrozenTrial]

    def best_text(self) -> str:
        """`best val_acc 0.265 with dropout_p=0.1`: each objective by name, 4 significant
        digits, and the best trial's params under their Optuna/W&B labels."""
        if not self.best_values:
            return "no trial completed"
        names = self.spec.objective_names
        values = ", ".join(f"{name} {value:.4g}"
                           for name, value in zip(names, self.best_values, strict=False))
        params = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                           for k, v in self.best_params.items())
        return f"best {values}" + (f" with {params}" if params else "")


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
            results_dir: Path, workers: int, storage: str,
            data_dir: Path | None) -> StudyOutcome:
    """The confirmation runs, queued in the search's own storage."""
    confirm = confirmation_study(study, spec, tuned_variants(spec, top))
    console.print(f"retraining {len(top)} tuned config(s) and the baseline with seeds "
                  f"{spec.confirm_seed_list()} (test set on)")
    return run_study(confirm, source=source, results_dir=results_dir, workers=workers,
                     storage=storage, data_dir=data_dir)


def run_tuning(study: StudyConfig, *, source: str, results_dir: Path, workers: int | None = None,
               storage: str | None = None, data_dir: Path | None = None) -> TuneOutcome:
    """Search (or continue searching), then retrain the best with fresh seeds next to the
    baseline. The CLI writes tuning.json / tuning.md / figures and the study report."""
    started = time.perf_counter()
    if study.kind != "tune":
        raise ConfigError(f"{source}: kind {study.kind!r} is not a tuning study (kind: tune)")
    spec = parse_tune(study, source)
    check_data_present([build_run_config({**study.base, "study": study.name}, source)],
                       data_dir)
    results_dir = Path(results_dir)
    sdir = study_dir(results_dir, study.name)
    workers = workers or study.workers or default_workers()
    warm_worker_server(workers)  # its imports overlap the search's set-up
    url = storage or study.storage or default_storage_url(sdir)
    if storage or study.storage:  # a shared storage is checked before anything is written
        open_storage(url)
    with study_lock(sdir):
        ostudy = create_search(url, study, spec, source)
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
            drive_workers(url, study.name, results_dir=results_dir, data_dir=data_dir,
                          workers=workers, kinds=("tune",), total=spec.n_trials,
                          count=lambda: search_progress(ostudy, spec), timeout=spec.timeout)
        search_seconds = time.perf_counter() - t0
    top = top_trials(ostudy, spec, spec.retrain_top_k)
    confirm = None
    if top:
        confirm = retrain(study, spec, top, source=source, results_dir=results_dir,
                          workers=workers, storage=url, data_dir=data_dir)
    else:
        why = escape(last_failure(ostudy))
        console.print(f"[red]no trial completed: nothing to retrain[/]{why}", soft_wrap=True)
    counts = {s: len(trials_of(ostudy, s)) for s in (TrialState.COMPLETE, TrialState.PRUNED,
                                                      TrialState.FAIL)}
    epochs = sum(trial_epochs(t) for t in trials_of(ostudy))
    return TuneOutcome(sdir, mask_url(url), spec.n_trials, counts[TrialState.COMPLETE],
                       counts[TrialState.PRUNED], counts[TrialState.FAIL], epochs,
                       dict(top[0].params) if top else {},
                       list(top[0].values) if top else [], search_seconds, confirm,
                       time.perf_counter() - started, study, spec, ostudy, top)


def last_failure(ostudy: optuna.Study) -> str:
    """`; the last failed trial: <its error's last line>`, or nothing when none failed."""
    failed = trials_of(ostudy, TrialState.FAIL)
    lines = [line for line in str(failed[-1].user_attrs.get("error") or "").splitlines()
             if line.strip()] if failed else []
    return f" (last failed trial {failed[-1].number}: {lines[-1].strip()})" if lines else ""


def trial_epochs(t: FrozenTrial) -> int:
    e = t.user_attrs.get("epochs_trained")
    return int(e) if e is not None else len(t.intermediate_values)
