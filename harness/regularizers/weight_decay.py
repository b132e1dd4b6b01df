"""Weight decay. Loshchilov & Hutter 2019, "Decoupled Weight Decay Regularization", ICLR."""

from __future__ import annotations

from typing import ClassVar, Literal

import torch
from pydantic import Field
from torch import nn

from harness.regularizers.base import (
    Params,
    Phase,
    PopulationSupport,
    Regularizer,
    RunContext,
    TrainState,
    register,
)


def decays(p: torch.Tensor, exclude_bias_and_norm: bool) -> bool:
    """Biases and normalization scales/shifts are the 1-D (or scalar) parameters."""
    return not (exclude_bias_and_norm and p.ndim <= 1)


def no_decay_ids(model: nn.Module) -> frozenset[int]:
    """The parameters a model names in `no_weight_decay()` (timm's convention: a ViT's
    position embedding and cls token), by identity."""
    names = getattr(model, "no_weight_decay", None)
    skip = set(names()) if callable(names) else set()
    return frozenset(id(p) for n, p in model.named_parameters() if n in skip)


class WeightDecayParams(Params):
    value: float = Field(0.01, ge=0.0)  # torch.optim.AdamW's default
    mode: Literal["decoupled", "l2"] = "decoupled"
    exclude_bias_and_norm: bool = True


@register
class WeightDecay(Regularizer[WeightDecayParams]):
    """Runs in `before_step`, after the lr of this step is set and gradients are clipped.

    decoupled: p <- p * (1 - lr * value) outside the optimizer's update, exactly as
    torch.optim.AdamW (Adam -> AdamW, SGD -> SGDW).
    l2: g <- g + value * p before the step, exactly torch.optim.Adam/SGD(weight_decay=value):
    with Adam the decay goes through the adaptive moments.

    With exclude_bias_and_norm (default), parameters with ndim <= 1 (biases, BatchNorm /
    LayerNorm scales and shifts) are not decayed, nor those the model names in
    `no_weight_decay()` (the ViT's pos_emb and cls_token, as timm's param_groups_weight_decay);
    other embeddings (ndim >= 2) are. Parameters without a gradient this step are skipped,
    as torch does.
    """

    name = "weight_decay"
    population: ClassVar[PopulationSupport | None] = PopulationSupport()
    phase = Phase.DECAY  # last in before_step: any plug-in that changes the lr (SWA) has run
    reference = "Loshchilov & Hutter 2019 (AdamW); Krogh & Hertz 1992 (L2)"
    applies_to = "all models (no decay on biases and norm parameters by default)"
    example: ClassVar[dict] = {"value": 0.05, "mode": "decoupled"}
    example_overrides: ClassVar[dict] = {}

    def __init__(self, params: WeightDecayParams, ctx: RunContext) -> None:
        super().__init__(params, ctx)
        self._skip: tuple[nn.Module, frozenset[int]] | None = None

    @torch.no_grad()
    def before_step(self, state: TrainState) -> None:
        p_ = self.params
        if p_.value == 0.0:
            return
        model = state.model
        if self._skip is None or self._skip[0] is not model:  # once per model, not per step
            self._skip = (model, no_decay_ids(model) if p_.exclude_bias_and_norm else frozenset())
        skip = self._skip[1]
        for group in state.optimizer.param_groups:
            params = [p for p in group["params"] if p.grad is not None and id(p) not in skip
                      and decays(p, p_.exclude_bias_and_norm)]
            if not params:
                continue
            if p_.mode == "decoupled":
                torch._foreach_mul_(params, 1.0 - group["lr"] * p_.value)
            else:
                torch._foreach_add_([p.grad for p in params], params, alpha=p_.value)
