"""Transformer encoder over the positions of a 1-D signal (each position is a token)."""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import Tensor, nn
from typing_extensions import Unpack

from harness.models.base import MODELS, ModelInfo
from harness.models.transformer import (
    TRANSFORMER_OPTIONS,
    TransformerTrunk,
    TrunkOptions,
    init_transformer,
)


@MODELS.register("transformer1d")
class Transformer1d(TransformerTrunk):
    """(N, C, L): Linear(C -> width) per position + learned positions -> blocks
    -> norm -> mean over positions -> (head dropout) -> head."""

    info: ClassVar[ModelInfo] = ModelInfo(
        residual=True, kinds=frozenset({"signal"}), options=TRANSFORMER_OPTIONS,
        default_depth=2,
    )

    def __init__(self, *, input_shape: tuple[int, ...], num_classes: int, width: int = 64,
                 depth: int = 2, heads: int = 4, **trunk: Unpack[TrunkOptions]) -> None:
        super().__init__()
        channels, length = input_shape
        self.embed = nn.Linear(channels, width)
        self.pos_emb = nn.Parameter(torch.zeros(1, length, width))
        self.add_trunk("transformer1d", width, depth, heads, num_classes, trunk)
        init_transformer(self, depth)
        nn.init.trunc_normal_(self.pos_emb, std=0.02)

    def forward(self, x: Tensor) -> Tensor:
        return self.classify(self.encode(self.embed(x.transpose(1, 2)) + self.pos_emb).mean(dim=1))
