"""Studies: expansion into runs, the queue, local workers, resuming after a kill."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from conftest import REPO, tiny_raw, tiny_study, unreadable_fashion_mnist
from optuna.trial import TrialState

from harness.config import build_run_config
from harness.errors import ConfigError
from harness.record.run_dir import list_run_dirs
from harness.study.execute import run_study
from harness.study.plan import expand
from harness.study.queue import RunQueue
from harness.study.spec import StudyConfig, list_studies, load_study
from harness.study.storage import default_storage_url, mask_url


def study(design: dict, seeds: int | list[int] = 2, **base) -> StudyConfig:
    return tiny_study("t", design=design, seeds=seeds, **base)


def test_sweep_includes_baseline_and_every_value_per_seed() -> None:
    specs = expand(study({"kind": "sweep", "parameter": "regularizers.dropout.p",
                          "values": [0.1, 0.5]}, seeds=3))
    assert len(specs) == 9
    assert sorted({s.variant for s in specs}) == ["baseline", "dropout.p=0.1", "dropout.p=0.5"]
    assert {s.seed for s in specs} == {0, 1, 2}
    assert sum(s.is_baseline for s in specs) == 3
    assert len({s.run_id for s in specs}) == 9
    # ids are stable: the same study expands to the same ids
    again = expand(study({"kind": "sweep", "parameter": "regularizers.dropout.p",
                          "values": [0.1, 0.5]}, seeds=3))
    assert [s.run_id for s in again] == [s.run_id for s in specs]


def test_grid_one_at_a_time_and_leave_one_out() -> None:
    grid = expand(study({"kind": "grid", "parameters": {"model.width": [8, 16],
                                                        "data.label_noise": [0.0, 0.2]}},
                        seeds=1))
    # baseline (width 16, noise 0) coincides with a grid point: one run, not two
    assert len(grid) == 4
    oat = expand(study({"kind": "one_at_a_time", "variants": {
        "dropout": {"regularizers": {"dropout": {"p": 0.3}}},
        "smoothing": {"regularizers.label_smoothing.epsilon": 0.1}}}, seeds=1))
    assert [s.variant for s in oat] == ["baseline", "dropout", "smoothing"]
    assert oat[2].config.regularizers == {"label_smoothing": {"epsilon": 0.1}}
    loo = expand(study({"kind": "leave_one_out"}, seeds=1, regularizers={
        "dropout": {"p": 0.2}, "label_smoothing": {"epsilon": 0.1}}))
    assert [s.variant for s in loo] == ["full_recipe", "minus_dropout", "minus_label_smoothing"]
    assert set(loo[1].config.regularizers) == {"label_smoothing"}


def test_bad_study_files_name_file_and_key(tmp_path: Path) -> None:
    cases = {
        "design: {kind: sweep, parameter: regularizers.dropout.p, values: [1.5]}":
            "variant 'dropout.p=1.5': regularizers.dropout.p = 1.5",
        "design: {kind: swep}": "design.kind = 'swep'",
        "design: {kind: sweep}": "needs design.parameter",
        "desing: {kind: sweep}": "unknown key 'desing' (did you mean 'design'?)",
        "seeds: 0\ndesign: {kind: grid, parameters: {model.width: [4]}}": "seeds = 0",
        "name: ../../etc\ndesign: {kind: grid, parameters: {model.width: [4]}}": "name",
    }
    for i, (text, expected) in enumerate(cases.items()):
        path = tmp_path / f"s{i}.yaml"
        path.write_text(text + "\n")
        with pytest.raises(ConfigError) as err:
            expand(load_study(path), str(path))
        assert expected in str(err.value) and str(path) in str(err.value), str(err.value)


def test_shipped_studies_are_valid() -> None:
    shipped = list_studies()
    assert shipped, "no studies found"
    for name, line in shipped:
        assert not line.startswith("(invalid"), f"{name}: {line}"
        assert line, f"{name} has no description"
        path = REPO / "studies" / f"{name}.yaml"
        assert path.read_text().startswith("#"), f"{name}.yaml must start with a comment"
        cfg = load_study(path)
        if cfg.kind == "ablation":
            assert expand(cfg, str(path))


@pytest.mark.slow
def test_two_local_workers_run_every_run_exactly_once(tmp_path: Path) -> None:
    s = study({"kind": "sweep", "parameter": "model.width", "values": [8, 24]}, seeds=2)
    out = run_study(s, source="t", results_dir=tmp_path, workers=2)
    assert out.finished == out.total == 6 and not out.failed
    runs = list_run_dirs(tmp_path / "t")
    assert len(runs) == 6
    pairs = [(r.config["variant"], r.config["seed"]) for r in runs]
    assert len(set(pairs)) == 6
    q = RunQueue.open(default_storage_url(tmp_path / "t"), "t")
    complete = [t.user_attrs["run_id"] for t in q.trials(TrialState.COMPLETE)]
    assert sorted(complete) == sorted(r.config["run_id"] for r in runs)  # once each
    # a second invocation runs nothing
    again = run_study(s, source="t", results_dir=tmp_path, workers=2)
    assert again.ran_before == 6 and again.finished == 6
    assert len(q.trials(TrialState.COMPLETE)) == 6


@pytest.mark.slow
def test_killed_study_resumes_without_duplicates(tmp_path: Path) -> None:
    raw = {"name": "k", "description": "kill test", "seeds": 2,
           "base": tiny_raw(train={"epochs": 6, "batch_size": 32}),
           "design": {"kind": "sweep", "parameter": "model.width", "values": [8, 12]}}
    path = tmp_path / "k.yaml"
    path.write_text(yaml.safe_dump(raw))
    env = {**os.environ, "HARNESS_HEARTBEAT_SECONDS": "1", "PYTHONUNBUFFERED": "1"}
    cmd = [sys.executable, "-m", "harness.cli", "ablation", str(path), "--workers", "2",
           "--results-dir", str(tmp_path / "results"), "--no-report"]
    proc = subprocess.Popen(cmd, env=env, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    runs = tmp_path / "results" / "k" / "runs"
    deadline = time.time() + 120
    while time.time() < deadline:  # kill in the middle of a run: some epochs written
        if any((p / "metrics.csv").is_file() and not (p / "summary.json").is_file()
               for p in (runs.iterdir() if runs.is_dir() else [])):
            break
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    before = {r.path.name: r.summary for r in list_run_dirs(tmp_path / "results" / "k")
              if r.finished}
    assert len(before) < 6
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    after = list_run_dirs(tmp_path / "results" / "k")
    assert len(after) == 6 and all(r.finished for r in after)
    for name, summary in before.items():  # runs finished before the kill are kept as they were
        assert next(r for r in after if r.path.name == name).summary == summary
    q = RunQueue.open(default_storage_url(tmp_path / "results" / "k"), "k")
    complete = [t.user_attrs["run_id"] for t in q.trials(TrialState.COMPLETE)]
    assert len(complete) == len(set(complete)) == 6


def test_storage_password_is_masked() -> None:
    assert mask_url("postgresql+psycopg2://u:s3cret@127.0.0.1:5432/db") == \
        "postgresql+psycopg2://u:***@127.0.0.1:5432/db"


def test_seed_batch_key_is_refused_with_the_reason(tmp_path: Path) -> None:
    """Seed batching was removed (bench/RESULTS.md): an old study file says so in one line."""
    path = tmp_path / "old.yaml"
    path.write_text(yaml.safe_dump({
        "name": "old", "base": tiny_raw(), "seed_batch": True,
        "design": {"kind": "sweep", "parameter": "model.width", "values": [8]}}))
    with pytest.raises(ConfigError, match=r"old.yaml: .*seed_batch: removed .*delete the key"):
        load_study(path)


@pytest.mark.slow
def test_a_design_that_gained_values_is_refused_with_the_way_out(tmp_path: Path) -> None:
    """Optuna keeps a parameter's first choices: a widened range cannot share the old queue.
    One line says so; with the queue moved aside, only the new runs train."""
    def study(names: list[str]) -> StudyConfig:
        choices = {n: {"p": float(n[1:]) / 10} for n in names}  # named, as weight_decay's
        return StudyConfig(name="grow", base=tiny_raw(), seeds=1,
                           design={"kind": "grid",
                                   "parameters": {"regularizers.dropout": choices}})

    first = run_study(study(["p1"]), source="t", results_dir=tmp_path, workers=1)
    ran = first.finished
    with pytest.raises(ConfigError, match=r"study 'grow': .* gained .*p3.* move the study's "
                                          r"queue.db aside"):
        run_study(study(["p1", "p3"]), source="t", results_dir=tmp_path, workers=1)
    (tmp_path / "grow" / "queue.db").rename(tmp_path / "old-queue.db")
    again = run_study(study(["p1", "p3"]), source="t", results_dir=tmp_path, workers=1)
    assert (again.ran_before, again.finished) == (ran, ran + 1) and not again.failed


def unreadable_data_base(tmp_path: Path) -> dict:
    """A run config whose every run fails with a final error: its data files are not
    readable (missing ones are refused before the study starts)."""
    folder = unreadable_fashion_mnist(tmp_path / "unreadable")
    return {**tiny_raw(), "data": {"name": "fashion_mnist", "data_dir": str(folder)}}


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_a_study_whose_every_run_fails_ends_with_the_reasons_and_exit_code_1(
        tmp_path: Path) -> None:
    """Every run fails with a final error on two worker processes: the study ends (nothing
    waits for runs no one will train), lists each run with its reason, tries each run once,
    and the CLI exits 1."""
    from typer.testing import CliRunner

    from harness.cli import app

    path = tmp_path / "nofiles.yaml"
    path.write_text(yaml.safe_dump({
        "name": "nofiles", "seeds": 1, "base": unreadable_data_base(tmp_path),
        "design": {"kind": "sweep", "parameter": "model.width", "values": [8]}}))
    out = CliRunner().invoke(app, ["ablation", str(path), "--workers", "2", "--no-report",
                                   "--results-dir", str(tmp_path / "r")])
    assert out.exit_code == 1, out.output
    assert "0/2 runs finished" in out.output and "not finished (2)" in out.output
    for run in ("baseline seed 0", "width=8 seed 0"):
        assert f"{run}: failed: " in out.output and "not an IDX file" in out.output, out.output
    q = RunQueue.open(default_storage_url(tmp_path / "r" / "nofiles"), "nofiles")
    # runs only: a worker that asked as the queue emptied gets a trial with no run in it,
    # pruned at once (RunQueue.pop)
    seen = [(t.number, t.state.name, t.user_attrs.get("failure"), t.user_attrs.get("error"))
            for t in q.trials() if "spec" in t.user_attrs]
    assert sorted(str(t[2]) for t in seen) == ["final", "final"], seen


@pytest.mark.slow
def test_a_study_keeps_its_own_thread_count(tmp_path, monkeypatch):
    """The worker's thread count fills in only when the run config leaves threads unset."""
    from harness.study import worker

    seen = []
    monkeypatch.setattr(worker, "train_runs",
                        lambda requests, **kw: seen.extend(r.config.train.threads
                                                           for r in requests)
                        or (_ for _ in ()).throw(RuntimeError("stop")))
    monkeypatch.setattr(worker, "job_trackers", lambda *a, **k: (lambda cfg: None))

    class Q:
        def heartbeat(self, job):
            import contextlib
            return contextlib.nullcontext()

        def fail(self, *a, **k):
            pass

    class Reporter:
        def end(self, summary):
            pass

    from harness.study.plan import RunSpec

    for threads, expected in ((1, 1), (None, 2)):
        cfg = build_run_config({"study": "th", "train": {"threads": threads}})
        job = worker.Job(trial=None, spec=RunSpec("v", 0, cfg, cfg.run_id(), {}, True))
        assert worker.run_job(job, Q(), tmp_path, None, 2, Reporter()) == "failed"
        assert seen[-1] == expected
