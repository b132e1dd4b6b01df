"""The `harness` command line: parse, call, print. The work lives in the modules.

Why one module of about 630 lines: one typer app, one function per command with its options
declared in its signature (that is the --help text); each command body only calls one module
and prints, and the modules are imported inside the commands so `harness --help` and a
refused input never import torch.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape

from harness.errors import HarnessError
from harness.prefetch import import_in_background
from harness.record.layout import QUEUE_DB, REPORT_HTML, runs_dir

if TYPE_CHECKING:  # typing only: the CLI answers bad input before importing PyTorch
    from harness.study.execute import StudyOutcome

# Plain help (click's): no markup to eat `[workspaces]` in `pip install 'harness[workspaces]'`,
# on/off options shown as `--dry-run / --no-dry-run`, and nothing boxed at 80 columns in logs.
app = typer.Typer(add_completion=False, no_args_is_help=True, rich_markup_mode=None,
                  help="Ablation harness for regularization in deep learning.")


def flag(name: str, help: str) -> Any:
    """An on/off option: `--NAME / --no-NAME`, no value."""
    return typer.Option(f"--{name}/--no-{name}", help=help, show_default=False)

# timm-style shortcut flags -> dotted config keys
SHORTCUTS: dict[str, str] = {
    "drop": "regularizers.dropout.p",
    "drop_connect": "regularizers.dropconnect.p",
    "drop_path": "regularizers.drop_path.rate",
    "weight_decay": "regularizers.weight_decay.value",
    "smoothing": "regularizers.label_smoothing.epsilon",
    "mixup": "regularizers.mix.mixup_alpha",
    "cutmix": "regularizers.mix.cutmix_alpha",
    "model_ema": "regularizers.ema.decay",
    "clip_grad": "regularizers.grad_clip.threshold",
    "clip_mode": "regularizers.grad_clip.mode",
    "patience": "regularizers.early_stopping.patience",
}


# what the coordinator imports for the report once a worker's core is free (harness.prefetch)
REPORT_MODULES = ("harness.publish.finish", "harness.publish.study_run", "wandb")


def prefetch_report() -> None:
    import_in_background(REPORT_MODULES)


def fail(err: BaseException, debug: bool, queue: str | None = None) -> None:
    """Any error as one line (harness/failures.py) and its exit code: 2 the user can fix
    it, 1 the environment failed. `--debug` shows the traceback instead."""
    from harness.console import error_line
    from harness.errors import one_line
    from harness.failures import describe

    if debug or isinstance(err, typer.Exit):
        raise err
    known = describe(err, queue)
    error_line(one_line(known, 1000))
    raise typer.Exit(code=known.exit_code)


def study_to_run(name: str, kind: str, results_dir: Path,
                 sets: list[str] | None = None) -> tuple[str, Any]:
    """The study's source (file plus any --set) and config, checked to be of `kind`, with a
    writable results folder."""
    from harness.record.disk import ensure_writable
    from harness.study.spec import find_study_file, load_study, override_source, parse_overrides

    path = find_study_file(name)
    overrides = parse_overrides(sets)
    cfg = load_study(path, overrides)
    source = override_source(path, overrides)
    from harness.config import structure_only

    with structure_only():  # keys, types, names, ranges of every run: before PyTorch loads
        if cfg.kind == "ablation":
            from harness.study.plan import expand

            expand(cfg, source)
        else:
            from harness.study.tune_space import parse_tune

            parse_tune(cfg, source)
    if cfg.kind != kind:
        verb = "tune" if cfg.kind == "tune" else "ablation"
        raise HarnessError(f"{path}: kind is {cfg.kind!r}; run it with "
                           f"`make {verb} STUDY={cfg.name}`")
    ensure_writable(results_dir / cfg.name)  # the study folder, or the first that exists
    return source, cfg


def say(line: str) -> None:
    """A line for the user (standard error), never broken inside a path or URL."""
    from harness.console import console

    console.print(line, soft_wrap=True)


def interrupted(err: KeyboardInterrupt) -> None:
    """Ctrl-C or SIGTERM: what is kept, and the command as it was typed (its --results-dir,
    --set and every other option), which resumes the same study."""
    from harness.console import console
    from harness.interrupts import Terminated, exit_code

    what = "terminated (SIGTERM)" if isinstance(err, Terminated) else "interrupted"
    console.print(f"\n[yellow]{what}[/]: finished runs and the last epoch checkpoint are "
                  f"kept; to resume, run again: {escape(typed_command())}", soft_wrap=True,
                  highlight=False)
    raise typer.Exit(code=exit_code(err))


def typed_command() -> str:
    """This process's command line, as the user could type it again (a storage URL's
    password masked, as everywhere else)."""
    import shlex
    import sys

    from harness.study.storage import mask_url

    program = [sys.argv[0]] if Path(sys.argv[0]).name == "harness" else \
        ["python", "-m", "harness.cli"]
    args = [mask_url(a) for a in sys.argv[1:]]
    masked = " (the storage password where *** is)" if args != sys.argv[1:] else ""
    return shlex.join([*program, *args]) + masked


Debug = Annotated[bool, flag("debug", "Show tracebacks for errors.")]
DataDir = Annotated[Path | None, typer.Option(
    "--data-dir", help="Dataset folder (default: $HARNESS_DATA_DIR, else a per-user cache).")]


@app.command()
def run(
    config: Annotated[Path | None, typer.Option("--config", "-c", help="Run config YAML.")] = None,
    dataset: Annotated[str | None, typer.Option(help="mnist1d, digits, mnist, ...")] = None,
    model: Annotated[str | None, typer.Option(help="mlp, cnn, resnet, vit, ...")] = None,
    epochs: Annotated[int | None, typer.Option()] = None,
    seed: Annotated[int | None, typer.Option()] = None,
    width: Annotated[int | None, typer.Option()] = None,
    depth: Annotated[int | None, typer.Option()] = None,
    batch_size: Annotated[int | None, typer.Option()] = None,
    lr: Annotated[float | None, typer.Option()] = None,
    optimizer: Annotated[str | None, typer.Option(help="sgd, adam, adamw")] = None,
    schedule: Annotated[str | None, typer.Option(help="constant, cosine, step")] = None,
    label_noise: Annotated[float | None, typer.Option()] = None,
    train_size: Annotated[int | None, typer.Option()] = None,
    drop: Annotated[float | None, typer.Option(help="dropout p")] = None,
    drop_connect: Annotated[float | None, typer.Option(help="DropConnect p")] = None,
    drop_path: Annotated[float | None, typer.Option(help="stochastic depth rate")] = None,
    weight_decay: Annotated[float | None, typer.Option(help="weight decay lambda")] = None,
    smoothing: Annotated[float | None, typer.Option(help="label smoothing epsilon")] = None,
    mixup: Annotated[float | None, typer.Option(help="mixup alpha")] = None,
    cutmix: Annotated[float | None, typer.Option(help="cutmix alpha")] = None,
    model_ema: Annotated[float | None, typer.Option(help="EMA decay")] = None,
    clip_grad: Annotated[float | None, typer.Option(help="gradient clipping threshold")] = None,
    clip_mode: Annotated[str | None, typer.Option(help="norm, value, agc")] = None,
    patience: Annotated[int | None, typer.Option(help="early stopping patience")] = None,
    set_: Annotated[list[str] | None, typer.Option(
        "--set", help="Any config key: --set regularizers.dropout.p=0.3")] = None,
    data_dir: DataDir = None,
    download: Annotated[bool, flag("download", "Fetch a missing dataset.")] = False,
    wandb: Annotated[str | None, typer.Option(help="auto, online, offline, disabled")] = None,
    device: Annotated[str | None, typer.Option(help="auto, cpu, cuda")] = None,
    threads: Annotated[int | None, typer.Option(help="CPU threads")] = None,
    results_dir: Annotated[Path, typer.Option(help="Where results go.")] = Path("results"),
    study: Annotated[str | None, typer.Option(help="Study name (results/<study>/).")] = None,
    variant: Annotated[str | None, typer.Option(help="Variant name.")] = None,
    force: Annotated[bool, flag("force", "Re-run even if finished.")] = False,
    debug: Debug = False,
) -> None:
    """Train one run from flags and/or a YAML file, with a progress bar and a summary."""
    from harness.config import load_run_config, parse_override, structure_only

    values: dict[str, Any] = {
        "data.name": dataset, "model.name": model, "train.epochs": epochs, "seed": seed,
        "model.width": width, "model.depth": depth, "train.batch_size": batch_size,
        "optim.lr": lr, "optim.name": optimizer, "schedule.name": schedule,
        "data.label_noise": label_noise, "data.train_size": train_size,
        "tracking.wandb": wandb, "train.device": device, "train.threads": threads,
        "study": study, "variant": variant,
        "data.download": True if download else None,
    }
    local = locals()
    values.update({key: local[flag] for flag, key in SHORTCUTS.items()})
    if cutmix is not None and mixup is None:  # timm's flags: mixup's alpha is 0 unless given
        values["regularizers.mix.mixup_alpha"] = 0.0
    overrides = {k: v for k, v in values.items() if v is not None}
    try:
        for item in set_ or []:
            key, value = parse_override(item)
            overrides[key] = value
        with structure_only():  # keys, types, ranges: answered before PyTorch loads
            load_run_config(config, overrides)
        cfg = load_run_config(config, overrides)
        from harness.data.presence import check_data_present
        from harness.train.preflight import check_model_sizes

        check_data_present([cfg], data_dir)
        check_model_sizes([cfg], str(config) if config else "flags", data_dir)
        run_and_print(cfg, results_dir, data_dir, force)
    except Exception as err:  # disk full, folder removed under us, ...: one line
        fail(err, debug)
    except KeyboardInterrupt as err:
        interrupted(err)


def run_and_print(cfg: Any, results_dir: Path, data_dir: Path | None, force: bool) -> None:
    from harness.console import RunProgress, console
    from harness.record.disk import ensure_writable
    from harness.study.upstream import train_with_upstream
    from harness.tracking.wandb_tracker import wandb_run_tracker
    from harness.train.loop import train_run

    ensure_writable(results_dir)
    result = train_with_upstream(cfg, train_run, results_dir=results_dir, data_dir=data_dir,
                                 reporter=RunProgress(), force=force,
                                 tracker_for=lambda c: wandb_run_tracker(c, results_dir))
    s = result.summary
    where = result.run_dir.path
    if not result.rows and s.get("status") == "completed":
        console.print(f"already finished: {where} (use --force to run again)")
    console.print(summary_text(s))
    console.print(f"results: {where}")
    wandb_dir = (s.get("wandb") or {}).get("run_dir")
    if (s.get("wandb") or {}).get("mode") == "offline" and wandb_dir:
        console.print(f"W&B offline run: {wandb_dir}  (upload later: wandb sync {wandb_dir})")


def summary_text(s: dict[str, Any]) -> str:
    parts = [f"status {s.get('status')}", f"{s.get('epochs_run')} epochs",
             f"{s.get('wall_time', 0):.1f}s", f"{s.get('params', 0):,} params"]
    if s.get("best_epoch") is not None:
        parts.append(f"best val acc {s.get('best_val_acc', float('nan')):.4f} "
                     f"(epoch {s['best_epoch']})")
    if s.get("final_test_acc") is not None:
        parts.append(f"test acc {s['final_test_acc']:.4f}")
    return " | ".join(parts)


Workers = Annotated[int | None, typer.Option(
    "--workers", "-w", help="Local worker processes (default: by model size: one "
    "single-threaded worker per core for small models, else one per 2 cores with 2 threads "
    "each; printed when the study starts).")]
PopulationSize = Annotated[int | None, typer.Option(
    "--population", min=1, help="Queued runs of one shape a worker trains together as one "
    "model (default: chosen from the model size and the machine; 1: every run alone).")]
Storage = Annotated[str | None, typer.Option(
    "--storage", help="Queue storage URL (default: SQLite file in results/<study>/; "
    "postgresql://... for workers on several machines).")]
ResultsDir = Annotated[Path, typer.Option("--results-dir", help="Where results go.")]
StudySet = Annotated[list[str] | None, typer.Option(
    "--set", help="Override a study key without editing the file: --set base.train.epochs=5, "
    "--set seeds=1 (recorded in study.json and the report).")]
DryRun = Annotated[bool, flag(
    "dry-run", "Print the plan and a compute estimate (two-epoch probes of the shapes still "
    "to run); write nothing.")]
Json = Annotated[bool, flag("json", "Machine-readable output on stdout.")]


@app.command()
def studies(
    kind: Annotated[str | None, typer.Option(help="ablation or tune")] = None,
    json_: Json = False,
    table: Annotated[bool, typer.Option(
        "--table", help="The ablation studies' results as a Markdown table: minutes, load, "
        "claim verdicts (from RESULTS_DIR).")] = False,
    results_dir: ResultsDir = Path("results"),
    write: Annotated[Path | None, typer.Option(
        "--write", help="With --table: replace the table between the markers of this file "
        "(docs/studies.md).")] = None,
) -> None:
    """List the shipped studies with what each shows (on stdout)."""
    from harness.console import console
    from harness.study.spec import list_studies

    if table:
        from harness.report import studies_table

        try:
            text = studies_table.markdown(studies_table.collect(results_dir,
                                                                list_studies("ablation")))
            if write is not None:
                studies_table.write_between_markers(write, text)
        except Exception as err:
            fail(err, False, None)
            return
        typer.echo(text)
        return
    rows = list_studies(kind)
    if json_:
        from harness.study.overview import emit_json

        kinds = {n: k for k in ("ablation", "tune") for n, _ in list_studies(k)}
        emit_json([{"name": n, "kind": kinds.get(n), "description": line} for n, line in rows])
        return
    console.print("studies (make ablation STUDY=NAME / make tune STUDY=NAME):")
    width = max((len(n) for n, _ in rows), default=10)
    for name, line in rows:
        typer.echo(f"  {name:<{width}}  {line}")


@app.command()
def datasets(
    data_dir: DataDir = None,
    plugin: Annotated[list[str] | None, typer.Option(
        "--plugin", help="Import this module first (repeatable), like `plugins:`.")] = None,
    as_json: Annotated[bool, flag("json", "One JSON list on stdout.")] = False,
    debug: Debug = False,
) -> None:
    """List datasets (built-in and plug-in): source, and whether their files are present."""
    import json

    from harness.data import resolve_data_dir
    from harness.data.catalog import dataset_rows
    from harness.plugins import import_plugins

    try:
        import_plugins(plugin or [], source="--plugin")
        root = resolve_data_dir(None, None if data_dir is None else str(data_dir))
        rows = dataset_rows(root)
    except HarnessError as err:
        fail(err, debug)
    from harness.console import console
    from harness.plugins import failed_loads

    failed = failed_loads("dataset")  # an installed plug-in that is not listed: say why
    for line in failed:
        console.print(f"[yellow]warning:[/] {escape(line)}", soft_wrap=True)
    if as_json:
        print(json.dumps({"data_dir": str(root), "datasets": rows, "failed_plugins": failed},
                         indent=2))
        return
    print(f"datasets (data folder {root}; fetch missing files with --download):")
    cols = [("name", "name"), ("kind", "kind"), ("source", "source"), ("files", "files")]
    widths = {k: max(len(h), *(len(str(r[k])) for r in rows)) for k, h in cols}
    print("  " + "  ".join(f"{h:<{widths[k]}}" for k, h in cols) + "  description")
    for r in rows:
        print("  " + "  ".join(f"{r[k]!s:<{widths[k]}}" for k, _ in cols) + f"  {r['summary']}")


@app.command()
def ablation(
    study: Annotated[str, typer.Argument(help="Study name (studies/NAME.yaml) or a YAML path.")],
    workers: Workers = None,
    storage: Storage = None,
    results_dir: ResultsDir = Path("results"),
    data_dir: DataDir = None,
    population: PopulationSize = None,
    no_report: Annotated[bool, typer.Option(
        "--no-report/--report", help="Skip the report (default: write it).",
        show_default=False)] = False,
    set_: StudySet = None,
    dry_run: DryRun = False,
    json_: Json = False,
    launcher: Annotated[str | None, typer.Option(
        "--launcher", help="Run the workers as batch jobs: slurm (a job array) or local "
        "(submitit subprocesses); none: here. Default: the study file's launcher section.")
    ] = None,
    slurm_partition: Annotated[str | None, typer.Option("--slurm-partition")] = None,
    slurm_gpus_per_task: Annotated[int | None, typer.Option("--slurm-gpus-per-task")] = None,
    slurm_cpus_per_task: Annotated[int | None, typer.Option("--slurm-cpus-per-task")] = None,
    slurm_mem_gb: Annotated[float | None, typer.Option("--slurm-mem-gb")] = None,
    slurm_timeout_min: Annotated[int | None, typer.Option(
        "--slurm-timeout-min", help="Time limit of each worker job.")] = None,
    jobs: Annotated[int | None, typer.Option(
        "--slurm-array-parallelism", "--jobs", help="Worker jobs to submit (all may run at "
        "once).")] = None,
    debug: Debug = False,
) -> None:
    """Run a whole study (resumable: finished runs are skipped), then write its report."""
    queue = None
    try:
        if dry_run:
            from harness.study.overview import dry_run_study

            dry_run_study(study, sets=set_, results_dir=results_dir, workers=workers or jobs,
                          data_dir=data_dir, as_json=json_)
            return
        source, cfg = study_to_run(study, "ablation", results_dir, set_)
        if launcher is None or launcher == "none":
            # the worker server imports torch and wandb while this process checks the study
            # fully and plans it (a study refused then stops it at exit)
            from harness.study.processes import warm_worker_server

            warm_worker_server(workers or cfg.workers)
        queue = None if storage or cfg.storage else str(results_dir / cfg.name / QUEUE_DB)
        if launcher != "none" and (launcher or cfg.launcher):
            from harness.study.overview import launch_and_print

            flags = {"name": launcher, "partition": slurm_partition,
                     "gpus_per_task": slurm_gpus_per_task, "cpus_per_task": slurm_cpus_per_task,
                     "mem_gb": slurm_mem_gb, "timeout_min": slurm_timeout_min,
                     "array_parallelism": jobs}
            launch_and_print(cfg, flags, source=source, results_dir=results_dir,
                             storage=storage, data_dir=data_dir, as_json=json_)
            return
        from harness.study.execute import run_study
        from harness.study.timing import CommandClock

        clock = CommandClock.start()
        out = run_study(cfg, source=source, results_dir=results_dir, workers=workers,
                        storage=storage, data_dir=data_dir,
                        on_free_core=None if no_report else prefetch_report,
                        population=population, say=say)
        if not no_report:
            from harness.publish.finish import report_study

            report_study(out.study_dir, say)
        clock.finish(out.study_dir, runs=out.total, ran_before=out.ran_before,
                     workers=out.workers)
    except Exception as err:
        fail(err, debug, queue)
        return
    except KeyboardInterrupt as err:
        interrupted(err)
    say_outcome(out)


def say_outcome(out: StudyOutcome) -> None:
    """The end of `harness ablation`: runs finished, what did not finish, the report and
    each claim's verdict; exit 1 when runs are missing."""
    from harness.console import console

    console.print(f"{out.finished}/{out.total} runs finished "
                  f"({out.finished - out.ran_before - out.imported} trained here"
                  + (f", {out.imported} imported from other workers" if out.imported else "")
                  + f") in {out.seconds:.0f}s")
    if out.failed:
        console.print(f"[yellow]not finished ({len(out.failed)}):[/] "
                      "(listed in the report; run the same command again to retry)")
        for line in out.failed:
            console.print(f"  {escape(line)}", soft_wrap=True, highlight=False)
    report = out.study_dir / REPORT_HTML
    if report.is_file():
        console.print(f"report: {report}")
        say_verdicts(out.study_dir)
    if out.failed:
        raise typer.Exit(code=1)


