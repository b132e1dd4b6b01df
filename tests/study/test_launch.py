"""Running studies where researchers run them: --set overrides, listings on stdout with
--json, the dry-run plan and estimate, `harness status`, and the Slurm path's sbatch script
(a fake `sbatch` on PATH, as submitit's own tests do). Real worker jobs against
PostgreSQL are in tests/study/test_launch_pg.py (`make test-pg`)."""

from __future__ import annotations

import csv
import json
import os
import socket
import stat
from pathlib import Path

import pytest
import yaml
from conftest import invoke_cli as invoke
from conftest import sweep_file as write_study
from conftest import tiny_raw
from typer.testing import CliRunner

from harness.config import RunConfig
from harness.record.run_dir import RunDir
from harness.study import estimate as estimate_mod
from harness.study.estimate import (
    QUEUE_OVERHEAD_S,
    REPORT_BASE_S,
    REPORT_PER_RUN_S,
    from_finished,
    makespan,
)
from harness.study.plan import expand
from harness.study.spec import LauncherConfig, load_study

runner = CliRunner()


def tree(root: Path) -> dict[str, tuple[int, int]]:
    """Every file under root with its size and mtime (to prove nothing was written)."""
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in sorted(root.rglob("*"))}


# ----------------------------------------------------------------------------- --set


def test_set_overrides_change_the_plan_and_keep_unchanged_runs(tmp_path: Path) -> None:
    path = write_study(tmp_path)
    original = expand(load_study(path), str(path))
    one_seed = expand(load_study(path, {"seeds": 1}), str(path))
    longer = expand(load_study(path, {"base.train.epochs": 3}), str(path))
    assert len(original) == 4 and len(one_seed) == 2
    # seed 0 of each variant is the same experiment: same id, so it is not run again
    assert {s.run_id for s in one_seed} == {s.run_id for s in original if s.seed == 0}
    # a changed base config is another experiment: every id changes
    assert not {s.run_id for s in longer} & {s.run_id for s in original}
    assert all(s.config.train.epochs == 3 for s in longer)
    assert load_study(path, {"seeds": 1}).overrides == {"seeds": 1}


def test_bad_set_key_is_one_line_exit_2_and_writes_nothing(tmp_path: Path) -> None:
    path = write_study(tmp_path)
    out = tmp_path / "results"
    result = invoke(["ablation", str(path), "--set", "seed=1", "--results-dir", str(out)])
    assert result.exit_code == 2
    assert "--set seed=1" in result.stderr and "did you mean 'seeds'" in result.stderr
    result = invoke(["ablation", str(path), "--set", "base.train.epochs=0",
                     "--results-dir", str(out)])
    assert result.exit_code == 2 and "train.epochs" in result.stderr
    assert "--set base.train.epochs=0" in result.stderr
    assert not out.exists()


