"""The Optuna run queue as Optuna users expect it: trials carry the swept values as params
(optuna-dashboard's views and importances work), the host and their W&B run; everything a
run needs travels in the queue, so `harness report STUDY --storage URL` works on a machine
that ran nothing; `harness worker` refuses an unknown study, can wait for the coordinator
and prints readable progress."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import optuna
import pytest
from conftest import SHARED_STUDY, tiny_study
from optuna.distributions import FloatDistribution
from optuna.trial import TrialState
from typer.testing import CliRunner
from wandb_offline import read_offline_run

from harness.cli import app
from harness.errors import ConfigError
from harness.record.run_dir import list_run_dirs
from harness.study.plan import expand
from harness.study.queue import RunQueue, queue_study_name
from harness.study.storage import studies_in
from harness.study.worker import ProgressLines, wait_for_study

NAME = SHARED_STUDY  # conftest's `trained_study`: run through its queue, W&B offline


def queue_of(sdir: Path) -> RunQueue:
    return RunQueue.open(f"sqlite:///{sdir / 'queue.db'}", NAME)


@pytest.mark.slow
def test_trials_carry_params_distributions_host_and_wandb_link(trained_study: Path) -> None:
    trials = queue_of(trained_study).trials(TrialState.COMPLETE)
    assert len(trials) == 6  # 3 variants x 2 seeds
    by_variant: dict[str, list[float]] = {}
    for t in trials:
        (value,) = t.params.values()
        by_variant.setdefault(t.user_attrs["variant"], []).append(value)
        assert t.distributions == {"dropout_p": FloatDistribution(0.0, 0.5)}
        assert t.user_attrs["host"] == socket.gethostname()
        link = t.user_attrs["wandb"]
        run = read_offline_run(Path(link["run_dir"]))
        assert run.config["optuna_trial"] == t.number  # and back from W&B to the trial
        assert run.config["optuna_study"] == queue_study_name(NAME)
        assert run.config["dropout_p"] == t.params["dropout_p"]
        assert run.notes == "dropout on a tiny MLP"
    assert by_variant == {"baseline": [0.0, 0.0], "dropout.p=0.1": [0.1, 0.1],
                          "dropout.p=0.5": [0.5, 0.5]}


def test_queue_entry_carries_what_a_remote_run_needs() -> None:
    study = tiny_study(design={"kind": "sweep", "parameter": "regularizers.dropout.p",
                               "values": [0.3]}, regularizers={"dropout": {"p": 0.1}},
                       description="dropout on a tiny MLP")
    specs = {s.variant: s for s in expand(study)}
    # the baseline's swept value comes with the entry, not from the coordinator's study.json
    assert specs["baseline"].params == {"regularizers.dropout.p": 0.1}
    entry = json.loads(json.dumps(specs["baseline"].to_json()))
    assert entry["params"] == {"regularizers.dropout.p": 0.1}
    assert entry["notes"] == "dropout on a tiny MLP"


@pytest.mark.slow
def test_report_from_storage_on_a_machine_that_ran_nothing(trained_study: Path,
                                                           tmp_path: Path) -> None:
    db = tmp_path / "copied.db"
    shutil.copy(trained_study / "queue.db", db)
    fresh = tmp_path / "results"
    out = CliRunner().invoke(app, ["report", NAME, "--storage", f"sqlite:///{db}",
                                   "--results-dir", str(fresh)])
    assert out.exit_code == 0, out.output
    assert "imported 6 run(s)" in out.output
    sdir = fresh / NAME
    assert json.loads((sdir / "study.json").read_text())["name"] == NAME
    assert (sdir / "report.html").is_file()
    original = {rd.path.name: rd for rd in list_run_dirs(trained_study)}
    imported = list_run_dirs(sdir)
    assert sorted(rd.path.name for rd in imported) == sorted(original)
    for rd in imported:
        mine = original[rd.path.name]
        for name in ("env.json", "test_predictions.pt"):
            assert (rd.path / name).read_bytes() == (mine.path / name).read_bytes()
        assert rd.summary["best_test_acc"] == mine.summary["best_test_acc"]
        assert rd.metrics() == mine.metrics()
        assert rd.summary["imported"]["missing"] == ["model.pt"]


@pytest.mark.slow
def test_worker_refuses_an_unknown_study_and_creates_nothing(trained_study: Path,
                                                             tmp_path: Path) -> None:
    runner = CliRunner()
    missing = tmp_path / "none.db"
    out = runner.invoke(app, ["worker", "--study", "nope", "--storage", f"sqlite:///{missing}"])
    assert out.exit_code == 2 and "no study 'nope'" in out.output
    assert len(out.output.strip().splitlines()) == 1 and not missing.exists()
    url = f"sqlite:///{trained_study / 'queue.db'}"
    before = studies_in(url)
    out = runner.invoke(app, ["worker", "--study", "sharred", "--storage", url])
    assert out.exit_code == 2 and f"it holds: {NAME}" in out.output
    assert studies_in(url) == before


@pytest.mark.slow
def test_wait_for_the_coordinator(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'q.db'}"
    t0 = time.monotonic()
    with pytest.raises(ConfigError):
        wait_for_study(url, "late", wait_s=0.6, poll_s=0.1)
    assert time.monotonic() - t0 >= 0.6

    def coordinator() -> None:
        time.sleep(0.8)
        q = RunQueue.open(url, "late")
        q.enqueue_missing(expand(tiny_study("late"))[:1], set())

    thread = threading.Thread(target=coordinator)
    thread.start()
    try:
        assert wait_for_study(url, "late", wait_s=30, poll_s=0.1) == "runs"
    finally:
        thread.join()
    assert time.monotonic() - t0 >= 1.4
    assert RunQueue.open(url, "late").waiting() == 1


def test_progress_lines_are_readable() -> None:
    lines: list[str] = []
    show = ProgressLines(lines.append)
    show(("start", 0, "dropout.p=0.3 seed 0", 5, 3))
    show(("epoch", 0, 3, "loss 1.234 val acc 0.456"))
    show(("end", 0, "completed", "", "dropout.p=0.3 seed 0"))
    show(("end", 0, "failed", "DataError: no file", "baseline seed 1"))
    assert lines == ["dropout.p=0.3 seed 0: training 5 epochs, resuming at epoch 3",
                     "dropout.p=0.3 seed 0: epoch 3/5 loss 1.234 val acc 0.456",
                     "dropout.p=0.3 seed 0: completed",
                     "baseline seed 1: failed (DataError: no file)"]


# ----------------------------------------------------------------------------- dashboard


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=30) as response:
        assert response.status == 200
        return json.loads(response.read())


@pytest.fixture
def dashboard() -> Iterator[Any]:
    exe = Path(sys.executable).with_name("optuna-dashboard")
    if not exe.is_file():
        pytest.skip("optuna-dashboard is not installed (pip install 'harness[dev]')")
    procs: list[subprocess.Popen] = []

    def start(storage: str, artifact_dir: Path | None = None) -> str:
        port = free_port()
        artifacts = ["--artifact-dir", str(artifact_dir)] if artifact_dir else []
        procs.append(subprocess.Popen([str(exe), storage, "--host", "127.0.0.1", "--port",
                                       str(port), *artifacts], stdout=subprocess.DEVNULL,
                                      stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL))
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                get(f"{base}/api/studies")
                return base
            except OSError:
                if time.monotonic() > deadline or procs[-1].poll() is not None:
                    raise
                time.sleep(0.2)

    yield start
    for p in procs:
        p.terminate()
        p.wait(timeout=10)


def check_dashboard(base: str, study: str, params: set[str]) -> None:
    studies = {s["study_name"]: s for s in get(f"{base}/api/studies")["study_summaries"]}
    sid = studies[study]["study_id"]
    detail = get(f"{base}/api/studies/{sid}?after=0")
    assert detail["trials"] and {p["name"] for p in detail["union_search_space"]} == params
    finished = [t for t in detail["trials"] if t["state"] == "Complete"]
    assert finished and all(t["params"] for t in finished)
    importances = get(f"{base}/api/studies/{sid}/param_importances")["param_importances"]
    assert {i["name"] for i in importances[0]} == params
    assert sum(i["importance"] for i in importances[0]) == pytest.approx(1.0)


@pytest.mark.slow
def test_dashboard_api_answers_for_an_ablation(trained_study: Path, dashboard: Any) -> None:
    base = dashboard(f"sqlite:///{trained_study / 'queue.db'}")
    check_dashboard(base, queue_study_name(NAME), {"dropout_p"})


@pytest.mark.slow
def test_dashboard_api_answers_for_a_tuning_study(tmp_path: Path, dashboard: Any) -> None:
    from harness.study import tune
    from harness.study.search import optuna_study_name

    study = tiny_study("dtune", kind="tune", tune={
        "n_trials": 3, "confirm_seeds": 1, "pruner": "none", "sampler": {"name": "random"},
        "space": {"regularizers.dropout.p": {"type": "float", "low": 0.0, "high": 0.5}}})
    out = tune.run_tuning(study, source="t.yaml", results_dir=tmp_path, workers=1)
    assert out.complete == 3
    base = dashboard(f"sqlite:///{tmp_path / 'dtune' / 'queue.db'}")
    check_dashboard(base, optuna_study_name("dtune"), {"dropout_p"})  # the queue's name
    ostudy = optuna.load_study(study_name=optuna_study_name("dtune"),
                               storage=f"sqlite:///{tmp_path / 'dtune' / 'queue.db'}")
    assert all("val_loss_at_best_val" in t.user_attrs for t in ostudy.trials)


def pop_all(url: str, out: Any) -> None:
    queue = RunQueue.open(url, NAME)
    taken = []
    while (job := queue.pop()) is not None:
        taken.append(job.trial.number)
    out.put(taken)


@pytest.mark.slow
def test_each_waiting_run_goes_to_one_worker(tmp_path: Path) -> None:
    """Four processes take from one SQLite queue at once: every run is taken exactly once
    (Optuna's read-then-write pop handed a trial to two workers before the queue's lock)."""
    import multiprocessing

    study = tiny_study(NAME, seeds=list(range(20)),
                       design={"kind": "sweep", "parameter": "model.width", "values": [8, 12]})
    specs = expand(study)
    url = f"sqlite:///{tmp_path / 'queue.db'}"
    assert RunQueue.open(url, NAME).enqueue_missing(specs, set()) == len(specs) >= 40
    fork = multiprocessing.get_context("fork")
    out = fork.Queue()
    workers = [fork.Process(target=pop_all, args=(url, out)) for _ in range(4)]
    for w in workers:
        w.start()
    taken = [n for _ in workers for n in out.get(timeout=120)]
    for w in workers:
        w.join()
    assert sorted(taken) == list(range(len(specs)))
    assert not RunQueue.open(url, NAME).waiting()
