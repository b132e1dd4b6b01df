"""Regularizer plug-ins. Importing this package registers every built-in one."""

from __future__ import annotations

from harness.regularizers.base import (
    REGULARIZERS,
    Batch,
    ModelSpec,
    Params,
    Phase,
    PopulationSupport,
    Regularizer,
    Requires,
    RunContext,
    TrainState,
    UpstreamNeed,
    register,
)
from harness.regularizers.stack import RegularizerStack
from harness.regularizers.validate import validate_regularizers

# Built-in plug-ins register themselves on import (one module per family).
from harness.regularizers import _builtin  # noqa: F401,E402  isort: skip


__all__ = [
    "REGULARIZERS",
    "Batch",
    "ModelSpec",
    "Params",
    "Phase",
    "Regularizer",
    "Requires",
    "UpstreamNeed",
    "RegularizerStack",
    "PopulationSupport",
    "RunContext",
    "TrainState",
    "register",
    "validate_regularizers",
]
