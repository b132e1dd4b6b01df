"""KMNIST, EMNIST letters, CIFAR-100 and SVHN in torchvision's on-disk layout.

Read from the data folder; fetched with torchvision only when asked (`--download`).
"""

from __future__ import annotations

import pickle
import string
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict

from harness.data.base import DATASETS, RawData, dataset_info
from harness.data.vision import ensure_files, idx_paths, load_idx_dataset
from harness.errors import DataError

KMNIST_CLASSES = ["o", "ki", "su", "tsu", "na", "ha", "ma", "ya", "re", "wo"]
EMNIST_PREFIX = "emnist-letters-"  # torchvision unzips emnist-letters-train-images-idx3-ubyte
CIFAR100_FILES = ("train", "test", "meta")
SVHN_FILES = ("train_32x32.mat", "test_32x32.mat")


def emnist_paths(data_dir: Path) -> list[Path]:
    folder = data_dir / "EMNIST" / "raw"
    return [folder / f"{EMNIST_PREFIX}{split}-{part}-idx{n}-ubyte"
            for split in ("train", "test") for part, n in (("images", 3), ("labels", 1))]


@DATASETS.register("kmnist")
@dataset_info(kind="image", files=lambda d: idx_paths(d / "KMNIST" / "raw"), download=True)
def load_kmnist(cfg, data_dir: Path, download: bool) -> RawData:
    """Kuzushiji-MNIST: uint8 (N, 1, 28, 28), 60000 train / 10000 test, 10 classes."""
    return load_idx_dataset("kmnist", idx_paths(data_dir / "KMNIST" / "raw"), data_dir, download,
                            classes=KMNIST_CLASSES)


@DATASETS.register("emnist_letters")
@dataset_info(kind="image", files=emnist_paths, download=True)
def load_emnist_letters(cfg, data_dir: Path, download: bool) -> RawData:
    """EMNIST letters: 124800 train / 20800 test, labels 1..26 in the files mapped to 0..25
    (a..z); the files store each image transposed, so it is turned upright here."""
    return load_idx_dataset("emnist_letters", emnist_paths(data_dir), data_dir, download,
                            classes=list(string.ascii_lowercase), label_offset=1, transpose=True)


class Cifar100Options(BaseModel):
    model_config = ConfigDict(extra="forbid")
    labels: Literal["fine", "coarse"] = "fine"  # 100 classes, or the 20 superclasses


def _unpickle(path: Path) -> dict:
    with open(path, "rb") as f:
        return pickle.load(f, encoding="bytes")


@DATASETS.register("cifar100")
@dataset_info(kind="image", options=Cifar100Options, download=True,
              files=lambda d: [d / "cifar-100-python" / f for f in CIFAR100_FILES])
def load_cifar100(cfg, data_dir: Path, download: bool) -> RawData:
    """uint8 (N, 3, 32, 32), 50000 train / 10000 test; data.kwargs.labels: fine | coarse."""
    folder = data_dir / "cifar-100-python"
    ensure_files("cifar100", folder, [folder / f for f in CIFAR100_FILES], data_dir, download)
    which = Cifar100Options.model_validate(cfg.kwargs).labels
    train, test, meta = (_unpickle(folder / f) for f in CIFAR100_FILES)
    key = f"{which}_labels".encode()
    names = [n.decode() for n in meta[f"{which}_label_names".encode()]]
    return RawData(
        kind="image",
        x_train=np.asarray(train[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32),
        y_train=np.asarray(train[key], dtype=np.int64),
        x_test=np.asarray(test[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32),
        y_test=np.asarray(test[key], dtype=np.int64),
        num_classes=len(names),
        classes=names,
        source=str(folder),
        extra={"labels": which},
    )


def _read_svhn(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """MATLAB file: X (32, 32, 3, N) uint8, y (N, 1) with digit 0 stored as 10."""
    from scipy.io import loadmat

    try:
        mat = loadmat(path)
    except Exception as e:  # scipy raises several types for a corrupt file
        raise DataError(f"{path}: not a readable SVHN .mat file ({e})") from None
    y = mat["y"].astype(np.int64).reshape(-1)
    y[y == 10] = 0
    return np.ascontiguousarray(np.transpose(mat["X"], (3, 2, 0, 1))), y


@DATASETS.register("svhn")
@dataset_info(kind="image", download=True, files=lambda d: [d / "svhn" / f for f in SVHN_FILES])
def load_svhn(cfg, data_dir: Path, download: bool) -> RawData:
    """Street View House Numbers (cropped digits): uint8 (N, 3, 32, 32), 73257 / 26032."""
    folder = data_dir / "svhn"
    ensure_files("svhn", folder, [folder / f for f in SVHN_FILES], folder, download)
    (x_tr, y_tr), (x_te, y_te) = (_read_svhn(folder / f) for f in SVHN_FILES)
    return RawData(kind="image", x_train=x_tr, y_train=y_tr, x_test=x_te, y_test=y_te,
                   num_classes=10, classes=[str(i) for i in range(10)], source=str(folder))