def say_verdicts(study_dir: Path) -> None:
    """The claims' verdicts as the report states them, one line each: the answer a user ran
    the study for, without opening the report."""
    from harness.report.index import read_claims
    from harness.report.studies_table import verdict_label, worded_claims

    claims = worded_claims(read_claims(study_dir))
    if not claims:
        return
    from harness.console import console

    for c in claims:
        console.print(f"claim {verdict_label(c)}: {escape(c.get('text', ''))}", soft_wrap=True,
                      highlight=False)


@app.command()
def tune(
    study: Annotated[str, typer.Argument(help="Tuning study name (studies/NAME.yaml) or path.")],
    workers: Workers = None,
    storage: Annotated[str | None, typer.Option(
        "--storage", help="Optuna storage URL, one per tuning study: the search and its "
        "retrain queue (default: results/<study>/queue.db; postgresql://... for workers on "
        "several machines).")] = None,
    results_dir: ResultsDir = Path("results"),
    data_dir: DataDir = None,
    set_: StudySet = None,
    dry_run: DryRun = False,
    json_: Json = False,
    debug: Debug = False,
) -> None:
    """Search regularizer strengths jointly on the validation split, then confirm the winner
    on fresh seeds against the untuned baseline (the test set is read only then)."""
    from harness.console import console

    try:
        if dry_run:
            from harness.study.overview import dry_run_study

            dry_run_study(study, sets=set_, results_dir=results_dir, workers=workers,
                          data_dir=data_dir, as_json=json_)
            return
        source, cfg = study_to_run(study, "tune", results_dir, set_)
        from harness.publish.finish import report_tuning
        from harness.study.tune import run_tuning

        out = run_tuning(cfg, source=source, results_dir=results_dir, workers=workers,
                         storage=storage, data_dir=data_dir)
        report_tuning(out, say)
    except Exception as err:
        fail(err, debug)
        return
    except KeyboardInterrupt as err:
        interrupted(err)
    console.print(f"search: {out.complete} complete, {out.pruned} pruned, {out.failed} failed "
                  f"trials ({out.epochs} epochs) in {out.search_seconds:.0f}s; "
                  f"{out.best_text()}", soft_wrap=True)
    report = out.study_dir / REPORT_HTML
    if report.is_file():
        console.print(f"report: {report}")
    failed = out.retrain.failed if out.retrain is not None else []
    for line in failed:
        console.print(f"  not finished: {escape(line)}", soft_wrap=True, highlight=False)
    if out.complete == 0 or failed:
        raise typer.Exit(code=1)


