"""Worker jobs through submitit against a real PostgreSQL server: two local jobs (real
subprocesses, as on Slurm nodes) run a study to the end while one of them is killed mid-run,
and the Slurm command line submits a job array through a fake `sbatch`.

Runs only when HARNESS_TEST_POSTGRES_URL is set (`make test-pg`; a throwaway server:
`URL=$(bash bench/pg_server.sh start DIR PORT)`), else every test is skipped.
"""

from __future__ import annotations

import json
import os
import signal
import time
import uuid
from pathlib import Path

import pytest
import yaml
from conftest import tiny_raw
from test_launch import fake_sbatch, invoke  # noqa: F401  (fake_sbatch is a fixture)

from harness.study.launch import launch_study
from harness.study.plan import expand
from harness.study.queue import RunQueue
from harness.study.spec import LauncherConfig, load_study

URL = os.environ.get("HARNESS_TEST_POSTGRES_URL")
pytestmark = pytest.mark.skipif(not URL, reason="set HARNESS_TEST_POSTGRES_URL to a PostgreSQL "
                                "URL (bash bench/pg_server.sh start DIR PORT prints one)")


def study_file(tmp_path: Path, epochs: int) -> Path:
    name = f"lpg{uuid.uuid4().hex[:8]}"  # the database outlives test runs: a fresh study each
    path = tmp_path / f"{name}.yaml"
    base = tiny_raw(data={"name": "mnist1d", "num_samples": 2000},
                    train={"epochs": epochs, "batch_size": 32, "threads": 1})
    path.write_text(yaml.safe_dump({
        "description": "two runs for two jobs", "base": base, "seeds": 1,
        "design": {"kind": "sweep", "parameter": "regularizers.dropout.p", "values": [0.3]}}))
    return path


def epochs_done(run_dir: Path) -> int:
    metrics = run_dir / "metrics.csv"
    return max(0, len(metrics.read_text().splitlines()) - 1) if metrics.is_file() else 0


def test_two_local_jobs_finish_the_study_when_one_is_killed(tmp_path, monkeypatch):
    monkeypatch.setenv("HARNESS_HEARTBEAT_SECONDS", "1")  # the jobs inherit it
    path = study_file(tmp_path, epochs=40)
    study = load_study(path)
    results = tmp_path / "results"
    launcher = LauncherConfig(name="local", array_parallelism=2, timeout_min=10)
    out, jobs = launch_study(study, launcher, source=str(path), results_dir=results,
                             storage=URL)
    assert out.total == 2 and out.queued == 2 and len(jobs) == 2
    q = RunQueue.existing(URL, study.name)
    specs = {s.run_id: s for s in expand(study)}

    victim = None
    deadline = time.monotonic() + 240
    while victim is None and time.monotonic() < deadline:
        for t in q.trials():
            who, rid = t.user_attrs.get("worker"), t.user_attrs.get("run_id")
            if t.state.name != "RUNNING" or not who or rid not in specs:
                continue
            s = specs[rid]
            run_dir = results / study.name / "runs" / f"{s.variant}-s{s.seed}-{rid}"
            if 2 <= epochs_done(run_dir) < 30:
                victim = (rid, who)
                break
        time.sleep(0.2)
    assert victim is not None, "no job got into a run"
    rid, who = victim
    os.kill(who["pid"], signal.SIGKILL)  # the job's worker process, mid-run

    while not all(j.done() for j in jobs) and time.monotonic() < deadline + 240:
        time.sleep(0.5)
    assert all(j.done() for j in jobs), "the jobs did not finish"
    (killed,) = [j for j in jobs if j.job_id == who["job_id"]]
    (other,) = [j for j in jobs if j is not killed]
    with pytest.raises(Exception):  # noqa: B017  submitit: the job's process died
        killed.result()
    assert other.result() >= 2  # its own run and the killed one

    states = {st.run_id: st for st in q.states([(r, s.variant, s.seed)
                                                for r, s in specs.items()])}
    assert all(st.state == "finished" for st in states.values())
    # the killed run was finished by the other job
    assert states[rid].job_id != who["job_id"] and states[rid].pid != who["pid"]
    assert states[rid].job_id in {j.job_id for j in jobs}
    finishing = [t for t in q.by_run()[rid] if t.state.name == "COMPLETE"]
    assert len(finishing) == 1 and len(finishing[0].user_attrs["rows"]) == 40

    # a third machine: plan and results come from the database
    elsewhere = tmp_path / "elsewhere"
    result = invoke(["report", study.name, "--storage", URL, "--results-dir", str(elsewhere)])
    assert result.exit_code == 0, result.output
    assert len((elsewhere / study.name / "runs.csv").read_text().splitlines()) == 1 + 2
    planned = json.loads((elsewhere / study.name / "study.json").read_text())["planned"]
    assert {p["run_id"] for p in planned} == set(specs)
    status = json.loads(invoke(["status", study.name, "--storage", URL, "--results-dir",
                                str(results), "--json"]).stdout)
    assert status["counts"]["finished"] == 2
    assert {j["job_id"] for j in status["jobs"]} == {j.job_id for j in jobs}
    assert {r["job_id"] for r in status["runs"]} <= {j.job_id for j in jobs}


