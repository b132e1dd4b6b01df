"""Normalization layers. Ioffe & Szegedy 2015 (BatchNorm); Ba et al. 2016 (LayerNorm);
Zhang & Sennrich 2019 (RMSNorm); Wu & He 2018 (GroupNorm); Xiong et al. 2020 (pre vs post)."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from harness.regularizers.base import ModelSpec, Params, Regularizer, Requires, register


class NormParams(Params):
    kind: Literal["none", "batchnorm", "layernorm", "rmsnorm", "groupnorm"]
    position: Literal["pre", "post"] = "pre"  # transformers: norm(x) inside or after residual


@register
class Norm(Regularizer[NormParams]):
    """Chooses the models' normalization layer (`norm`) and, in transformers, whether it sits
    before each branch (pre-norm, x + f(norm(x))) or after the residual sum (post-norm)."""

    name: ClassVar[str] = "norm"
    requires: ClassVar[Requires] = Requires(options={"position": "norm_position"})
    reference: ClassVar[str] = (
        "Ioffe & Szegedy 2015; Ba et al. 2016; Zhang & Sennrich 2019; Wu & He 2018; "
        "Xiong et al. 2020"
    )
    applies_to: ClassVar[str] = "all models (position=post: vit, transformer1d, gpt)"
    example: ClassVar[dict[str, Any]] = {"kind": "layernorm"}
    example_overrides: ClassVar[dict[str, Any]] = {}

    def configure_model(self, spec: ModelSpec) -> None:
        spec.kwargs["norm"] = self.params.kind
        spec.kwargs["norm_position"] = self.params.position  # "pre" is neutral elsewhere
