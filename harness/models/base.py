"""The model registry and the capability record each model class declares.

A model class carries its own `info`, so the factory, the option checks and the
regularizer plug-ins all read one source of truth about what a model can take.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from harness.registry import Registry

DATA_KINDS = ("image", "signal", "text")
COMMON_OPTIONS = frozenset({"width", "depth", "dropout", "norm"})


@dataclass(frozen=True)
class ModelInfo:
    """What a model accepts: data kinds, keyword options, and structural facts."""

    residual: bool = False
    language_model: bool = False
    kinds: frozenset[str] = field(default_factory=frozenset)
    options: frozenset[str] = COMMON_OPTIONS
    default_depth: int = 1
    blocks_per_depth: int = 1  # residual blocks per unit of `depth` (resnet: one per stage)
    # Its forward computes each sample on its own from its modules (no batch statistics, no
    # reshape across the batch), so a population can fold its members into the batch
    # (harness/models/population.py); its modules must have stacked forms too.
    population: bool = False

    def residual_blocks(self, depth: int | None) -> int:
        return (depth or self.default_depth) * self.blocks_per_depth if self.residual else 0


MODELS: Registry = Registry("model")
# A plug-in model without `info` may take any data kind and no harness options.
PLUGIN_INFO = ModelInfo(kinds=frozenset(DATA_KINDS), options=frozenset())


def model_info(obj: object) -> ModelInfo:
    """The model's declared info, or the plug-in default (see harness/models/contract.py)."""
    info = getattr(obj, "info", None)
    return info if isinstance(info, ModelInfo) else PLUGIN_INFO


def data_kind(input_shape: tuple[int, ...]) -> str:
    """(T,) is text, (C, L) a 1-D signal, (C, H, W) an image."""
    return {1: "text", 2: "signal", 3: "image"}.get(len(input_shape), "unknown")
