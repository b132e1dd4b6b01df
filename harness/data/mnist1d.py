"""MNIST-1D: generated in-process with the mnist1d package (never its download path)."""

from __future__ import annotations

import functools
import hashlib
import json
import os
import random
import tempfile
from pathlib import Path

import numpy as np

from harness.data.base import DATASETS, RawData, dataset_info

CACHE_ENV = "HARNESS_CACHE_DIR"
CACHE_VERSION = 1  # bump when the generation below changes


def cache_dir() -> Path:
    """$HARNESS_CACHE_DIR, else the per-user cache (XDG_CACHE_HOME aware)."""
    explicit = os.environ.get(CACHE_ENV)
    if explicit:
        return Path(explicit).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base).expanduser() / "harness" / "generated"


def cache_path(num_samples: int, test_fraction: float, seed: int) -> Path:
    from importlib.metadata import PackageNotFoundError, version

    try:
        pkg = version("mnist1d")
    except PackageNotFoundError:
        pkg = "unknown"
    key = json.dumps([CACHE_VERSION, pkg, num_samples, repr(test_fraction), seed])
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    return cache_dir() / f"mnist1d-{digest}.npz"


@functools.lru_cache(maxsize=4)
def _generate(num_samples: int, test_fraction: float, seed: int) -> tuple[np.ndarray, ...]:
    """Generate once per machine (~1.5 s) and keep the arrays on disk, keyed by the
    arguments and the mnist1d version, so each later process loads them in milliseconds.
    A cache that cannot be read or written is skipped (generation is deterministic)."""
    path = cache_path(num_samples, test_fraction, seed)
    arrays = _read_cache(path)
    if arrays is None:
        arrays = _make(num_samples, test_fraction, seed)
        _write_cache(path, arrays)
    for a in arrays:
        a.setflags(write=False)  # shared by the cache: nobody may edit it in place
    return arrays


def _read_cache(path: Path) -> tuple[np.ndarray, ...] | None:
    try:
        with np.load(path, allow_pickle=False) as f:
            return tuple(f[k] for k in ("x", "y", "x_test", "y_test"))
    except (OSError, ValueError, KeyError):
        return None


def _write_cache(path: Path, arrays: tuple[np.ndarray, ...]) -> None:
    tmp: str | None = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        with os.fdopen(fd, "wb") as f:
            arrays_by_name = dict(zip(("x", "y", "x_test", "y_test"), arrays, strict=True))
            np.savez(f, **arrays_by_name)  # type: ignore[arg-type]  # stub: **kwds as allow_pickle
        os.replace(tmp, path)
    except OSError:  # read-only or full: generate again next time
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)


def _make(num_samples: int, test_fraction: float, seed: int) -> tuple[np.ndarray, ...]:
    """make_dataset seeds numpy's and Python's global RNGs, so their state is saved and
    restored."""
    from mnist1d.data import get_dataset_args, make_dataset

    args = get_dataset_args()
    args.num_samples = num_samples
    args.train_split = 1.0 - test_fraction
    args.seed = seed
    np_state, py_state = np.random.get_state(), random.getstate()
    try:
        d = make_dataset(args)
    finally:
        np.random.set_state(np_state)
        random.setstate(py_state)
    return (d["x"], d["y"], d["x_test"], d["y_test"])


@DATASETS.register("mnist1d")
@dataset_info(kind="signal", files=lambda d: [])  # generated locally
def load_mnist1d(cfg, data_dir: Path, download: bool) -> RawData:
    """Signals float32 (N, 1, 40); the standard setting is 4000 train / 1000 test."""
    x, y, x_test, y_test = _generate(cfg.num_samples, cfg.test_fraction, cfg.generator_seed)
    return RawData(
        kind="signal",
        x_train=x.astype(np.float32)[:, None, :],
        y_train=y.astype(np.int64),
        x_test=x_test.astype(np.float32)[:, None, :],
        y_test=y_test.astype(np.int64),
        num_classes=10,
        classes=[str(i) for i in range(10)],
        source="mnist1d.data.make_dataset (generated)",
        extra={"generator_seed": cfg.generator_seed, "num_samples": cfg.num_samples},
    )
