"""Output read off a terminal and the command-line help (issue 32, item 20): logs and CI
get whole lines (no wrap at 80 columns, no progress column cut to an ellipsis); `--help`
shows extras, on/off options and the worker default as they are; `--dry-run` on a
finished study probes nothing."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import invoke_cli as invoke
from conftest import sweep_file as write_study

from harness.study import estimate as estimate_mod
from harness.study import execute as execute_mod


def one_spaced(text: str) -> str:
    return " ".join(text.split())


@pytest.fixture(autouse=True)
def no_columns(monkeypatch: pytest.MonkeyPatch) -> None:
    """COLUMNS, when set (pytest-xdist's workers set 80), is the user's width: honoured."""
    monkeypatch.delenv("COLUMNS", raising=False)


@pytest.mark.slow
def test_a_run_off_a_terminal_prints_whole_lines(tmp_path: Path) -> None:
    """A results folder deep enough that the W&B line is far over 80 characters: it stays
    one line, and the progress line keeps its elapsed time and eta."""
    deep = tmp_path / ("a-long-folder-name-" * 4) / "results"
    result = invoke(["run", "--dataset", "mnist1d", "--model", "mlp", "--epochs", "2",
                     "--width", "8", "--set", "data.num_samples=300", "--wandb", "offline",
                     "--set", "tracking.log_model=false", "--results-dir", str(deep)])
    assert result.exit_code == 0, result.output
    lines = result.stderr.splitlines()
    (wandb_line,) = [line for line in lines if line.startswith("W&B offline run:")]
    assert len(wandb_line) > 80 and "(upload later: wandb sync " in wandb_line
    assert "…" not in result.stderr


def test_progress_off_a_terminal_keeps_every_column() -> None:
    """A study's progress row, rendered where rich finds no terminal (a log file): rich's
    own Console cuts it at 80 columns, the harness's keeps the elapsed time and eta."""
    import io

    from rich.console import Console

    from harness.console import HarnessConsole, make_progress

    def rendered(target: Console) -> str:
        progress = make_progress(target)
        progress.add_task("  w0 regularizers.dropout.p=0.3,width=128 seed 2", total=30,
                          completed=12, status="loss 1.234  val acc 0.567")
        target.print(progress.make_tasks_table(progress.tasks))
        return target.file.getvalue()  # type: ignore[attr-defined]

    plain = rendered(Console(file=io.StringIO(), highlight=False))
    assert "…" in plain  # what logs showed: "0:00:… eta"
    ours = rendered(HarnessConsole(file=io.StringIO(), highlight=False))
    (line,) = ours.splitlines()
    assert "…" not in line and "val acc 0.567 0:00:00 eta" in line


def test_help_shows_extras_flags_and_the_worker_default_as_they_are() -> None:
    report = one_spaced(invoke(["wandb-report", "--help"]).stdout)
    assert "pip install 'harness[workspaces]'" in report
    ablation = invoke(["ablation", "--help"]).stdout
    assert "<bool>" not in ablation
    for flag in ("--dry-run / --no-dry-run", "--json / --no-json", "--no-report / --report",
                 "--debug / --no-debug"):
        assert flag in ablation, flag
    workers = one_spaced(ablation.split("--workers", 1)[1].split("--storage", 1)[0])
    assert "one single-threaded worker per core for small models" in workers
    assert "one per 2 cores)" not in workers


def test_dry_run_of_a_finished_study_probes_nothing(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    def no_probe(*args: object, **kwargs: object) -> None:
        raise AssertionError("a finished study was probed")

    monkeypatch.setattr(execute_mod, "finished_ids", lambda sdir, specs: {s.run_id
                                                                           for s in specs})
    monkeypatch.setattr(estimate_mod, "probe_side_by_side", no_probe)
    monkeypatch.setattr(estimate_mod, "time_fresh_import", no_probe)
    path = write_study(tmp_path)
    (tmp_path / "results" / "tiny").mkdir(parents=True)
    result = invoke(["ablation", str(path), "--dry-run", "--results-dir",
                     str(tmp_path / "results")])
    assert result.exit_code == 0, result.output
    assert "probing" not in result.stderr
    assert "nothing to run: all 4 planned run(s) are finished" in result.stdout
