"""Spectral normalization. Miyato et al. 2018, "Spectral Normalization for Generative
Adversarial Networks", ICLR."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import Field
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from harness.regularizers.base import Params, Regularizer, register

LAYER_TYPES = (nn.Linear, nn.Conv1d, nn.Conv2d)


class SpectralNormParams(Params):
    layers: Literal["all", "hidden"] = "all"  # hidden: all but model.head
    n_power_iterations: int = Field(1, ge=1)  # per training forward


@register
class SpectralNorm(Regularizer[SpectralNormParams]):
    """Reparametrizes each Linear/Conv1d/Conv2d weight as W / sigma(W), sigma estimated by
    power iteration (updated on every training forward), bounding each layer's Lipschitz
    constant.

    For conv layers sigma is that of the weight reshaped to (out, in * k [* k]), as torch
    does, not the true operator norm of the convolution (which can be larger).
    """

    name: ClassVar[str] = "spectral_norm"
    reference: ClassVar[str] = "Miyato et al. 2018"
    applies_to: ClassVar[str] = "all models (Linear, Conv1d, Conv2d layers)"
    example: ClassVar[dict[str, Any]] = {"layers": "all"}
    example_overrides: ClassVar[dict[str, Any]] = {}

    def on_model(self, model: nn.Module) -> nn.Module:
        head = getattr(model, "head", None)
        targets = [
            m
            for m in model.modules()
            if isinstance(m, LAYER_TYPES) and (self.params.layers == "all" or m is not head)
        ]  # collected first: parametrizing changes the module classes while iterating
        for m in targets:
            spectral_norm(m, n_power_iterations=self.params.n_power_iterations)
        return model
