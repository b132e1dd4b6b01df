"""The typed, integrity-checked study record: the only reader of results/<study>/.

The schema is imported eagerly (study files validate against it before torch or pandas are
needed); the reader, which needs pandas, on first use."""

from typing import TYPE_CHECKING, Any

from harness.record.schema import (
    COMPARABLE_METRICS,
    FINISHED_STATUSES,
    INCLUDED_STATUSES,
    Comparison,
    FailureNote,
    Manifest,
    PlannedRun,
    first_line,
)

if TYPE_CHECKING:  # the type checker sees the lazily imported names as what they are
    from harness.record.load import MissingRun as MissingRun
    from harness.record.load import RunRecord as RunRecord
    from harness.record.load import StudyRecord as StudyRecord
    from harness.record.load import Variant as Variant

_LAZY = ("MissingRun", "RunRecord", "StudyRecord", "Variant")

__all__ = ["COMPARABLE_METRICS", "FINISHED_STATUSES", "INCLUDED_STATUSES", "Comparison",
           "FailureNote", "Manifest", "PlannedRun", "first_line", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        from harness.record import load

        return getattr(load, name)
    raise AttributeError(f"module 'harness.record' has no attribute {name!r}")
