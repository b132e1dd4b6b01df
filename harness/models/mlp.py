"""Multi-layer perceptron: the no-inductive-bias baseline."""

from __future__ import annotations

import math
from typing import ClassVar

from torch import Tensor, nn

from harness.models.base import MODELS, ModelInfo
from harness.models.norms import make_norm


@MODELS.register("mlp")
class MLP(nn.Module):
    """flatten -> depth x [Linear -> norm -> ReLU -> Dropout] -> head Linear."""

    info: ClassVar[ModelInfo] = ModelInfo(kinds=frozenset({"image", "signal"}), population=True)

    def __init__(
        self,
        *,
        input_shape: tuple[int, ...],
        num_classes: int,
        width: int = 128,
        depth: int = 2,
        dropout: float = 0.0,
        norm: str = "none",
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Flatten()]
        features = math.prod(input_shape)
        for _ in range(depth):
            layers += [
                nn.Linear(features, width),
                make_norm(norm, width, "features"),
                nn.ReLU(inplace=True),
                nn.Dropout(dropout),
            ]
            features = width
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(features, num_classes)
        self.residual_blocks: list[nn.Module] = []

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.body(x))
