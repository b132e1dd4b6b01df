"""A study as a readable W&B dashboard, at the study's end (and the entry points the CLI
and the executor call). The work lives by job in:

- `study_run`: the study-level run (comparison table, figures, sweep plots);
- `wandb_report`: the W&B Report spec, saved when online;
- `sync`: `wandb sync` of a study's offline runs.

Per-run tracking (what every training run carries) is `tracking/wandb_tracker.py`, below
the loop.
"""

from __future__ import annotations

import logging
from pathlib import Path

from harness.publish.study_run import (
    WANDB_LINKS,
    log_study_run,
    study_tracking,
    write_wandb_links,
)
from harness.publish.sync import offline_run_dirs, sync_study
from harness.publish.wandb_report import create_wandb_report, write_report_spec
from harness.tracking.wandb_client import choose_mode

# what the CLI imports from here (one place for the study-level W&B commands)
__all__ = ["create_wandb_report", "finish_study", "offline_run_dirs", "sync_study",
           "write_report_spec"]

log = logging.getLogger(__name__)


def finish_study(study_dir: Path) -> list[str]:
    """End-of-study W&B step: the study run, then the Report (online) or the hint (offline).

    Returns the console lines to print. Never raises; wandb.json records what happened.
    """
    study_dir = Path(study_dir)
    settings = study_tracking(study_dir)
    try:
        mode, _ = choose_mode(settings["mode"])
    except ValueError:
        mode = "offline"
    if mode == "disabled":
        return []
    info = log_study_run(study_dir, mode=mode, project=settings["project"],
                         entity=settings["entity"])
    lines = []
    if info.failed:
        lines.append(f"W&B study run failed: {info.error}")
    elif info.url:
        lines.append(f"W&B study run: {info.url}")
    elif info.run_dir:
        lines.append(f"W&B study run saved offline: {info.run_dir}")
    outcome = create_wandb_report(study_dir, mode=info.mode)
    lines.append(outcome.message)
    try:
        write_wandb_links(study_dir, study_run=info.to_dict(),
                          report_hint=None if outcome.url else outcome.message)
    except OSError:
        log.debug("cannot write %s", WANDB_LINKS, exc_info=True)
    return lines


