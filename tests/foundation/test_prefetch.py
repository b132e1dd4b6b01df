"""Background imports for the report: off the main thread, once a worker's core is free."""

from __future__ import annotations

import sys
import threading
from pathlib import Path

import pytest

from harness.prefetch import import_in_background
from harness.study.execute import FreeCore


def test_modules_are_imported_by_another_thread(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "prefetched_probe.py").write_text(
        "import threading\nTHREAD = threading.current_thread().name\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "prefetched_probe", raising=False)
    thread = import_in_background(("prefetched_probe",))
    thread.join(timeout=30)
    assert sys.modules["prefetched_probe"].THREAD == "prefetch" != \
        threading.current_thread().name


def test_a_module_that_fails_to_import_stops_quietly(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "prefetched_broken.py").write_text("raise RuntimeError('broken')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    thread = import_in_background(("prefetched_broken", "json"))
    thread.join(timeout=30)
    assert not thread.is_alive() and "prefetched_broken" not in sys.modules


def test_the_callback_comes_once_when_fewer_runs_are_left_than_workers() -> None:
    """12 runs on 2 workers: while 2 or more are left every worker has one; with 1 left a
    core is free. The count passes through unchanged."""
    done = iter([0, 5, 10, 10, 11, 11, 12])
    calls: list[int] = []
    count = FreeCore(lambda: (next(done), "s"), total=12, workers=2,
                     callback=lambda: calls.append(1))
    seen, called_at = [], []
    for _ in range(7):
        seen.append(count())
        called_at.append(len(calls))
    assert seen == [(0, "s"), (5, "s"), (10, "s"), (10, "s"), (11, "s"), (11, "s"), (12, "s")]
    assert called_at == [0, 0, 0, 0, 1, 1, 1]  # at the first count with 11 of 12 done
    calls_at = FreeCore(lambda: (0, ""), total=3, workers=4, callback=lambda: calls.append(2))
    calls_at()  # fewer runs than workers from the start: a core is free at once
    assert calls == [1, 2]
