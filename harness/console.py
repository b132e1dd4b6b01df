"""Console output: progress bars for runs and studies, one-line errors."""

from __future__ import annotations

import os
import sys
from typing import Any

from rich.console import Console, ConsoleDimensions
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

# Width of output that is not a terminal (a log file, CI, a pipe): long enough that no line
# wraps and no progress column (elapsed time, eta) is cut to fit.
LOG_WIDTH = 1000


class HarnessConsole(Console):
    """rich's Console, but off a terminal it does not wrap at 80 columns (rich's default
    when it finds no terminal size) unless COLUMNS says so."""

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.fixed_width = options.get("width") is not None  # rich also reads COLUMNS here

    @property
    def size(self) -> ConsoleDimensions:
        size = super().size
        if not self.fixed_width and not self.is_terminal and "COLUMNS" not in os.environ:
            return ConsoleDimensions(LOG_WIDTH, size.height)
        return size

    @size.setter
    def size(self, new_size: tuple[int, int]) -> None:
        self._width, self._height = new_size


console = HarnessConsole(stderr=True, highlight=False)


def error_line(message: str) -> None:
    from rich.markup import escape

    console.print(f"[bold red]error:[/] {escape(message)}", soft_wrap=True)  # '[batch, K]' is text


def make_progress(target: Console | None = None) -> Progress:
    target = target or console
    return Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
        TextColumn("{task.fields[status]}"), TimeElapsedColumn(), TextColumn("eta"),
        TimeRemainingColumn(), console=target, transient=False,
        disable=target is console and not console.is_terminal and "pytest" in sys.modules,
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
