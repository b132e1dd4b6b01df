"""MNIST-1D: generated in-process with the mnist1d package (never its download path)."""

from __future__ import annotations

import functools
import random
from pathlib import Path

import numpy as np

from harness.data.base import DATASETS, RawData, dataset_info


@functools.lru_cache(maxsize=4)
def _generate(num_samples: int, test_fraction: float, seed: int) -> tuple[np.ndarray, ...]:
    """Generate once per process (~1.5 s); nothing is cached on disk.

    make_dataset seeds numpy's and Python's global RNGs, so their state is saved and restored.
    """
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
    arrays = (d["x"], d["y"], d["x_test"], d["y_test"])
    for a in arrays:
        a.setflags(write=False)  # shared by the cache: nobody may edit it in place
    return arrays


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
