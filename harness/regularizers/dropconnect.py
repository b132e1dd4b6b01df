"""DropConnect. Wan et al. 2013, "Regularization of Neural Networks using DropConnect", ICML."""

from __future__ import annotations

import functools
from typing import Any, ClassVar, Literal

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import Tensor, nn

from harness.errors import ConfigError
from harness.regularizers.base import (
    Params,
    Phase,
    Regularizer,
    RunSettings,
    register,
)


class DropConnectParams(Params):
    p: float = Field(ge=0.0, lt=1.0)  # probability of dropping each weight
    layers: Literal["hidden", "all"] = "hidden"  # hidden: every nn.Linear but model.head


class DropConnectLinear(nn.Linear):
    """nn.Linear whose weight (and bias) get a fresh Bernoulli(1-p) mask per forward in
    training, rescaled by 1/(1-p) so the expected weight is unchanged; eval uses the full
    weights (the mean-network inference of dropout, not the paper's Gaussian sampling).

    One mask per mini-batch, not per sample: per-sample masks would need an (N, out, in)
    weight tensor, which is what makes the paper's version slow.
    """

    p: float

    @classmethod
    def wrap(cls, linear: nn.Linear, p: float) -> DropConnectLinear:
        """A DropConnectLinear holding the same Parameter objects (ties and optimizer
        references survive; state_dict keys are unchanged)."""
        new = cls(
            linear.in_features, linear.out_features, bias=linear.bias is not None, device="meta"
        )
        new.weight = linear.weight
        new.bias = linear.bias
        new.p = p
        new.train(linear.training)
        return new

    def sample_weights(self) -> tuple[Tensor, Tensor | None]:
        """The masked, rescaled (weight, bias) for one training forward."""
        keep = 1.0 - self.p
        w = self.weight * torch.empty_like(self.weight).bernoulli_(keep) / keep
        b = None
        if self.bias is not None:
            b = self.bias * torch.empty_like(self.bias).bernoulli_(keep) / keep
        return w, b

    def forward(self, x: Tensor) -> Tensor:
        if not self.training or self.p == 0.0:
            return F.linear(x, self.weight, self.bias)
        return F.linear(x, *self.sample_weights())

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, p={self.p:g}"


def linear_targets(model: nn.Module, layers: str) -> list[tuple[nn.Module, str, nn.Linear]]:
    """(parent, attribute, layer) for each plain nn.Linear; "hidden" skips model.head."""
    head = getattr(model, "head", None)
    out = []
    for parent in model.modules():
        for attr, child in parent.named_children():
            if type(child) is nn.Linear and (layers == "all" or child is not head):
                out.append((parent, attr, child))
    return out


@functools.lru_cache(maxsize=64)
def _has_targets(name: str, model_kwargs: tuple[tuple[str, int], ...], layers: str) -> bool | None:
    """Build the configured model once on a stand-in input (RNG state kept) to see whether
    it has targeted layers; None if it cannot be built without the data (on_model checks)."""
    from harness.models import create_model, model_capabilities

    shapes = {"signal": (1, 40), "image": (3, 32, 32), "text": (16,)}
    kind = sorted(model_capabilities(name).kinds)[0]
    options: dict[str, Any] = dict(model_kwargs)
    try:
        with torch.random.fork_rng(devices=[]):
            model = create_model(
                name, input_shape=shapes[kind], num_classes=10, **options
            )
    except Exception:
        return None
    return bool(linear_targets(model, layers))


def _no_targets(model_name: str, layers: str) -> ConfigError:
    return ConfigError(
        f"regularizers.dropconnect.layers = {layers!r}: model {model_name} has no nn.Linear "
        "layer to drop besides its head; use layers: all, or a model with hidden linear "
        "layers (mlp, vit, transformer1d, gpt)"
    )


@register
class DropConnect(Regularizer[DropConnectParams]):
    """Swaps each targeted nn.Linear for a DropConnectLinear sharing its Parameters.

    Runs before spectral_norm (phase REWIRE), so a normalized weight is then the one masked.
    """

    name: ClassVar[str] = "dropconnect"
    phase: ClassVar[Phase] = Phase.REWIRE
    reference: ClassVar[str] = "Wan et al. 2013"
    applies_to: ClassVar[str] = "models with hidden linear layers (mlp, vit, transformer1d, gpt)"
    example: ClassVar[dict[str, Any]] = {"p": 0.2}
    example_overrides: ClassVar[dict[str, Any]] = {"model.name": "mlp"}

    @classmethod
    def check(cls, params: DropConnectParams, config: RunSettings) -> None:
        m = config.model
        kwargs = tuple(
            (k, v)
            for k, v in (
                ("width", m.width),
                ("depth", m.depth),
                ("patch_size", m.patch_size),
                ("heads", m.heads),
            )
            if v is not None
        )
        if _has_targets(m.name, kwargs, params.layers) is False:
            raise _no_targets(config.model.name, params.layers)

    def on_model(self, model: nn.Module) -> nn.Module:
        targets = linear_targets(model, self.params.layers)
        if not targets:
            raise _no_targets(type(model).__name__, self.params.layers)
        for parent, attr, layer in targets:
            setattr(parent, attr, DropConnectLinear.wrap(layer, self.params.p))
        return model
