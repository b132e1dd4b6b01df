"""A worker: pop a run from the queue, train it with a heartbeat, record the outcome, repeat.

`harness worker --study NAME --storage URL` runs this loop on any machine; a
local study starts N of them as processes.
"""

from __future__ import annotations

import fcntl
import os
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from harness.errors import HarnessError
from harness.study.queue import Job, RunQueue
from harness.tracking.store import RunDir
from harness.train.loop import study_dir, train_run

Emit = Callable[[tuple[Any, ...]], None]


class EventReporter:
    """Sends a run's progress as small tuples (to a console bar or across processes)."""

    def __init__(self, emit: Emit, worker: int) -> None:
        self.emit, self.worker = emit, worker

    def start(self, name: str, epochs: int, first_epoch: int) -> None:
        self.emit(("start", self.worker, name, epochs, first_epoch))

    def epoch(self, row: dict[str, Any]) -> None:
        status = f"loss {row['train_loss']:.3f}"
        if "val_acc" in row:
            status += f" val acc {row['val_acc']:.3f}"
        self.emit(("epoch", self.worker, row["epoch"], status))

    def end(self, summary: dict[str, Any]) -> None:
        self.emit(("end", self.worker, summary.get("status")))


@contextmanager
def run_lock(path: Path) -> Iterator[bool]:
    """An exclusive lock on one run folder: True if we hold it (no one else trains it here)."""
    path.mkdir(parents=True, exist_ok=True)
    fd = os.open(path / ".lock", os.O_CREAT | os.O_RDWR, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        yield True
    finally:
        os.close(fd)


def run_job(job: Job, queue: RunQueue, results_dir: Path, data_dir: Path | None,
            threads: int | None, reporter: Any) -> str:
    cfg = job.spec.config
    if threads:
        cfg.train.threads = threads
    run_dir = RunDir.for_run(study_dir(results_dir, cfg.study), cfg.variant, cfg.seed,
                             job.spec.run_id)
    with run_lock(run_dir.path) as held:
        if not held:  # a duplicate of a run another local worker is training
            queue.fail(job, "duplicate: the run is being trained by another worker")
            return "duplicate"
        try:
            with queue.heartbeat(job):
                result = train_run(cfg, results_dir=results_dir, data_dir=data_dir,
                                   reporter=reporter)
        except KeyboardInterrupt:
            queue.fail(job, "interrupted")
            raise
        except HarnessError as err:
            queue.fail(job, str(err))
            reporter.end({"status": "failed"})
            return "failed"
        except Exception:
            queue.fail(job, traceback.format_exc())
            reporter.end({"status": "failed"})
            return "failed"
    queue.complete(job, result.summary, result.rows)
    return str(result.summary.get("status"))


def worker_loop(url: str, study: str, results_dir: Path, data_dir: Path | None = None,
                threads: int | None = None, emit: Emit | None = None, worker: int = 0,
                wait_for_running: bool = False) -> int:
    """Run queued runs until none is waiting. Returns how many this worker ran."""
    queue = RunQueue.open(url, study)
    reporter = EventReporter(emit or (lambda event: None), worker)
    ran = 0
    while True:
        queue.fail_stale()
        queue.requeue_failed()
        job = queue.pop()
        if job is None:
            if wait_for_running and queue.running():
                time.sleep(2)
                continue
            return ran
        run_job(job, queue, results_dir, data_dir, threads, reporter)
        ran += 1


def worker_process(url: str, study: str, results_dir: str, data_dir: str | None,
                   threads: int | None, events: Any, worker: int) -> None:
    """Entry point of a local worker process (spawned)."""
    os.environ.setdefault("WANDB_SILENT", "true")
    try:
        worker_loop(url, study, Path(results_dir), Path(data_dir) if data_dir else None,
                    threads, events.put, worker)
    except KeyboardInterrupt:
        pass
