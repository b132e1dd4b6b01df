"""Pre-activation ResNet-18 family, widths [k, 2k, 4k, 8k] (Nakkiran et al. 2019).

He et al. 2016, "Identity Mappings in Deep Residual Networks"; block as in kuangliu's
PreActResNet; DropPath on each residual branch (Huang et al. 2016).
"""

from __future__ import annotations

from typing import ClassVar

import torch.nn.functional as F
from torch import Tensor, nn

from harness.models.base import COMMON_OPTIONS, MODELS, ModelInfo
from harness.models.convs import adaptive_avg_pool, conv_ops
from harness.models.drop_path import DropPath, drop_path_rates
from harness.models.norms import make_norm


class PreActBlock(nn.Module):
    """norm -> ReLU -> conv3 -> norm -> ReLU -> conv3, plus identity (or 1x1 projection)."""

    def __init__(
        self,
        input_shape: tuple[int, ...],
        in_channels: int,
        channels: int,
        *,
        stride: int,
        norm: str,
        drop_path: float,
    ) -> None:
        super().__init__()
        conv, _, layout = conv_ops(input_shape)
        bias = norm == "none"
        self.norm1 = make_norm(norm, in_channels, layout)
        self.conv1 = conv(in_channels, channels, 3, stride=stride, padding=1, bias=bias)
        self.norm2 = make_norm(norm, channels, layout)
        self.conv2 = conv(channels, channels, 3, padding=1, bias=bias)
        self.shortcut: nn.Module | None = None
        if stride != 1 or in_channels != channels:
            self.shortcut = conv(in_channels, channels, 1, stride=stride, bias=bias)
        self.drop_path = DropPath(drop_path)

    def forward(self, x: Tensor) -> Tensor:
        out = F.relu(self.norm1(x))
        skip = self.shortcut(out) if self.shortcut is not None else x
        out = self.conv2(F.relu(self.norm2(self.conv1(out))))
        return skip + self.drop_path(out)


@MODELS.register("resnet")
class PreActResNet(nn.Module):
    """conv stem -> 4 stages of `depth` blocks (stride 1,2,2,2) -> norm -> ReLU
    -> global avg pool -> Dropout -> head. depth=2 is ResNet-18."""

    info: ClassVar[ModelInfo] = ModelInfo(
        residual=True,
        kinds=frozenset({"image", "signal"}),
        options=COMMON_OPTIONS | {"drop_path"},
        default_depth=2, blocks_per_depth=4,
    )

    def __init__(
        self,
        *,
        input_shape: tuple[int, ...],
        num_classes: int,
        width: int = 16,
        depth: int = 2,
        dropout: float = 0.0,
        norm: str = "batchnorm",
        drop_path: float = 0.0,
    ) -> None:
        super().__init__()
        conv, _, layout = conv_ops(input_shape)
        self.stem = conv(input_shape[0], width, 3, padding=1, bias=False)
        rates = iter(drop_path_rates(drop_path, 4 * depth))
        blocks: list[nn.Module] = []
        channels = width
        for stage, mult in enumerate((1, 2, 4, 8)):
            for i in range(depth):
                stride = 2 if stage > 0 and i == 0 else 1
                blocks.append(
                    PreActBlock(
                        input_shape,
                        channels,
                        width * mult,
                        stride=stride,
                        norm=norm,
                        drop_path=next(rates),
                    )
                )
                channels = width * mult
        self.blocks = nn.Sequential(*blocks)
        self.final_norm = make_norm(norm, channels, layout)
        self.pool = adaptive_avg_pool(input_shape)(1)
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(channels, num_classes)
        self.residual_blocks: list[nn.Module] = list(self.blocks)
        self._init_weights()

    def _init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, (nn.Conv1d, nn.Conv2d)):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: Tensor) -> Tensor:
        x = F.relu(self.final_norm(self.blocks(self.stem(x))))
        return self.head(self.dropout(self.pool(x).flatten(1)))
