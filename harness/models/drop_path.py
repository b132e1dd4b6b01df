"""Stochastic depth: drop whole residual branches per sample.

Huang et al. 2016, "Deep Networks with Stochastic Depth"; as in timm layers/drop.py.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


class DropPath(nn.Module):
    """Zero a sample's residual branch with prob p in training, scale kept ones by 1/(1-p).

    y = x * b / (1 - p), b ~ Bernoulli(1 - p) per sample, so E[y] = x (timm drop_path).
    Identity in eval mode or when p == 0.
    """

    def __init__(self, p: float = 0.0) -> None:
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"drop path rate must be in [0, 1), got {p}")
        self.p = float(p)

    def forward(self, x: Tensor) -> Tensor:
        if not self.training or self.p == 0.0:
            return x
        keep = 1.0 - self.p
        shape = (x.shape[0],) + (1,) * (x.ndim - 1)
        mask = x.new_empty(shape).bernoulli_(keep)
        return x * mask / keep

    def extra_repr(self) -> str:
        return f"p={self.p:g}"


def drop_path_rates(rate: float, blocks: int) -> list[float]:
    """Per-block rates growing linearly with depth: block i of n gets rate * i / (n - 1).

    Same as timm's torch.linspace(0, rate, depth): the first block is never dropped
    (a single block therefore gets 0) and the last gets `rate`.
    """
    return [float(r) for r in torch.linspace(0.0, rate, blocks)]
