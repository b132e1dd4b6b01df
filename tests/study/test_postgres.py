"""Tuning against a real PostgreSQL server: several worker processes, and a worker killed
mid-trial whose trial is run again.

Runs only when HARNESS_TEST_POSTGRES_URL is set (a throwaway server:
`URL=$(bash bench/pg_server.sh start DIR PORT)`), else every test is skipped.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import time
import uuid

import optuna
import pytest
from conftest import tiny_raw, tiny_study
from optuna.trial import TrialState
from sqlalchemy.engine import make_url

from harness.report.tune_report import write_outputs
from harness.study import tune
from harness.study.search import create_search, optuna_study_name
from harness.study.spec import StudyConfig
from harness.study.storage import mask_url
from harness.study.tune_space import parse_tune
from harness.study.worker import worker_loop, worker_process

URL = os.environ.get("HARNESS_TEST_POSTGRES_URL")
pytestmark = pytest.mark.skipif(not URL, reason="set HARNESS_TEST_POSTGRES_URL to a PostgreSQL "
                                "URL (bash bench/pg_server.sh start DIR PORT prints one)")

SPACE = {"regularizers.dropout.p": {"type": "float", "low": 0.0, "high": 0.5},
         "regularizers.label_smoothing.epsilon": {"type": "float", "low": 0.0, "high": 0.2}}


def make_study(n_trials: int, **base) -> StudyConfig:
    name = f"pg{uuid.uuid4().hex[:8]}"  # the database outlives test runs: a fresh study each
    return tiny_study(name, kind="tune", tune={
        "n_trials": n_trials, "confirm_seeds": 1, "pruner": "none",
        "sampler": {"name": "random"}, "space": SPACE}, **base)


def test_three_workers_share_one_study_without_running_a_trial_twice(tmp_path):
    study = make_study(6)
    out = tune.run_tuning(study, source="pg.yaml", results_dir=tmp_path, workers=3,
                          storage=URL)
    password = make_url(URL).password
    assert out.storage == mask_url(URL) and (not password or password not in out.storage)
    ostudy = optuna.load_study(study_name=optuna_study_name(study.name), storage=URL)
    trials = ostudy.get_trials()
    finished = [t for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    assert len(finished) >= 6 and out.failed == 0
    assert len({t.number for t in trials}) == len(trials)
    assert len({tuple(sorted(t.params.items())) for t in finished}) == len(finished)
    assert len({t.user_attrs["worker"].rsplit(":", 2)[1] for t in finished}) >= 2
    run_ids = [t.user_attrs["run_id"] for t in finished]
    folders = list((tmp_path / study.name / "search" / study.name / "runs").iterdir())
    assert sorted(p.name.rsplit("-", 1)[1] for p in folders) == sorted(run_ids)
    assert out.retrain is not None and not out.retrain.failed  # the retrain, same storage
    assert set(optuna.get_all_study_names(URL)) >= {f"{study.name}:tune", f"{study.name}:runs"}
    write_outputs(out)  # what `harness tune` writes next
    assert (tmp_path / study.name / "tuning.json").is_file()


def ignore(event: tuple) -> None:
    """A worker's progress events, not read here."""


def test_killed_worker_trial_is_retried_and_completed(tmp_path, monkeypatch):
    monkeypatch.setenv("HARNESS_HEARTBEAT_SECONDS", "1")
    study = make_study(1, data={"name": "mnist1d", "num_samples": 2000},
                       train={"epochs": 40, "batch_size": 32, "threads": 1})
    spec = parse_tune(study, "pg.yaml")
    ostudy = create_search(URL, study, spec, "pg.yaml")
    ctx = mp.get_context("spawn")
    proc = ctx.Process(target=worker_process, args=(
        {"url": URL, "study": study.name, "results_dir": tmp_path, "threads": 1}, ignore, 0))
    proc.start()
    deadline = time.monotonic() + 120
    victim = None
    while time.monotonic() < deadline and victim is None:
        running = ostudy.get_trials(states=(TrialState.RUNNING,))
        if running and running[0].user_attrs.get("epochs_trained") is None \
                and "worker" in running[0].user_attrs and _epochs_done(tmp_path, study.name) >= 2:
            victim = running[0]
        time.sleep(0.2)
    assert victim is not None, "the worker never got into a trial"
    os.kill(proc.pid, signal.SIGKILL)
    proc.join(timeout=10)
    time.sleep(4)  # past the heartbeat grace period (3 x 1 s)

    ran = worker_loop(URL, study.name, tmp_path, threads=1, worker=1)
    assert ran == 1
    trials = {t.number: t for t in ostudy.get_trials()}
    assert trials[victim.number].state == TrialState.FAIL
    (retry,) = [t for t in trials.values() if t.system_attrs.get("failed_trial") == victim.number]
    assert retry.state == TrialState.COMPLETE and retry.params == victim.params
    # the retry resumed the killed run from its last epoch checkpoint
    assert 0 < retry.user_attrs["epochs_trained"] < 40


def _epochs_done(root, name) -> int:
    import csv

    files = list((root / name / "search" / name / "runs").glob("*/metrics.csv"))
    if not files:
        return 0
    with files[0].open() as f:
        return sum(1 for _ in csv.DictReader(f))


# ------------------------------------------------------------------ concurrent invocations

def _open_queue_at(url: str, start_at: float) -> None:
    """Open the run queue at the same moment as the other processes (fresh database)."""
    from harness.study.queue import RunQueue

    while time.time() < start_at:
        time.sleep(0.005)
    RunQueue.open(url, "race")


