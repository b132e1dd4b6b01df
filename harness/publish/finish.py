"""What a finished study ends with: its report (and the results index), the tuning search's
own files for a tuning study, and the study-level W&B run.

The CLI and the Python API call this after the executor returns: the study package runs
work and never builds reports.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from harness.publish.wandb import finish_study
from harness.report.build import build_report
from harness.report.tune_report import write_outputs
from harness.study.tune import TuneOutcome


def report_study(sdir: Path, say: Callable[[str], None]) -> Path:
    """report.html / report.md (and results/index.html), then the W&B study run; each
    line the W&B step has to tell goes to `say`. Returns the report's path."""
    paths = build_report(sdir)
    for line in finish_study(sdir):
        say(line)
    return paths.html


def report_tuning(out: TuneOutcome, say: Callable[[str], None]) -> Path | None:
    """tuning.json / tuning.md / figures, then the study report once the retrain ran."""
    write_outputs(out)
    return report_study(out.study_dir, say) if out.retrain is not None else None
