"""Mixup (Zhang et al. 2018) and CutMix (Yun et al. 2019) as one `mix` plug-in, as timm's
Mixup (mode "batch").

Per batch, as timm's `_params_per_batch`: with probability `prob` the batch is mixed; if
both alphas are > 0 it is CutMix with probability `switch_prob`, else mixup; lam ~
Beta(alpha, alpha) of the chosen one. The partner of sample i is sample N-1-i (timm's
`x.flip(0)`); targets become lam * onehot(y) + (1 - lam) * onehot(y_partner) (or the same
mix of the targets when they are already soft); `y` stays the hard labels (accuracy).

mixup: x = lam * x + (1 - lam) * x_partner (images and 1-D signals).
cutmix: one random box (images) or segment (1-D signals) of area fraction ~ (1 - lam) is
pasted from the partner, and lam is corrected to the exact kept fraction (timm's
`correct_lam`).

Only `transform_batch` acts, on training batches only. Scalar draws (prob, switch, lam) use
torch's global CPU RNG (seeded and checkpointed by the loop); box centres too, so no draw
synchronizes a GPU. (The old `mixup:` / `cutmix:` keys are refused, naming `mix:`:
harness/config.py, OLD_SPELLINGS.)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from pydantic import Field, model_validator

from harness.regularizers.base import (
    Batch,
    Params,
    PopulationSupport,
    Regularizer,
    Requires,
    TrainState,
    register,
)

# ------------------------------------------------------------------ pure batch functions


def soft_targets(targets: torch.Tensor, num_classes: int) -> torch.Tensor:
    """(N,) class ids -> (N, K) float one-hots; (N, K) probabilities pass through."""
    if targets.dtype in (torch.int64, torch.int32):
        return F.one_hot(targets.long(), num_classes).float()
    return targets


def mix_targets(targets: torch.Tensor, lam: float, num_classes: int) -> torch.Tensor:
    """lam * t + (1 - lam) * t.flip(0), with t the soft targets."""
    t = soft_targets(targets, num_classes)
    return lam * t + (1.0 - lam) * t.flip(0)


def mixup_batch(x: torch.Tensor, targets: torch.Tensor, lam: float,
                num_classes: int) -> tuple[torch.Tensor, torch.Tensor]:
    """x = lam * x + (1 - lam) * x.flip(0), and the same mix of the (soft) targets."""
    return lam * x + (1.0 - lam) * x.flip(0), mix_targets(targets, lam, num_classes)


def sample_lam(alpha: float) -> float:
    """lam ~ Beta(alpha, alpha) from torch's global CPU RNG."""
    return float(torch.distributions.Beta(alpha, alpha).sample())


def cutmix_box(size: tuple[int, ...], lam: float,
               generator: torch.Generator | None = None
               ) -> tuple[tuple[tuple[int, int], ...], float]:
    """CutMix's box (Yun et al. 2019) with timm's correct_lam, over the spatial `size`
    ((H, W) or (L,)).

    Each side of the box is exactly cut = int(side * sqrt(1 - lam)) ((1 - lam) for 1-D)
    before clipping: [centre - cut // 2, centre + (cut + 1) // 2), centred at a uniform
    random position: timm's rand_bbox and cutmix_bbox_and_lam (timm 1.0.31; tested against
    it). torchvision.transforms.v2.CutMix cuts 2 * int(side * sqrt(1 - lam) / 2) instead.
    Returns the per-dimension (lo, hi) bounds and lam corrected to the exact kept fraction
    1 - box_area / total_area.
    """
    ratio = (1.0 - lam) ** (1.0 / len(size))
    bounds = []
    for side in size:
        cut = int(side * ratio)
        centre = int(torch.randint(0, side, (), generator=generator))
        bounds.append((max(centre - cut // 2, 0), min(centre + (cut + 1) // 2, side)))
    box_area = 1
    for lo, hi in bounds:
        box_area *= hi - lo
    total = 1
    for side in size:
        total *= side
    return tuple(bounds), 1.0 - box_area / total


def cutmix_batch(x: torch.Tensor, targets: torch.Tensor,
                 bounds: tuple[tuple[int, int], ...], lam: float,
                 num_classes: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Paste the partner's (x.flip(0)) box `bounds` over the trailing dims of x; mix targets
    with lam (the kept fraction, as returned by `cutmix_box`)."""
    region: tuple[Any, ...] = (..., *(slice(lo, hi) for lo, hi in bounds))
    out = x.clone()
    out[region] = x.flip(0)[region]
    return out, mix_targets(targets, lam, num_classes)


# --------------------------------------------------------------------------- plug-in


class MixParams(Params):
    """timm.data.Mixup's parameters and defaults (mode "batch", no label smoothing: that
    is the label_smoothing plug-in)."""

    mixup_alpha: float = Field(1.0, ge=0.0)  # Beta(alpha, alpha) for mixup; 0: no mixup
    cutmix_alpha: float = Field(0.0, ge=0.0)  # Beta(alpha, alpha) for CutMix; 0: no CutMix
    prob: float = Field(1.0, ge=0.0, le=1.0)  # probability that a batch is mixed
    switch_prob: float = Field(0.5, ge=0.0, le=1.0)  # both alphas > 0: P(CutMix) per batch

    @model_validator(mode="after")
    def _one_on(self) -> MixParams:
        if self.mixup_alpha == 0 and self.cutmix_alpha == 0:
            raise ValueError("mixup_alpha and cutmix_alpha are both 0: set one above 0")
        return self


def uniform() -> float:
    return float(torch.rand(()))


def mix_decision(p: MixParams, rand: Callable[[], float] = uniform,
                 beta: Callable[[float], float] = sample_lam) -> tuple[float, bool]:
    """(lam, use_cutmix) for one batch, drawn exactly as timm's Mixup._params_per_batch
    (same draws in the same order); lam 1.0 means leave the batch alone."""
    if not rand() < p.prob:
        return 1.0, False
    if p.mixup_alpha > 0 and p.cutmix_alpha > 0:
        use_cutmix = rand() < p.switch_prob
        return beta(p.cutmix_alpha if use_cutmix else p.mixup_alpha), use_cutmix
    if p.mixup_alpha > 0:
        return beta(p.mixup_alpha), False
    return beta(p.cutmix_alpha), True


@register
class Mix(Regularizer[MixParams]):
    """Mixup or CutMix per batch, switching as timm's Mixup (see module doc)."""

    name = "mix"
    population: ClassVar[PopulationSupport | None] = PopulationSupport()  # draws: member's own
    requires: ClassVar[Requires] = Requires(data=frozenset({"image", "signal"}))
    reference = ("Zhang et al. 2018 (mixup); Yun et al. 2019 (CutMix); switching as "
                 "timm.data.Mixup")
    applies_to: ClassVar[str] = "all models; images (box) and 1-D signals (segment)"
    example: ClassVar[dict[str, Any]] = {"mixup_alpha": 0.8, "cutmix_alpha": 1.0}
    example_overrides: ClassVar[dict[str, Any]] = {}

    def transform_batch(self, state: TrainState, batch: Batch) -> Batch:
        lam, use_cutmix = mix_decision(self.params)
        if lam == 1.0:  # as timm: nothing to mix
            return batch
        k = self.ctx.num_classes
        if use_cutmix:
            bounds, lam = cutmix_box(tuple(batch.x.shape[2:]), lam)
            x, targets = cutmix_batch(batch.x, batch.targets, bounds, lam, k)
        else:
            x, targets = mixup_batch(batch.x, batch.targets, lam, k)
        return Batch(x=x, y=batch.y, targets=targets)
