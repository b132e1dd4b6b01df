"""Building blocks shared by the model families (one import point for plug-ins)."""

from harness.models.drop_path import DropPath, drop_path_rates
from harness.models.norms import NORM_KINDS, MoveChannels, group_count, make_norm
from harness.models.transformer import (
    FeedForward,
    SelfAttention,
    TransformerBlock,
    init_transformer,
)

__all__ = [
    "NORM_KINDS",
    "DropPath",
    "FeedForward",
    "MoveChannels",
    "SelfAttention",
    "TransformerBlock",
    "drop_path_rates",
    "group_count",
    "init_transformer",
    "make_norm",
]