@pytest.mark.slow
def test_overridden_study_is_recorded_and_its_report_shows_only_its_runs(tmp_path: Path):
    path = write_study(tmp_path)
    out = tmp_path / "results"
    assert invoke(["ablation", str(path), "--results-dir", str(out)]).exit_code == 0
    result = invoke(["ablation", str(path), "--results-dir", str(out),
                     "--set", "base.train.epochs=3", "--set", "seeds=1"])
    assert result.exit_code == 0, result.output
    sdir = out / "tiny"
    manifest = json.loads((sdir / "study.json").read_text())
    assert manifest["overrides"] == {"base.train.epochs": 3, "seeds": 1}
    plan = {s.run_id for s in expand(load_study(path, {"base.train.epochs": 3, "seeds": 1}))}
    assert {p["run_id"] for p in manifest["planned"]} == plan
    assert len(list((sdir / "runs").iterdir())) == 4 + 2  # the first plan's runs are kept
    with (sdir / "runs.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert {r["run_id"] for r in rows if r["included"] == "True"} == plan  # in the means
    left_out = [r for r in rows if r["run_id"] not in plan]
    assert len(left_out) == 4 and all("not in the current plan" in r["reason"]
                                      for r in left_out)
    md = (sdir / "report.md").read_text()
    assert "**Overrides**" in md and "--set base.train.epochs=3 --set seeds=1" in md
    assert "--set base.train.epochs=3" in (sdir / "report.html").read_text()


# ----------------------------------------------------------------------------- listings


def test_studies_listing_goes_to_stdout_and_has_json() -> None:
    result = invoke(["studies"])
    assert result.exit_code == 0
    assert "dropout" in result.stdout and "dropout" not in result.stderr
    data = json.loads(invoke(["studies", "--json"]).stdout)
    by_name = {d["name"]: d for d in data}
    assert by_name["dropout"]["kind"] == "ablation"
    assert by_name["tune_cnn_mnist1d"]["kind"] == "tune"
    assert by_name["dropout"]["description"].startswith("Dropout")


@pytest.mark.slow
def test_status_lists_every_run_with_host_and_state(tmp_path: Path) -> None:
    path = write_study(tmp_path, seeds=1)
    out = tmp_path / "results"
    assert invoke(["ablation", str(path), "--results-dir", str(out),
                   "--no-report"]).exit_code == 0
    result = invoke(["status", "tiny", "--results-dir", str(out), "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["counts"]["finished"] == 2 and data["counts"]["queued"] == 0
    ids = {s.run_id for s in expand(load_study(path))}
    assert {r["run_id"] for r in data["runs"]} == ids
    assert {r["host"] for r in data["runs"]} == {socket.gethostname()}
    assert all(r["status"] == "completed" for r in data["runs"])
    plain = invoke(["status", "tiny", "--results-dir", str(out)])
    assert "2 finished" in plain.stdout and plain.stdout.count("finished") == 3


def test_status_of_an_unknown_study_is_one_line(tmp_path: Path) -> None:
    result = invoke(["status", "nothing_here", "--results-dir", str(tmp_path)])
    assert result.exit_code == 2 and "--storage" in result.stderr


# ----------------------------------------------------------------------------- dry run


def test_makespan_follows_the_queue_order() -> None:
    assert makespan([1, 1, 4], 2) == 5  # w1: 1 then 4; w2: 1
    assert makespan([4, 1, 1], 2) == 4  # w1: 4; w2: 1 + 1
    assert makespan([2, 2, 2], 1) == 6
    assert makespan([], 3) == 0


def test_probe_times_its_second_run_after_the_barrier(tmp_path: Path, monkeypatch) -> None:
    """`between` runs once, after the first run and before the timed second one (where the
    copies of a side-by-side probe wait for each other)."""
    import harness.train.loop as loop  # the probe imports train_run from it when called

    trained: list[int] = []
    original = loop.train_run

    def counting(cfg, **kw):
        trained.append(cfg.seed)
        return original(cfg, **kw)

    monkeypatch.setattr(loop, "train_run", counting)
    seen: list[list[int]] = []
    cfg = RunConfig.model_validate(tiny_raw())
    setup, epoch, first = estimate_mod.probe(cfg, 1, None, between=lambda: seen.append(
        list(trained)))
    assert seen == [[0]] and trained == [0, 1]
    assert setup >= 0 and epoch > 0 and first >= 0


def test_side_by_side_probe_runs_copies_at_once_and_passes_errors_back() -> None:
    cfg = RunConfig.model_validate(tiny_raw())
    setup, epoch, first = estimate_mod.probe_side_by_side(cfg, 1, None, copies=2)
    assert setup >= 0 and epoch > 0 and first >= 0
    broken = RunConfig.model_validate({**tiny_raw(), "data": {"name": "mnist"}})
    with pytest.raises(Exception, match="MNIST"):  # no MNIST files under the empty data dir
        estimate_mod.probe_side_by_side(broken, 1, Path("/nonexistent-data-dir"), copies=2)


@pytest.mark.slow
def test_dry_run_plans_writes_nothing_and_uses_finished_runs(tmp_path: Path) -> None:
    path = write_study(tmp_path)
    out = tmp_path / "results"
    # finish seed 0 of both variants first, then plan two seeds
    assert invoke(["ablation", str(path), "--results-dir", str(out), "--set", "seeds=1",
                   "--no-report"]).exit_code == 0
    before = tree(out)
    result = invoke(["ablation", str(path), "--dry-run", "--json", "--results-dir", str(out)])
    assert result.exit_code == 0, result.output
    assert tree(out) == before  # nothing written, nothing touched
    data = json.loads(result.stdout)
    specs = expand(load_study(path))
    assert [(r["variant"], r["seed"], r["run_id"]) for r in data["runs"]] == \
        [(s.variant, s.seed, s.run_id) for s in specs]
    assert [r["finished"] for r in data["runs"]] == [s.seed == 0 for s in specs]
    assert data["finished"] == 2 and data["to_run"] == 2
    est = data["estimate"]
    (shape,) = est["shapes"]  # one model/data shape: dropout is not part of it
    assert shape["source"] == "2 finished run(s)"
    # independently: the finished runs' own timings, as the formula says
    done = [RunDir.for_run(out / "tiny", s.variant, s.seed, s.run_id) for s in specs
            if s.seed == 0]
    walls = [d.summary["wall_time"] for d in done]
    epochs = [[r["seconds"] for r in d.metrics()] for d in done]
    per_epoch = sum(sum(e) / len(e) for e in epochs) / 2
    before = [d.summary["setup_time"] for d in done]  # data, model, tracker
    assert all(0 < b < 60 for b in before)
    setups = [b + w - sum(e) for b, w, e in zip(before, walls, epochs, strict=True)]
    setup, first_extra = min(setups), max(setups) - min(setups)  # lower median of two
    assert from_finished(done) == pytest.approx((setup, per_epoch, first_extra))
    run_s = setup + 2 * per_epoch + QUEUE_OVERHEAD_S
    todo = [r for r in data["runs"] if not r["finished"]]
    assert [r["estimated_seconds"] for r in todo] == pytest.approx([run_s, run_s])
    # one worker (the study's), paying a fresh process's imports and the first-run extra
    # once, then the report: a fixed part and a part per planned run (4 here)
    startup = est["startup_seconds"]
    assert 0 < startup < 120
    report = REPORT_BASE_S + 4 * REPORT_PER_RUN_S
    assert est["report_seconds"] == pytest.approx(report)
    assert est["wall_seconds"] == pytest.approx(startup + first_extra + 2 * run_s + report)
    assert est["cpu_hours"] == pytest.approx((startup + first_extra + 2 * run_s)
                                             * est["threads_per_run"] / 3600)


@pytest.mark.slow
def test_dry_run_probes_a_new_shape_in_a_temporary_folder(tmp_path: Path) -> None:
    path = write_study(tmp_path, seeds=1)
    out = tmp_path / "results"
    result = invoke(["ablation", str(path), "--dry-run", "--results-dir", str(out),
                     "--workers", "2"])
    assert result.exit_code == 0, result.output
    assert not out.exists()
    assert "2 runs (2 variants x 1 seeds), 0 finished, 2 to run" in result.stdout
    assert "(from probe)" in result.stdout and "on 2 worker(s)" in result.stdout
    assert "nothing written" in result.stderr


# ----------------------------------------------------------------------------- Slurm


@pytest.fixture
def fake_sbatch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An `sbatch` on PATH that keeps the script it was given and answers like Slurm."""
    bin_dir, keep = tmp_path / "bin", tmp_path / "submitted"
    bin_dir.mkdir()
    keep.mkdir()
    script = bin_dir / "sbatch"
    script.write_text(f'#!/bin/sh\ncp "$1" "{keep}/job.sh"\necho "$@" > "{keep}/args"\n'
                      'echo "Submitted batch job 4242"\n')
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    srun = bin_dir / "srun"  # submitit looks for it to know it is on a Slurm machine
    srun.write_text("#!/bin/sh\nexit 0\n")
    srun.chmod(srun.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    return keep


def test_slurm_executor_writes_the_job_array_script(tmp_path: Path, fake_sbatch: Path):
    from harness.study.launch import make_executor, worker_job

    launcher = LauncherConfig(name="slurm", partition="gpu", gpus_per_task=1,
                              cpus_per_task=4, array_parallelism=3, timeout_min=90,
                              setup=["module load cuda"])
    executor = make_executor(launcher, tmp_path / "jobs")
    jobs = executor.map_array(worker_job, ["postgresql://h/db"] * 3, ["s"] * 3, ["r"] * 3,
                              [None] * 3, [4] * 3)
    assert [j.job_id for j in jobs] == ["4242_0", "4242_1", "4242_2"]
    script = (fake_sbatch / "job.sh").read_text()
    for line in ("#SBATCH --partition=gpu", "#SBATCH --gpus-per-task=1",
                 "#SBATCH --cpus-per-task=4", "#SBATCH --array=0-2%3", "#SBATCH --time=90",
                 "module load cuda"):
        assert line in script, line
    assert "submitit.core._submit" in script


def test_slurm_launcher_refuses_a_local_queue(tmp_path: Path, fake_sbatch: Path) -> None:
    path = write_study(tmp_path)
    result = invoke(["ablation", str(path), "--launcher", "slurm", "--results-dir",
                     str(tmp_path / "results")])
    assert result.exit_code == 2 and "--storage postgresql" in result.stderr
    assert not (fake_sbatch / "job.sh").exists()


def test_launcher_section_of_the_study_file_is_validated(tmp_path: Path) -> None:
    path = write_study(tmp_path, launcher={"name": "slurm", "array_paralelism": 4})
    result = invoke(["ablation", str(path), "--dry-run"])
    assert result.exit_code == 2 and "array_paralelism" in result.stderr


@pytest.mark.slow
def test_tune_dry_run_counts_trials_and_confirmation_runs(tmp_path: Path) -> None:
    from harness.study import tune
    from harness.study.tune_space import parse_tune

    path = tmp_path / "tq.yaml"
    path.write_text(yaml.safe_dump({
        "kind": "tune", "base": tiny_raw(),
        "tune": {"n_trials": 5, "confirm_seeds": 2, "retrain_top_k": 2,
                 "space": {"regularizers.dropout.p": {"type": "float", "low": 0.0,
                                                      "high": 0.5}}}}))
    out = tmp_path / "results"
    result = invoke(["tune", str(path), "--dry-run", "--json", "--results-dir", str(out),
                     "--set", "tune.n_trials=3"])
    assert result.exit_code == 0, result.output
    assert not out.exists()
    runs = json.loads(result.stdout)["runs"]
    assert [r["variant"] for r in runs] == ["trial-0", "trial-1", "trial-2"] + \
        ["baseline", "tuned", "tuned_2"] * 2
    # the baseline's id is the one the confirmation retrain will give it
    study = load_study(path, {"tune.n_trials": 3})
    spec = parse_tune(study, "x")
    confirm = tune.confirmation_study(study, spec, {"tuned": {"regularizers.dropout.p": 0.2}})
    baseline_ids = [s.run_id for s in expand(confirm) if s.variant == "baseline"]
    assert [r["run_id"] for r in runs if r["variant"] == "baseline"] == baseline_ids
    assert all(r["estimated_seconds"] > 0 for r in runs)
