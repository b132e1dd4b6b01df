"""Token dropout / random masking of a language model's input. Gal & Ghahramani 2016
(word dropout); Devlin et al. 2019 (random masking, BERT).

Each input token is replaced with probability p, by one mask id (`replace: mask`; a
character vocabulary has no reserved mask symbol, so `mask_id` names the id written) or by
a uniformly random token (`replace: random`). The targets stay the clean next tokens, so
the model learns to predict through corrupted context. Training batches only.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

import torch
from pydantic import Field

from harness.data.base import KIND_HOLDS, dataset_kind
from harness.errors import ConfigError
from harness.regularizers.augment import token_mask
from harness.regularizers.base import (
    Batch,
    Params,
    Phase,
    Regularizer,
    RunContext,
    RunSettings,
    TrainState,
    register,
)


class TokenDropoutParams(Params):
    p: float = Field(..., gt=0.0, lt=1.0)  # probability that a token is replaced
    replace: Literal["mask", "random"] = "mask"
    mask_id: int = Field(0, ge=0)  # replace: mask: the token id written


def token_dropout(x: torch.Tensor, p: float, mask_id: int) -> torch.Tensor:
    """Each token of x replaced by mask_id with probability p (independently)."""
    drop = torch.rand(x.shape, device=x.device) < p
    return x.masked_fill(drop, mask_id)


@register
class TokenDropout(Regularizer[TokenDropoutParams]):
    name = "token_dropout"
    phase = Phase.AUGMENT  # with the other input augmentations
    reference = "Gal & Ghahramani 2016; Devlin et al. 2019"
    applies_to = "text (language models: gpt)"
    example: ClassVar[dict[str, Any]] = {"p": 0.1}
    example_overrides: ClassVar[dict[str, Any]] = {"model.name": "gpt",
                                                   "data.name": "tiny_shakespeare"}

    def __init__(self, params: TokenDropoutParams, ctx: RunContext) -> None:
        super().__init__(params, ctx)
        p = params
        self.require_text(getattr(ctx.data, "kind", None), getattr(ctx.data, "name", "?"))
        if p.replace == "mask" and p.mask_id >= ctx.num_classes:
            raise ConfigError(f"regularizers.token_dropout.mask_id = {p.mask_id}: the vocabulary "
                              f"of {ctx.data.name} has ids 0..{ctx.num_classes - 1}")

    @classmethod
    def check(cls, params: TokenDropoutParams, config: RunSettings) -> None:
        cls.require_text(dataset_kind(config.data.name), config.data.name)

    @staticmethod
    def require_text(kind: str | None, dataset: str) -> None:
        if kind in KIND_HOLDS and kind != "text":
            raise ConfigError(f"regularizers.token_dropout: drops text tokens; dataset "
                              f"{dataset} holds {KIND_HOLDS[kind]}")

    def transform_batch(self, state: TrainState, batch: Batch) -> Batch:
        p = self.params
        if p.replace == "random":
            x = token_mask(batch.x, p.p, self.ctx.num_classes)
        else:
            x = token_dropout(batch.x, p.p, p.mask_id)
        return Batch(x=x, y=batch.y, targets=batch.targets)
