"""Optimizers and per-step learning-rate schedules.

Weight decay is not an optimizer setting here: it is the `weight_decay`
regularizer (decoupled or coupled L2), so every optimizer is built with
weight_decay=0 and `adamw` is Adam whose decay, if any, comes from that plug-in.
"""

from __future__ import annotations

import functools
import inspect
import math
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from harness.config import OptimConfig, ScheduleConfig


def default_param_groups(model: nn.Module) -> list[dict[str, Any]]:
    """One group with every trainable parameter, each tagged by name for plug-ins."""
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    return [{"params": [p for _, p in named], "param_names": [n for n, _ in named]}]


def build_optimizer(cfg: OptimConfig, groups: list[dict[str, Any]]) -> torch.optim.Optimizer:
    groups = [{k: v for k, v in g.items()} for g in groups]
    adam, sgd = (EagerAdam, EagerSGD) if EAGER else (torch.optim.Adam, torch.optim.SGD)
    if cfg.name == "sgd":
        return sgd(groups, lr=cfg.lr, momentum=cfg.momentum,
                   nesterov=cfg.nesterov and cfg.momentum > 0, weight_decay=0.0)
    return adam(groups, lr=cfg.lr, betas=cfg.betas, eps=cfg.eps, weight_decay=0.0)


# torch.optim marks four Optimizer methods "do not trace" for torch.compile and puts graph
# breaks around each step, and each mark imports torch._dynamo on its first call (building
# an optimizer calls one): about 2 s of CPU per process here, before a run's first step.
# The harness compiles models only (train.compile), never an optimizer step, so the classes
# below run the same undecorated bodies: same maths, bit for bit (tests/train/test_optim.py).
# They rely on how torch wraps those functions today (the layers checked below); with any
# other wrapping, as in another torch release or after another library patched them, the
# stock classes are used.
_UNMARKED = ("add_param_group", "zero_grad", "state_dict", "load_state_dict")


def decorator_layers(fn: Any, body_qualname: str) -> set[str] | None:
    """The code names of the decorator layers around `fn`'s body (functools.wraps chain), or
    None when the body is not `body_qualname`."""
    layers = set()
    while hasattr(fn, "__wrapped__"):
        layers.add(getattr(getattr(fn, "__code__", None), "co_name", "?"))
        fn = fn.__wrapped__
    return layers if getattr(fn, "__qualname__", "") == body_qualname else None


def torch_wraps_as_expected() -> bool:
    """torch's "do not trace" layer is `inner`; a step is `_use_grad` (graph breaks), under
    the hook and profiling `wrapper` once an instance exists."""
    methods = all(decorator_layers(getattr(torch.optim.Optimizer, name), f"Optimizer.{name}")
                  == {"inner"} for name in _UNMARKED)
    steps = all(decorator_layers(cls.step, f"{cls.__name__}.step")
                in ({"_use_grad"}, {"_use_grad", "wrapper"})
                for cls in (torch.optim.Adam, torch.optim.SGD))
    return methods and steps


EAGER = torch_wraps_as_expected()


def _step_without_graph_breaks(cls: type[torch.optim.Optimizer]) -> Callable[..., Any]:
    body = inspect.unwrap(cls.step)

    @functools.wraps(body)
    def step(self: torch.optim.Optimizer, *args: Any, **kwargs: Any) -> Any:
        # what torch's own wrapper does around the body, minus torch._dynamo.graph_break()
        with torch.set_grad_enabled(self.defaults["differentiable"]):
            return body(self, *args, **kwargs)

    return step


class _WithoutDynamoMarks(torch.optim.Optimizer):
    add_param_group = inspect.unwrap(torch.optim.Optimizer.add_param_group)
    zero_grad = inspect.unwrap(torch.optim.Optimizer.zero_grad)
    state_dict = inspect.unwrap(torch.optim.Optimizer.state_dict)
    load_state_dict = inspect.unwrap(torch.optim.Optimizer.load_state_dict)


class EagerAdam(_WithoutDynamoMarks, torch.optim.Adam):
    """torch.optim.Adam without importing torch._dynamo."""
    step = _step_without_graph_breaks(torch.optim.Adam)


class EagerSGD(_WithoutDynamoMarks, torch.optim.SGD):
    """torch.optim.SGD without importing torch._dynamo."""
    step = _step_without_graph_breaks(torch.optim.SGD)


def lr_schedule(cfg: ScheduleConfig, base_lr: float, steps_per_epoch: int,
                epochs: int) -> Callable[[int], float]:
    """step (0-based) -> lr. Linear warmup, then constant, cosine or step decay."""
    total = max(1, steps_per_epoch * epochs)
    warmup = int(round(cfg.warmup_epochs * steps_per_epoch))

    def at(step: int) -> float:
        if warmup and step < warmup:
            return base_lr * (step + 1) / warmup
        if cfg.name == "constant":
            return base_lr
        if cfg.name == "step":
            return base_lr * cfg.gamma ** (step // (cfg.step_epochs * steps_per_epoch))
        progress = (step - warmup) / max(1, total - warmup)
        floor = cfg.min_lr_ratio * base_lr
        return floor + (base_lr - floor) * 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))

    return at


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for g in optimizer.param_groups:
        g["lr"] = lr * g.get("lr_scale", 1.0)
