"""Shifted copies of a test set, for a simple distribution-shift (robustness) metric."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from harness.errors import ConfigError

NOISE_STD = 0.1  # additive gaussian noise, in float01 units for images
MAX_ROTATION_DEG = 15.0  # images: uniform in [-15, 15] degrees
MAX_SHIFT = 5  # signals: circular shift uniform in [-5, 5] positions


def shift_corrupt(bundle_kind: str, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """A corrupted copy of x; the input is never modified.

    images (float01, or uint8 which is scaled first): small random rotation + noise std 0.1,
    clamped to [0, 1], so the result goes through bundle.prepare like clean test images.
    signals: per-sample random circular shift of up to 5 positions + noise std 0.1.
    text: no meaningful corruption, so it is a ConfigError.
    """
    if bundle_kind == "image":
        return _corrupt_images(x, generator)
    if bundle_kind == "signal":
        return _corrupt_signals(x, generator)
    raise ConfigError(f"shift corruption: not defined for {bundle_kind} data")


def _noise(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Drawn on the CPU with the CPU generator, so results do not depend on the device."""
    return (torch.randn(x.shape, generator=generator) * NOISE_STD).to(x.device, x.dtype)


def _rand(n: int, generator: torch.Generator) -> torch.Tensor:
    return torch.rand(n, generator=generator)


def _corrupt_images(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    if x.dtype == torch.uint8:
        x = x.float() / 255.0
    angle = (_rand(len(x), generator) * 2 - 1) * math.radians(MAX_ROTATION_DEG)
    cos, sin, zero = torch.cos(angle), torch.sin(angle), torch.zeros_like(angle)
    theta = torch.stack([torch.stack([cos, -sin, zero], 1), torch.stack([sin, cos, zero], 1)], 1)
    grid = F.affine_grid(theta.to(x.device, x.dtype), list(x.shape), align_corners=False)
    rotated = F.grid_sample(x, grid, align_corners=False, padding_mode="zeros")
    return (rotated + _noise(x, generator)).clamp_(0.0, 1.0)


def _corrupt_signals(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    length = x.shape[-1]
    shift = torch.randint(-MAX_SHIFT, MAX_SHIFT + 1, (len(x),), generator=generator)
    idx = (torch.arange(length).view(1, -1) - shift.view(-1, 1)) % length  # (N, L)
    idx = idx.to(x.device).view(len(x), *([1] * (x.dim() - 2)), length).expand_as(x)
    return torch.gather(x, -1, idx) + _noise(x, generator)
