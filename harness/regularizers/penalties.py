"""L1 / L2 / elastic-net penalties. Zou & Hastie 2005, "Regularization and variable selection
via the elastic net", JRSS-B; L1: Tibshirani 1996; L2: Hoerl & Kennard 1970."""

from __future__ import annotations

from typing import TypeVar

import torch
from pydantic import Field
from torch import nn

from harness.regularizers.base import (
    Batch,
    Params,
    Regularizer,
    TrainState,
    register,
)


def penalized(model: nn.Module, include_bias_and_norm: bool) -> list[torch.Tensor]:
    """Weights (ndim > 1) only, unless biases and norm parameters (ndim <= 1) are asked for.
    A tied parameter counts once (named_parameters deduplicates)."""
    return [p for p in model.parameters()
            if p.requires_grad and (include_bias_and_norm or p.ndim > 1)]


def l1_norm(params: list[torch.Tensor]) -> torch.Tensor:
    return torch.stack([p.abs().sum() for p in params]).sum()


def l2_squared(params: list[torch.Tensor]) -> torch.Tensor:
    return torch.stack([p.square().sum() for p in params]).sum()


class L1Params(Params):
    value: float = Field(1e-5, ge=0.0)
    include_bias_and_norm: bool = False


class L2Params(Params):
    value: float = Field(5e-4, ge=0.0)
    include_bias_and_norm: bool = False


class ElasticNetParams(Params):
    value: float = Field(1e-4, ge=0.0)
    l1_ratio: float = Field(0.5, ge=0.0, le=1.0)
    include_bias_and_norm: bool = False


PenaltyParams = TypeVar("PenaltyParams", L1Params, L2Params, ElasticNetParams)


class _Penalty(Regularizer[PenaltyParams]):
    applies_to = "all models (weights only; biases and norm parameters with include_bias_and_norm)"

    def penalty(self, params: list[torch.Tensor]) -> torch.Tensor:
        raise NotImplementedError

    def loss(self, state: TrainState, loss: torch.Tensor, batch: Batch,
             logits: torch.Tensor) -> torch.Tensor:
        if self.params.value == 0.0:
            return loss
        params = penalized(state.model, self.params.include_bias_and_norm)
        if not params:
            return loss
        return loss + self.penalty(params)


@register
class L1(_Penalty[L1Params]):
    """loss += value * sum |w|."""

    name = "l1"
    reference = "Tibshirani 1996 (lasso)"
    example = {"value": 1e-5}

    def penalty(self, params: list[torch.Tensor]) -> torch.Tensor:
        return self.params.value * l1_norm(params)


@register
class L2(_Penalty[L2Params]):
    """loss += value / 2 * sum w^2 (its gradient is value * w: coupled weight decay)."""

    name = "l2"
    reference = "Hoerl & Kennard 1970 (ridge); Krogh & Hertz 1992"
    example = {"value": 5e-4}

    def penalty(self, params: list[torch.Tensor]) -> torch.Tensor:
        return 0.5 * self.params.value * l2_squared(params)


@register
class ElasticNet(_Penalty[ElasticNetParams]):
    """loss += value * (l1_ratio * ||w||_1 + (1 - l1_ratio) / 2 * ||w||_2^2)
    (scikit-learn's ElasticNet parametrization: alpha = value)."""

    name = "elastic_net"
    reference = "Zou & Hastie 2005"
    example = {"value": 1e-4, "l1_ratio": 0.5}

    def penalty(self, params: list[torch.Tensor]) -> torch.Tensor:
        p = self.params
        out = torch.zeros((), device=params[0].device)
        if p.l1_ratio > 0:
            out = out + p.l1_ratio * l1_norm(params)
        if p.l1_ratio < 1:
            out = out + 0.5 * (1.0 - p.l1_ratio) * l2_squared(params)
        return p.value * out
