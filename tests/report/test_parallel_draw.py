"""Report work shared with forked children: same results, same order, same errors."""

from __future__ import annotations

import multiprocessing as mp
import os

import pytest

from harness.report.parallel_draw import run_tasks

WAIT_S = 60  # bounds a failure only: each wait ends as soon as a child runs a task


def test_results_come_back_in_task_order_from_every_process() -> None:
    # each process's first task waits for the other two to take theirs: all three take part
    all_started, first = mp.get_context("fork").Barrier(3), set()

    def square(i: int) -> tuple[int, int]:
        if os.getpid() not in first:  # this process's own copy of `first`
            first.add(os.getpid())
            all_started.wait(WAIT_S)
        return i * i, os.getpid()

    tasks = [lambda i=i: square(i) for i in range(7)]
    out = run_tasks(tasks, processes=3)
    assert [v for v, _ in out] == [i * i for i in range(7)]
    assert len({pid for _, pid in out}) == 3  # this process and both children


def test_a_failing_task_raises_its_own_error_here() -> None:
    def boom() -> int:
        raise ValueError("figure 2 failed")

    with pytest.raises(ValueError, match="figure 2 failed"):
        run_tasks([lambda: 1, boom, lambda: 3], processes=2)


def test_a_child_that_dies_leaves_its_tasks_to_this_process(tmp_path) -> None:
    parent, marker = os.getpid(), tmp_path / "a child took a task"
    child_ran = mp.get_context("fork").Event()

    def dies_in_a_child() -> str:
        if os.getpid() != parent:
            marker.touch()
            child_ran.set()
            os._exit(3)
        assert child_ran.wait(WAIT_S)  # a child takes a task before this process runs out
        return "done here"

    assert run_tasks([dies_in_a_child] * 4, processes=2) == ["done here"] * 4
    assert marker.exists()  # the fallback was needed, not just unused


def test_one_process_runs_the_tasks_in_order_here() -> None:
    seen: list[int] = []
    assert run_tasks([lambda i=i: seen.append(i) or i for i in range(3)], processes=1) == [0, 1, 2]
    assert seen == [0, 1, 2]
