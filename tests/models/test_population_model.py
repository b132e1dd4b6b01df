"""A population's stacked model (harness/models/population.py): each member computed as
alone, members aliasing their slices, and what cannot be stacked."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from harness.models import create_model
from harness.models.population import (
    alias_members,
    bind_member_grads,
    population_blocker,
    stack_members,
)


def mlp(dropout: float = 0.0, width: int = 16) -> nn.Module:
    return create_model("mlp", input_shape=(1, 40), num_classes=10, width=width, depth=2,
                        dropout=dropout)


def test_the_stacked_model_computes_each_member_as_alone() -> None:
    torch.manual_seed(0)
    members = [mlp(p) for p in (0.0, 0.2, 0.5)]
    gens = [torch.Generator().manual_seed(k) for k in range(3)]
    starts = [g.get_state() for g in gens]
    population = stack_members(members, gens)
    alias_members(population, members)
    x = torch.randn(3 * 8, 1, 40)
    out = population(x)  # training mode: each member's own dropout masks
    alone = []
    for k, m in enumerate(members):
        torch.set_rng_state(starts[k])  # the run alone draws from its global generator
        alone.append(m(x[8 * k:8 * (k + 1)]))
    torch.testing.assert_close(out, torch.cat(alone), rtol=0, atol=0)
    population.eval()
    torch.testing.assert_close(population(x), torch.cat(
        [m.eval()(x[8 * k:8 * (k + 1)]) for k, m in enumerate(members)]), rtol=0, atol=0)
    # gradients: the population's, sliced per member, are each member's own
    population.zero_grad()
    population(x).square().sum().backward()
    bind_member_grads(population, members)
    for k, m in enumerate(members):
        ref = mlp(0.0)
        ref.load_state_dict(m.state_dict())
        ref.eval()(x[8 * k:8 * (k + 1)]).square().sum().backward()
        for (name, p), q in zip(m.named_parameters(), ref.parameters(), strict=True):
            torch.testing.assert_close(p.grad, q.grad, rtol=1e-6, atol=1e-7, msg=name)


def test_members_alias_their_slice_of_the_population() -> None:
    members = [mlp(), mlp()]
    population = stack_members(members, [torch.Generator(), torch.Generator()])
    alias_members(population, members)
    with torch.no_grad():
        members[1].head.weight.zero_()  # in place on a member: its slice changes
    assert population.head.weight[1].abs().sum() == 0
    assert population.head.weight[0].abs().sum() > 0
    state = members[0].state_dict()  # a run alone's layout
    assert {k: tuple(v.shape) for k, v in state.items()} == \
        {k: tuple(v.shape) for k, v in mlp().state_dict().items()}


def test_what_cannot_be_stacked_says_why() -> None:
    assert population_blocker(mlp()) is None
    cnn = create_model("cnn", input_shape=(1, 40), num_classes=10)
    assert "does not declare info.population" in population_blocker(cnn)
    normed = create_model("mlp", input_shape=(1, 40), num_classes=10, width=8, norm="batchnorm")
    assert "BatchNorm1d" in population_blocker(normed)
    with pytest.raises(ValueError, match="differs in structure"):
        stack_members([mlp(width=8), mlp(width=16)], [torch.Generator()] * 2)
