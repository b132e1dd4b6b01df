"""How long a study command took, and how busy the machine was: results/<study>/timing.json.

The generated studies table (harness studies --table) states each study's minutes next to the
load average before and after, because on a shared machine the minutes alone mislead. A
command that resumed a study records how many runs were finished before it started: its
minutes then cover only what it did.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

from harness.record.disk import atomic_write_json
from harness.record.layout import TIMING_JSON


def load_average() -> float | None:
    try:
        return round(os.getloadavg()[0], 2)
    except OSError:  # not on this platform
        return None


@dataclass(frozen=True)
class CommandClock:
    started: str  # ISO 8601, UTC
    monotonic: float
    load_before: float | None

    @classmethod
    def start(cls) -> CommandClock:
        return cls(time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), time.monotonic(),
                   load_average())

    def finish(self, study_dir: Path, *, runs: int, ran_before: int, workers: int | None) -> None:
        atomic_write_json(study_dir / TIMING_JSON, {
            "started": self.started,
            "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "minutes": round((time.monotonic() - self.monotonic) / 60, 2),
            "load_before": self.load_before, "load_after": load_average(),
            "cores": os.cpu_count(), "workers": workers, "runs": runs,
            "ran_before": ran_before})
