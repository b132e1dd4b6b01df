"""MNIST, Fashion-MNIST (raw IDX files) and CIFAR-10 (python pickles) from a data folder.

The folder layout is torchvision's, so `--download` (torchvision) and reading agree.
"""

from __future__ import annotations

import gzip
import pickle
from pathlib import Path
from typing import Any

import numpy as np

from harness.data.base import DATASETS, RawData, dataset_info
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


# name -> (torchvision class, the keyword arguments of its train and test splits)
TORCHVISION: dict[str, tuple[str, tuple[dict[str, Any], ...]]] = {
    "mnist": ("MNIST", ({"train": True}, {"train": False})),
    "fashion_mnist": ("FashionMNIST", ({"train": True}, {"train": False})),
    "kmnist": ("KMNIST", ({"train": True}, {"train": False})),
    "emnist_letters": ("EMNIST", ({"split": "letters", "train": True},
                                  {"split": "letters", "train": False})),
    "cifar10": ("CIFAR10", ({"train": True}, {"train": False})),
    "cifar100": ("CIFAR100", ({"train": True}, {"train": False})),
    "svhn": ("SVHN", ({"split": "train"}, {"split": "test"})),
}


def torchvision_download(name: str, root: Path) -> None:
    """Fetch with torchvision into its own layout (only when the user passed --download)."""
    from torchvision import datasets

    cls_name, splits = TORCHVISION[name]
    try:
        for kwargs in splits:
            getattr(datasets, cls_name)(root=str(root), download=True, **kwargs)
    except Exception as e:  # network errors come in many types; report them as one line
        raise DataError(f"{name}: download into {root} failed: {e}") from e


def ensure_files(name: str, folder: Path, paths: list[Path], root: Path, download: bool) -> None:
    """Every path present, else download (when asked) or one line saying where we looked."""
    if all(p.is_file() or p.with_name(p.name + ".gz").is_file() for p in paths):
        return
    if not download:
        raise missing_files_error(name, folder)
    torchvision_download(name, root)
    if not all(p.is_file() or p.with_name(p.name + ".gz").is_file() for p in paths):
        raise missing_files_error(name, folder)


def idx_paths(folder: Path) -> list[Path]:
    """train images, train labels, test images, test labels (torchvision's raw/ names)."""
    return [folder / stem for stem in IDX_FILES.values()]


def load_idx_dataset(name: str, paths: list[Path], root: Path, download: bool, *,
                     classes: list[str], label_offset: int = 0,
                     transpose: bool = False) -> RawData:
    """An MNIST-format dataset from [train images, train labels, test images, test labels];
    `label_offset` maps labels to 0..K-1, `transpose` turns images stored transposed
    (EMNIST) upright."""
    folder = paths[0].parent
    ensure_files(name, folder, paths, root, download)
    # ensure_files raised if any is missing: _find returns a Path for each
    x_tr, y_tr, x_te, y_te = (read_idx(_find(p.parent, p.name)) for p in paths)  # type: ignore[arg-type]
    if transpose:
        x_tr, x_te = x_tr.transpose(0, 2, 1), x_te.transpose(0, 2, 1)
    return RawData(
        kind="image",
        x_train=np.ascontiguousarray(x_tr[:, None, :, :]),
        y_train=y_tr.astype(np.int64) - label_offset,
        x_test=np.ascontiguousarray(x_te[:, None, :, :]),
        y_test=y_te.astype(np.int64) - label_offset,
        num_classes=len(classes),
        classes=classes,
        source=str(folder),
    )


def _load_idx_dataset(name: str, folder_name: str, data_dir: Path, download: bool) -> RawData:
    classes = FASHION_CLASSES if name == "fashion_mnist" else [str(i) for i in range(10)]
    return load_idx_dataset(name, idx_paths(data_dir / folder_name / "raw"), data_dir, download,
                            classes=classes)


@DATASETS.register("mnist")
@dataset_info(kind="image", files=lambda d: idx_paths(d / "MNIST" / "raw"), download=True)
def load_mnist(cfg, data_dir: Path, download: bool) -> RawData:
    """uint8 (N, 1, 28, 28), 60000 train / 10000 test."""
    return _load_idx_dataset("mnist", "MNIST", data_dir, download)


@DATASETS.register("fashion_mnist")
@dataset_info(kind="image", files=lambda d: idx_paths(d / "FashionMNIST" / "raw"), download=True)
def load_fashion_mnist(cfg, data_dir: Path, download: bool) -> RawData:
    """uint8 (N, 1, 28, 28), 60000 train / 10000 test."""
    return _load_idx_dataset("fashion_mnist", "FashionMNIST", data_dir, download)


def _read_cifar_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    with open(path, "rb") as f:
        d = pickle.load(f, encoding="bytes")
    x = np.asarray(d[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32)
    return x, np.asarray(d[b"labels"], dtype=np.int64)


@DATASETS.register("cifar10")
@dataset_info(kind="image", download=True,
              files=lambda d: [d / "cifar-10-batches-py" / f for f in CIFAR_FILES])
def load_cifar10(cfg, data_dir: Path, download: bool) -> RawData:
    """uint8 (N, 3, 32, 32) from the python-format batches, 50000 train / 10000 test."""
    folder = data_dir / "cifar-10-batches-py"
    ensure_files("cifar10", folder, [folder / f for f in CIFAR_FILES], data_dir, download)
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
