"""Mixup (Zhang et al. 2018) and CutMix (Yun et al. 2019) on training batches, as in timm.

Per mixed batch: lam ~ Beta(alpha, alpha); the partner of sample i is sample N-1-i (timm's
`x.flip(0)`); targets become lam * onehot(y) + (1 - lam) * onehot(y_partner) (or the same
mix of the targets when they are already soft); `y` stays the hard labels (accuracy).

mixup: x = lam * x + (1 - lam) * x_partner (images and 1-D signals).
cutmix: one random box (images) or segment (1-D signals) of area fraction ~ (1 - lam) is
pasted from the partner, and lam is corrected to the exact kept fraction (timm's
`correct_lam`).

When both are on, the cutmix plug-in does the switching (timm's Mixup with `switch_prob`):
each batch is cutmix with probability `cutmix.switch_prob`, else mixup, each with its own
alpha and prob; the mixup plug-in then leaves batches alone. Only `transform_batch` acts, on
training batches only. Scalar draws (lam, prob, switch) use torch's global CPU RNG (seeded
and checkpointed by the loop); box centres too, so no draw synchronizes a GPU.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from pydantic import Field

from harness.data.base import KIND_HOLDS, dataset_kind
from harness.errors import ConfigError
from harness.regularizers.base import Batch, Params, Regularizer, RunContext, register

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
    random position, as torchvision.transforms.v2.CutMix draws it (timm's rand_bbox ends at
    centre + cut // 2, one short for odd cuts). Returns the per-dimension (lo, hi) bounds and
    lam corrected to the exact kept fraction 1 - box_area / total_area.
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
    region = (..., *(slice(lo, hi) for lo, hi in bounds))
    out = x.clone()
    out[region] = x.flip(0)[region]
    return out, mix_targets(targets, lam, num_classes)


# --------------------------------------------------------------------------- plug-ins


class MixupParams(Params):
    alpha: float = Field(0.8, gt=0.0)  # Beta(alpha, alpha); timm's mixup_alpha default
    prob: float = Field(1.0, ge=0.0, le=1.0)  # probability that a batch is mixed


class CutmixParams(Params):
    alpha: float = Field(1.0, gt=0.0)  # Beta(alpha, alpha); timm's cutmix_alpha default
    prob: float = Field(1.0, ge=0.0, le=1.0)  # probability that a batch is mixed
    switch_prob: float = Field(0.5, ge=0.0, le=1.0)  # mixup also on: P(cutmix) per batch


def _check_kind(name: str, config: Any) -> None:
    dataset = config.data.name
    kind = dataset_kind(dataset)
    if kind == "text":
        raise ConfigError(f"regularizers.{name}: defined for images and 1-D signals; "
                          f"dataset {dataset} holds {KIND_HOLDS[kind]}")


def _check_runtime_kind(name: str, ctx: RunContext) -> None:
    kind = getattr(ctx.data, "kind", None)
    if kind == "text":
        raise ConfigError(f"regularizers.{name}: defined for images and 1-D signals; "
                          f"dataset {ctx.data.name} holds {KIND_HOLDS[kind]}")


def _draw(prob: float) -> bool:
    return prob >= 1.0 or (prob > 0.0 and float(torch.rand(())) < prob)


def _with(batch: Batch, x: torch.Tensor, targets: torch.Tensor) -> Batch:
    return Batch(x=x, y=batch.y, targets=targets)


@register
class Mixup(Regularizer):
    """Convex combinations of sample pairs and of their one-hot targets."""

    name = "mixup"
    Params = MixupParams
    order = 50
    reference = "Zhang et al. 2018, mixup: Beyond Empirical Risk Minimization"
    applies_to: ClassVar[str] = "all models; images and 1-D signals"
    example: ClassVar[dict[str, Any]] = {"alpha": 0.8}
    example_overrides: ClassVar[dict[str, Any]] = {}

    def __init__(self, params: MixupParams, ctx: RunContext) -> None:
        super().__init__(params, ctx)
        _check_runtime_kind(self.name, ctx)

    @classmethod
    def check(cls, params: MixupParams, config: Any) -> None:
        _check_kind(cls.name, config)

    def transform_batch(self, batch: Batch) -> Batch:
        if "cutmix" in self.ctx.config.regularizers:
            return batch  # the cutmix plug-in switches between the two
        return self.mix(batch, self.params.alpha, self.params.prob, self.ctx.num_classes)

    @staticmethod
    def mix(batch: Batch, alpha: float, prob: float, num_classes: int) -> Batch:
        if not _draw(prob):
            return batch
        x, targets = mixup_batch(batch.x, batch.targets, sample_lam(alpha), num_classes)
        return _with(batch, x, targets)


@register
class Cutmix(Regularizer):
    """A box (or 1-D segment) pasted from the partner sample; targets mixed by area."""

    name = "cutmix"
    Params = CutmixParams
    order = 50
    reference = "Yun et al. 2019, CutMix (switching with mixup as in timm's Mixup)"
    applies_to: ClassVar[str] = "all models; images (box) and 1-D signals (segment)"
    example: ClassVar[dict[str, Any]] = {"alpha": 1.0}
    example_overrides: ClassVar[dict[str, Any]] = {}

    def __init__(self, params: CutmixParams, ctx: RunContext) -> None:
        super().__init__(params, ctx)
        _check_runtime_kind(self.name, ctx)
        regs = ctx.config.regularizers
        # mixup also on: its params, for the batches switched to mixup
        self.mixup = MixupParams.model_validate(regs["mixup"] or {}) if "mixup" in regs else None

    @classmethod
    def check(cls, params: CutmixParams, config: Any) -> None:
        _check_kind(cls.name, config)

    def transform_batch(self, batch: Batch) -> Batch:
        if self.mixup is not None and not _draw(self.params.switch_prob):
            return Mixup.mix(batch, self.mixup.alpha, self.mixup.prob, self.ctx.num_classes)
        if not _draw(self.params.prob):
            return batch
        bounds, lam = cutmix_box(tuple(batch.x.shape[2:]), sample_lam(self.params.alpha))
        x, targets = cutmix_batch(batch.x, batch.targets, bounds, lam, self.ctx.num_classes)
        return _with(batch, x, targets)
