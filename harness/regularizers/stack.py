"""Runs every active regularizer's hook, in `phase` order, so the loop calls each point once."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from harness.regularizers.base import (
    REGULARIZERS,
    Batch,
    ModelSpec,
    Regularizer,
    RunContext,
    TrainState,
)
from harness.regularizers.validate import check_data_kind

STEP_HOOKS = ("after_backward", "before_step", "after_step")


def overrides(reg: Regularizer[Any], hook: str) -> bool:
    """Whether `reg` does something at `hook` (its class replaces the base's no-op)."""
    return getattr(type(reg), hook) is not getattr(Regularizer, hook)


class RegularizerStack:
    def __init__(self, regularizers: list[Regularizer[Any]]) -> None:
        self.items = sorted(regularizers, key=lambda r: r.phase)

    @classmethod
    def from_config(cls, config: Any, ctx: RunContext) -> RegularizerStack:
        items = []
        for name, params in config.regularizer_params().items():
            reg_cls = REGULARIZERS.get(name)
            # a plug-in dataset's kind is known once loaded: the config check could not see it
            check_data_kind(reg_cls, getattr(ctx.data, "kind", None), ctx.data.name)
            items.append(reg_cls(params, ctx))
        return cls(items)

    def uses(self, *hooks: str) -> bool:
        """Whether any regularizer acts at one of `hooks` (a population skips the others)."""
        return any(overrides(r, hook) for r in self.items for hook in hooks)

    def configure_model(self, spec: ModelSpec) -> ModelSpec:
        for r in self.items:
            r.configure_model(spec)
        return spec

    def on_model(self, model: nn.Module) -> nn.Module:
        for r in self.items:
            model = r.on_model(model)
        return model

    def transform_batch(self, state: TrainState, batch: Batch) -> Batch:
        for r in self.items:
            batch = r.transform_batch(state, batch)
        return batch

    def loss(self, state: TrainState, loss: torch.Tensor, batch: Batch,
             logits: torch.Tensor) -> torch.Tensor:
        for r in self.items:
            loss = r.loss(state, loss, batch, logits)
        return loss

    def after_backward(self, state: TrainState) -> None:
        for r in self.items:
            r.after_backward(state)

    def before_step(self, state: TrainState) -> None:
        for r in self.items:
            r.before_step(state)

    def after_step(self, state: TrainState) -> None:
        for r in self.items:
            r.after_step(state)

    def end_epoch(self, state: TrainState) -> bool:
        """`state.metrics` are those of `eval_model(state.model)`, set as `state.evaluated`."""
        state.evaluated, stop = self.eval_model(state.model), False
        for r in self.items:
            stop = r.end_epoch(state) or stop
        return stop

    def end_training(self, state: TrainState) -> None:
        state.evaluated = self.eval_model(state.model)
        for r in self.items:
            r.end_training(state)

    def eval_model(self, model: nn.Module) -> nn.Module:
        for r in self.items:
            model = r.eval_model(model)
        return model

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for r in self.items:
            out.update(r.summary())
        return out

    def state_dict(self) -> dict[str, Any]:
        return {r.name: r.state_dict() for r in self.items}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for r in self.items:
            r.load_state_dict(state.get(r.name, {}))
