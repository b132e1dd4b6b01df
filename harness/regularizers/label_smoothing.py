"""Label smoothing. Szegedy et al. 2016, "Rethinking the Inception Architecture", CVPR."""

from __future__ import annotations

from typing import ClassVar

import torch
import torch.nn.functional as F
from pydantic import Field

from harness.regularizers.base import (
    Batch,
    Params,
    Phase,
    PopulationSupport,
    Regularizer,
    TrainState,
    register,
)


class LabelSmoothingParams(Params):
    epsilon: float = Field(0.1, ge=0.0, lt=1.0)


def smooth_targets(targets: torch.Tensor, num_classes: int, epsilon: float) -> torch.Tensor:
    """(1 - eps) * onehot + eps / K for class ids (N,) or (N, T) -> (..., K); soft targets
    (already (..., K) probabilities, e.g. after mixup) -> (1 - eps) * t + eps / K."""
    if targets.dtype.is_floating_point:
        soft = targets
    else:
        soft = F.one_hot(targets.long(), num_classes).to(torch.float32)  # any int width
    return soft * (1.0 - epsilon) + epsilon / num_classes


@register
class LabelSmoothing(Regularizer[LabelSmoothingParams]):
    """Training targets become (1 - eps) * onehot + eps / K, so the loop's cross-entropy on
    soft targets equals F.cross_entropy(label_smoothing=eps). Evaluation is on hard labels.
    Language models: (N, T) token ids -> (N, T, V) soft targets."""

    name = "label_smoothing"
    population: ClassVar[PopulationSupport | None] = PopulationSupport()
    phase = Phase.SMOOTH_TARGETS  # after mixing, which produces the soft targets it smooths
    reference = "Szegedy et al. 2016"
    applies_to = "all models (classifiers and language models)"
    example: ClassVar[dict] = {"epsilon": 0.1}
    example_overrides: ClassVar[dict] = {}

    def transform_batch(self, state: TrainState, batch: Batch) -> Batch:
        eps = self.params.epsilon
        if eps == 0.0:
            return batch
        targets = smooth_targets(batch.targets, self.ctx.num_classes, eps)
        return Batch(x=batch.x, y=batch.y, targets=targets)
