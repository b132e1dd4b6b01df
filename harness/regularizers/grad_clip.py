"""Gradient clipping. Pascanu et al. 2013 (norm); Brock et al. 2021, NFNets (adaptive, AGC)."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

import torch
from pydantic import Field
from torch import nn

from harness.regularizers.base import (
    Params,
    PopulationSupport,
    Regularizer,
    RunContext,
    TrainState,
    register,
)

DEFAULT_THRESHOLD = {"norm": 1.0, "value": 1.0, "agc": 0.01}


class GradClipParams(Params):
    mode: Literal["norm", "value", "agc"] = "norm"
    # norm: max global L2 norm; value: max |g|; agc: clipping factor lambda.
    # None: 1.0 for norm and value, 0.01 for agc.
    threshold: float | None = Field(None, gt=0.0)
    eps: float = Field(1e-3, gt=0.0)  # agc: floor on the unit-wise weight norm


def unitwise_norm(x: torch.Tensor) -> torch.Tensor:
    """L2 norm per output unit (all dims but 0) for ndim > 1, of the whole tensor otherwise
    (timm's `unitwise_norm`)."""
    if x.ndim <= 1:
        return torch.linalg.vector_norm(x)
    return torch.linalg.vector_norm(x, dim=tuple(range(1, x.ndim)), keepdim=True)


def head_parameters(model: nn.Module) -> set[int]:
    """ids of the final classifier's parameters (`model.head`), excluded from AGC as in NFNets."""
    head = getattr(model, "head", None)
    return {id(p) for p in head.parameters()} if isinstance(head, nn.Module) else set()


@torch.no_grad()
def adaptive_clip_(params: list[nn.Parameter], clip: float,
                   eps: float) -> tuple[torch.Tensor, int]:
    """G_i <- G_i * max_norm / ||G_i|| where ||G_i|| > max_norm = max(||W_i||, eps) * clip.
    Returns (units clipped, units) as device tensors summed (no host sync)."""
    device = params[0].device if params else torch.device("cpu")
    clipped = torch.zeros((), dtype=torch.long, device=device)
    units = 0
    for p in params:
        if p.grad is None:  # callers pass the parameters that have gradients
            continue
        g = p.grad.detach()
        max_norm = unitwise_norm(p.detach()).clamp(min=eps).mul_(clip)
        g_norm = unitwise_norm(g)
        over = g_norm > max_norm
        g.copy_(torch.where(over, g * (max_norm / g_norm.clamp(min=1e-6)), g))
        clipped = clipped + over.sum()
        units += over.numel()
    return clipped, units


@register
class GradClip(Regularizer[GradClipParams]):
    """Clips gradients in `after_backward` (so weight decay's coupled term, added in
    before_step, is not clipped, as with torch's optimizers). The logged `grad_norm` of the
    loop is measured before clipping."""

    name = "grad_clip"
    population: ClassVar[PopulationSupport | None] = PopulationSupport()  # each member's norms
    reference = "Pascanu et al. 2013 (norm); Brock et al. 2021 (AGC)"
    applies_to = "all models (agc: every layer but `model.head`)"
    example: ClassVar[dict] = {"mode": "norm", "threshold": 1.0}
    example_overrides: ClassVar[dict] = {}

    def __init__(self, params: GradClipParams, ctx: RunContext) -> None:
        super().__init__(params, ctx)
        p = params
        self.threshold = p.threshold if p.threshold is not None else DEFAULT_THRESHOLD[p.mode]
        self.steps = 0
        self.steps_clipped: torch.Tensor | int = 0
        self.units = 0
        self.units_clipped: torch.Tensor | int = 0

    def after_backward(self, state: TrainState) -> None:
        p, model = self.params, state.model
        params = [q for q in model.parameters() if q.grad is not None]
        if not params:
            return
        self.steps += 1
        if p.mode == "norm":
            total = torch.nn.utils.clip_grad_norm_(params, self.threshold, foreach=True)
            self.steps_clipped = self.steps_clipped + (total > self.threshold).long()
        elif p.mode == "value":
            grads = [q.grad for q in params if q.grad is not None]
            top = torch.stack(torch._foreach_norm(grads, float("inf"))).max()
            self.steps_clipped = self.steps_clipped + (top > self.threshold).long()
            torch.nn.utils.clip_grad_value_(params, self.threshold, foreach=True)
        else:
            head = head_parameters(model)
            body = [q for q in params if id(q) not in head]
            if not body:
                return
            clipped, units = adaptive_clip_(body, self.threshold, p.eps)
            self.units += units
            self.units_clipped = self.units_clipped + clipped
            self.steps_clipped = self.steps_clipped + (torch.as_tensor(clipped) > 0).long()

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.steps:
            out["grad_clip_step_frac"] = float(self.steps_clipped) / self.steps
        if self.units:
            out["grad_clip_unit_frac"] = float(self.units_clipped) / self.units
        return out

    def state_dict(self) -> dict[str, Any]:
        return {"steps": self.steps, "steps_clipped": int(self.steps_clipped),
                "units": self.units, "units_clipped": int(self.units_clipped)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.steps = int(state.get("steps", 0))
        self.steps_clipped = int(state.get("steps_clipped", 0))
        self.units = int(state.get("units", 0))
        self.units_clipped = int(state.get("units_clipped", 0))
