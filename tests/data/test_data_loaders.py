"""The standard-dataset loaders and the image-folder loader, each reading small files the test
writes in the dataset's real on-disk format (no network), checked against torchvision's own
readers or against the values written."""

from __future__ import annotations

import gzip
import pickle
import string
from pathlib import Path

import numpy as np
import pytest
import torch

from harness.config import DataConfig, build_run_config
from harness.data import load_data
from harness.data.base import dataset_kind
from harness.errors import ConfigError, DataError

RNG = np.random.default_rng(0)


def load(name: str, data_dir: Path, **kw):
    return load_data(DataConfig(name=name, val_fraction=0.0, **kw), data_dir)


def write_idx(path: Path, arr: np.ndarray, gz: bool = False) -> None:
    """IDX: magic 0x0803 (images) / 0x0801 (labels), big-endian int32 dims, then uint8 data."""
    magic = 2048 + arr.ndim
    blob = magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in arr.shape)
    blob += arr.astype(np.uint8).tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    if gz:
        with gzip.open(path.with_name(path.name + ".gz"), "wb") as f:
            f.write(blob)
    else:
        path.write_bytes(blob)


def write_idx_set(folder: Path, names: list[str], n: tuple[int, int], labels: range,
                  gz: bool = False) -> None:
    for (split_n, img, lab) in ((n[0], names[0], names[1]), (n[1], names[2], names[3])):
        write_idx(folder / img, RNG.integers(0, 256, (split_n, 28, 28)), gz)
        write_idx(folder / lab, np.arange(split_n) % len(labels) + labels.start, gz)


MNIST_NAMES = ["train-images-idx3-ubyte", "train-labels-idx1-ubyte",
               "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"]


@pytest.mark.slow
def test_kmnist_matches_torchvision_reader(tmp_path):
    from torchvision.datasets import KMNIST

    write_idx_set(tmp_path / "KMNIST" / "raw", MNIST_NAMES, (30, 10), range(0, 10))
    b = load("kmnist", tmp_path)
    ref_train, ref_test = KMNIST(str(tmp_path), train=True), KMNIST(str(tmp_path), train=False)
    assert torch.equal(b.train.x[:, 0], ref_train.data)
    assert torch.equal(b.train.y, ref_train.targets)
    assert torch.equal(b.test.x[:, 0], ref_test.data) and torch.equal(b.test.y, ref_test.targets)
    assert b.num_classes == 10 and b.meta["classes"] == ref_train.classes
    assert dataset_kind("kmnist") == "image"


def test_kmnist_reads_gzipped_files(tmp_path):
    write_idx_set(tmp_path / "KMNIST" / "raw", MNIST_NAMES, (20, 10), range(0, 10), gz=True)
    assert (len(load("kmnist", tmp_path).train), len(load("kmnist", tmp_path).test)) == (20, 10)


def test_emnist_letters_labels_and_orientation(tmp_path):
    from torchvision.datasets import EMNIST

    names = [f"emnist-letters-{s}-{p}-idx{k}-ubyte" for s in ("train", "test")
             for p, k in (("images", 3), ("labels", 1))]
    write_idx_set(tmp_path / "EMNIST" / "raw", names, (52, 26), range(1, 27))
    b = load("emnist_letters", tmp_path)
    ref = EMNIST(str(tmp_path), split="letters", train=True)
    assert torch.equal(b.train.y, ref.targets - 1)  # files hold 1..26 ('N/A' is class 0)
    assert torch.equal(b.train.x[:, 0], ref.data.transpose(1, 2))  # stored transposed
    assert b.num_classes == 26 and b.meta["classes"] == list(string.ascii_lowercase)
    assert sorted(set(b.test.y.tolist())) == list(range(26))


def write_cifar100(root: Path, n_train: int = 40, n_test: int = 20) -> tuple[dict, dict]:
    folder = root / "cifar-100-python"
    folder.mkdir(parents=True)
    out = []
    for name, n in (("train", n_train), ("test", n_test)):
        d = {b"data": RNG.integers(0, 256, (n, 3072), dtype=np.uint8),
             b"fine_labels": list(np.arange(n) % 100), b"coarse_labels": list(np.arange(n) % 20)}
        with open(folder / name, "wb") as f:
            pickle.dump(d, f)
        out.append(d)
    meta = {b"fine_label_names": [f"f{i}".encode() for i in range(100)],
            b"coarse_label_names": [f"c{i}".encode() for i in range(20)]}
    with open(folder / "meta", "wb") as f:
        pickle.dump(meta, f)
    return out[0], out[1]


def test_cifar100_fine_and_coarse(tmp_path):
    train, test = write_cifar100(tmp_path)
    b = load("cifar100", tmp_path)
    # row-major 3072 = 3 x 32 x 32 (channel planes), as the CIFAR page documents
    assert torch.equal(b.train.x, torch.from_numpy(train[b"data"].reshape(-1, 3, 32, 32)))
    assert b.train.y.tolist() == train[b"fine_labels"] and b.num_classes == 100
    assert b.test.y.tolist() == test[b"fine_labels"] and b.meta["classes"][7] == "f7"
    c = load("cifar100", tmp_path, kwargs={"labels": "coarse"})
    assert c.num_classes == 20 and c.train.y.tolist() == train[b"coarse_labels"]
    with pytest.raises(ConfigError, match=r"data.kwargs.labels"):
        DataConfig(name="cifar100", kwargs={"labels": "medium"})
    with pytest.raises(ConfigError, match=r"data.kwargs.labls: unknown key"):
        DataConfig(name="cifar100", kwargs={"labls": "fine"})


