"""Transformer encoder/decoder block shared by vit, transformer1d and gpt.

Vaswani et al. 2017 (post-norm), Xiong et al. 2020 (pre-norm); layout as in nanoGPT.
"""

from __future__ import annotations

import math
from typing import Any, Literal, TypedDict

import torch.nn.functional as F
from torch import Tensor, nn

from harness.errors import ConfigError
from harness.models.base import COMMON_OPTIONS
from harness.models.drop_path import DropPath, drop_path_rates
from harness.models.norms import make_norm

# Where `dropout` (residual dropout) acts in a block: after attention, after the FFN.
Site = Literal["attn", "ffn"]
RESIDUAL_SITES: tuple[Site, ...] = ("attn", "ffn")
# Dropout placements besides the residual stream: attention probabilities, embeddings, head.
PLACEMENT_OPTIONS = frozenset({"embed_dropout", "attn_dropout", "head_dropout", "dropout_sites"})
TRANSFORMER_OPTIONS = COMMON_OPTIONS | PLACEMENT_OPTIONS | {"drop_path", "norm_position", "heads"}


def check_heads(width: int, heads: int) -> None:
    if width % heads:
        raise ConfigError(f"width {width} must be divisible by heads {heads}")


def make_blocks(
    width: int,
    depth: int,
    heads: int,
    *,
    dropout: float,
    drop_path: float,
    norm: str,
    norm_position: str,
    causal: bool = False,
    attn_dropout: float = 0.0,
    dropout_sites: tuple[str, ...] = RESIDUAL_SITES,
) -> nn.ModuleList:
    """`depth` transformer blocks with stochastic-depth rates linear in depth."""
    check_heads(width, heads)
    return nn.ModuleList(
        TransformerBlock(
            width,
            heads,
            dropout=dropout,
            attn_dropout=attn_dropout,
            dropout_sites=dropout_sites,
            drop_path=rate,
            norm=norm,
            norm_position=norm_position,
            causal=causal,
        )
        for rate in drop_path_rates(drop_path, depth)
    )


def final_norm(norm: str, width: int, norm_position: str) -> nn.Module:
    """Pre-norm stacks need a closing norm; post-norm blocks already end with one."""
    return make_norm(norm, width, "tokens") if norm_position == "pre" else nn.Identity()


class SelfAttention(nn.Module):
    """Multi-head self-attention via SDPA; `dropout` on the output (residual dropout).

    `attn_dropout` drops attention probabilities (SDPA's dropout_p, in training only; 0 by
    default), so the `dropout` knob means the same thing in every model: drop activations on
    the residual stream.
    """

    def __init__(self, width: int, heads: int, *, dropout: float, causal: bool,
                 attn_dropout: float = 0.0) -> None:
        super().__init__()
        self.heads, self.causal, self.attn_dropout = heads, causal, attn_dropout
        self.qkv = nn.Linear(width, 3 * width)
        self.proj = nn.Linear(width, width)
        self.resid_drop = nn.Dropout(dropout)

    def forward(self, x: Tensor) -> Tensor:
        n, t, c = x.shape
        q, k, v = self.qkv(x).view(n, t, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        drop = self.attn_dropout if self.training else 0.0
        y = F.scaled_dot_product_attention(q, k, v, dropout_p=drop, is_causal=self.causal)
        return self.resid_drop(self.proj(y.transpose(1, 2).reshape(n, t, c)))


class FeedForward(nn.Module):
    """Position-wise MLP (4x width, GELU) followed by residual dropout."""

    def __init__(self, width: int, *, dropout: float) -> None:
        super().__init__()
        self.fc = nn.Linear(width, 4 * width)
        self.act = nn.GELU()
        self.proj = nn.Linear(4 * width, width)
        self.resid_drop = nn.Dropout(dropout)

    def forward(self, x: Tensor) -> Tensor:
        return self.resid_drop(self.proj(self.act(self.fc(x))))


class TransformerBlock(nn.Module):
    """Attention + FFN, each a residual branch with DropPath; norm "pre" or "post".
    `dropout` follows the sublayers named in `dropout_sites` (attn, ffn)."""

    def __init__(
        self,
        width: int,
        heads: int,
        *,
        dropout: float = 0.0,
        attn_dropout: float = 0.0,
        dropout_sites: tuple[str, ...] = RESIDUAL_SITES,
        drop_path: float = 0.0,
        norm: str = "layernorm",
        norm_position: str = "pre",
        causal: bool = False,
    ) -> None:
        super().__init__()
        self.pre_norm = norm_position == "pre"
        self.norm1 = make_norm(norm, width, "tokens")
        self.attn = SelfAttention(width, heads, dropout=dropout if "attn" in dropout_sites else 0.0,
                                  attn_dropout=attn_dropout, causal=causal)
        self.norm2 = make_norm(norm, width, "tokens")
        self.mlp = FeedForward(width, dropout=dropout if "ffn" in dropout_sites else 0.0)
        self.drop_path = DropPath(drop_path)

    def forward(self, x: Tensor) -> Tensor:
        if self.pre_norm:  # x + f(norm(x))
            x = x + self.drop_path(self.attn(self.norm1(x)))
            return x + self.drop_path(self.mlp(self.norm2(x)))
        x = self.norm1(x + self.drop_path(self.attn(x)))  # norm(x + f(x))
        return self.norm2(x + self.drop_path(self.mlp(x)))


def init_transformer(model: nn.Module, depth: int) -> None:
    """nanoGPT init: N(0, 0.02) for Linear/Embedding, zero biases, and residual output
    projections scaled by 1/sqrt(2 * depth) (GPT-2) so the residual stream stays O(1)."""
    for name, module in model.named_modules():
        if isinstance(module, nn.Linear):
            std = 0.02 / math.sqrt(2 * depth) if name.endswith(".proj") else 0.02
            nn.init.normal_(module.weight, mean=0.0, std=std)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)


