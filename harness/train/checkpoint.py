"""Resume checkpoints: what a run saves after an epoch so an interrupted run continues bit
for bit on the CPU. A member of a population saves the checkpoint its run would save
alone (its own weights, optimizer state, random streams), so it resumes alone."""

from __future__ import annotations

import time
from typing import Any

import torch
from torch import nn

from harness.config import RunConfig
from harness.regularizers import RegularizerStack


def checkpoint_due(config: RunConfig, last: float, stop: bool) -> bool:
    """A resume checkpoint after this epoch? Always when the run decided to stop (a resume
    must not train on); otherwise once `checkpoint_every_s` of training has passed."""
    if not config.train.checkpoint:
        return False
    return stop or time.perf_counter() - last >= config.train.checkpoint_every_s


def checkpoint_state(run_id: str, epoch: int, rows: list[dict[str, Any]],
                     model_state: dict[str, Any], optimizer_state: dict[str, Any],
                     regs: RegularizerStack, torch_rng: torch.Tensor, order: torch.Generator,
                     stopped: bool = False) -> dict[str, Any]:
    return {"run_id": run_id, "epoch": epoch, "rows": rows, "stopped": stopped,
            "model": model_state, "optimizer": optimizer_state,
            "regularizers": regs.state_dict(), "torch_rng": torch_rng,
            "order_rng": order.get_state()}


def restore(ckpt: dict[str, Any], model: nn.Module, optimizer: torch.optim.Optimizer,
            regs: RegularizerStack, order: torch.Generator) -> tuple[int, list[dict[str, Any]]]:
    """Continue an interrupted run from its last finished epoch, bit for bit on CPU."""
    model.load_state_dict(ckpt["model"])
    optimizer.load_state_dict(ckpt["optimizer"])
    regs.load_state_dict(ckpt["regularizers"])
    torch.set_rng_state(ckpt["torch_rng"])
    order.set_state(ckpt["order_rng"])
    return ckpt["epoch"] + 1, list(ckpt["rows"])


def member_optimizer_state(optimizer: torch.optim.Optimizer, member: int,
                           members: int) -> dict[str, Any]:
    """A population's optimizer state as member `member` would hold it alone: each state
    tensor shaped like its stacked parameter (K, ...) is cut to the member's slice (Adam's
    moments, SGD's momentum); others (Adam's step count) are copied. The parameter order is
    the member's own, so the result loads into the member's optimizer when it trains alone."""
    full = optimizer.state_dict()
    shapes = [p.shape for group in optimizer.param_groups for p in group["params"]]
    state: dict[int, dict[str, Any]] = {}
    for index, entry in full["state"].items():
        stacked = shapes[index]
        state[index] = {
            name: (value[member].clone() if isinstance(value, torch.Tensor)
                   and value.shape == stacked and len(stacked) and stacked[0] == members
                   else value.clone() if isinstance(value, torch.Tensor) else value)
            for name, value in entry.items()}
    return {"state": state, "param_groups": full["param_groups"]}
