"""Where a training run's results go: the `Tracker` protocol the loop talks to.

The loop calls five methods in a fixed order (start, log_epoch per epoch, log_summary, then
finish or fail) and never asks which trackers are behind them; a tracker that keeps model
weights also takes `watch(weights)` (after start; FanOut passes it only to those). Three
implementations: the local store (`StoreTracker`, the source of truth), W&B
(`tracking.wandb_run`) and `NullTracker`; `FanOut` sends each call to several, the store
first, so a store write that fails stops the run before any mirror has logged what the store
does not hold.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

from harness.numerics import NUMERICS_VERSION
from harness.record.run_dir import RunDir

Row = Mapping[str, Any]


@runtime_checkable
class Tracker(Protocol):
    """One training run's results, as the loop hands them over."""

    def start(self, config: Row, env: Row, resumed: Sequence[Row]) -> None:
        """The run begins; `resumed` holds the epochs restored from a checkpoint."""

    def log_epoch(self, row: Row) -> None:
        """One epoch's metrics row (metrics.csv columns, `epoch` among them)."""

    def summary_entries(self) -> dict[str, Any]:
        """What the run's summary should say about this tracker (e.g. where its copy is)."""

    def log_summary(self, summary: Row) -> None:
        """The run's summary: final at a normal end, partial with `status`/`error` on a failure."""

    def finish(self) -> None:
        """The run ended normally: flush and close."""

    def fail(self, status: str) -> None:
        """The run ended early (`failed`, `interrupted`, or `pruned`, a decision): close."""


TrackerFactory = Callable[[Any], Tracker]  # a run's config -> its tracker (a study's runs)


class NullTracker:
    """Tracks nothing: for runs whose results only the local store keeps."""

    def start(self, config: Row, env: Row, resumed: Sequence[Row]) -> None: ...
    def log_epoch(self, row: Row) -> None: ...
    def summary_entries(self) -> dict[str, Any]:
        return {}

    def log_summary(self, summary: Row) -> None: ...
    def finish(self) -> None: ...
    def fail(self, status: str) -> None: ...


class StoreTracker:
    """The local store (results/<study>/runs/<run>/): config, env, metrics.csv, summary.json.

    metrics.csv is rewritten whole (atomically) after every epoch, so it holds the restored
    epochs of a resumed run too; summary.json, written last, marks the run finished."""

    def __init__(self, run_dir: RunDir) -> None:
        self.run_dir = run_dir
        self.rows: list[dict[str, Any]] = []

    def start(self, config: Row, env: Row, resumed: Sequence[Row]) -> None:
        self.rows = [dict(r) for r in resumed]
        # stamped with the numerics that train it: the run id hashes the same version
        self.run_dir.write_config({**config, "numerics": NUMERICS_VERSION})
        self.run_dir.write_env(dict(env))

    def log_epoch(self, row: Row) -> None:
        self.rows.append(dict(row))
        self.run_dir.append_metrics(self.rows)

    def summary_entries(self) -> dict[str, Any]:
        return {}

    def log_summary(self, summary: Row) -> None:
        self.run_dir.write_summary(dict(summary))

    def finish(self) -> None: ...
    def fail(self, status: str) -> None: ...


class FanOut:
    """Several trackers as one, called in the order given (put the store first)."""

    def __init__(self, *trackers: Tracker) -> None:
        self.trackers = trackers

    def start(self, config: Row, env: Row, resumed: Sequence[Row]) -> None:
        for t in self.trackers:
            t.start(config, env, resumed)

    def log_epoch(self, row: Row) -> None:
        for t in self.trackers:
            t.log_epoch(row)

    def summary_entries(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for t in self.trackers:
            out.update(t.summary_entries())
        return out

    def log_summary(self, summary: Row) -> None:
        for t in self.trackers:
            t.log_summary(summary)

    def finish(self) -> None:
        for t in self.trackers:
            t.finish()

    def fail(self, status: str) -> None:
        for t in self.trackers:
            t.fail(status)

    def watch(self, weights: Callable[[], Mapping[str, Any]]) -> None:
        """Hand the evaluated model's weights (a state dict, read on demand) to the trackers
        that keep models (W&B's model artifacts): an optional method, as Lightning's
        `Logger.watch`; the others never see it."""
        for t in self.trackers:
            watch = getattr(t, "watch", None)
            if watch is not None:
                watch(weights)