def test_processes_creating_a_fresh_queue_schema_at_once_all_succeed():
    import psycopg2

    name = f"race{uuid.uuid4().hex[:8]}"
    admin = make_url(URL)
    conn = psycopg2.connect(host=admin.host, port=admin.port, user=admin.username,
                            password=admin.password, dbname=admin.database)
    conn.autocommit = True
    conn.cursor().execute(f"CREATE DATABASE {name}")
    fresh = admin.set(database=name).render_as_string(hide_password=False)
    try:
        ctx = mp.get_context("spawn")
        start_at = time.time() + 8  # after every process has imported optuna
        procs = [ctx.Process(target=_open_queue_at, args=(fresh, start_at)) for _ in range(4)]
        for p in procs:
            p.start()
        for p in procs:
            p.join(timeout=120)
        assert [p.exitcode for p in procs] == [0, 0, 0, 0]
        storage = optuna.storages.RDBStorage(fresh)
        assert [s.study_name for s in storage.get_all_studies()] == ["race:runs"]
        storage.engine.dispose()
    finally:
        conn.cursor().execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        conn.close()


def test_second_coordinator_on_a_shared_queue_says_who_holds_it(tmp_path):
    import socket
    import subprocess
    import sys

    from faults import REPO, as_terminal_job, error_of, harness, write_study

    from harness.study.queue import RunQueue

    name = f"pgtwice{uuid.uuid4().hex[:6]}"
    path = write_study(tmp_path, name=name, seeds=2, epochs=500)  # running throughout
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    first = subprocess.Popen([sys.executable, "-m", "harness.cli", "ablation", str(path),
                              "--workers", "1", "--storage", URL, "--no-report",
                              "--results-dir", str(tmp_path / "machine-a")], env=env,
                             preexec_fn=as_terminal_job,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 300
        holder = None
        while holder is None and time.monotonic() < deadline:
            time.sleep(0.5)
            try:
                holder = optuna.load_study(study_name=f"{name}:runs",
                                           storage=URL).user_attrs.get("coordinator")
            except KeyError:
                pass
        assert holder and holder["pid"] == first.pid
        # another machine (its own results folder) starts the same study on the same queue
        second = harness("ablation", str(path), "--storage", URL, "--no-report",
                         "--results-dir", str(tmp_path / "machine-b"))
        assert first.poll() is None, "the first finished too soon to test anything"
        line = error_of(second)
        assert second.returncode == 2
        assert f"already running (pid {first.pid} on {socket.gethostname()} since" in line
        first.send_signal(signal.SIGINT)
        out, _ = first.communicate(timeout=300)
        assert first.returncode == 130 and "Traceback" not in out, out[-2000:]
    finally:
        if first.poll() is None:
            first.kill()
    trials = RunQueue.open(URL, name).trials()
    assert len(trials) == 4 and len({t.user_attrs["run_id"] for t in trials}) == 4  # once each
    assert not (tmp_path / "machine-b" / name).exists()  # the refused one wrote nothing
def test_ablation_across_machines_and_report_from_the_database(tmp_path):
    """Coordinator on machine A queues an ablation; a worker on machine B (its own results
    folder, no study.json) runs part of it; machine C, which ran nothing, builds the full
    report from the database, with B's env and test predictions."""
    from typer.testing import CliRunner

    from harness.cli import app
    from harness.record.run_dir import list_run_dirs
    from harness.study.execute import run_study
    from harness.study.plan import expand, study_manifest
    from harness.study.queue import RunQueue
    from harness.study.spec import StudyConfig as Study
    from harness.study.storage import studies_in
    from harness.study.worker import EventReporter, run_job, worker_loop

    name = f"pga{uuid.uuid4().hex[:8]}"
    study = Study(name=name, base=tiny_raw(regularizers={"dropout": {"p": 0.1}}), seeds=2,
                  design={"kind": "sweep", "parameter": "regularizers.dropout.p",
                          "values": [0.3]})
    specs = expand(study)
    q = RunQueue.open(URL, name)  # the coordinator's first steps, then B takes two runs
    q.save_manifest(study_manifest(study, specs))
    q.distributions(specs)
    q.enqueue_missing(specs, set())
    machine_b = tmp_path / "b"
    for _ in range(2):
        run_job(q.pop(), q, machine_b, None, 1, EventReporter(lambda event: None, 1))
    remote = {t.user_attrs["run_id"]: t for t in q.trials(TrialState.COMPLETE)}
    assert len(remote) == 2 and all(t.params for t in remote.values())
    # A finishes the rest and imports B's runs
    out = run_study(study, source="pg.yaml", results_dir=tmp_path / "a", storage=URL,
                    workers=1)
    assert len(list_run_dirs(tmp_path / "a" / name)) == 4
    assert (out.finished, out.ran_before, out.imported) == (4, 0, 2)  # 2 trained on A
    assert worker_loop(URL, name, tmp_path / "b") == 0  # nothing left

    before = studies_in(URL)
    out = CliRunner().invoke(app, ["report", name, "--storage", URL,
                                   "--results-dir", str(tmp_path / "c")])
    assert out.exit_code == 0, out.output
    assert studies_in(URL) == before
    imported = {rd.summary["run_id"]: rd for rd in list_run_dirs(tmp_path / "c" / name)}
    assert len(imported) == 4 and (tmp_path / "c" / name / "report.html").is_file()
    for rd in list_run_dirs(machine_b / name):
        mine = imported[rd.summary["run_id"]]
        for f in ("env.json", "test_predictions.pt"):
            assert (mine.path / f).read_bytes() == (rd.path / f).read_bytes()
    out = CliRunner().invoke(app, ["worker", "--study", name + "x", "--storage", URL])
    assert out.exit_code == 2 and studies_in(URL) == before
