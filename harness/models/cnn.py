"""Plain conv net for signals and images: kernel-3 convolutions with max-pooling and
doubling channels, the classic small CNN of Fashion-MNIST tutorials. For MNIST-1D it is not
the paper's ConvBase (three convolutions of stride 2, kernel 5 then 3, 25 channels, no
pooling)."""

from __future__ import annotations

import math
from typing import ClassVar

from torch import Tensor, nn

from harness.models.base import MODELS, ModelInfo
from harness.models.convs import adaptive_avg_pool, conv_ops
from harness.models.norms import make_norm

MAX_GRID = 8  # positions per spatial dim the classifier sees (keeps "where", e.g. MNIST-1D)
CHANNEL_CAP = 4  # stage channels width * 2**i stop growing at 4 * width


def head_grid(size: int) -> int:
    """Halve `size` until it is <= MAX_GRID: the fixed grid the flattened features use.

    Fixing the grid (not the number of pools) makes parameters grow with both width
    and depth, so sweeps over either vary capacity monotonically.
    """
    while size > MAX_GRID:
        size //= 2
    return size


@MODELS.register("cnn")
class CNN(nn.Module):
    """depth x [conv3 -> norm -> ReLU -> maxpool/2 while above the grid] -> flatten
    -> Dropout -> head. Flattening (not global pooling) keeps position information."""

    info: ClassVar[ModelInfo] = ModelInfo(kinds=frozenset({"image", "signal"}))

    def __init__(
        self,
        *,
        input_shape: tuple[int, ...],
        num_classes: int,
        width: int = 32,
        depth: int | None = None,
        dropout: float = 0.0,
        norm: str = "batchnorm",
    ) -> None:
        super().__init__()
        conv, pool, layout = conv_ops(input_shape)
        depth = depth if depth is not None else (3 if layout == "1d" else 2)
        sizes = list(input_shape[1:])
        grid = [head_grid(s) for s in sizes]
        layers: list[nn.Module] = []
        channels = input_shape[0]
        for i in range(depth):
            out = width * 2 ** min(i, int(math.log2(CHANNEL_CAP)))
            layers += [
                conv(channels, out, kernel_size=3, padding=1, bias=norm == "none"),
                make_norm(norm, out, layout),
                nn.ReLU(inplace=True),
            ]
            if all(s > g for s, g in zip(sizes, grid, strict=True)):
                layers.append(pool(2))
                sizes = [s // 2 for s in sizes]
            channels = out
        if sizes != grid:  # too shallow to pool down to the grid: average the rest
            layers.append(adaptive_avg_pool(input_shape)(tuple(grid)))
        layers += [nn.Flatten(), nn.Dropout(dropout)]
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(channels * math.prod(grid), num_classes)
        self.residual_blocks: list[nn.Module] = []

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.body(x))
