"""Decoder-only character language model.

Radford et al. 2019 (GPT-2) as in Karpathy's nanoGPT: causal blocks, weight tying
(Press & Wolf 2017) optional.
"""

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


@MODELS.register("gpt")
class GPT(TransformerTrunk):
    """(N, T) token ids -> (N, T, vocab) next-token logits; num_classes is the vocab."""

    info: ClassVar[ModelInfo] = ModelInfo(
        residual=True,
        language_model=True,
        kinds=frozenset({"text"}),
        options=TRANSFORMER_OPTIONS | {"tie_weights"}, default_depth=4,
    )

    def __init__(self, *, input_shape: tuple[int, ...], num_classes: int, width: int = 128,
                 depth: int = 4, heads: int = 4, tie_weights: bool = False,
                 **trunk: Unpack[TrunkOptions]) -> None:
        super().__init__()
        (self.block_size,) = input_shape
        self.tok_emb = nn.Embedding(num_classes, width)
        self.pos_emb = nn.Embedding(self.block_size, width)
        self.add_trunk("gpt", width, depth, heads, num_classes, trunk, causal=True,
                       head_bias=False)
        if tie_weights:
            self.head.weight = self.tok_emb.weight  # one Parameter, shared storage
        init_transformer(self, depth)

    def forward(self, idx: Tensor) -> Tensor:
        length = idx.shape[1]
        if length > self.block_size:
            raise ValueError(f"gpt got {length} tokens; its context is {self.block_size}")
        pos = torch.arange(length, device=idx.device)
        return self.classify(self.encode(self.tok_emb(idx) + self.pos_emb(pos)))