def test_svhn_mat_files(tmp_path):
    from scipy.io import savemat

    folder = tmp_path / "svhn"
    folder.mkdir()
    written = {}
    for name, n in (("train_32x32.mat", 30), ("test_32x32.mat", 12)):
        x = RNG.integers(0, 256, (32, 32, 3, n), dtype=np.uint8)  # H, W, C, N as SVHN ships it
        y = (np.arange(n) % 10 + 1).reshape(n, 1)  # digit 0 is stored as 10
        savemat(folder / name, {"X": x, "y": y})
        written[name] = (x, y)
    b = load("svhn", tmp_path)
    x, y = written["train_32x32.mat"]
    assert b.train.x.shape == (30, 3, 32, 32)
    for i in (0, 7, 29):  # sample i, channel c, row h, column w == X[h, w, c, i]
        assert torch.equal(b.train.x[i], torch.from_numpy(x[:, :, :, i].transpose(2, 0, 1)))
    assert b.train.y.tolist() == [v % 10 for v in y[:, 0].tolist()]
    assert len(b.test) == 12 and b.num_classes == 10


@pytest.mark.parametrize("name,where", [("kmnist", "KMNIST/raw"), ("emnist_letters", "EMNIST/raw"),
                                        ("cifar100", "cifar-100-python"), ("svhn", "svhn")])
def test_missing_files_one_line_without_download(name, where, tmp_path):
    with pytest.raises(DataError) as e:
        load(name, tmp_path)
    assert str(tmp_path / where) in str(e.value) and "--download" in str(e.value)
    assert "\n" not in str(e.value) and not any(tmp_path.iterdir())  # nothing fetched


def write_png(path: Path, rgb: np.ndarray) -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rgb).save(path)


def test_image_folder_with_train_and_test(tmp_path):
    pixels = {}
    for split, n in (("train", 3), ("test", 2)):
        for c, cls in enumerate(("cat", "dog")):
            for i in range(n):
                img = np.full((6, 5, 3), 40 * c + i, dtype=np.uint8)
                img[0, 0] = (c, i, 255)  # a marker pixel
                write_png(tmp_path / "pets" / split / cls / f"{i}.png", img)
                pixels[(split, cls, i)] = img
    b = load("image_folder", tmp_path, kwargs={"folder": "pets"})
    assert b.meta["classes"] == ["cat", "dog"] and b.num_classes == 2
    assert b.input_shape == (3, 6, 5) and (len(b.train), len(b.test)) == (6, 4)
    assert b.train.y.tolist() == [0, 0, 0, 1, 1, 1]
    want = torch.from_numpy(pixels[("train", "dog", 2)].transpose(2, 0, 1))
    assert torch.equal(b.train.x[5], want)  # PNG is lossless: the exact pixels come back


def test_image_folder_carves_test_and_resizes(tmp_path):
    for c, cls in enumerate(("a", "b", "c")):
        for i in range(10):
            size = (8, 8) if i % 2 else (12, 9)
            write_png(tmp_path / "mine" / cls / f"{i}.png",
                      np.full((*size, 3), 20 * c, dtype=np.uint8))
    with pytest.raises(DataError, match="image_size"):  # mixed sizes need a resize
        load("image_folder", tmp_path, kwargs={"folder": str(tmp_path / "mine")})
    b = load("image_folder", tmp_path, kwargs={"folder": "mine", "image_size": 4,
                                               "grayscale": True, "test_fraction": 0.3})
    assert b.input_shape == (1, 4, 4) and (len(b.train), len(b.test)) == (21, 9)
    assert np.bincount(b.test.y.numpy()).tolist() == [3, 3, 3]  # stratified
    assert set(b.test.x[b.test.y == 2].flatten().tolist()) == {40}  # constant images stay so


def test_image_folder_options_checked_before_loading():
    with pytest.raises(ConfigError, match=r"data.kwargs.folder: Field required"):
        build_run_config({"data": {"name": "image_folder"}, "model": {"name": "mlp"}})
    with pytest.raises(ConfigError, match="takes no options"):
        build_run_config({"data": {"name": "mnist1d", "kwargs": {"folder": "x"}}})


def test_download_only_when_asked(tmp_path, monkeypatch):
    """--download hands the missing dataset to torchvision (here a stand-in writing the files
    torchvision would), then reads it; without it nothing is fetched."""
    import harness.data.vision as vision

    calls = []

    def fake_download(name, root):
        calls.append((name, root))
        write_idx_set(root / "KMNIST" / "raw", MNIST_NAMES, (20, 10), range(0, 10))

    monkeypatch.setattr(vision, "torchvision_download", fake_download)
    with pytest.raises(DataError):
        load("kmnist", tmp_path)
    assert calls == []
    assert len(load("kmnist", tmp_path, download=True).train) == 20
    assert calls == [("kmnist", tmp_path)]


def test_catalog_reports_which_files_are_present(tmp_path):
    from harness.data.catalog import dataset_rows

    write_idx_set(tmp_path / "KMNIST" / "raw", MNIST_NAMES, (20, 10), range(0, 10))
    rows = {r["name"]: r for r in dataset_rows(tmp_path)}
    assert rows["kmnist"]["files"] == "present" and rows["kmnist"]["missing"] == []
    assert rows["svhn"]["files"] == "missing"
    assert rows["svhn"]["missing"] == [str(tmp_path / "svhn" / f)
                                       for f in ("train_32x32.mat", "test_32x32.mat")]
    assert rows["mnist1d"]["files"] == "none needed"
    assert rows["image_folder"]["files"] == "per config"
    assert {r["source"] for n, r in rows.items() if n in ("kmnist", "cifar100")} == {"built-in"}
    assert rows["emnist_letters"]["kind"] == "image" and rows["tiny_shakespeare"]["kind"] == "text"
