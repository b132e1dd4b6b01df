"""load_data: data folder resolution, loading, splitting, label noise and statistics."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from harness.data.base import DATASETS, DataBundle, RawData, Split
from harness.data.splits import (
    add_label_noise,
    make_generator,
    stratified_split,
    stratified_subset,
)
from harness.errors import ConfigError, DataError

ENV_VAR = "HARNESS_DATA_DIR"


def resolve_data_dir(cfg_dir: str | None = None, cli_dir: str | None = None) -> Path:
    """cli flag > cfg.data_dir > $HARNESS_DATA_DIR > per-user cache (XDG_CACHE_HOME aware)."""
    for candidate in (cli_dir, cfg_dir, os.environ.get(ENV_VAR)):
        if candidate:
            return Path(candidate).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache).expanduser() / "harness" / "datasets"


def load_data(cfg, data_dir: str | Path | None = None) -> DataBundle:
    """Load cfg.name and apply val carving, train_size and label noise (seeded by cfg.seed)."""
    loader = DATASETS.get(cfg.name)
    root = resolve_data_dir(cfg.data_dir, None if data_dir is None else str(data_dir))
    raw = loader(cfg, root, cfg.download)
    check_raw(cfg.name, raw)
    if raw.kind == "text":
        return _text_bundle(cfg, raw)
    return _classification_bundle(cfg, raw)


def check_raw(name: str, raw: object) -> None:
    """A plug-in loader's result, checked so a mistake is one line, not a shape error later."""
    if not isinstance(raw, RawData):
        raise DataError(f"dataset {name}: the loader returned {type(raw).__name__}; it must "
                        "return harness.data.RawData (see docs/extending.md, 'Bring your own')")
    if raw.kind not in ("image", "signal", "text"):
        raise DataError(f"dataset {name}: RawData.kind = {raw.kind!r}; expected image, signal "
                        "or text")
    for split in ("train", "test"):
        x, y = getattr(raw, f"x_{split}"), getattr(raw, f"y_{split}")
        if len(x) != len(y):
            raise DataError(f"dataset {name}: x_{split} has {len(x)} samples but y_{split} "
                            f"has {len(y)}")


def _classification_bundle(cfg, raw: RawData) -> DataBundle:
    """Steps in order: val carved from train, optional train subset, then label noise."""
    x, y = torch.from_numpy(np.ascontiguousarray(raw.x_train)), torch.from_numpy(raw.y_train)
    n_val = cfg.val_count(len(y))
    if n_val >= len(y):
        raise ConfigError(f"data.val_size: {n_val} leaves no training samples of the "
                          f"{len(y)} in {cfg.name}'s training pool")
    keep, held = stratified_split(y, n_val / len(y), make_generator(cfg.seed, "val"))
    val = Split(x[held].clone(), y[held].clone())
    x, y = x[keep], y[keep]
    if cfg.train_size is not None:
        if cfg.train_size > len(y):
            raise ConfigError(
                f"data.train_size: {cfg.train_size} is more than the {len(y)} training samples "
                f"left after validation carving (maximum {len(y)})"
            )
        sub = stratified_subset(y, cfg.train_size, make_generator(cfg.seed, "train_size"))
        x, y = x[sub], y[sub]
    clean_y = y.clone()
    n_noisy = 0
    if cfg.label_noise > 0:
        gen = make_generator(cfg.seed, "label_noise")
        y, flipped = add_label_noise(y, cfg.label_noise, raw.num_classes, gen)
        n_noisy = len(flipped)
    train = Split(x.clone(), y)
    test = Split(torch.from_numpy(np.array(raw.x_test)), torch.from_numpy(np.array(raw.y_test)))
    mean, std = _channel_stats(train.x) if raw.kind == "image" else ((), ())
    meta = _meta(cfg, raw, train, val, test)
    meta.update(
        label_noise=cfg.label_noise,
        n_noisy=n_noisy,
        noisy_fraction=float((y != clean_y).float().mean()) if len(y) else 0.0,
        train_size=cfg.train_size,
        val_fraction=cfg.val_fraction,
        val_size=cfg.val_size,
        split_seed=cfg.seed,
    )
    return DataBundle(
        name=cfg.name, kind=raw.kind, train=train, val=val, test=test,
        num_classes=raw.num_classes, input_shape=tuple(train.x.shape[1:]),
        mean=mean, std=std, meta=meta, clean_train_y=clean_y,
    )  # fmt: skip


def _text_bundle(cfg, raw: RawData) -> DataBundle:
    """Text keeps its positional val split; noise and subsets do not apply to it."""
    if cfg.label_noise > 0:
        raise ConfigError(f"data.label_noise: not supported for text dataset {cfg.name}")
    if cfg.train_size is not None:
        raise ConfigError(f"data.train_size: not supported for text dataset {cfg.name}")
    assert raw.x_val is not None and raw.y_val is not None
    train, val, test = (
        Split(torch.from_numpy(a), torch.from_numpy(b))
        for a, b in ((raw.x_train, raw.y_train), (raw.x_val, raw.y_val), (raw.x_test, raw.y_test))
    )
    meta = _meta(cfg, raw, train, val, test)
    meta.update(seq_len=cfg.seq_len, label_noise=0.0, n_noisy=0, noisy_fraction=0.0)
    return DataBundle(
        name=cfg.name, kind="text", train=train, val=val, test=test,
        num_classes=raw.num_classes, input_shape=(cfg.seq_len,),
        mean=(), std=(), meta=meta, clean_train_y=None,
    )  # fmt: skip


def _meta(cfg, raw: RawData, train: Split, val: Split, test: Split) -> dict:
    """JSON-serializable provenance shared by every kind."""
    return {
        "name": cfg.name,
        "kind": raw.kind,
        "source": raw.source,
        "n_train": len(train),
        "n_val": len(val),
        "n_test": len(test),
        "num_classes": raw.num_classes,
        "classes": list(raw.classes),
        **raw.extra,
    }


def _channel_stats(x: torch.Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean/std of float01 images, in float64 so 60000 images sum exactly enough."""
    flat = x.transpose(0, 1).reshape(x.shape[1], -1).double() / 255.0
    return tuple(flat.mean(1).tolist()), tuple(flat.std(1).tolist())