class TrunkOptions(TypedDict, total=False):
    """The options every transformer model takes besides its width, depth and heads."""

    dropout: float
    drop_path: float
    embed_dropout: float
    attn_dropout: float
    head_dropout: float
    dropout_sites: tuple[str, ...]
    norm: str
    norm_position: str


TRUNK_DEFAULTS: dict[str, Any] = {
    "dropout": 0.0, "drop_path": 0.0, "embed_dropout": 0.0, "attn_dropout": 0.0,
    "head_dropout": 0.0, "dropout_sites": RESIDUAL_SITES, "norm": "layernorm",
    "norm_position": "pre",
}


class TransformerTrunk(nn.Module):
    """What vit, transformer1d and gpt share after their embeddings: embedding dropout,
    blocks, the closing norm, head dropout and the head. A model builds its embeddings
    first, then calls `add_trunk` (the order modules are made in sets their init)."""

    def add_trunk(self, name: str, width: int, depth: int, heads: int, num_outputs: int,
                  options: TrunkOptions, *, causal: bool = False, head_bias: bool = True) -> None:
        unknown = sorted(set(options) - set(TRUNK_DEFAULTS))
        if unknown:
            raise ConfigError(f"model.kwargs: {name} takes no argument {unknown[0]!r}; "
                              f"accepted: {', '.join(TRUNK_DEFAULTS)}")
        o = {**TRUNK_DEFAULTS, **options}
        self.embed_drop = nn.Dropout(o["embed_dropout"])
        self.blocks = make_blocks(width, depth, heads, dropout=o["dropout"],
                                  attn_dropout=o["attn_dropout"],
                                  dropout_sites=o["dropout_sites"], drop_path=o["drop_path"],
                                  norm=o["norm"], norm_position=o["norm_position"],
                                  causal=causal)
        self.norm = final_norm(o["norm"], width, o["norm_position"])
        self.head_drop = nn.Dropout(o["head_dropout"])
        self.head = nn.Linear(width, num_outputs, bias=head_bias)
        self.residual_blocks: list[nn.Module] = list(self.blocks)

    def encode(self, tokens: Tensor) -> Tensor:
        """(N, T, width) embedded tokens -> the normed output of the blocks."""
        x = self.embed_drop(tokens)
        for block in self.blocks:
            x = block(x)
        return self.norm(x)

    def classify(self, features: Tensor) -> Tensor:
        return self.head(self.head_drop(features))
