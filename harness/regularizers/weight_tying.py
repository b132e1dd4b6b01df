"""Weight tying of input embedding and output layer. Press & Wolf 2017, "Using the Output
Embedding to Improve Language Models", EACL."""

from __future__ import annotations

from typing import Any, ClassVar

from harness.regularizers.base import ModelSpec, Params, Regularizer, Requires, register


@register
class WeightTying(Regularizer[Params]):
    """Shares one Parameter between the token embedding and the output head: removes
    vocab x width parameters and ties input and output word representations."""

    name: ClassVar[str] = "weight_tying"
    requires: ClassVar[Requires] = Requires(model="language_model")
    reference: ClassVar[str] = "Press & Wolf 2017"
    applies_to: ClassVar[str] = "language models (gpt)"
    example: ClassVar[dict[str, Any]] = {}
    example_overrides: ClassVar[dict[str, Any]] = {
        "model.name": "gpt",
        "data.name": "tiny_shakespeare",
    }

    def configure_model(self, spec: ModelSpec) -> None:
        spec.kwargs["tie_weights"] = True
