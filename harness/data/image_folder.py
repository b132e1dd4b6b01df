"""The user's own images: a folder with one sub-folder per class (torchvision ImageFolder's layout).

    <folder>/train/<class>/*.png and <folder>/test/<class>/*.png   (official test split), or
    <folder>/<class>/*.png                                         (test carved, stratified)

`folder` is data.kwargs.folder, absolute or relative to the data folder. Images are
read with Pillow as RGB (or grayscale) uint8; all must share one size unless
data.kwargs.image_size resizes them to a square.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field

from harness.data.base import DATASETS, RawData, dataset_info
from harness.data.splits import make_generator, stratified_split
from harness.errors import DataError

SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"}
TEST_SEED = 0  # fixed, so a carved test set does not move with data.seed


class ImageFolderOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    folder: str  # absolute, or relative to the data folder
    image_size: int | None = Field(None, ge=1)  # resize every image to size x size
    grayscale: bool = False  # one channel instead of RGB
    test_fraction: float = Field(0.2, gt=0.0, lt=1.0)  # when there is no test/ sub-folder


def class_folders(root: Path) -> list[Path]:
    folders = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not folders:
        raise DataError(f"image_folder: {root} has no class sub-folders (expected <class>/*.png)")
    return folders


def read_images(root: Path, classes: list[str], opts: ImageFolderOptions
                ) -> tuple[np.ndarray, np.ndarray]:
    """uint8 (N, C, H, W) and int64 labels in the order of `classes`."""
    from PIL import Image

    images, labels, first = [], [], None
    for label, name in enumerate(classes):
        files = sorted(p for p in (root / name).glob("*") if p.suffix.lower() in SUFFIXES)
        if not files:
            raise DataError(f"image_folder: {root / name} holds no images "
                            f"({', '.join(sorted(SUFFIXES))})")
        for path in files:
            try:
                with Image.open(path) as opened:
                    im = opened.convert("L" if opts.grayscale else "RGB")
                    if opts.image_size:
                        size = (opts.image_size, opts.image_size)
                        im = im.resize(size, Image.Resampling.BILINEAR)
                    arr = np.asarray(im, dtype=np.uint8)
            except OSError as e:
                raise DataError(f"{path}: not a readable image ({e})") from None
            first = first or (path, arr.shape)
            if arr.shape != first[1]:
                raise DataError(f"{path}: size {arr.shape[1]}x{arr.shape[0]} differs from "
                                f"{first[0]} ({first[1][1]}x{first[1][0]}); set "
                                "data.kwargs.image_size to resize all images")
            images.append(arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1))
            labels.append(label)
    return np.stack(images), np.asarray(labels, dtype=np.int64)


def image_root(cfg: Any, data_dir: Path) -> Path:
    """data.kwargs.folder, checked to be a folder with class sub-folders (names only: the
    check that runs before anything is written)."""
    opts = ImageFolderOptions.model_validate(cfg.kwargs)
    root = Path(opts.folder).expanduser()
    root = root if root.is_absolute() else data_dir / root
    if not root.is_dir():
        raise DataError(f"image_folder: data.kwargs.folder {root} is not a folder")
    class_folders(root / "train" if (root / "train").is_dir() else root)
    return root


@DATASETS.register("image_folder")
@dataset_info(kind="image", options=ImageFolderOptions, present=image_root)
def load_image_folder(cfg, data_dir: Path, download: bool) -> RawData:
    """Your images, one sub-folder per class (data.kwargs.folder, image_size, grayscale)."""
    opts = ImageFolderOptions.model_validate(cfg.kwargs)
    root = image_root(cfg, data_dir)
    split = (root / "train").is_dir()
    train_root = root / "train" if split else root
    classes = [p.name for p in class_folders(train_root)]
    x, y = read_images(train_root, classes, opts)
    if split:
        test_classes = [p.name for p in class_folders(root / "test")] if (root / "test").is_dir() \
            else []
        if test_classes != classes:
            raise DataError(f"image_folder: {root / 'test'} must hold the same class folders as "
                            f"{train_root} ({', '.join(classes)})")
        x_te, y_te = read_images(root / "test", classes, opts)
        note = "train/ and test/ folders"
    else:
        keep, held = stratified_split(torch.from_numpy(y), opts.test_fraction,
                                      make_generator(TEST_SEED, "image_folder-test"))
        x, y, x_te, y_te = x[keep.numpy()], y[keep.numpy()], x[held.numpy()], y[held.numpy()]
        note = f"stratified {opts.test_fraction:.0%} test (seed {TEST_SEED})"
    return RawData(kind="image", x_train=x, y_train=y, x_test=x_te, y_test=y_te,
                   num_classes=len(classes), classes=classes, source=str(root),
                   extra={"test_split": note})
