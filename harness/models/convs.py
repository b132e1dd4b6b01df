"""Pick 1-D or 2-D conv/pool layers from the per-sample input shape."""

from __future__ import annotations

from torch import nn


def conv_ops(input_shape: tuple[int, ...]) -> tuple[type[nn.Module], type[nn.Module], str]:
    """(Conv, MaxPool, norm layout) for (C, L) signals or (C, H, W) images."""
    if len(input_shape) == 2:
        return nn.Conv1d, nn.MaxPool1d, "1d"
    return nn.Conv2d, nn.MaxPool2d, "2d"


def adaptive_avg_pool(input_shape: tuple[int, ...]) -> type[nn.Module]:
    return nn.AdaptiveAvgPool1d if len(input_shape) == 2 else nn.AdaptiveAvgPool2d
