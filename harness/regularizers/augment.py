"""Data augmentation for images, 1-D signals and text, as batched tensor ops.

Only `transform_batch` touches data, and the loop calls it on TRAINING batches only:
validation, test and the eval-mode train pass go through `DataBundle.prepare` and never
see an augmentation. `x` arrives before normalization (images float32 in [0, 1]).

Every random draw uses torch's global RNG on the batch's device (seeded by the loop; on CPU
also saved in its checkpoints), so a run is reproducible. Everything is vectorized over the
batch except the policy-based image augmentations (RandAugment, AutoAugment,
TrivialAugmentWide), which torchvision defines per image and on uint8: those loop.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar, Literal

import torch
import torch.nn.functional as F
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

KIND_OPTION = {"image": "an image", "signal": "a 1-D signal", "text": "a text"}


# ------------------------------------------------------------------ pure batch functions


def random_crop(x: torch.Tensor, padding: int) -> torch.Tensor:
    """Per-sample random crop of the zero-padded batch back to (H, W).

    The batch is padded once and viewed as all its (H, W) windows (`unfold`, no copy); one
    advanced index picks each sample's window at offsets (dy, dx) in [0, 2 * padding].
    """
    if padding <= 0:
        return x
    n, _, h, w = x.shape
    padded = F.pad(x, (padding, padding, padding, padding))
    windows = padded.unfold(2, h, 1).unfold(3, w, 1)  # (N, C, 2p+1, 2p+1, H, W) view
    dy = torch.randint(0, 2 * padding + 1, (n,), device=x.device)
    dx = torch.randint(0, 2 * padding + 1, (n,), device=x.device)
    return windows[torch.arange(n, device=x.device), :, dy, dx]


def random_hflip(x: torch.Tensor, p: float = 0.5) -> torch.Tensor:
    """Flip each sample left-right with probability p (mask + torch.where)."""
    flip = torch.rand(x.shape[0], device=x.device) < p
    return torch.where(flip.view(-1, *[1] * (x.dim() - 1)), x.flip(-1), x)


def _grayscale(x: torch.Tensor) -> torch.Tensor:
    """(N, 1, H, W) luminance (ITU-R 601-2 weights, as torchvision) or the channel itself."""
    if x.shape[1] == 3:
        weights = torch.tensor([0.299, 0.587, 0.114], dtype=x.dtype, device=x.device)
        return (x * weights.view(1, 3, 1, 1)).sum(1, keepdim=True)
    return x.mean(1, keepdim=True)


def color_jitter(x: torch.Tensor, strength: float) -> torch.Tensor:
    """Per-sample brightness, contrast and saturation factors in U(1 - s, 1 + s).

    Applied in that fixed order, each clamped to [0, 1] like torchvision's ColorJitter:
    brightness multiplies, contrast blends with the image's mean gray level, saturation
    blends with the grayscale image (a no-op for single-channel images).
    """
    if strength <= 0:
        return x
    n = x.shape[0]

    def factor() -> torch.Tensor:
        return 1.0 + strength * (2.0 * torch.rand(n, 1, 1, 1, device=x.device) - 1.0)

    x = (x * factor()).clamp(0.0, 1.0)
    mean = _grayscale(x).mean((1, 2, 3), keepdim=True)
    c = factor()
    x = (c * x + (1.0 - c) * mean).clamp(0.0, 1.0)
    s = factor()
    if x.shape[1] == 3:
        x = (s * x + (1.0 - s) * _grayscale(x)).clamp(0.0, 1.0)
    return x


def random_erasing(x: torch.Tensor, p: float, fill: torch.Tensor | float = 0.0,
                   scale: tuple[float, float] = (0.02, 0.33),
                   ratio: tuple[float, float] = (0.3, 3.3), attempts: int = 10) -> torch.Tensor:
    """torchvision RandomErasing semantics, batched: with probability p per sample, erase one
    rectangle of area fraction U(scale) and log-uniform aspect ratio in `ratio`.

    Like torchvision, up to `attempts` boxes are drawn and the first one that fits is used
    (none fits: the sample is left alone). `fill` is a scalar or a per-channel (C,) tensor.
    """
    if p <= 0:
        return x
    n, c, h, w = x.shape
    dev = x.device
    area = h * w * torch.empty(n, attempts, device=dev).uniform_(scale[0], scale[1])
    log_r = torch.empty(n, attempts, device=dev).uniform_(math.log(ratio[0]), math.log(ratio[1]))
    aspect = log_r.exp()
    eh = (area * aspect).sqrt().round().long()
    ew = (area / aspect).sqrt().round().long()
    fits = (eh < h) & (ew < w)
    first = fits.float().argmax(1, keepdim=True)  # first attempt that fits (0 if none)
    eh, ew = eh.gather(1, first).squeeze(1), ew.gather(1, first).squeeze(1)
    erase = fits.any(1) & (torch.rand(n, device=dev) < p)
    top = (torch.rand(n, device=dev) * (h - eh + 1)).long()
    left = (torch.rand(n, device=dev) * (w - ew + 1)).long()
    rows = torch.arange(h, device=dev).view(1, h)
    cols = torch.arange(w, device=dev).view(1, w)
    in_rows = (rows >= top[:, None]) & (rows < (top + eh)[:, None])
    in_cols = (cols >= left[:, None]) & (cols < (left + ew)[:, None])
    mask = (in_rows[:, :, None] & in_cols[:, None, :] & erase[:, None, None]).unsqueeze(1)
    fill_t = torch.as_tensor(fill, dtype=x.dtype, device=dev)
    if fill_t.dim() == 1:
        fill_t = fill_t.view(1, -1, 1, 1)
    return torch.where(mask, fill_t, x)


def policy_transform(policy: str, n: int = 2, m: int = 9) -> Any:
    """The torchvision.transforms.v2 transform for a policy name (uint8 CHW in and out)."""
    from torchvision.transforms import v2

    if policy == "randaugment":
        return v2.RandAugment(num_ops=n, magnitude=m)
    if policy == "autoaugment":
        return v2.AutoAugment(v2.AutoAugmentPolicy.IMAGENET)
    if policy == "trivialaugment":
        return v2.TrivialAugmentWide()
    raise ValueError(f"unknown policy {policy!r}")


def apply_policy(x: torch.Tensor, transform: Any) -> torch.Tensor:
    """Float [0, 1] -> uint8 -> the transform on each image (own random ops) -> float [0, 1]."""
    u8 = (x * 255.0).round_().clamp_(0, 255).to(torch.uint8)
    out = torch.stack([transform(img) for img in u8])
    return out.to(x.dtype).div_(255.0)


def random_shift(x: torch.Tensor, shift: int) -> torch.Tensor:
    """Shift each signal (N, C, L) by its own k in [-shift, shift] along L, zero-filled:
    out[..., i] = x[..., i - k]."""
    if shift <= 0:
        return x
    n, _, length = x.shape
    windows = F.pad(x, (shift, shift)).unfold(2, length, 1)  # (N, C, 2*shift+1, L) view
    k = torch.randint(-shift, shift + 1, (n,), device=x.device)
    return windows[torch.arange(n, device=x.device), :, shift - k]


def gaussian_noise(x: torch.Tensor, std: float) -> torch.Tensor:
    return x + std * torch.randn_like(x) if std > 0 else x


def random_scale(x: torch.Tensor, scale: float) -> torch.Tensor:
    """Multiply each sample by its own factor in U(1 - scale, 1 + scale)."""
    if scale <= 0:
        return x
    shape = (x.shape[0],) + (1,) * (x.dim() - 1)
    factor = 1.0 + scale * (2.0 * torch.rand(shape, device=x.device, dtype=x.dtype) - 1.0)
    return x * factor


def token_mask(x: torch.Tensor, p: float, vocab_size: int) -> torch.Tensor:
    """Replace each token by a uniformly random token id with probability p."""
    if p <= 0:
        return x
    replace = torch.rand(x.shape, device=x.device) < p
    random_tokens = torch.randint(0, vocab_size, x.shape, device=x.device, dtype=x.dtype)
    return torch.where(replace, random_tokens, x)


# --------------------------------------------------------------------------- plug-in


class AugmentParams(Params):
    # images (float in [0, 1], before normalization)
    crop_padding: int = Field(0, ge=0)  # random crop of the zero-padded image
    hflip: bool = False  # left-right flip, p = 0.5
    color_jitter: float = Field(0.0, ge=0.0, le=1.0)  # brightness/contrast/saturation strength
    policy: Literal["none", "randaugment", "autoaugment", "trivialaugment"] = "none"
    randaugment_n: int = Field(2, ge=1)  # policy=randaugment: ops per image
    randaugment_m: int = Field(9, ge=0, le=30)  # policy=randaugment: magnitude (of 31 bins)
    erasing: float = Field(0.0, ge=0.0, le=1.0)  # random erasing probability per image
    # 1-D signals (already standardized)
    shift: int = Field(0, ge=0)  # random shift by up to +-shift positions, zero fill
    noise: float = Field(0.0, ge=0.0)  # gaussian noise std
    scale: float = Field(0.0, ge=0.0, lt=1.0)  # multiply by U(1 - scale, 1 + scale)
    # text (token ids)
    token_mask: float = Field(0.0, ge=0.0, lt=1.0)  # replace by a random token, prob. p


OPTION_KINDS: dict[str, str] = {
    "crop_padding": "image", "hflip": "image", "color_jitter": "image", "policy": "image",
    "erasing": "image", "shift": "signal", "noise": "signal", "scale": "signal",
    "token_mask": "text",
}


def active_options(p: AugmentParams) -> list[str]:
    """The options that change data (randaugment_n/m only tune `policy`)."""
    return [k for k in OPTION_KINDS if getattr(p, k) not in (0, 0.0, False, "none")]


@register
class Augment(Regularizer[AugmentParams]):
    """Random data augmentation of training batches (never of val/test: see module doc)."""

    name = "augment"
    phase = Phase.AUGMENT  # before mixing and label smoothing
    reference = ("Krizhevsky et al. 2012 (crop/flip); Cubuk et al. 2019/2020 (AutoAugment, "
                 "RandAugment); Müller & Hutter 2021 (TrivialAugment); Zhong et al. 2020 "
                 "(random erasing); Iwana & Uchida 2021 (time-series augmentation)")
    applies_to: ClassVar[str] = "all models; options per data kind (images, 1-D signals, text)"
    example: ClassVar[dict[str, Any]] = {"shift": 4, "noise": 0.05, "scale": 0.1}
    example_overrides: ClassVar[dict[str, Any]] = {}

    def __init__(self, params: AugmentParams, ctx: RunContext) -> None:
        super().__init__(params, ctx)
        kind = getattr(ctx.data, "kind", None)
        for key in active_options(params):  # datasets unknown to `check` are caught here
            if kind in KIND_HOLDS and OPTION_KINDS[key] != kind:
                raise ConfigError(f"regularizers.augment.{key}: {KIND_OPTION[OPTION_KINDS[key]]}"
                                  f" augmentation; dataset {ctx.data.name} holds "
                                  f"{KIND_HOLDS[kind]}")
        self.policy = (None if params.policy == "none" else
                       policy_transform(params.policy, params.randaugment_n,
                                        params.randaugment_m))

    @classmethod
    def check(cls, params: AugmentParams, config: RunSettings) -> None:
        on = active_options(params)
        if not on:
            raise ConfigError(f"regularizers.augment: no augmentation turned on; set one of "
                              f"{', '.join(OPTION_KINDS)}")
        for key in ("randaugment_n", "randaugment_m"):
            if key in params.model_fields_set and params.policy != "randaugment":
                raise ConfigError(f"regularizers.augment.{key}: only used with "
                                  f"policy: randaugment (policy is {params.policy!r})")
        dataset = config.data.name
        kind = dataset_kind(dataset)
        if kind is None:
            return  # a dataset this module does not know: the data kind is checked at run time
        for key in on:
            if OPTION_KINDS[key] != kind:
                raise ConfigError(
                    f"regularizers.augment.{key}: {KIND_OPTION[OPTION_KINDS[key]]} "
                    f"augmentation; dataset {dataset} holds {KIND_HOLDS[kind]}")

    def transform_batch(self, state: TrainState, batch: Batch) -> Batch:
        p, x = self.params, batch.x
        kind = self.ctx.data.kind
        if kind == "image":
            x = random_crop(x, p.crop_padding)
            if p.hflip:
                x = random_hflip(x)
            if self.policy is not None:
                x = apply_policy(x, self.policy)
            x = color_jitter(x, p.color_jitter)
            x = random_erasing(x, p.erasing, fill=self._erase_fill(x))
        elif kind == "signal":
            x = random_shift(x, p.shift)
            x = random_scale(x, p.scale)
            x = gaussian_noise(x, p.noise)
        elif kind == "text":
            x = token_mask(x, p.token_mask, self.ctx.num_classes)
        return Batch(x=x, y=batch.y, targets=batch.targets)

    def _erase_fill(self, x: torch.Tensor) -> torch.Tensor | float:
        """The per-channel train mean: 0 after normalization, i.e. what torchvision's
        RandomErasing(value=0) placed after Normalize writes."""
        mean = getattr(self.ctx.data, "mean", ())
        if mean and len(mean) == x.shape[1]:
            return torch.tensor(mean, dtype=x.dtype, device=x.device)
        return 0.0
