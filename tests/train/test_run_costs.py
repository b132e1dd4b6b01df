"""The per-run costs a study pays: append-only metrics, checkpoints on a time budget, and
MNIST-1D generated once per machine. Each keeps results identical to the slow path."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import strip_timing, tiny_raw

from harness.config import build_run_config
from harness.data import mnist1d
from harness.record.disk import rows_to_csv
from harness.record.layout import METRICS
from harness.record.run_dir import RunDir
from harness.train.loop import train_run


def test_appended_metrics_equal_a_whole_rewrite(tmp_path: Path) -> None:
    res = train_run(build_run_config(tiny_raw(train={"epochs": 4})), results_dir=tmp_path)
    assert (res.run_dir.path / METRICS).read_text() == rows_to_csv(res.rows)


def test_append_falls_back_to_a_rewrite_after_a_resume(tmp_path: Path) -> None:
    rows = [{"epoch": e, "loss": 1.0 / e} for e in (1, 2, 3)]
    first = RunDir(tmp_path)
    first.append_metrics(rows[:1])
    first.append_metrics(rows[:2])
    (tmp_path / METRICS).write_text((tmp_path / METRICS).read_text() + "3,0.3")  # cut short
    resumed = RunDir(tmp_path)  # a new process: it did not write the file's rows
    resumed.append_metrics(rows)
    assert (tmp_path / METRICS).read_text() == rows_to_csv(rows)
    resumed.append_metrics([*rows, {"epoch": 4, "loss": 0.25, "extra": 1}])  # a new column
    assert (tmp_path / METRICS).read_text() == rows_to_csv(
        [*rows, {"epoch": 4, "loss": 0.25, "extra": 1}])


@pytest.mark.slow
@pytest.mark.parametrize("every", [0.0, 1e9])
def test_checkpoint_budget_keeps_resume_exact(tmp_path: Path, every: float) -> None:
    cfg = build_run_config(tiny_raw(train={"epochs": 4, "checkpoint_every_s": every}))
    clean = train_run(cfg, results_dir=tmp_path / "clean")

    def interrupt(epoch: int, row: dict) -> None:
        if epoch == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_run(cfg, results_dir=tmp_path / "cut", on_epoch=[interrupt])
    run_dir = RunDir.for_run(tmp_path / "cut" / "adhoc", "default", 0, cfg.run_id())
    # every epoch: a checkpoint to resume from; a long budget: none yet (all is retrained)
    assert (run_dir.path / "checkpoint.pt").is_file() == (every == 0.0)
    resumed = train_run(cfg, results_dir=tmp_path / "cut")
    assert strip_timing(resumed.rows) == strip_timing(clean.rows)
    assert (resumed.run_dir.path / METRICS).read_text().count("\n") == 5  # header + 4 epochs
    assert cfg.run_id() == build_run_config(tiny_raw(train={"epochs": 4})).run_id()


def test_mnist1d_is_generated_once_then_read_from_the_cache(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv(mnist1d.CACHE_ENV, str(tmp_path))
    mnist1d._generate.cache_clear()
    made = mnist1d._make(600, 0.2, 42)
    first = mnist1d._generate(600, 0.2, 42)
    assert mnist1d.cache_path(600, 0.2, 42).is_file()
    mnist1d._generate.cache_clear()
    monkeypatch.setattr(mnist1d, "_make", lambda *a: pytest.fail("generated again"))
    second = mnist1d._generate(600, 0.2, 42)
    for a, b, c in zip(made, first, second, strict=True):
        assert np.array_equal(a, b) and np.array_equal(a, c) and a.dtype == c.dtype
    assert mnist1d.cache_path(600, 0.2, 43) != mnist1d.cache_path(600, 0.2, 42)
    mnist1d._generate.cache_clear()


def test_small_models_get_one_single_threaded_worker_per_core(monkeypatch) -> None:
    from harness.study import execute
    from harness.study.plan import expand
    from harness.study.spec import StudyConfig

    monkeypatch.setattr(execute.os, "cpu_count", lambda: 4)
    small = StudyConfig(name="s", seeds=3, base=tiny_raw(),
                        design={"kind": "sweep", "parameter": "model.width", "values": [8]})
    workers, why = execute.choose_workers(expand(small), todo=6)
    assert workers == 4 and execute.threads_per_worker(workers) == 1
    assert "single-threaded" in why
    assert execute.choose_workers(expand(small), todo=1)[0] == 1
    big = StudyConfig(name="b", seeds=1, base=tiny_raw(model={"name": "mlp", "width": 4096}),
                      design={"kind": "sweep", "parameter": "model.width", "values": [2048]})
    workers, why = execute.choose_workers(expand(big), todo=2)
    assert workers == 2 and execute.threads_per_worker(workers) == 2 and "larger" in why
