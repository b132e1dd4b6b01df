"""Who a training step trains: one run alone, or a population of runs as one model.

The loop (harness/train/loop.py) reads the same top to bottom either way; what differs is
behind these two classes, which share one set of methods:

- `Alone`: today's run, exactly (its model, its regularizer stack, its global generator);
- `Population`: K runs that share their shapes, trained as one vectorized model
  (harness/models/population.py). Each member keeps its own run: its regularizer stack and
  TrainState, its own module (parameters aliasing the stack), its own data order and its
  own random generator, swapped in as torch's global one while its hooks run. Each
  member's loss is its own mean, computed exactly as alone, and the population's loss
  their sum, so each member's gradient is the one it would get alone.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from harness.config import RunConfig
from harness.data import DataBundle
from harness.models.population import bind_member_grads
from harness.record.run_dir import RunDir
from harness.regularizers import Batch, RegularizerStack, TrainState
from harness.regularizers.stack import STEP_HOOKS
from harness.tracking.protocol import FanOut
from harness.train.checkpoint import member_optimizer_state
from harness.train.metrics import (
    MemberStats,
    RunningStats,
    cross_entropy,
    global_grad_norm,
    member_grad_norms,
)
from harness.train.results import evaluations


@dataclass
class Member:
    """One run being trained (alone, or in a population) and what it has recorded."""

    config: RunConfig
    run_dir: RunDir
    regs: RegularizerStack
    state: TrainState  # state.model: the member's own module
    order: torch.Generator  # its data order
    rng: torch.Generator  # its global generator (a population swaps it in)
    tracked: FanOut
    rows: list[dict[str, Any]] = field(default_factory=list)
    on_epoch: list[Any] = field(default_factory=list)
    status: str = "completed"
    diverged_epoch: int | None = None
    done: bool = False  # finished (stopped, diverged or the last epoch): results written
    last_checkpoint: float = 0.0
    summary: dict[str, Any] | None = None

    @property
    def run_id(self) -> str:
        return self.run_dir.path.name.rsplit("-", 1)[-1]


@contextlib.contextmanager
def member_rng(generator: torch.Generator) -> Iterator[None]:
    """torch's global CPU generator is `generator` inside (its draws advance it)."""
    outer = torch.get_rng_state()
    torch.set_rng_state(generator.get_state())
    try:
        yield
    finally:
        generator.set_state(torch.get_rng_state())
        torch.set_rng_state(outer)


