"""Set up what a training loop trains: each member's run (its regularizers, its model, its
random streams) and the crew that trains them (alone, or as one population)."""

from __future__ import annotations

from pathlib import Path

import torch

from harness.config import RunConfig
from harness.data import DataBundle
from harness.models.population import alias_members, stack_members
from harness.record.run_dir import RunDir
from harness.regularizers import RegularizerStack, TrainState
from harness.tracking.protocol import FanOut, NullTracker
from harness.train import build, transfer
from harness.train.crew import Alone, Member, Population
from harness.train.optim import build_optimizer


def build_member(config: RunConfig, run_dir: RunDir, data: DataBundle, device: torch.device,
                 results_dir: Path, data_dir: str | Path | None, *, seeded: bool) -> Member:
    """One run's regularizers and model, built exactly as the run builds them alone: from
    its seed (`seeded`: the caller seeded already, before loading the data). Its global
    generator's state after the build is where its training draws continue (`rng`)."""
    if not seeded:
        build.seed_everything(config.seed)
    ctx = build.run_context(config, data, device, results_dir=results_dir,
                            data_dir=None if data_dir is None else Path(data_dir))
    regs = RegularizerStack.from_config(config, ctx)
    model = build.build_model(config, data, regs, results_dir=results_dir)
    transfer.freeze(model, config)  # fine-tuning: model.freeze / freeze_body
    model = model.to(device)
    if config.train.channels_last and device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    rng = torch.Generator()
    rng.set_state(torch.get_rng_state())
    return Member(config, run_dir, regs, TrainState(run=ctx, model=model),
                  order=torch.Generator().manual_seed(config.seed), rng=rng,
                  tracked=FanOut(NullTracker()))


def make_crew(members: list[Member], device: torch.device) -> Alone | Population:
    """A run alone (its own model, optimizer, optional compile), or the members stacked into
    one population model with one optimizer over the stacked parameters (elementwise
    optimizers, Adam and SGD, keep each member's own state in its slice)."""
    config = members[0].config
    if len(members) == 1:
        model = members[0].state.model
        optimizer = build_optimizer(config.optim,
                                    transfer.param_groups(model, config.optim.body_lr_scale))
        members[0].state.optimizer = optimizer
        return Alone(members[0], model_forward(model, config), optimizer)
    modules = [m.state.model for m in members]
    population = stack_members(modules, dropout_generators(members, device))
    alias_members(population, modules)
    optimizer = build_optimizer(config.optim,
                                transfer.param_groups(population, config.optim.body_lr_scale))
    return Population(members, population, optimizer, device)


def dropout_generators(members: list[Member], device: torch.device) -> list[torch.Generator]:
    """Where each member's dropout masks come from: on the CPU its own global generator (so
    it draws the masks its run draws alone); on a GPU a generator of that device seeded
    with the member's seed (masks independent between members, not those of the run
    alone, whose fused CUDA kernel draws differently)."""
    if device.type == "cpu":
        return [m.rng for m in members]
    return device_generators(members, device)


def device_generators(members: list[Member], device: torch.device) -> list[torch.Generator]:
    return [torch.Generator(device=device).manual_seed(m.config.seed) for m in members]


def model_forward(model: torch.nn.Module, config: RunConfig) -> torch.nn.Module:
    """The callable used for training steps: optionally compiled (CUDA users ask for it)."""
    # compile wraps the module in a callable that forwards to it
    return torch.compile(model) if config.train.compile else model  # type: ignore[return-value]
