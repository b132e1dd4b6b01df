"""Several models of one shape as one vectorized model: a population.

The members are folded into the batch: the population's input holds member k's samples at
rows k*B .. (k+1)*B, and the template's own `forward` runs unchanged on it. Only the
modules whose result depends on the member are replaced by stacked twins: `nn.Linear`
(one `baddbmm` over a member dimension, weights (K, out, in)) and `nn.Dropout` (each
member's rate, each member's mask from its own generator); the rest (activations,
flatten) are per-sample and run as they are. A model takes part only when its class
declares `info.population` (its forward treats each sample alone) and every module is
one of these (`population_blocker` says which one is not).

Each member keeps its own module, whose parameters alias the population's stacked
tensors (`alias_members`): whatever is done to a member's parameters in place (weight
decay, clipping through `.grad`, `load_state_dict`) is done to its slice of the
population, and a member's `state_dict` is its slice in the layout of a run alone.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn

from harness.models.base import model_info

# Modules without parameters that compute each sample on its own: they run unchanged on
# the folded batch.
PER_SAMPLE = (nn.ReLU, nn.GELU, nn.SiLU, nn.Tanh, nn.Sigmoid, nn.LeakyReLU, nn.ELU,
              nn.Softplus, nn.Identity, nn.Flatten, nn.Sequential)


class StackedLinear(nn.Module):
    """K `nn.Linear` layers of one shape: weight (K, out, in), bias (K, out)."""

    def __init__(self, linears: Sequence[nn.Linear]) -> None:
        super().__init__()
        self.members = len(linears)
        self.in_features = linears[0].in_features
        self.out_features = linears[0].out_features
        self.weight = nn.Parameter(torch.stack([m.weight.detach() for m in linears]))
        biases = [m.bias for m in linears]
        self.bias = (nn.Parameter(torch.stack([b.detach() for b in biases]))
                     if all(b is not None for b in biases) else None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        folded = x.reshape(self.members, -1, self.in_features)
        weight = self.weight.transpose(1, 2)
        out = (torch.baddbmm(self.bias.unsqueeze(1), folded, weight) if self.bias is not None
               else torch.bmm(folded, weight))
        return out.reshape(*x.shape[:-1], self.out_features)


class MemberDropout(nn.Module):
    """Dropout with each member's own rate and its own generator.

    On the CPU each member's mask is drawn exactly as `F.dropout` draws it for a run alone
    (`bernoulli_(1 - p)` on the member's generator, scaled by 1 / (1 - p)), so a member
    whose generator follows its run's global generator gets that run's masks."""

    def __init__(self, rates: Sequence[float], generators: Sequence[torch.Generator]) -> None:
        super().__init__()
        self.rates = [float(p) for p in rates]
        self.generators = list(generators)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or not any(self.rates):
            return x
        noise = torch.empty((len(self.rates), x.numel() // len(self.rates)),
                            dtype=x.dtype, device=x.device)
        for k, p in enumerate(self.rates):
            if p == 0.0:
                noise[k].fill_(1.0)
            else:
                noise[k].bernoulli_(1.0 - p, generator=self.generators[k]).div_(1.0 - p)
        return x * noise.reshape(x.shape)

    def extra_repr(self) -> str:
        return f"rates={self.rates}"


def stack_linear(modules: list[nn.Module], generators: Sequence[torch.Generator]) -> nn.Module:
    return StackedLinear([m for m in modules if isinstance(m, nn.Linear)])


def stack_dropout(modules: list[nn.Module], generators: Sequence[torch.Generator]) -> nn.Module:
    return MemberDropout([float(m.p) for m in modules if isinstance(m, nn.Dropout)], generators)


Stacker = Callable[[list[nn.Module], Sequence[torch.Generator]], nn.Module]
STACKERS: dict[type[nn.Module], Stacker] = {nn.Linear: stack_linear, nn.Dropout: stack_dropout}


def population_blocker(model: nn.Module) -> str | None:
    """Why `model` cannot be a population member (None: it can)."""
    if not model_info(type(model)).population:
        return f"model {type(model).__name__} does not declare info.population"
    for name, module in model.named_modules():
        if type(module) in STACKERS:
            continue
        if not isinstance(module, PER_SAMPLE) and module is not model:
            return f"module {name} ({type(module).__name__}) has no stacked form"
        if (next(module.parameters(recurse=False), None) is not None
                or next(module.buffers(recurse=False), None) is not None):
            return f"module {name or 'the model'} holds parameters of its own"
    return None


def leaf_signature(module: nn.Module) -> str:
    """What must be equal between members for one stacked module to stand for them all."""
    if isinstance(module, nn.Dropout):
        return "Dropout"  # the rate may differ: MemberDropout keeps each member's
    shapes = [tuple(p.shape) for p in module.parameters(recurse=False)]
    return f"{type(module).__name__}{shapes}:{module.extra_repr()}"


def structure(model: nn.Module) -> list[tuple[str, str]]:
    """(name, signature) of every module: members stack when these are equal."""
    return [(name, leaf_signature(m)) for name, m in model.named_modules()]


def stack_members(members: Sequence[nn.Module],
                  generators: Sequence[torch.Generator]) -> nn.Module:
    """One module computing every member on its slice of a folded batch. The members are
    left as they are; `alias_members` then points their parameters at the stack."""
    first = members[0]
    for k, member in enumerate(members):
        why = population_blocker(member)
        if why is None and structure(member) != structure(first):
            why = f"member {k} differs in structure from member 0"
        if why is not None:
            raise ValueError(f"cannot stack these models: {why}")
    population = _copy_structure(first)
    for name, module in first.named_modules():
        stacker = STACKERS.get(type(module))
        if stacker is not None:
            twins = [m.get_submodule(name) for m in members]
            _set_submodule(population, name, stacker(twins, generators))
        elif getattr(module, "inplace", False) and name:
            _set_submodule(population, name, out_of_place(module))
    return population


def out_of_place(module: nn.Module) -> nn.Module:
    """The same activation, not in place: a stacked layer's output is a view of its batched
    product, and autograd turns an in-place op on a view into copies of the whole tensor.
    The values are the same."""
    import copy

    twin = copy.copy(module)
    twin.inplace = False  # type: ignore[assignment]  # ReLU & co. read it in forward
    return twin


def alias_members(population: nn.Module, members: Sequence[nn.Module]) -> None:
    """Point every member's parameter at its slice of the population's stacked tensor."""
    stacked = dict(population.named_parameters())
    for k, member in enumerate(members):
        for name, p in member.named_parameters():
            p.data = stacked[name].data[k]


def bind_member_grads(population: nn.Module, members: Sequence[nn.Module | None]) -> None:
    """Give each member's parameters their slice of the population's gradients (views:
    changing a member's gradient in place changes the population's); None: skip it."""
    stacked = dict(population.named_parameters())
    for k, member in enumerate(members):
        if member is None:
            continue
        for name, p in member.named_parameters():
            grad = stacked[name].grad
            p.grad = None if grad is None else grad[k]


def _copy_structure(model: nn.Module) -> nn.Module:
    """A shallow copy of the module tree (containers copied, leaves shared until replaced),
    so replacing a leaf in the copy leaves the member untouched."""
    import copy

    clone = copy.copy(model)
    clone._modules = {name: _copy_structure(child) if child is not None else None
                      for name, child in model._modules.items()}
    clone._parameters = dict(model._parameters)
    clone._buffers = dict(model._buffers)
    return clone


def _set_submodule(root: nn.Module, name: str, module: nn.Module) -> None:
    parent_name, _, leaf = name.rpartition(".")
    parent = root.get_submodule(parent_name) if parent_name else root
    setattr(parent, leaf, module)
