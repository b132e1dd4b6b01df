"""The Python API: harness.run, harness.ablation and harness.load_study, checked against the
run files they summarize and against scipy's paired t-test."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from conftest import tiny_raw
from scipy import stats

import harness
from harness.errors import ConfigError

STUDY = """
description: tiny dropout sweep for the API test
base:
  data: {name: mnist1d, num_samples: 600}
  model: {name: mlp, width: 16}
  train: {epochs: 2, batch_size: 64, threads: 1}
  tracking: {wandb: disabled}
design: {kind: sweep, parameter: regularizers.dropout.p, values: [0.5], baseline_value: 0.0}
seeds: [0, 1, 2]
"""


def test_import_harness_loads_no_torch():
    code = "import sys, harness; harness.__version__; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


@pytest.mark.slow
def test_run_with_dotted_overrides(tmp_path):
    out = harness.run(tiny_raw(), results_dir=tmp_path, regularizers__dropout__p=0.3,
                      train__epochs=3)
    from harness.regularizers.dropout import DropoutParams

    # the validated params, every default written out: the run's one spelling
    assert out.config["regularizers"] == {"dropout": DropoutParams(p=0.3).model_dump()}
    assert out.summary["status"] == "completed" and list(out.metrics["epoch"]) == [1, 2, 3]
    saved = json.loads((out.path / "summary.json").read_text())
    assert saved["best_val_acc"] == out.summary["best_val_acc"] == out.metrics["val_acc"].max()
    assert out.run_id == json.loads((out.path / "config.json").read_text())["run_id"]


def test_run_rejects_bad_input_with_the_cli_message(tmp_path):
    with pytest.raises(ConfigError, match=r"unknown key 'trian'"):
        harness.run({"trian": {}}, results_dir=tmp_path)
    with pytest.raises(ConfigError, match="config must be a RunConfig, a mapping or a YAML path"):
        harness.run(42, results_dir=tmp_path)


@pytest.mark.slow
def test_ablation_and_load_study_tables(tmp_path):
    path = tmp_path / "api_sweep.yaml"
    path.write_text(STUDY)
    study = harness.ablation(path, workers=1, results_dir=tmp_path / "results", report=False)
    assert study.name == "api_sweep" and study.baseline == "baseline"
    assert len(study.runs) == 6 and set(study.runs["status"]) == {"completed"}
    assert len(study.metrics) == 6 * 2 and study.left_out.empty
    again = harness.load_study("api_sweep", results_dir=tmp_path / "results")
    assert again.runs.equals(study.runs)
    # summary numbers recomputed from the runs table
    acc = study.runs.pivot(index="seed", columns="variant", values="best_test_acc")
    variant = next(v for v in acc.columns if v != "baseline")
    row = study.summary.set_index("variant").loc[variant]
    diffs = acc[variant] - acc["baseline"]
    assert row["best_test_acc_mean"] == pytest.approx(acc[variant].mean())
    assert row["delta"] == pytest.approx(diffs.mean())
    if diffs.std() > 0:
        ref = stats.ttest_rel(acc[variant], acc["baseline"]).pvalue
        assert row["p_value"] == pytest.approx(ref)
    # per-epoch metrics are the runs' own metrics.csv rows
    one = study.runs.iloc[0]
    mine = study.metrics[study.metrics["run_id"] == one["run_id"]]
    on_disk = pd.read_csv(Path(one["path"]) / "metrics.csv")
    assert list(mine["val_acc"]) == pytest.approx(list(on_disk["val_acc"]))
    assert list(mine["epoch"]) == list(on_disk["epoch"])


def test_load_study_of_a_missing_folder(tmp_path):
    with pytest.raises(ConfigError, match="no such study folder"):
        harness.load_study(tmp_path / "nothing_here")


UNGUARDED = """\
import harness

print("script body ran", flush=True)
study = harness.ablation({study!r}, workers=2, results_dir={results!r}, report=False,
                         overrides={{"seeds": [0]}}, base__train__epochs=1)
print("runs", len(study.runs), sorted(study.runs["status"]), flush=True)
print("epochs", sorted(set(study.metrics["epoch"])), flush=True)
"""


@pytest.mark.slow
@pytest.mark.parametrize("how", ["script", "stdin"])
def test_ablation_from_a_script_without_a_main_guard(tmp_path, how):
    """As the README shows it: no `if __name__ == "__main__":`. Workers must not run the
    caller's main again (a script body ran once per worker, bootstrapping errors); the
    overrides reach the study like the CLI's --set."""
    path = tmp_path / "api_sweep.yaml"
    path.write_text(STUDY)
    code = UNGUARDED.format(study=str(path), results=str(tmp_path / "results"))
    script = tmp_path / "plain.py"
    script.write_text(code)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    args = [sys.executable, str(script)] if how == "script" else [sys.executable, "-"]
    done = subprocess.run(args, input=None if how == "script" else code, cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)
    out = done.stdout + done.stderr
    assert done.returncode == 0, out[-3000:]
    assert done.stdout.count("script body ran") == 1, out[-3000:]
    assert "bootstrapping phase" not in out and "Traceback" not in out
    assert "runs 2 ['completed', 'completed']" in done.stdout  # seeds [0]: 2 variants x 1 seed
    assert "epochs [1]" in done.stdout  # base.train.epochs=1 reached every run
    saved = json.loads((tmp_path / "results" / "api_sweep" / "study.json").read_text())
    assert saved["overrides"] == {"seeds": [0], "base.train.epochs": 1}
