"""MNIST, Fashion-MNIST (raw IDX files) and CIFAR-10 (python pickles) from a data folder."""

from __future__ import annotations

import gzip
import pickle
from pathlib import Path

import numpy as np

from harness.data.base import DATASETS, RawData
from harness.errors import DataError

FASHION_CLASSES = [
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
]  # fmt: skip
CIFAR_CLASSES = [
    "airplane", "automobile", "bird", "cat", "deer",
    "dog", "frog", "horse", "ship", "truck",
]  # fmt: skip
IDX_FILES = {
    "train_x": "train-images-idx3-ubyte",
    "train_y": "train-labels-idx1-ubyte",
    "test_x": "t10k-images-idx3-ubyte",
    "test_y": "t10k-labels-idx1-ubyte",
}
CIFAR_FILES = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]


def missing_files_error(name: str, folder: Path) -> DataError:
    """One line: where we looked and the two ways to fix it."""
    return DataError(
        f"{name}: files not found in {folder}; pass --data-dir DIR (or set HARNESS_DATA_DIR) "
        "to a folder that has them, or --download to fetch them"
    )


def _find(folder: Path, stem: str) -> Path | None:
    for candidate in (folder / stem, folder / f"{stem}.gz"):
        if candidate.is_file():
            return candidate
    return None


def read_idx(path: Path) -> np.ndarray:
    """Parse an IDX file (magic 2049 labels / 2051 images, big-endian int32 dims)."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        raw = bytearray(f.read())  # writable, so torch.from_numpy shares it
    magic = int.from_bytes(raw[0:4], "big")
    if magic not in (2049, 2051):
        raise DataError(f"{path}: not an IDX file (magic {magic}, expected 2049 or 2051)")
    ndim = magic - 2048
    dims = [int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if data.size != int(np.prod(dims)):
        raise DataError(f"{path}: truncated IDX file ({data.size} bytes for dims {dims})")
    return data.reshape(dims)


def _torchvision_download(name: str, data_dir: Path) -> None:
    """Fetch with torchvision (only when the user passed --download)."""
    from torchvision import datasets

    cls = {"mnist": datasets.MNIST, "fashion_mnist": datasets.FashionMNIST,
           "cifar10": datasets.CIFAR10}[name]  # fmt: skip
    try:
        for train in (True, False):
            cls(root=str(data_dir), train=train, download=True)
    except Exception as e:  # network errors come in many types; report them as one line
        raise DataError(f"{name}: download into {data_dir} failed: {e}") from e


def _load_idx_dataset(name: str, folder_name: str, data_dir: Path, download: bool) -> RawData:
    folder = data_dir / folder_name / "raw"
    paths = {k: _find(folder, stem) for k, stem in IDX_FILES.items()}
    if any(p is None for p in paths.values()):
        if not download:
            raise missing_files_error(name, folder)
        _torchvision_download(name, data_dir)
        paths = {k: _find(folder, stem) for k, stem in IDX_FILES.items()}
        if any(p is None for p in paths.values()):
            raise missing_files_error(name, folder)
    arr = {k: read_idx(p) for k, p in paths.items()}
    return RawData(
        kind="image",
        x_train=arr["train_x"][:, None, :, :],
        y_train=arr["train_y"].astype(np.int64),
        x_test=arr["test_x"][:, None, :, :],
        y_test=arr["test_y"].astype(np.int64),
        num_classes=10,
        classes=FASHION_CLASSES if name == "fashion_mnist" else [str(i) for i in range(10)],
        source=str(folder),
    )


@DATASETS.register("mnist")
def load_mnist(cfg, data_dir: Path, download: bool) -> RawData:
    """uint8 (N, 1, 28, 28), 60000 train / 10000 test."""
    return _load_idx_dataset("mnist", "MNIST", data_dir, download)


@DATASETS.register("fashion_mnist")
def load_fashion_mnist(cfg, data_dir: Path, download: bool) -> RawData:
    """uint8 (N, 1, 28, 28), 60000 train / 10000 test."""
    return _load_idx_dataset("fashion_mnist", "FashionMNIST", data_dir, download)


def _read_cifar_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    with open(path, "rb") as f:
        d = pickle.load(f, encoding="bytes")
    x = np.asarray(d[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32)
    return x, np.asarray(d[b"labels"], dtype=np.int64)


@DATASETS.register("cifar10")
def load_cifar10(cfg, data_dir: Path, download: bool) -> RawData:
    """uint8 (N, 3, 32, 32) from the python-format batches, 50000 train / 10000 test."""
    folder = data_dir / "cifar-10-batches-py"
    if not all((folder / f).is_file() for f in CIFAR_FILES):
        if not download:
            raise missing_files_error("cifar10", folder)
        _torchvision_download("cifar10", data_dir)
    batches = [_read_cifar_batch(folder / f) for f in CIFAR_FILES]
    train = batches[:-1]
    return RawData(
        kind="image",
        x_train=np.concatenate([b[0] for b in train]),
        y_train=np.concatenate([b[1] for b in train]),
        x_test=batches[-1][0],
        y_test=batches[-1][1],
        num_classes=10,
        classes=CIFAR_CLASSES,
        source=str(folder),
    )
