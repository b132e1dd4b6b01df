"""A table of malformed inputs: each is caught before training with one clear line."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from harness.cli import app

runner = CliRunner()

# (YAML text of a run config, expected message fragment)
RUN_CONFIGS = [
    ("model: {name: cnnn}", "unknown model 'cnnn' (did you mean 'cnn'?)"),
    ("data: {name: mnist3d}", "unknown dataset 'mnist3d'"),
    ("regularizers: {dropuot: {p: 0.1}}",
     "unknown regularizer 'dropuot' (did you mean 'dropout'?)"),
    ("modle: {name: cnn}", "unknown key 'modle' (did you mean 'model'?)"),
    ("train: {epocs: 3}", "unknown key 'train.epocs' (did you mean 'epochs'?)"),
    ("train: {epochs: three}", "train.epochs = 'three'"),
    ("train: {epochs: 0}", "train.epochs = 0: Input should be greater than or equal to 1"),
    ("train: {batch_size: -4}", "train.batch_size = -4"),
    ("optim: {lr: -0.1}", "optim.lr = -0.1: Input should be greater than 0"),
    ("optim: {name: adagrad}", "optim.name = 'adagrad'"),
    ("schedule: {name: linear}", "schedule.name = 'linear'"),
    ("regularizers: {dropout: {p: 1.0}}",
     "regularizers.dropout.p = 1.0: Input should be less than 1"),
    ("regularizers: {dropout: {p: -0.1}}", "regularizers.dropout.p = -0.1"),
    ("regularizers: {dropout: {rate: 0.1}}", "unknown key 'regularizers.dropout.rate'"),
    ("regularizers: {weight_decay: {value: -0.01}}", "regularizers.weight_decay.value = -0.01"),
    ("regularizers: {weight_decay: {value: 0.1, mode: adamw}}",
     "regularizers.weight_decay.mode = 'adamw'"),
    ("regularizers: {early_stopping: {patience: 0}}", "regularizers.early_stopping.patience = 0"),
    ("regularizers: {grad_clip: {mode: agc, threshold: 0}}",
     "regularizers.grad_clip.threshold = 0"),
    ("regularizers: {label_smoothing: {epsilon: 1.5}}",
     "regularizers.label_smoothing.epsilon = 1.5"),
    ("data: {label_noise: 1.2}", "data.label_noise = 1.2"),
    ("data: {label_noise: -0.1}", "data.label_noise = -0.1"),
    ("model: {width: 0}", "model.width = 0"),
    ("model: {name: cnn}\nregularizers: {drop_path: {rate: 0.1}}",
     "drop_path: needs a model with residual blocks"),
    ("model: {name: cnn}\nregularizers: {weight_tying: {}}",
     "weight_tying: only for language models (gpt)"),
    ("model: {name: mlp}\nregularizers: {norm: {kind: layernorm, position: post}}",
     "regularizers.norm"),
    ("regularizers: {augment: {hflip: true}}", "dataset mnist1d holds 1-D signals"),
    ("data: {name: tiny_shakespeare}\nmodel: {name: gpt}\nregularizers: {mix: {mixup_alpha: 0.2}}",
     "regularizers.mix: defined for images and 1-D signals"),
    ("regularizers: {mixup: {alpha: 0.2}}",  # an old spelling: the one that replaced it
     "regularizers.mixup: now regularizers.mix: {mixup_alpha: ALPHA, prob: P}"),
    ("regularizers: {distillation: {teacher: {}}}", "exactly one of teacher.run"),
    ("train: {device: tpu}", "train.device = 'tpu'"),
    ("[1, 2, 3]", "expected a mapping at the top level"),
    ("model: {name: cnn\n", "unreadable YAML"),
]


@pytest.mark.parametrize(("text", "expected"), RUN_CONFIGS)
def test_malformed_run_config(text: str, expected: str, tmp_path: Path) -> None:
    path = tmp_path / "run.yaml"
    path.write_text(text + "\n")
    results = tmp_path / "results"
    out = runner.invoke(app, ["run", "--config", str(path), "--results-dir", str(results),
                              "--wandb", "disabled"])
    assert out.exit_code == 2, out.output
    lines = [line for line in out.output.strip().splitlines() if line.strip()]
    message = " ".join(lines)
    assert expected in message, message
    assert str(path) in message or "run.yaml" in message or expected.startswith("train.device")
    assert "Traceback" not in out.output
    assert not results.exists(), "nothing is written for bad input"


def test_missing_config_file(tmp_path: Path) -> None:
    out = runner.invoke(app, ["run", "--config", str(tmp_path / "nope.yaml")])
    assert out.exit_code == 2 and "nope.yaml: file not found" in out.output


def test_unknown_study_lists_the_valid_ones(tmp_path: Path) -> None:
    out = runner.invoke(app, ["ablation", "dropuot", "--results-dir", str(tmp_path)])
    assert out.exit_code == 2
    assert "unknown study 'dropuot' (did you mean 'dropout'?)" in out.output
    assert not any(tmp_path.iterdir())


def test_debug_shows_the_traceback(tmp_path: Path) -> None:
    out = runner.invoke(app, ["run", "--model", "nope", "--debug", "--results-dir",
                              str(tmp_path)])
    assert out.exit_code != 0 and out.exception is not None


def test_unwritable_results_folder(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    out = runner.invoke(app, ["run", "--set", "data.num_samples=600", "--model", "mlp",
                              "--epochs", "1", "--wandb", "disabled",
                              "--results-dir", str(blocker / "results")])
    assert out.exit_code == 2, out.output
    assert "cannot write results" in out.output and "file" in out.output


def test_a_huge_value_is_quoted_short(tmp_path: Path) -> None:
    path = tmp_path / "run.yaml"
    path.write_text("train: {device: '" + "x" * 500_000 + "'}\n")  # under the 1 MB limit
    out = runner.invoke(app, ["run", "--config", str(path), "--results-dir",
                              str(tmp_path / "results")])
    assert out.exit_code == 2
    line = out.output.strip()
    assert "train.device = 'xxx" in line and "(500,002 chars)" in line
    assert len(line) < 300 and "\n" not in line


# (a study file's text, expected message fragment): refused before anything is written
STUDY_BASE = "name: s\nbase: {model: {name: mlp}, data: {name: mnist1d}}\n"
STUDIES = [
    (STUDY_BASE + "design: {kind: grid, parameters: {model.width: []}}",
     "design: a grid axis without values: parameters.model.width = []"),
    (STUDY_BASE + "design: {kind: grid, parameters: {model.width: [8], optim.lr: {}}}",
     "parameters.optim.lr = {}"),
    (STUDY_BASE + "design: {kind: leave_one_out}",
     "leave_one_out removes regularizers of base.regularizers, which names none"),
    (STUDY_BASE + "design: {kind: sweep, parameter: model.width, values: []}",
     "design kind 'sweep' needs design.values"),
]


@pytest.mark.parametrize(("text", "expected"), STUDIES)
def test_malformed_study_design(text: str, expected: str, tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(text + "\n")
    results = tmp_path / "results"
    out = runner.invoke(app, ["ablation", str(path), "--results-dir", str(results)])
    assert out.exit_code == 2, out.output
    message = " ".join(out.output.split())
    assert expected in message and str(path) in message, message
    assert not results.exists(), "nothing is written for a bad design"


TUNE = """name: t
kind: tune
base: {model: {name: mlp}, data: {name: mnist1d}}
tune:
  objective: val_acc
  n_trials: 2
  space: {regularizers.dropout.p: {type: float, low: 0.0, high: 0.5}}