@app.command()
def worker(
    study: Annotated[str, typer.Option("--study", help="Study name.")],
    storage: Annotated[str, typer.Option("--storage", help="Queue storage URL.")],
    results_dir: ResultsDir = Path("results"),
    data_dir: DataDir = None,
    threads: Annotated[int | None, typer.Option(help="CPU threads for this worker.")] = None,
    population: Annotated[int | None, typer.Option(
        "--population", min=1, help="Queued runs of one shape trained together as one model "
        "(default: the size the coordinator chose).")] = None,
    wait: Annotated[float, typer.Option(
        "--wait", min=0, help="Seconds to wait for the coordinator to create the study and "
        "queue its runs (default: none; an unknown study is an error).")] = 0.0,
    debug: Debug = False,
) -> None:
    """Join a running study from any machine: take its search trials (a tuning study) and
    queued runs until none is left."""
    from harness.console import console
    from harness.study.storage import mask_url

    try:
        from harness.study.worker import ProgressLines, wait_for_study, worker_loop

        kind = wait_for_study(storage, study, wait)
        console.print(f"worker for {'tuning ' if kind == 'tune' else ''}study {study} "
                      f"on {mask_url(storage)}")
        lines = ProgressLines(lambda line: console.print(line, soft_wrap=True))
        n = worker_loop(storage, study, results_dir, data_dir, threads, emit=lines,
                        population=population)
    except Exception as err:
        fail(err, debug)
        return
    except KeyboardInterrupt as err:
        interrupted(err)
    console.print(f"nothing left to take; this worker ran {n} run(s)")


