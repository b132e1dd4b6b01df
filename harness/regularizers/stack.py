"""Runs every active regularizer's hook, in `phase` order, so the loop calls each point once."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from harness.regularizers.base import REGULARIZERS, Batch, ModelSpec, Regularizer, RunContext
from harness.regularizers.validate import check_data_kind


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

    def configure_model(self, spec: ModelSpec) -> ModelSpec:
        for r in self.items:
            r.configure_model(spec)
        return spec

    def on_model(self, model: nn.Module) -> nn.Module:
        for r in self.items:
            model = r.on_model(model)
        return model

    def transform_batch(self, batch: Batch) -> Batch:
        for r in self.items:
            batch = r.transform_batch(batch)
        return batch

    def loss(self, loss: torch.Tensor, batch: Batch, logits: torch.Tensor,
             model: nn.Module) -> torch.Tensor:
        for r in self.items:
            loss = r.loss(loss, batch, logits, model)
        return loss

    def after_backward(self, model: nn.Module) -> None:
        for r in self.items:
            r.after_backward(model)

    def before_step(self, optimizer: torch.optim.Optimizer, model: nn.Module) -> None:
        for r in self.items:
            r.before_step(optimizer, model)

    def after_step(self, model: nn.Module, step: int) -> None:
        for r in self.items:
            r.after_step(model, step)

    def end_epoch(self, epoch: int, metrics: dict[str, float], model: nn.Module) -> bool:
        """`metrics` are those of `eval_model(model)`: each plug-in gets both models."""
        evaluated, stop = self.eval_model(model), False
        for r in self.items:
            stop = r.end_epoch(epoch, metrics, model, evaluated) or stop
        return stop

    def end_training(self, model: nn.Module) -> None:
        evaluated = self.eval_model(model)
        for r in self.items:
            r.end_training(model, evaluated)

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
