"""Small Vision Transformer for low-resolution images.

Dosovitskiy et al. 2021, "An Image is Worth 16x16 Words"; cls-token head as in timm.
"""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import Tensor, nn

from harness.errors import ConfigError
from harness.models.base import MODELS, ModelInfo
from harness.models.transformer import (
    RESIDUAL_SITES,
    TRANSFORMER_OPTIONS,
    final_norm,
    init_transformer,
    make_blocks,
)


@MODELS.register("vit")
class ViT(nn.Module):
    """Conv patch embedding + cls token + learned positions -> blocks -> norm -> head(cls)."""

    info: ClassVar[ModelInfo] = ModelInfo(
        residual=True,
        kinds=frozenset({"image"}),
        options=TRANSFORMER_OPTIONS | {"patch_size"}, default_depth=4,
    )

    def __init__(
        self,
        *,
        input_shape: tuple[int, ...],
        num_classes: int,
        width: int = 64,
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
        patch_size: int | None = None,
    ) -> None:
        super().__init__()
        channels, height, wide = input_shape
        patch = patch_size or (2 if min(height, wide) <= 16 else 4)
        if height % patch or wide % patch:
            raise ConfigError(f"vit patch_size {patch} must divide the image size {height}x{wide}")
        num_patches = (height // patch) * (wide // patch)
        self.patch_embed = nn.Conv2d(channels, width, kernel_size=patch, stride=patch)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, width))
        self.pos_emb = nn.Parameter(torch.zeros(1, num_patches + 1, width))
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
        nn.init.trunc_normal_(self.cls_token, std=0.02)

    def forward(self, x: Tensor) -> Tensor:
        x = self.patch_embed(x).flatten(2).transpose(1, 2)  # (N, patches, width)
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1)
        x = self.embed_drop(x + self.pos_emb)
        for block in self.blocks:
            x = block(x)
        return self.head(self.head_drop(self.norm(x)[:, 0]))
