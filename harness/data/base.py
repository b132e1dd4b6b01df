"""Data containers (Split, DataBundle, RawData) and the dataset registry."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from harness.registry import Registry

if TYPE_CHECKING:  # pydantic is imported when options are checked, not with the registry
    from pydantic import BaseModel

# name -> loader(cfg: DataConfig, data_dir: Path, download: bool) -> RawData
DATASETS: Registry = Registry("dataset")


@dataclass(frozen=True)
class DatasetInfo:
    """What is known about a dataset without loading it (all optional for a plug-in)."""

    kind: str | None = None  # image | signal | text; None: known only after loading
    files: Callable[[Path], list[Path]] | None = None  # what it reads under the data dir
    options: type[BaseModel] | None = None  # model of data.kwargs; None: takes none
    download: bool = False  # whether --download can fetch it
    # a check that the data is there for one config (names only, no reading), where `files`
    # cannot say: raises DataError; run with `files` before anything is written
    present: Callable[[Any, Path], Any] | None = None


def dataset_info(**facts: Any) -> Callable[[Callable], Callable]:
    """Decorator (under `@DATASETS.register(name)`) attaching a DatasetInfo to a loader."""

    def attach(loader: Callable) -> Callable:
        loader.info = DatasetInfo(**facts)  # type: ignore[attr-defined]  # a function attribute
        return loader

    return attach


def info_of(name: str) -> DatasetInfo:
    return getattr(DATASETS.get(name), "info", None) or DatasetInfo()


def check_dataset_options(name: str, kwargs: dict[str, Any]) -> None:
    """data.kwargs against the loader's declared options; one line naming the bad key."""
    if name not in DATASETS:
        return  # the name check reports it
    from harness.config_errors import check_dataset_kwargs

    check_dataset_kwargs(name, info_of(name).options, kwargs)


@dataclass
class Split:
    """One split as plain tensors: the whole dataset fits in memory, so no Dataset/DataLoader."""

    x: torch.Tensor  # images uint8 (N, C, H, W); signals float32 (N, C, L); text int64 (N, T)
    y: torch.Tensor  # int64 (N,) class labels; text int64 (N, T) next-token targets

    def __len__(self) -> int:
        return len(self.y)

    def to(self, device: torch.device | str) -> Split:
        return Split(self.x.to(device), self.y.to(device))


@dataclass
class DataBundle:
    """Everything a run needs about its data: splits, shapes, normalization and provenance."""

    name: str
    kind: str  # "image" | "signal" | "text"
    train: Split
    val: Split
    test: Split
    num_classes: int  # vocab size for text
    input_shape: tuple[int, ...]
    mean: tuple[float, ...]  # per-channel mean of float01 train images; () for non-images
    std: tuple[float, ...]
    meta: dict[str, Any] = field(default_factory=dict)  # JSON-serializable provenance
    clean_train_y: torch.Tensor | None = None  # train labels before label noise

    def to(self, device: torch.device | str) -> DataBundle:
        """Move every tensor (e.g. once to the GPU, so batches are just index slices)."""
        clean = None if self.clean_train_y is None else self.clean_train_y.to(device)
        return replace(
            self,
            train=self.train.to(device),
            val=self.val.to(device),
            test=self.test.to(device),
            clean_train_y=clean,
        )

    def to_float(self, x: torch.Tensor) -> torch.Tensor:
        """uint8 images -> float32 in [0, 1]; stored as uint8 to keep memory 4x smaller."""
        if self.kind == "image" and x.dtype == torch.uint8:
            return x.float().div_(255.0)
        return x

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        """Standardize float01 images per channel with the train statistics."""
        if self.kind != "image" or not self.mean:
            return x
        shape = (-1,) + (1,) * (x.dim() - 2)
        mean = torch.tensor(self.mean, dtype=x.dtype, device=x.device).view(shape)
        std = torch.tensor(self.std, dtype=x.dtype, device=x.device).view(shape)
        return (x - mean) / std

    def prepare(self, x: torch.Tensor) -> torch.Tensor:
        """What evaluation feeds the model: normalize(to_float(x))."""
        return self.normalize(self.to_float(x))


@dataclass
class RawData:
    """What a loader returns: official splits as numpy arrays, before val carving and noise.

    Text loaders also fill x_val/y_val (positional split), which turns carving off.
    """

    kind: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    num_classes: int
    classes: list[str]
    source: str
    x_val: np.ndarray | None = None
    y_val: np.ndarray | None = None
    extra: dict[str, Any] = field(default_factory=dict)


KIND_HOLDS = {"image": "images", "signal": "1-D signals", "text": "text (token ids)"}


def dataset_kind(name: str) -> str | None:
    """The kind of data a dataset holds, known without loading it (configs are checked
    model vs data and augmentation vs data before anything runs); None if undeclared."""
    return info_of(name).kind if name in DATASETS else None
