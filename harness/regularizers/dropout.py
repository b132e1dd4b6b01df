"""Dropout. Srivastava et al. 2014, "Dropout: A Simple Way to Prevent Neural Networks from
Overfitting", JMLR 15."""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import Field

from harness.regularizers.base import ModelSpec, Params, Regularizer, Requires, register


class DropoutParams(Params):
    p: float = Field(ge=0.0, lt=1.0)  # activations on hidden layers / the residual stream
    embed_p: float = Field(0.0, ge=0.0, lt=1.0)  # token/patch embeddings (transformers)


@register
class Dropout(Regularizer[DropoutParams]):
    """Sets the models' `dropout` (and `embed_dropout`) rates; placement is the model's job
    (hidden layers of MLPs, before the classifier in CNNs, after attention and FFN in
    transformers, never inside the attention softmax), so the knob means one thing."""

    name: ClassVar[str] = "dropout"
    requires: ClassVar[Requires] = Requires(options={"embed_p": "embed_dropout"})
    reference: ClassVar[str] = "Srivastava et al. 2014"
    applies_to: ClassVar[str] = "all models (embed_p: vit, transformer1d, gpt)"
    example: ClassVar[dict[str, Any]] = {"p": 0.1}
    example_overrides: ClassVar[dict[str, Any]] = {"model.name": "mlp"}

    def configure_model(self, spec: ModelSpec) -> None:
        spec.kwargs["dropout"] = self.params.p
        if self.params.embed_p > 0:  # 0 is neutral; models without the option accept it too
            spec.kwargs["embed_dropout"] = self.params.embed_p
