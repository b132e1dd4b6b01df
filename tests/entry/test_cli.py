"""The command line: one clear line and exit code 2 for bad input, nothing written."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from harness.cli import app

runner = CliRunner()

TINY = ["--set", "data.num_samples=600", "--model", "mlp", "--width", "16", "--epochs", "1",
        "--wandb", "disabled", "--threads", "1"]


def invoke(args: list[str], tmp_path: Path):
    return runner.invoke(app, [*args, "--results-dir", str(tmp_path / "results")])


def test_run_trains_and_prints_a_summary(tmp_path: Path) -> None:
    result = invoke(["run", *TINY], tmp_path)
    assert result.exit_code == 0, result.output
    assert "status completed" in result.output and "test acc" in result.output
    assert list((tmp_path / "results" / "adhoc" / "runs").iterdir())


@pytest.mark.parametrize(("args", "expected"), [
    (["--model", "nope"], "unknown model 'nope'"),
    (["--dataset", "mnist2d"], "unknown dataset 'mnist2d'"),
    (["--drop", "1.5"], "regularizers.dropout.p = 1.5"),
    (["--epochs", "0"], "train.epochs = 0"),
    (["--set", "regularizers.dropuot.p=0.1"],
     "unknown regularizer 'dropuot' (did you mean 'dropout'?)"),
    (["--set", "train.epoch=3"], "unknown key 'train.epoch' (did you mean 'epochs'?)"),
    (["--drop-path", "0.1"], "drop_path: needs a model with residual blocks"),
    (["--label-noise", "1.5"], "data.label_noise = 1.5"),
    (["--set", "nonsense"], "expected key.path=value"),
])
def test_bad_flags_give_one_line_and_exit_2(args: list[str], expected: str,
                                            tmp_path: Path) -> None:
    result = invoke(["run", *TINY, *args], tmp_path)
    assert result.exit_code == 2, result.output
    assert expected in result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "results").exists()  # nothing written


def test_bad_yaml_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("model: {name: cnn\n")
    result = invoke(["run", "--config", str(bad)], tmp_path)
    assert result.exit_code == 2
    assert "unreadable YAML" in result.output and str(bad) in result.output


def test_missing_dataset_names_folder_and_flag(tmp_path: Path) -> None:
    result = invoke(["run", *TINY, "--dataset", "fashion_mnist", "--data-dir",
                     str(tmp_path / "empty")], tmp_path)
    assert result.exit_code == 2
    assert "empty" in result.output and "--data-dir" in result.output


def test_the_resume_hint_is_the_command_as_typed(monkeypatch) -> None:
    """Ctrl-C's hint repeats every option (a study resumed without its --results-dir or
    --set is another study), quoted for the shell, a storage password masked."""
    import shlex

    from harness.cli import typed_command

    argv = ["/v/bin/harness", "ablation", "dropout", "--set", "seeds=[0, 1]", "--results-dir",
            "my results", "--storage", "postgresql://u:secret@h/db"]
    monkeypatch.setattr("sys.argv", argv)
    hint = typed_command()
    assert "secret" not in hint and hint.endswith(" (the storage password where *** is)")
    words = shlex.split(hint.removesuffix(" (the storage password where *** is)"))
    assert words == [*argv[:-1], "postgresql://u:***@h/db"]
    monkeypatch.setattr("sys.argv", ["/repo/harness/cli.py", "run", "--epochs", "3"])
    assert typed_command() == "python -m harness.cli run --epochs 3"
