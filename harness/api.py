"""The Python API for notebooks and scripts: three verbs over the same code the CLI calls.

    import harness
    run = harness.run({"model": {"name": "mlp"}, "train": {"epochs": 3}})
    study = harness.ablation("dropout", workers=2, seeds=1)   # studies/ name or YAML; --set
    study = harness.load_study("results/dropout")
    study.summary[["variant", "best_test_acc_mean", "p_value"]]

Errors are the CLI's: a `harness.errors.HarnessError` whose message is the one line the
CLI would print. `load_study` reads through the study record (StudyRecord.load) and the
report's tables, so the API and the report never disagree about which runs count.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from harness.errors import ConfigError
from harness.interrupts import terminate_as_interrupt


@dataclass
class RunOutput:
    """One finished (or stopped) run: where it is, its summary and its per-epoch metrics."""

    path: Path
    run_id: str
    config: dict[str, Any]
    summary: dict[str, Any]
    metrics: pd.DataFrame


@dataclass
class StudyTables:
    """A study as pandas tables: one row per run, per epoch of every run, and per variant."""

    name: str
    dir: Path
    runs: pd.DataFrame  # every run folder read; `included` says which ones the means use
    metrics: pd.DataFrame  # per-epoch rows of the included runs
    summary: pd.DataFrame  # one row per variant, with the comparison against the baseline
    left_out: pd.DataFrame  # runs not in the means (failed checks, unfinished, never run), why
    baseline: str | None


def run(config: Any = None, *, results_dir: str | Path = "results",
        data_dir: str | Path | None = None, force: bool = False,
        **overrides: Any) -> RunOutput:
    """Train one run. `config`: a RunConfig, a mapping, a YAML path or None (defaults);
    `overrides` are dotted keys with `__` for dots, e.g. `train__epochs=3`."""
    from harness.config import RunConfig, build_run_config, load_run_config
    from harness.data.presence import check_data_present
    from harness.record.disk import ensure_writable
    from harness.study.upstream import train_with_upstream
    from harness.tracking.wandb_tracker import wandb_run_tracker
    from harness.train.loop import train_run

    dotted = {k.replace("__", "."): v for k, v in overrides.items()}
    if isinstance(config, RunConfig):
        cfg = build_run_config(config.model_dump(mode="json"), "config", dotted)
    elif isinstance(config, dict):
        cfg = build_run_config(config, "config", dotted)
    elif config is None or isinstance(config, (str, Path)):
        cfg = load_run_config(config, dotted)
    else:
        raise ConfigError(f"harness.run: config must be a RunConfig, a mapping or a YAML path, "
                          f"got {type(config).__name__}")
    check_data_present([cfg], data_dir)
    ensure_writable(Path(results_dir))
    with terminate_as_interrupt():  # SIGTERM records the run as interrupted, as Ctrl-C does
        result = train_with_upstream(cfg, train_run, results_dir=results_dir,
                                     data_dir=data_dir, force=force,  # a teacher trains first
                                     tracker_for=lambda c: wandb_run_tracker(c, results_dir))
    rd = result.run_dir
    return RunOutput(rd.path, cfg.run_id(), cfg.model_dump(mode="json"), dict(result.summary),
                     pd.DataFrame(rd.metrics()))


def ablation(study: str | Path, *, workers: int | None = None,
             results_dir: str | Path = "results", data_dir: str | Path | None = None,
             storage: str | None = None, report: bool = True,
             overrides: Mapping[str, Any] | Sequence[str] | None = None,
             **dotted: Any) -> StudyTables:
    """Run a study (finished runs are skipped) and return its tables; `report` also writes
    report.html / report.md as `harness ablation` does.

    Overrides are the CLI's `--set`, recorded in study.json alike: `overrides` as a mapping
    of dotted keys ({"base.train.epochs": 5, "seeds": 1}) or as "key=value" strings, and
    keyword arguments with `__` for dots (`base__train__epochs=5`). Workers are processes of
    their own (harness/study/processes.py): no `if __name__ == "__main__":` guard needed."""
    from harness.record.disk import ensure_writable
    from harness.study.execute import run_study
    from harness.study.spec import find_study_file, override_source
    from harness.study.spec import load_study as load_study_config

    path = find_study_file(str(study))
    sets = study_overrides(overrides, dotted)
    cfg = load_study_config(path, sets)
    if cfg.kind != "ablation":
        raise ConfigError(f"{path}: kind is {cfg.kind!r}; harness.ablation runs ablation studies")
    ensure_writable(Path(results_dir))
    with terminate_as_interrupt():  # SIGTERM stops the workers as Ctrl-C does
        outcome = run_study(cfg, source=override_source(path, sets),
                            results_dir=Path(results_dir), workers=workers, storage=storage,
                            data_dir=None if data_dir is None else Path(data_dir))
    if report:
        from harness.console import console
        from harness.publish.finish import report_study

        report_study(outcome.study_dir, lambda line: console.print(line, soft_wrap=True))
    return load_study(outcome.study_dir)


def study_overrides(overrides: Mapping[str, Any] | Sequence[str] | None,
                    dotted: Mapping[str, Any]) -> dict[str, Any]:
    """The API's overrides as the CLI's parsed `--set` items: {dotted key: value}."""
    from harness.study.spec import parse_overrides

    if overrides is None:
        out: dict[str, Any] = {}
    elif isinstance(overrides, Mapping):
        out = dict(overrides)
    elif isinstance(overrides, (list, tuple)):
        out = parse_overrides([str(item) for item in overrides])
    else:
        raise ConfigError(f"harness.ablation: overrides must be a mapping of dotted keys or a "
                          f"list of 'key=value' strings, got {type(overrides).__name__}")
    out.update({k.replace("__", "."): v for k, v in dotted.items()})
    return out


def load_study(study: str | Path, *, results_dir: str | Path = "results") -> StudyTables:
    """A study folder (or a study name under `results_dir`) as DataFrames."""
    from harness.record import StudyRecord
    from harness.report.tables import summary_table
    from harness.study.runs_table import runs_table

    folder = Path(study)
    if not folder.is_dir():
        folder = Path(results_dir) / str(study)
    if not folder.is_dir():
        raise ConfigError(f"{study}: no such study folder (nor {folder})")
    record = StudyRecord.load(folder)
    runs = runs_table(record)
    return StudyTables(name=record.name, dir=folder, runs=runs,
                       metrics=_metrics_frame(record), summary=summary_table(record, runs),
                       left_out=pd.DataFrame(record.left_out(), columns=[
                           "variant", "seed", "run_id", "status", "reason", "path"]),
                       baseline=record.baseline)


def _metrics_frame(record: Any) -> pd.DataFrame:
    """Every included run's per-epoch rows, keyed by variant, seed and run id."""
    frames = [r.metrics.assign(variant=r.variant, seed=r.seed, run_id=r.run_id)
              for r in record.included if len(r.metrics)]
    if not frames:
        return pd.DataFrame(columns=["variant", "seed", "run_id", "epoch"])
    df = pd.concat(frames, ignore_index=True)
    first = ["variant", "seed", "run_id", "epoch"]
    return df[first + [c for c in df.columns if c not in first]]