def test_slurm_command_submits_a_job_array_and_status_shows_it_queued(
        tmp_path: Path, fake_sbatch: Path) -> None:  # noqa: F811
    path = study_file(tmp_path, epochs=2)
    name = path.stem
    args = ["ablation", str(path), "--launcher", "slurm", "--slurm-partition", "gpu",
            "--slurm-gpus-per-task", "1", "--slurm-array-parallelism", "2",
            "--storage", URL, "--results-dir", str(tmp_path / "results")]
    result = invoke(args)
    assert result.exit_code == 0, result.output
    assert result.stdout.split() == ["4242_0", "4242_1"]
    script = (fake_sbatch / "job.sh").read_text()
    for line in ("#SBATCH --partition=gpu", "#SBATCH --gpus-per-task=1",
                 "#SBATCH --array=0-1%2"):
        assert line in script, line
    status = json.loads(invoke(["status", name, "--storage", URL, "--results-dir",
                                str(tmp_path / "results"), "--json"]).stdout)
    assert status["counts"]["queued"] == 2 and status["counts"]["finished"] == 0
    assert [j["job_id"] for j in status["jobs"]] == ["4242_0", "4242_1"]
    # the same command again: nothing queued twice, new jobs for the waiting runs
    again = invoke(args + ["--json"])
    data = json.loads(again.stdout)
    assert data["queued"] == 0 and data["runs"] == 2 and len(data["job_ids"]) == 2
    assert RunQueue.existing(URL, name).waiting() == 2


def test_a_refused_launch_changes_nothing_and_finished_runs_stay_in_the_means(
        tmp_path: Path, monkeypatch) -> None:
    """A study finished by local jobs; then `--launcher slurm` with other seeds where there
    is no Slurm. The refusal used to come after study.json, the manifest in the database and
    4 queued runs had been written, and the report then left every finished run out."""
    monkeypatch.setenv("PATH", os.pathsep.join(p for p in os.environ.get("PATH", "").split(
        os.pathsep) if p and not (Path(p) / "srun").exists()))  # no Slurm, whatever the machine
    path = study_file(tmp_path, epochs=2)
    study = load_study(path)
    results = tmp_path / "results"
    launcher = LauncherConfig(name="local", array_parallelism=1, timeout_min=10)
    out, jobs = launch_study(study, launcher, source=str(path), results_dir=results,
                             storage=URL)
    assert [j.result() for j in jobs] == [2]  # the local job ran both runs
    q = RunQueue.existing(URL, study.name)
    before = (q.manifest(), len(q.trials()), (results / study.name / "study.json").read_bytes())

    refused = invoke(["ablation", str(path), "--launcher", "slurm", "--storage", URL,
                      "--set", "seeds=[1]", "--results-dir", str(results)])
    assert refused.exit_code == 2 and 'Could not detect "srun"' in refused.stderr
    after = (q.manifest(), len(q.trials()), (results / study.name / "study.json").read_bytes())
    assert after == before  # no manifest replaced, nothing queued, study.json as it was

    elsewhere = tmp_path / "elsewhere"
    assert invoke(["report", study.name, "--storage", URL, "--results-dir",
                   str(elsewhere)]).exit_code == 0
    import harness

    tables = harness.load_study(elsewhere / study.name)
    assert len(tables.runs[tables.runs["included"]]) == 2 and tables.left_out.empty
