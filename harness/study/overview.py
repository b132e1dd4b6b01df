"""What a study will do and where it stands, for people and scripts: the dry-run plan with its
cost, the jobs a launch submitted, the status of every run in the queue.

Listings go to standard output (plain or `--json`); progress and logs stay on standard
error, so `harness status dropout --json | jq` and `harness studies | grep` work.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import typer

from harness.console import console
from harness.errors import ConfigError
from harness.record.layout import QUEUE_DB
from harness.study.plan import RunSpec, expand
from harness.study.queue import RunQueue
from harness.study.spec import (
    StudyConfig,
    find_study_file,
    load_study,
    override_source,
    parse_overrides,
)
from harness.study.storage import default_storage_url, mask_url

STATES = ("finished", "running", "queued", "failed", "not queued")


def emit_json(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2, default=str))


def fmt_duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def table(rows: list[list[Any]], header: list[str]) -> None:
    """A plain aligned table on stdout (greppable, no colours)."""
    cells = [header] + [["" if c is None else str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    for r in cells:
        typer.echo("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())


# ----------------------------------------------------------------------------- dry run


def dry_run_study(name: str, *, sets: list[str] | None, results_dir: Path,
                  workers: int | None, data_dir: Path | None, as_json: bool) -> None:
    """The plan (variants x seeds, run ids, which are finished) and its compute estimate.
    Nothing is written: probes train in a temporary folder with W&B off."""
    from harness.study.estimate import Estimate, estimate
    from harness.study.execute import decide_workers, finished_ids, threads_per_worker

    path = find_study_file(name)
    overrides = parse_overrides(sets)
    study = load_study(path, overrides)
    source = override_source(path, overrides)
    specs = expand(study, source) if study.kind == "ablation" else tuning_plan(study, source)
    sdir = Path(results_dir) / study.name
    done = finished_ids(sdir, specs) if sdir.is_dir() else set()
    jobs = study.launcher.array_parallelism if study.launcher else None
    workers, _ = decide_workers(workers or jobs or study.workers, specs, len(specs) - len(done),
                                data_dir)
    threads = threads_per_worker(workers)
    if len(done) < len(specs):
        console.print(f"dry run of {study.name}: probing each model/data shape for two "
                      f"epochs ({threads} thread(s), nothing written)")
        est = estimate(specs, sdir, workers=workers, threads=threads, data_dir=data_dir,
                       finished=done)
    else:  # every run is finished: nothing to estimate, so nothing is probed
        est = Estimate(workers, threads, [])
    plan = [{"variant": s.variant, "seed": s.seed, "run_id": s.run_id,
             "finished": s.run_id in done, "epochs": s.config.train.epochs,
             "estimated_seconds": est.run_seconds.get(s.run_id)} for s in specs]
    if as_json:
        emit_json({"study": study.name, "overrides": study.overrides,
                   "variants": len({s.variant for s in specs}), "seeds": study.seed_list(),
                   "runs": plan, "finished": len(done), "to_run": len(specs) - len(done),
                   "estimate": est.to_json()})
        return
    print_plan(study, specs, plan, done)
    if not est.run_seconds:
        typer.echo(f"nothing to run: all {len(specs)} planned run(s) are finished "
                   "(the report is rebuilt from them)")
        return
    typer.echo(f"estimate ({workers} worker(s), {threads} thread(s) per run):")
    for shape in est.shapes:
        typer.echo(f"  {shape.label}: {shape.epoch_s:.2f} s/epoch + {shape.setup_s:.1f} s "
                   f"setup (from {shape.source}); {shape.runs} run(s) to run")
    typer.echo(f"  once: {est.startup_s:.1f} s start-up (a fresh process's imports), "
               f"{est.report_s:.0f} s report")
    typer.echo(f"  total: {est.cpu_hours:.3f} CPU-hours; wall about "
               f"{fmt_duration(est.wall_seconds)} on {workers} worker(s) (an upper bound "
               "when early stopping ends runs sooner)")
    if study.confirmation and study.kind == "ablation":
        print_confirmation(study, specs, est.run_seconds, sdir, workers)


def print_confirmation(study: StudyConfig, specs: list[RunSpec],
                       run_seconds: dict[str, float], sdir: Path, workers: int) -> None:
    """What the confirmation rounds may add after the screening runs above, per claim."""
    from harness.record.load import StudyRecord
    from harness.study.confirm import confirmation_cost
    from harness.study.runs_table import runs_table

    confirm = study.confirmation
    assert confirm is not None
    names = list(dict.fromkeys(s.variant for s in specs if not s.upstream))
    baseline = next((s.variant for s in specs if s.is_baseline), None)
    runs = runs_table(StudyRecord.load(sdir)) if (sdir / "study.json").is_file() else None
    per_run = sum(run_seconds.values()) / len(run_seconds) if run_seconds else 0.0
    typer.echo(f"then confirmation (looks at {confirm.plan(0.01).looks} seeds, at most "
               f"{confirm.minutes:g} min), per claim:")
    for c in [confirmation_cost(c, names, baseline, study.screen_seeds(), confirm, runs)
              for c in study.claim]:
        wall = [fmt_duration(n * per_run / workers) for n in (c.least, c.expected, c.most)]
        typer.echo(f"  {c.statement}: at least {c.least} runs ({wall[0]}), expected about "
                   f"{c.expected:.0f} ({wall[1]}; assuming {c.assumption}), at most {c.most} "
                   f"({wall[2]})")


def tuning_plan(study: StudyConfig, source: str) -> list[RunSpec]:
    """A tuning study's runs at most: every trial trained to the end (pruning and a timeout
    only shorten it), then the baseline and the top-k tuned configs on the confirmation
    seeds. Trials differ only in regularizer strengths, so they share the base's shape."""
    from harness.config import build_run_config
    from harness.study.tune_space import parse_tune

    spec = parse_tune(study, source)
    if spec.n_trials is None:
        raise ConfigError(f"{source}: tune.n_trials is not set (a timeout-only search): "
                          "the dry run cannot count its trials")
    out = []

    def add(variant: str, seed: int, run_id: str | None, eval_test: bool) -> None:
        raw = {**study.base, "study": study.name, "variant": variant, "seed": seed}
        raw["train"] = {**(raw.get("train") or {}), "eval_test": eval_test}
        cfg = build_run_config(raw, source)
        # trials and tuned configs get their ids once sampled: placeholders until then
        out.append(RunSpec(variant, seed, cfg, run_id or cfg.run_id(), {}, run_id is None))

    for n in range(spec.n_trials):
        add(f"trial-{n}", spec.search_seed, f"(trial {n})", False)
    for seed in spec.confirm_seed_list():
        add("baseline", seed, None, True)
        for k in range(spec.retrain_top_k):
            add("tuned" if k == 0 else f"tuned_{k + 1}", seed, f"(tuned seed {seed})", True)
    return out