@app.command()
def report(
    study: Annotated[str, typer.Argument(help="Study name (results/NAME/).")],
    results_dir: ResultsDir = Path("results"),
    storage: Annotated[str | None, typer.Option(
        "--storage", help="Build from the study's queue (postgresql://... or sqlite:///...): "
        "imports every finished run first, so it works on a machine that ran nothing.")] = None,
    debug: Debug = False,
) -> None:
    """(Re)build results/<study>/report.html and report.md from the local store."""
    from harness.console import console
    from harness.errors import ConfigError
    from harness.study.storage import mask_url

    sdir = results_dir / study
    try:
        from harness.report.build import build_report
        from harness.study.execute import import_study

        if storage:
            n = import_study(storage, study, sdir)
            console.print(f"imported {n} run(s) from {mask_url(storage)}")
        if not runs_dir(sdir).is_dir():
            raise ConfigError(f"{sdir}: no runs found (run `make ablation STUDY={study}` first, "
                              "or pass --storage URL to read them from the study's queue)")
        html = build_report(sdir).html
    except Exception as err:
        fail(err, debug)
        return
    console.print(f"report: {html}")


@app.command()
def status(
    study: Annotated[str, typer.Argument(help="Study name (results/NAME/).")],
    storage: Annotated[str | None, typer.Option(
        "--storage", help="Queue URL (default: the study's local queue, else the study "
        "file's storage).")] = None,
    results_dir: ResultsDir = Path("results"),
    json_: Json = False,
    debug: Debug = False,
) -> None:
    """Each run of a study: queued, running, finished or failed, with its job and host."""
    from harness.study.overview import print_status

    try:
        print_status(study, storage=storage, results_dir=results_dir, as_json=json_)
    except HarnessError as err:
        fail(err, debug)


