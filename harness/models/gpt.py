"""Decoder-only character language model.

Radford et al. 2019 (GPT-2) as in Karpathy's nanoGPT: causal blocks, weight tying
(Press & Wolf 2017) optional.
"""

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


@MODELS.register("gpt")
class GPT(nn.Module):
    """(N, T) token ids -> (N, T, vocab) next-token logits; num_classes is the vocab."""

    info: ClassVar[ModelInfo] = ModelInfo(
        residual=True,
        language_model=True,
        kinds=frozenset({"text"}),
        options=TRANSFORMER_OPTIONS | {"tie_weights"}, default_depth=4,
    )

    def __init__(
        self,
        *,
        input_shape: tuple[int, ...],
        num_classes: int,
        width: int = 128,
        depth: int = 4,
        heads: int = 4,
        dropout: float = 0.0,
        drop_path: float = 0.0,
        embed_dropout: float = 0.0,
        attn_dropout: float = 0.0,
        head_dropout: float = 0.0,
        dropout_sites: tuple[str, ...] = RESIDUAL_SITES,
        norm: str = "layernorm",
        norm_position: str = "pre",
        tie_weights: bool = False,
    ) -> None:
        super().__init__()
        (self.block_size,) = input_shape
        self.tok_emb = nn.Embedding(num_classes, width)
        self.pos_emb = nn.Embedding(self.block_size, width)
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
            causal=True,
        )
        self.norm = final_norm(norm, width, norm_position)
        self.head_drop = nn.Dropout(head_dropout)
        self.head = nn.Linear(width, num_classes, bias=False)
        if tie_weights:
            self.head.weight = self.tok_emb.weight  # one Parameter, shared storage
        self.residual_blocks: list[nn.Module] = list(self.blocks)
        init_transformer(self, depth)

    def forward(self, idx: Tensor) -> Tensor:
        length = idx.shape[1]
        if length > self.block_size:
            raise ValueError(f"gpt got {length} tokens; its context is {self.block_size}")
        pos = torch.arange(length, device=idx.device)
        x = self.embed_drop(self.tok_emb(idx) + self.pos_emb(pos))
        for block in self.blocks:
            x = block(x)
        return self.head(self.head_drop(self.norm(x)))
