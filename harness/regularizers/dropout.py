"""Dropout. Srivastava et al. 2014, "Dropout: A Simple Way to Prevent Neural Networks from
Overfitting", JMLR 15; transformer placements as in Vaswani et al. 2017 and timm's ViT."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import Field, field_validator

from harness.models.options import NEUTRAL
from harness.models.transformer import RESIDUAL_SITES, Site
from harness.regularizers.base import (
    ModelSpec,
    Params,
    PopulationSupport,
    Regularizer,
    Requires,
    register,
)

# Placement params -> the transformer option each sets (passed only when not neutral, so a
# model without the option accepts the default and a run that never names them is unchanged).
PLACEMENTS = {"embed_p": "embed_dropout", "attn_p": "attn_dropout", "head_p": "head_dropout",
              "sites": "dropout_sites"}


class DropoutParams(Params):
    p: float = Field(ge=0.0, lt=1.0)  # hidden layers / the residual stream (after `sites`)
    embed_p: float = Field(0.0, ge=0.0, lt=1.0)  # token/patch embeddings (transformers)
    attn_p: float = Field(0.0, ge=0.0, lt=1.0)  # attention probabilities (transformers)
    head_p: float = Field(0.0, ge=0.0, lt=1.0)  # before the classifier / LM head (transformers)
    sites: list[Literal["attn", "ffn"]] = Field(  # the sublayers `p` follows (transformers)
        default_factory=lambda: list(RESIDUAL_SITES))

    @field_validator("sites")
    @classmethod
    def _distinct(cls, v: list[Site]) -> list[Site]:
        if not v or len(set(v)) != len(v):
            raise ValueError(f"name each of {', '.join(RESIDUAL_SITES)} at most once, at least "
                             "one (p: 0 turns residual dropout off)")
        return [s for s in RESIDUAL_SITES if s in v]  # block order: one spelling per run


@register
class Dropout(Regularizer[DropoutParams]):
    """Sets the models' dropout rates; placement is the model's job. `p`: hidden layers of
    MLPs, before the classifier in CNNs, after attention and FFN in transformers (`sites`
    picks one of the two), so the knob means one thing. Transformers only: `attn_p` drops
    attention probabilities (inside the softmax's output, SDPA's dropout_p), `head_p` the
    features entering the head, `embed_p` the embeddings (timm's attn_drop, drop, pos_drop)."""

    name: ClassVar[str] = "dropout"
    # members may differ in every rate: each builds its own model (the stacked dropout
    # layer keeps each member's rate)
    population: ClassVar[PopulationSupport | None] = PopulationSupport()
    requires: ClassVar[Requires] = Requires(options=PLACEMENTS)
    reference: ClassVar[str] = "Srivastava et al. 2014"
    applies_to: ClassVar[str] = ("all models (embed_p, attn_p, head_p, sites: vit, "
                                 "transformer1d, gpt)")
    example: ClassVar[dict[str, Any]] = {"p": 0.1}
    example_overrides: ClassVar[dict[str, Any]] = {"model.name": "mlp"}

    def configure_model(self, spec: ModelSpec) -> None:
        spec.kwargs["dropout"] = self.params.p
        for param, option in PLACEMENTS.items():
            value = self.option_value(param)
            if value != NEUTRAL[option]:  # neutral: models without the option accept it too
                spec.kwargs[option] = value

    def option_value(self, param: str) -> Any:
        """The model option's value for `param` (sites as a tuple in block order)."""
        if param == "sites":
            return tuple(s for s in RESIDUAL_SITES if s in self.params.sites)
        return getattr(self.params, param)
