"""Console output: progress bars for runs and studies, one-line errors."""

from __future__ import annotations

import sys
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

console = Console(stderr=True, highlight=False)


def error_line(message: str) -> None:
    from rich.markup import escape

    console.print(f"[bold red]error:[/] {escape(message)}", soft_wrap=True)  # '[batch, K]' is text


def make_progress() -> Progress:
    return Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
        TextColumn("{task.fields[status]}"), TimeElapsedColumn(), TextColumn("eta"),
        TimeRemainingColumn(), console=console, transient=False,
        disable=not console.is_terminal and "pytest" in sys.modules,
    )


def epoch_status(row: dict[str, Any]) -> str:
    """An epoch in a few words, for a progress bar or a worker's line: `loss 1.234 val acc
    0.456` (no val acc without a validation split)."""
    status = f"loss {row['train_loss']:.3f}"
    if "val_acc" in row:
        status += f" val acc {row['val_acc']:.3f}"
    return status


class RunProgress:
    """Epoch bar for one run: loss, val acc, ETA. Plain lines when not on a terminal."""

    def __init__(self, progress: Progress | None = None) -> None:
        self.own = progress is None
        self.progress = progress or make_progress()
        self.task: Any = None

    def start(self, name: str, epochs: int, first_epoch: int) -> None:
        if self.own:
            self.progress.start()
        self.task = self.progress.add_task(name, total=epochs, completed=first_epoch - 1,
                                           status="")

    def epoch(self, row: dict[str, Any]) -> None:
        status = epoch_status(row)
        self.progress.update(self.task, completed=row["epoch"], status=status)
        if not self.progress.console.is_terminal and self.own:
            self.progress.console.print(f"epoch {row['epoch']}: {status}")

    def end(self, summary: dict[str, Any]) -> None:
        if self.own:
            self.progress.stop()
        else:
            self.progress.remove_task(self.task)