class Alone:
    """One run, trained exactly as before populations existed."""

    def __init__(self, member: Member, forward: nn.Module,
                 optimizer: torch.optim.Optimizer) -> None:
        self.members = [member]
        self.size = 1
        self.model = member.state.model
        self.forward = forward
        self.optimizer = optimizer
        self.active = None

    def start_epoch(self, epoch: int, device: torch.device) -> RunningStats:
        self.model.train()
        self.members[0].state.epoch = epoch
        return RunningStats(device)

    def orders(self, n: int) -> torch.Tensor:
        return torch.randperm(n, generator=self.members[0].order).unsqueeze(0)

    def set_step(self, step: int) -> None:
        self.members[0].state.step = step

    def transform_batch(self, batch: Batch) -> Batch:
        m = self.members[0]
        return m.regs.transform_batch(m.state, batch)

    def loss(self, logits: torch.Tensor, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        m = self.members[0]
        loss = m.regs.loss(m.state, cross_entropy(logits.float(), batch.targets), batch, logits)
        return loss, loss

    def grad_norms(self) -> torch.Tensor:
        return global_grad_norm(self.model)

    def hook(self, name: str) -> None:
        m = self.members[0]
        getattr(m.regs, name)(m.state)

    def evaluations(self, data: DataBundle) -> list[dict[str, float] | None]:
        m = self.members[0]
        return [evaluations(m.regs.eval_model(m.state.model), data, m.config)]

    def optimizer_state(self, member: int) -> dict[str, Any]:
        return self.optimizer.state_dict()

    def rng_state(self, member: int) -> torch.Tensor:
        return torch.get_rng_state()

    def finish(self, member: int) -> None:
        self.members[member].done = True


class MemberOptimizer:
    """What a member's `before_step` hooks see of the population's optimizer: its groups
    with the member's own parameters (gradients bound) and the step's lr. An lr a hook
    sets (SWA) goes back to the optimizer: such plug-ins are `same_for_all`, so every
    member sets the same one."""

    def __init__(self, optimizer: torch.optim.Optimizer, population: nn.Module,
                 member: nn.Module) -> None:
        names = {id(p): n for n, p in population.named_parameters()}
        own = dict(member.named_parameters())
        self.param_groups = [{**group, "params": [own[names[id(p)]] for p in group["params"]]}
                             for group in optimizer.param_groups]

    def set_lrs(self, lrs: list[float]) -> None:
        for group, lr in zip(self.param_groups, lrs, strict=True):
            group["lr"] = lr

    def lrs(self) -> list[float]:
        return [group["lr"] for group in self.param_groups]


class Population:
    """K runs of one shape trained as one model (see the module docstring)."""

    def __init__(self, members: list[Member], model: nn.Module,
                 optimizer: torch.optim.Optimizer, device: torch.device) -> None:
        self.members = members
        self.size = len(members)
        self.model = self.forward = model
        self.optimizer = optimizer
        self.active = torch.ones(self.size, dtype=torch.bool, device=device)
        self.step_hooks = any(m.regs.uses(*STEP_HOOKS) for m in members)
        self.transforms = any(m.regs.uses("transform_batch") for m in members)
        for m in members:
            m.state.optimizer = MemberOptimizer(optimizer, model, m.state.model)
        self.parts: list[Batch] = []

    def training(self) -> Iterator[tuple[int, Member]]:
        return ((k, m) for k, m in enumerate(self.members) if not m.done)

    def start_epoch(self, epoch: int, device: torch.device) -> MemberStats:
        self.model.train()
        for m in self.members:
            m.state.epoch = epoch
        return MemberStats(device, self.size)

    def orders(self, n: int) -> torch.Tensor:
        return torch.stack([torch.randperm(n, generator=m.order) for m in self.members])

    def set_step(self, step: int) -> None:
        for m in self.members:
            m.state.step = step

    def transform_batch(self, batch: Batch) -> Batch:
        """Each member's slice through its own stack, under its own generator; the hard
        labels stay folded in `y`, each member's targets in `self.parts`."""
        xs, ys = batch.x.chunk(self.size), batch.y.chunk(self.size)
        self.parts = [Batch(x=x, y=y, targets=y) for x, y in zip(xs, ys, strict=True)]
        if not self.transforms:
            return batch
        for k, m in self.training():
            if m.regs.uses("transform_batch"):
                with member_rng(m.rng):
                    self.parts[k] = m.regs.transform_batch(m.state, self.parts[k])
        return Batch(x=torch.cat([p.x for p in self.parts]), y=batch.y, targets=batch.y)

    def loss(self, logits: torch.Tensor, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        """Each member's cross-entropy on its own slice and targets, as alone; their sum is
        what is differentiated (each member's parameters see only their own loss)."""
        losses = torch.stack([cross_entropy(part_logits.float(), part.targets)
                              for part_logits, part in zip(logits.chunk(self.size), self.parts,
                                                           strict=True)])
        return losses.sum(), losses

    def grad_norms(self) -> torch.Tensor:
        return member_grad_norms(self.model, self.size)

    def hook(self, name: str) -> None:
        """Call a step hook (after_backward, before_step, after_step) member by member, on
        each member's own module with its slice of the gradients bound."""
        if not self.step_hooks:
            return
        if name == "after_backward":
            bind_member_grads(self.model, [None if m.done else m.state.model
                                           for m in self.members])
        scheduled = [group["lr"] for group in self.optimizer.param_groups]
        chosen = scheduled
        for _, m in self.training():
            if not m.regs.uses(name):
                continue
            m.state.optimizer.set_lrs(scheduled)  # each member starts from the schedule's
            with member_rng(m.rng):
                getattr(m.regs, name)(m.state)
            chosen = m.state.optimizer.lrs()
        for group, lr in zip(self.optimizer.param_groups, chosen, strict=True):
            group["lr"] = lr

    def evaluations(self, data: DataBundle) -> list[dict[str, float] | None]:
        """Each training member's evaluations (None for finished ones), on its own module
        (or its EMA/SWA average) exactly as alone: an evaluation batch is large enough that
        one matrix product per member is no slower than a batched one over members (measured
        on the CPU: 235 ms against 342 ms for 15 members' 10000 samples), and nothing is
        copied per member."""
        return [None if m.done else evaluations(m.regs.eval_model(m.state.model), data, m.config)
                for m in self.members]

    def optimizer_state(self, member: int) -> dict[str, Any]:
        return member_optimizer_state(self.optimizer, member, self.size)

    def rng_state(self, member: int) -> torch.Tensor:
        return self.members[member].rng.get_state()

    def finish(self, member: int) -> None:
        """Member `member` has written its results: its module keeps its weights as they
        are now (no longer the population's slice, which trains on idle)."""
        m = self.members[member]
        m.done = True
        self.active[member] = False
        with torch.no_grad():
            for p in m.state.model.parameters():
                p.data = p.data.clone()
                p.grad = None