@app.command()
def sync(
    study: Annotated[str, typer.Argument(help="Study name (results/NAME/).")],
    results_dir: ResultsDir = Path("results"),
    timeout: Annotated[float, typer.Option(
        "--timeout", min=1, help="Seconds allowed per run's upload.")] = 120.0,
    debug: Debug = False,
) -> None:
    """Upload every offline W&B run of a study (wraps `wandb sync`), one line per run."""
    from harness.console import console

    try:
        from harness.publish.wandb import offline_run_dirs, sync_study

        sdir = results_dir / study
        console.print(f"syncing {len(offline_run_dirs(sdir))} offline W&B run folder(s) of "
                      f"{study}")
        result = sync_study(sdir, timeout_s=timeout,
                            progress=lambda line: console.print(line, soft_wrap=True))
        if result.not_logged_in:  # the user's to fix: exit 2, like any other bad input
            raise HarnessError(f"{study}: nothing synced: {result.not_logged_in}")
    except Exception as err:
        fail(err, debug)
        return
    console.print(result.summary_line(), soft_wrap=True)
    if not result.ok:
        raise typer.Exit(code=1)


@app.command("wandb-report")
def wandb_report(
    study: Annotated[str, typer.Argument(help="Study name (results/NAME/).")],
    results_dir: ResultsDir = Path("results"),
    project: Annotated[str | None, typer.Option(help="W&B project.")] = None,
    entity: Annotated[str | None, typer.Option(help="W&B entity.")] = None,
    dry_run: Annotated[bool, flag(
        "dry-run", "Write the Report spec to results/<study>/wandb_report.json instead of "
        "creating the Report (works offline).")] = False,
) -> None:
    """Build the study's W&B Report (online; needs `pip install 'harness[workspaces]'`)."""
    from harness.console import console
    from harness.publish.wandb import create_wandb_report, write_report_spec

    sdir = results_dir / study
    if not runs_dir(sdir).is_dir():
        fail(HarnessError(f"{sdir}: no runs found (run the study first)"), False)
    if dry_run:
        path = write_report_spec(sdir, project=project, entity=entity)
        console.print(f"W&B Report spec: {path}")
        return
    outcome = create_wandb_report(sdir, project=project, entity=entity, from_command=True)
    console.print(outcome.message, soft_wrap=True)
    if not outcome.ok:
        raise typer.Exit(code=1)


def main() -> None:  # pragma: no cover - console entry
    from harness.interrupts import terminate_as_interrupt

    os.environ.setdefault("WANDB_SILENT", "true")
    with terminate_as_interrupt():
        app()


if __name__ == "__main__":  # pragma: no cover
    main()
