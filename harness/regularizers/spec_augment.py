"""Time and frequency masking of 1-D signals. Park et al. 2019, "SpecAugment".

SpecAugment masks spans of a spectrogram's time and frequency axes. On a raw 1-D signal
(MNIST-1D) time masking zeroes a contiguous span of positions, and frequency masking zeroes
a contiguous band of the signal's real FFT and transforms back. Each training sample gets
`count` masks of its own width, drawn uniformly from 0..`width` (so some masks are empty,
as in the paper), at a uniformly random start. The signals arrive standardized, so zero is
the mean (what the paper fills with). Training batches only; eval never sees a mask.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from pydantic import Field

from harness.data.base import KIND_HOLDS, dataset_kind
from harness.errors import ConfigError
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


class MaskParams(Params):
    width: int = Field(..., ge=1)  # largest span (time: positions; frequency: rFFT bins)
    count: int = Field(1, ge=1, le=16)  # masks per sample


def span_mask(n: int, length: int, width: int, count: int,
              device: torch.device) -> torch.Tensor:
    """(n, length) bool: True inside each sample's `count` random spans. Each span's width
    is uniform in 0..min(width, length), its start uniform over the places it fits."""
    pos = torch.arange(length, device=device)
    mask = torch.zeros(n, length, dtype=torch.bool, device=device)
    top = min(width, length)
    for _ in range(count):
        w = torch.randint(0, top + 1, (n, 1), device=device)
        start = (torch.rand(n, 1, device=device) * (length - w + 1)).floor().long()
        mask |= (pos >= start) & (pos < start + w)
    return mask


def time_mask(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """x (N, C, L) with positions where mask (N, L) is True set to 0 in every channel."""
    return x.masked_fill(mask[:, None, :], 0.0)


def frequency_mask(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """x (N, C, L) with the rFFT bins where mask (N, L // 2 + 1) is True zeroed."""
    spectrum = torch.fft.rfft(x, dim=-1)
    spectrum = spectrum.masked_fill(mask[:, None, :], 0.0)
    return torch.fft.irfft(spectrum, n=x.shape[-1], dim=-1).to(x.dtype)


class SignalMask(Regularizer[MaskParams]):
    """Shared by time and frequency masking: signals only, checked before training."""

    phase = Phase.AUGMENT  # with the other augmentations, before mixing and label smoothing
    reference = "Park et al. 2019"
    applies_to = "1-D signals (mnist1d)"
    example: ClassVar[dict[str, Any]] = {"width": 8}

    def __init__(self, params: MaskParams, ctx: RunContext) -> None:
        super().__init__(params, ctx)
        self.require_signal(getattr(ctx.data, "kind", None), getattr(ctx.data, "name", "?"))

    @classmethod
    def check(cls, params: MaskParams, config: RunSettings) -> None:
        cls.require_signal(dataset_kind(config.data.name), config.data.name)

    @classmethod
    def require_signal(cls, kind: str | None, dataset: str) -> None:
        if kind in KIND_HOLDS and kind != "signal":
            raise ConfigError(f"regularizers.{cls.name}: masks 1-D signals; dataset {dataset} "
                              f"holds {KIND_HOLDS[kind]}")


@register
class TimeMask(SignalMask):
    name = "time_mask"

    def transform_batch(self, state: TrainState, batch: Batch) -> Batch:
        p = self.params
        n, _, length = batch.x.shape
        mask = span_mask(n, length, p.width, p.count, batch.x.device)
        return Batch(x=time_mask(batch.x, mask), y=batch.y, targets=batch.targets)


@register
class FrequencyMask(SignalMask):
    name = "freq_mask"
    example: ClassVar[dict[str, Any]] = {"width": 4}

    def transform_batch(self, state: TrainState, batch: Batch) -> Batch:
        p = self.params
        n, _, length = batch.x.shape
        mask = span_mask(n, length // 2 + 1, p.width, p.count, batch.x.device)
        return Batch(x=frequency_mask(batch.x, mask), y=batch.y, targets=batch.targets)
