"""Stochastic depth (drop path). Huang et al. 2016, "Deep Networks with Stochastic Depth",
ECCV."""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import Field

from harness.errors import ConfigError
from harness.models import model_capabilities
from harness.regularizers.base import (
    ModelSpec,
    Params,
    Regularizer,
    Requires,
    RunSettings,
    register,
)


class DropPathParams(Params):
    rate: float = Field(ge=0.0, lt=1.0)  # drop rate of the last block; the first gets 0


@register
class DropPath(Regularizer[DropPathParams]):
    """Sets the models' `drop_path` rate: each residual branch is dropped per sample with a
    rate growing linearly over the blocks (0 ... rate), kept ones scaled by 1/(1-p), so the
    expected output is unchanged and eval is the full network."""

    name: ClassVar[str] = "drop_path"
    requires: ClassVar[Requires] = Requires(model="residual")
    reference: ClassVar[str] = "Huang et al. 2016"
    applies_to: ClassVar[str] = "residual models (resnet, vit, transformer1d, gpt)"
    example: ClassVar[dict[str, Any]] = {"rate": 0.1}
    example_overrides: ClassVar[dict[str, Any]] = {"model.name": "resnet"}

    @classmethod
    def check(cls, params: DropPathParams, config: RunSettings) -> None:
        model = config.model.name
        if model_capabilities(model).residual_blocks(config.model.depth) < 2:
            raise ConfigError(
                f"regularizers.drop_path: model {model} (depth {config.model.depth}) has one "
                "residual block, and the first block is never dropped (rates grow 0 .. rate "
                "over the blocks), so drop_path would do nothing; use model.depth >= 2")

    def configure_model(self, spec: ModelSpec) -> None:
        spec.kwargs["drop_path"] = self.params.rate
