"""Background imports: done off the main thread, at the lowest CPU priority."""

from __future__ import annotations

import os
import sys
import threading
from pathlib import Path

import pytest

from harness.prefetch import import_in_background


def test_modules_are_imported_by_a_thread_at_nice_19(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "prefetched_probe.py").write_text(
        "import os, threading\n"
        "NICE = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())\n"
        "THREAD = threading.current_thread().name\n"
        "POLICY = os.sched_getscheduler(threading.get_native_id())\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "prefetched_probe", raising=False)
    here = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    thread = import_in_background(("prefetched_probe",))
    thread.join(timeout=30)
    probe = sys.modules["prefetched_probe"]
    assert probe.THREAD == "prefetch" and probe.NICE == 19 and probe.POLICY == os.SCHED_IDLE
    # this thread's priority is untouched
    assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == here


def test_a_module_that_fails_to_import_stops_quietly(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "prefetched_broken.py").write_text("raise RuntimeError('broken')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    thread = import_in_background(("prefetched_broken", "json"))
    thread.join(timeout=30)
    assert not thread.is_alive() and "prefetched_broken" not in sys.modules