def print_plan(study: StudyConfig, specs: list[RunSpec], plan: list[dict[str, Any]],
               done: set[str]) -> None:
    n_var = len({s.variant for s in specs})
    sets = " ".join(f"--set {k}={v}" for k, v in study.overrides.items())
    trials = sum(s.variant.startswith("trial-") for s in specs) if study.kind == "tune" else 0
    shape = (f"{trials} trials at most (pruning stops some early) + {len(specs) - trials} "
             "confirmation runs" if study.kind == "tune" else
             f"{n_var} variants x {len(study.seed_list())} seeds")
    typer.echo(f"study {study.name}{' with ' + sets if sets else ''}: {len(specs)} runs "
               f"({shape}), {len(done)} finished, {len(specs) - len(done)} to run")
    table([[p["variant"], p["seed"], p["run_id"], p["epochs"],
            "finished" if p["finished"] else "to run"] for p in plan],
          ["variant", "seed", "run id", "epochs", "state"])


# ----------------------------------------------------------------------------- launch


def launch_and_print(study: StudyConfig, flags: dict[str, Any], *, source: str,
                     results_dir: Path, storage: str | None, data_dir: Path | None,
                     as_json: bool) -> None:
    from harness.study.launch import launch_study, launcher_config

    launcher = launcher_config(study, flags)
    out, _ = launch_study(study, launcher, source=source, results_dir=results_dir,
                          storage=storage, data_dir=data_dir)
    if as_json:
        emit_json({"study": study.name, "storage": out.storage, "launcher": launcher.name,
                   "runs": out.total, "finished": out.finished, "queued": out.queued,
                   "job_ids": out.job_ids})
        return
    console.print(f"study [bold]{study.name}[/]: {out.total} runs, {out.finished} finished, "
                  f"{out.queued} queued now; queue {out.storage}", soft_wrap=True)
    if not out.job_ids:
        console.print("nothing to run: no job submitted")
        return
    console.print(f"submitted {len(out.job_ids)} {launcher.name} worker job(s) "
                  f"(logs in {out.study_dir / 'jobs'}):")
    for job_id in out.job_ids:
        typer.echo(job_id)
    console.print(f"watch: harness status {study.name} --storage {out.storage}; when done: "
                  f"harness report {study.name} --storage {out.storage}", soft_wrap=True)


# ----------------------------------------------------------------------------- status


def status_storage(name: str, storage: str | None, results_dir: Path) -> str:
    """--storage, else the local queue of results/<name>/, else the study file's storage."""
    if storage:
        return storage
    local = Path(results_dir) / name / QUEUE_DB
    if local.is_file():
        return default_storage_url(local.parent)
    try:
        configured = load_study(name).storage
    except ConfigError:
        configured = None
    if configured:
        return configured
    raise ConfigError(f"{name}: no local queue in {local.parent} and no storage in the study "
                      "file; pass --storage URL")


def print_status(name: str, *, storage: str | None, results_dir: Path, as_json: bool) -> None:
    from harness.study.execute import finished_ids
    from harness.study.launch import read_jobs

    url = status_storage(name, storage, results_dir)
    q = RunQueue.existing(url, name)
    sdir = Path(results_dir) / name
    manifest = q.manifest() or {}
    specs = q.planned_specs()
    planned = [p.get("run_id") for p in manifest.get("planned") or []]
    if planned:
        by_id = {s.run_id: s for s in specs}
        specs = [by_id[r] for r in planned if r in by_id]
    states = q.states([(s.run_id, s.variant, s.seed) for s in specs])
    local = finished_ids(sdir, specs) if sdir.is_dir() else set()
    for st in states:
        if st.run_id in local and st.state != "finished":
            st.state, st.status = "finished", st.status or "completed"
    counts = Counter(st.state for st in states)
    jobs = read_jobs(sdir)
    if as_json:
        emit_json({"study": name, "storage": mask_url(url), "overrides":
                   manifest.get("overrides") or {}, "counts": {k: counts.get(k, 0)
                                                              for k in STATES},
                   "runs": [st.to_json() for st in states], "jobs": jobs})
        return
    typer.echo(f"study {name} on {mask_url(url)}: " +
               ", ".join(f"{counts.get(k, 0)} {k}" for k in STATES if counts.get(k)))
    table([[st.variant, st.seed, st.run_id, st.state, st.status or "", st.attempts or "",
            st.job_id or "", st.host or "", st.error or ""] for st in states],
          ["variant", "seed", "run id", "state", "status", "errors", "job", "host",
           "last error"])
    if jobs:
        typer.echo(f"jobs submitted: {' '.join(j['job_id'] for j in jobs)}")
