"""Independent report work (figures) shared with a forked copy of this process.

Drawing a study's figures is CPU-bound matplotlib work, and it comes last, when the study's
workers have exited and their cores are idle: 7 of the dropout study's 10 s of report. A
fork starts with the tables already in memory, so a task is a plain closure and only its
result (PNG bytes) is pickled back. Where fork is missing (or one core is all there is) the
tasks run here, one after the other; a child that fails leaves its tasks to this process.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import pickle
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

T = TypeVar("T")


def run_tasks(tasks: Sequence[Callable[[], T]], processes: int | None = None) -> list[T]:
    """`[task() for task in tasks]`, shared among this process and forked children. Each
    process takes the next task when it is free, so put the longest tasks first."""
    count = min(processes or os.cpu_count() or 1, len(tasks))
    if count <= 1 or "fork" not in mp.get_all_start_methods():
        return [task() for task in tasks]
    ctx = mp.get_context("fork")
    next_task = ctx.Value("i", 0)
    readers, children = [], []
    for _ in range(count - 1):
        reader, writer = ctx.Pipe(duplex=False)
        child = ctx.Process(target=_child, args=(tasks, next_task, writer), daemon=True)
        child.start()
        writer.close()
        readers.append(reader)
        children.append(child)
    results: dict[int, Any] = dict(_take(tasks, next_task))
    for reader, child in zip(readers, children, strict=True):
        try:
            results.update(pickle.loads(reader.recv_bytes()))
        except (EOFError, OSError, pickle.UnpicklingError):
            pass  # the child died: its tasks are run below
        reader.close()
        child.join()
    return [results[i] if i in results else task() for i, task in enumerate(tasks)]


def _take(tasks: Sequence[Callable[[], T]], next_task: Any,
          done: list[tuple[int, T]] | None = None) -> list[tuple[int, T]]:
    done = [] if done is None else done
    while True:
        with next_task.get_lock():
            i = next_task.value
            next_task.value += 1
        if i >= len(tasks):
            return done
        done.append((i, tasks[i]()))


def _child(tasks: Sequence[Callable[[], Any]], next_task: Any, writer: Any) -> None:
    done: list[tuple[int, Any]] = []
    try:
        _take(tasks, next_task, done)
    except Exception:
        pass  # the parent runs this task again and raises its error where it belongs
    try:
        writer.send_bytes(pickle.dumps(dict(done)))
    finally:
        writer.close()