"""
# (command, file text, expected fragment): answered in a fresh process before torch loads
QUICK = [
    ("run", "data: {name: mnist3d}", "unknown dataset 'mnist3d' (did you mean 'mnist1d'?)"),
    ("run", "model: {name: cnnn}", "unknown model 'cnnn' (did you mean 'cnn'?)"),
    ("run", "regularizers: {dropuot: {p: 0.1}}", "unknown regularizer 'dropuot'"),
    ("run", "regularizers: {dropout: {p: 1.5}}", "regularizers.dropout.p = 1.5"),
    ("run", "data: {name: cifar100, kwargs: {lables: coarse}}", "data.kwargs.lables"),
    ("ablation", STUDY_BASE + "design: {kind: sweep, parameter: regularizers.dropout.p, "
                              "values: [0.1, 1.5]}", "regularizers.dropout.p = 1.5"),
    ("ablation", STUDY_BASE.replace("mnist1d", "mnist3d")
     + "design: {kind: sweep, parameter: model.width, values: [8]}", "unknown dataset"),
    ("ablation", STUDY_BASE + "design: {kind: grid, parameters: {model.width: [8, 0]}}",
     "model.width = 0"),
    ("tune", TUNE.replace("name: mlp", "name: cnnn"), "unknown model 'cnnn'"),
    ("tune", TUNE.replace("high: 0.5", "high: 1.5"), "regularizers.dropout.p = 1.5"),
]


@pytest.mark.parametrize(("command", "text", "expected"), QUICK)
def test_bad_values_are_answered_before_torch_is_imported(command: str, text: str,
                                                          expected: str, tmp_path: Path) -> None:
    """Names and ranges come from harness/builtin_names.py: no registry, no PyTorch (whose
    import alone took 2-4 s of the answer)."""
    import os
    import subprocess
    import sys

    path = tmp_path / "bad.yaml"
    path.write_text(text + "\n")
    args = ["run", "--config", str(path)] if command == "run" else [command, str(path)]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    done = subprocess.run([sys.executable, "-X", "importtime", "-m", "harness.cli", *args,
                           "--results-dir", str(tmp_path / "results")], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert done.returncode == 2 and len(errors) == 1 and expected in errors[0], done.stderr[-2000:]
    imported = {line.rsplit("|", 1)[-1].strip() for line in done.stderr.splitlines()
                if line.startswith("import time:")}
    assert "torch" not in imported and "harness.models" not in imported
    assert not (tmp_path / "results").exists()


# -------------------------------------------- conditions the user fixes: exit 2, nothing written


def tiny_study(tmp_path: Path, **base: object) -> Path:
    import yaml
    from conftest import tiny_raw

    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump({
        "base": tiny_raw(**base), "seeds": 1,
        "design": {"kind": "sweep", "parameter": "model.width", "values": [8]}}))
    return path


@pytest.mark.parametrize(("args", "expected"), [
    (["--storage", "postgresql+psycopg2://u:pw@127.0.0.1:1/db"],
     "queue storage unreachable (connection to server at \"127.0.0.1\", port 1 failed"),
    (["--storage", "sqlite:////nonexistent-folder/q.db"],
     "storage sqlite:////nonexistent-folder/q.db: folder /nonexistent-folder does not exist; "
     "create it or pass another --storage"),
    (["--launcher", "slurm", "--storage", "postgresql+psycopg2://u:pw@127.0.0.1:1/db"],
     '--launcher slurm: Could not detect "srun"'),
])
def test_storage_and_launcher_problems_are_exit_2_before_any_write(args, expected, tmp_path,
                                                                   monkeypatch) -> None:
    import os

    monkeypatch.setenv("PATH", os.pathsep.join(  # no Slurm here, whatever the machine has
        p for p in os.environ["PATH"].split(os.pathsep) if not (Path(p) / "srun").exists()))
    results = tmp_path / "results"
    out = runner.invoke(app, ["ablation", str(tiny_study(tmp_path)), "--workers", "1",
                              "--results-dir", str(results), *args])
    assert out.exit_code == 2, out.output
    assert expected in " ".join(out.output.split()), out.output
    assert ":pw@" not in out.output  # the password is never shown
    assert not results.exists()


def test_a_corrupt_local_queue_is_exit_2_and_nothing_else_is_written(tmp_path) -> None:
    results = tmp_path / "results"
    (results / "tiny").mkdir(parents=True)
    (results / "tiny" / "queue.db").write_text("not a database")
    out = runner.invoke(app, ["ablation", str(tiny_study(tmp_path)), "--workers", "1",
                              "--results-dir", str(results)])
    assert out.exit_code == 2 and "the study's queue is corrupt" in out.output, out.output
    assert sorted(p.name for p in (results / "tiny").iterdir()) == ["queue.db"]


@pytest.mark.parametrize("command", ["ablation", "run", "tune"])
def test_missing_dataset_files_are_one_line_before_anything_is_written(command, tmp_path,
                                                                       monkeypatch) -> None:
    """HARNESS_DATA_DIR at an empty folder: one line naming the dataset, the folder and the
    fix; no study folder, queue, run folder or W&B run (all live under --results-dir)."""
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.setenv("HARNESS_DATA_DIR", str(empty))
    results = tmp_path / "results"
    if command == "run":
        args = ["run", "--dataset", "fashion_mnist", "--model", "mlp", "--epochs", "1"]
    elif command == "ablation":
        args = ["ablation", str(tiny_study(tmp_path, data={"name": "fashion_mnist",
                                                           "train_size": 100})), "--workers", "1"]
    else:
        tune = tmp_path / "t.yaml"
        tune.write_text(TUNE.replace("mnist1d", "fashion_mnist"))
        args = ["tune", str(tune), "--workers", "1"]
    out = runner.invoke(app, [*args, "--results-dir", str(results)])
    assert out.exit_code == 2, out.output
    line = " ".join(out.output.split())
    assert line.startswith(f"error: dataset fashion_mnist: 4 file(s) missing in {empty} (first: "
                           f"{empty}/FashionMNIST/raw/"), line
    assert "--data-dir" in line and "data.download: true" in line
    assert not results.exists()
