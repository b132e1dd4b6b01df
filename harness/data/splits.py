"""Seeded, stratified split logic: validation carving, train subsets and label noise."""

from __future__ import annotations

import hashlib

import torch

from harness.errors import ConfigError


def make_generator(seed: int, step: str) -> torch.Generator:
    """A private generator per (seed, step): changing one step never shifts another's draws."""
    digest = hashlib.sha256(f"{seed}:{step}".encode()).digest()
    return torch.Generator().manual_seed(int.from_bytes(digest[:8], "little") >> 1)


def class_quotas(y: torch.Tensor, total: int) -> tuple[list[int], list[int]]:
    """Per-class counts summing to exactly `total`, each within 1 of its proportional share.

    Largest-remainder rounding: per-class round() alone can miss the total by a few samples
    (MNIST: 5999 instead of 6000), which would make split sizes depend on class counts.
    """
    classes, counts = torch.unique(y, return_counts=True)
    quota = counts.double() * total / max(len(y), 1)
    take = quota.floor().long()
    order = torch.argsort(quota - take, descending=True, stable=True)
    take[order[: total - int(take.sum())]] += 1
    return classes.tolist(), take.tolist()


def _pick(y: torch.Tensor, total: int, generator: torch.Generator) -> torch.Tensor:
    """Sorted indices of a seeded stratified sample of exactly `total` items."""
    chosen = []
    for c, k in zip(*class_quotas(y, total), strict=True):
        idx = torch.nonzero(y == c).flatten()
        chosen.append(idx[torch.randperm(len(idx), generator=generator)[:k]])
    return torch.sort(torch.cat(chosen)).values if chosen else torch.zeros(0, dtype=torch.long)


def stratified_split(
    y: torch.Tensor, fraction: float, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """Disjoint sorted indices (keep, held): held has exactly round(fraction * N) items,
    each class giving round(fraction * n_class) up to one sample (see class_quotas)."""
    held = _pick(y, int(round(fraction * len(y))), generator)
    mask = torch.ones(len(y), dtype=torch.bool)
    mask[held] = False
    return torch.nonzero(mask).flatten(), held


def stratified_subset(y: torch.Tensor, size: int, generator: torch.Generator) -> torch.Tensor:
    """Sorted indices of exactly `size` samples with per-class counts proportional to y's."""
    if size > len(y):
        raise ConfigError(f"data.train_size: {size} is more than the maximum {len(y)} available")
    return _pick(y, size, generator)


def add_label_noise(
    y: torch.Tensor, p: float, num_classes: int, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """Exactly round(p * N) labels, each replaced by a random OTHER class.

    Because the new label always differs, the measured noisy fraction is exactly p
    (up to rounding), unlike "uniform over all classes" noise. Returns (noisy_y, flipped idx).
    """
    n_noisy = int(round(p * len(y)))
    idx = torch.randperm(len(y), generator=generator)[:n_noisy]
    offset = torch.randint(1, num_classes, (n_noisy,), generator=generator)
    noisy = y.clone()
    noisy[idx] = (y[idx] + offset) % num_classes
    return noisy, torch.sort(idx).values
