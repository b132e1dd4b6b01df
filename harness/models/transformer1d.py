"""Transformer encoder over the positions of a 1-D signal (each position is a token)."""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import Tensor, nn

from harness.models.base import MODELS, ModelInfo
from harness.models.transformer import (
    RESIDUAL_SITES,
    TRANSFORMER_OPTIONS,
    final_norm,
    init_transformer,
    make_blocks,
)


@MODELS.register("transformer1d")
class Transformer1d(nn.Module):
    """(N, C, L): Linear(C -> width) per position + learned positions -> blocks
    -> norm -> mean over positions -> (head dropout) -> head."""

    info: ClassVar[ModelInfo] = ModelInfo(
        residual=True, kinds=frozenset({"signal"}), options=TRANSFORMER_OPTIONS,
        default_depth=2,
    )

    def __init__(
        self,
        *,
        input_shape: tuple[int, ...],
        num_classes: int,
        width: int = 64,
        depth: int = 2,
        heads: int = 4,
        dropout: float = 0.0,
        drop_path: float = 0.0,
        embed_dropout: float = 0.0,
        attn_dropout: float = 0.0,
        head_dropout: float = 0.0,
        dropout_sites: tuple[str, ...] = RESIDUAL_SITES,
        norm: str = "layernorm",
        norm_position: str = "pre",
    ) -> None:
        super().__init__()
        channels, length = input_shape
        self.embed = nn.Linear(channels, width)
        self.pos_emb = nn.Parameter(torch.zeros(1, length, width))
        self.embed_drop = nn.Dropout(embed_dropout)
        self.blocks = make_blocks(
            width,
            depth,
            heads,
            dropout=dropout,
            attn_dropout=attn_dropout,
            dropout_sites=dropout_sites,
            drop_path=drop_path,
            norm=norm,
            norm_position=norm_position,
        )
        self.norm = final_norm(norm, width, norm_position)
        self.head_drop = nn.Dropout(head_dropout)
        self.head = nn.Linear(width, num_classes)
        self.residual_blocks: list[nn.Module] = list(self.blocks)
        init_transformer(self, depth)
        nn.init.trunc_normal_(self.pos_emb, std=0.02)

    def forward(self, x: Tensor) -> Tensor:
        x = self.embed_drop(self.embed(x.transpose(1, 2)) + self.pos_emb)
        for block in self.blocks:
            x = block(x)
        return self.head(self.head_drop(self.norm(x).mean(dim=1)))
