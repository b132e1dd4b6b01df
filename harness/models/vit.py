"""Small Vision Transformer for low-resolution images.

Dosovitskiy et al. 2021, "An Image is Worth 16x16 Words"; cls-token head as in timm.
"""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import Tensor, nn
from typing_extensions import Unpack

from harness.errors import ConfigError
from harness.models.base import MODELS, ModelInfo
from harness.models.transformer import (
    TRANSFORMER_OPTIONS,
    TransformerTrunk,
    TrunkOptions,
    init_transformer,
)


@MODELS.register("vit")
class ViT(TransformerTrunk):
    """Conv patch embedding + cls token + learned positions -> blocks -> norm -> head(cls)."""

    info: ClassVar[ModelInfo] = ModelInfo(
        residual=True,
        kinds=frozenset({"image"}),
        options=TRANSFORMER_OPTIONS | {"patch_size"}, default_depth=4,
    )

    def __init__(self, *, input_shape: tuple[int, ...], num_classes: int, width: int = 64,
                 depth: int = 4, heads: int = 4, patch_size: int | None = None,
                 **trunk: Unpack[TrunkOptions]) -> None:
        super().__init__()
        channels, height, wide = input_shape
        patch = patch_size or (2 if min(height, wide) <= 16 else 4)
        if height % patch or wide % patch:
            raise ConfigError(f"vit patch_size {patch} must divide the image size {height}x{wide}")
        num_patches = (height // patch) * (wide // patch)
        self.patch_embed = nn.Conv2d(channels, width, kernel_size=patch, stride=patch)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, width))
        self.pos_emb = nn.Parameter(torch.zeros(1, num_patches + 1, width))
        self.add_trunk("vit", width, depth, heads, num_classes, trunk)
        init_transformer(self, depth)
        nn.init.trunc_normal_(self.pos_emb, std=0.02)
        nn.init.trunc_normal_(self.cls_token, std=0.02)

    def no_weight_decay(self) -> set[str]:
        """Left out of weight decay, as timm's VisionTransformer does (pos_embed, cls_token)."""
        return {"pos_emb", "cls_token"}

    def forward(self, x: Tensor) -> Tensor:
        x = self.patch_embed(x).flatten(2).transpose(1, 2)  # (N, patches, width)
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1)
        return self.classify(self.encode(x + self.pos_emb)[:, 0])
