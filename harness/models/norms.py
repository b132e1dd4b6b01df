"""One factory for every normalization layer, in every tensor layout the models use."""

from __future__ import annotations

import math

from torch import Tensor, nn

from harness.errors import ConfigError

NORM_KINDS = ("none", "batchnorm", "layernorm", "rmsnorm", "groupnorm")
LAYOUTS = ("1d", "2d", "tokens", "features")


class MoveChannels(nn.Module):
    """Apply `inner` with the channel dim moved from `src` to `dst`, then move it back.

    LayerNorm/RMSNorm normalize the last dim, BatchNorm/GroupNorm dim 1; this adapter
    lets each norm see channels where it expects them (ConvNeXt-style channels LayerNorm).
    """

    def __init__(self, inner: nn.Module, src: int, dst: int) -> None:
        super().__init__()
        self.inner, self.src, self.dst = inner, src, dst

    def forward(self, x: Tensor) -> Tensor:
        return self.inner(x.movedim(self.src, self.dst)).movedim(self.dst, self.src)


class PerToken(nn.Module):
    """Apply `inner` to each token's channels alone: (N, T, C) is seen as N*T samples of C.

    GroupNorm over tokens must not pool positions: normalizing each channel over the
    sequence leaves it mean zero over positions, and a head that averages positions
    (transformer1d, ViT) then reads a constant (both seeds at chance in the
    normalization study before this)."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x: Tensor) -> Tensor:
        return self.inner(x.reshape(-1, x.shape[-1])).reshape(x.shape)


TOKEN_GROUPS = 8  # per token: 32 groups of a 32-wide token would hold one channel each


def group_count(channels: int, max_groups: int = 32) -> int:
    """Groups for GroupNorm (Wu & He 2018 use 32): gcd(32, channels), so it always divides;
    odd channel counts get 1 group (a LayerNorm over channels and positions)."""
    return math.gcd(max_groups, channels)


def make_norm(kind: str, channels: int, layout: str) -> nn.Module:
    """A norm over `channels` for layout "1d" (N,C,L), "2d" (N,C,H,W), "tokens" (N,T,C)
    or "features" (N,C); "none" gives nn.Identity so callers never branch."""
    if kind not in NORM_KINDS:
        raise ConfigError(f"unknown norm {kind!r}; valid: {', '.join(NORM_KINDS)}")
    if layout not in LAYOUTS:
        raise ValueError(f"unknown norm layout {layout!r}; valid: {', '.join(LAYOUTS)}")
    if kind == "none":
        return nn.Identity()
    if kind == "batchnorm":
        if layout == "2d":
            return nn.BatchNorm2d(channels)
        bn = nn.BatchNorm1d(channels)
        return MoveChannels(bn, -1, 1) if layout == "tokens" else bn
    if kind == "groupnorm":
        if layout == "tokens":
            return PerToken(nn.GroupNorm(group_count(channels, TOKEN_GROUPS), channels))
        return nn.GroupNorm(group_count(channels), channels)
    last_dim = nn.LayerNorm(channels) if kind == "layernorm" else nn.RMSNorm(channels)
    return MoveChannels(last_dim, 1, -1) if layout in ("1d", "2d") else last_dim
