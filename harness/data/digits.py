"""scikit-learn's 8x8 digits, with a fixed stratified 20% test split (it ships none)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from harness.data.base import DATASETS, RawData, dataset_info
from harness.data.splits import make_generator, stratified_split

TEST_FRACTION = 0.2
TEST_SEED = 0  # fixed, so the test set is the same whatever cfg.seed is


@DATASETS.register("digits")
@dataset_info(kind="image", files=lambda d: [])  # bundled with scikit-learn
def load_digits_data(cfg, data_dir: Path, download: bool) -> RawData:
    """uint8 images (N, 1, 8, 8) scaled from 0..16 to 0..255 so they look like other images."""
    from sklearn.datasets import load_digits

    d = load_digits()
    x = np.rint(d.images * 255.0 / 16.0).astype(np.uint8)[:, None, :, :]
    y = d.target.astype(np.int64)
    train_idx, test_idx = stratified_split(
        torch.from_numpy(y), TEST_FRACTION, make_generator(TEST_SEED, "digits-test")
    )
    tr, te = train_idx.numpy(), test_idx.numpy()
    return RawData(
        kind="image",
        x_train=x[tr],
        y_train=y[tr],
        x_test=x[te],
        y_test=y[te],
        num_classes=10,
        classes=[str(i) for i in range(10)],
        source="sklearn.datasets.load_digits",
        extra={"test_split": f"stratified {TEST_FRACTION:.0%} (seed {TEST_SEED})"},
    )
