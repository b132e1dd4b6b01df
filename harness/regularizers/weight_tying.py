"""Weight tying of input embedding and output layer. Press & Wolf 2017, "Using the Output
Embedding to Improve Language Models", EACL."""

from __future__ import annotations

from typing import Any, ClassVar

from harness.errors import ConfigError
from harness.models import MODELS, model_capabilities, model_info
from harness.regularizers.base import ModelSpec, Params, Regularizer, register


@register
class WeightTying(Regularizer):
    """Shares one Parameter between the token embedding and the output head: removes
    vocab x width parameters and ties input and output word representations."""

    name: ClassVar[str] = "weight_tying"
    reference: ClassVar[str] = "Press & Wolf 2017"
    applies_to: ClassVar[str] = "language models (gpt)"
    example: ClassVar[dict[str, Any]] = {}
    example_overrides: ClassVar[dict[str, Any]] = {
        "model.name": "gpt",
        "data.name": "tiny_shakespeare",
    }

    @classmethod
    def check(cls, params: Params, config: Any) -> None:
        model = config.model.name
        if not model_capabilities(model).language_model:
            owners = ", ".join(n for n, c in MODELS.items() if model_info(c).language_model)
            raise ConfigError(
                f"regularizers.weight_tying: only for language models ({owners}); "
                f"model {model} is not one"
            )

    def configure_model(self, spec: ModelSpec) -> None:
        spec.kwargs["tie_weights"] = True
