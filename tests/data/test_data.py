"""Tests for harness.data: loaders, seeded stratified splits, label noise, errors, corruption."""

from __future__ import annotations

import json
import pickle
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch

from harness.config import DataConfig
from harness.data import DATASETS, load_data, resolve_data_dir
from harness.data.corruption import shift_corrupt
from harness.data.splits import add_label_noise, make_generator, stratified_split
from harness.errors import ConfigError, DataError


def load(name: str = "mnist1d", data_dir: Path | str | None = None, **kw):
    return load_data(DataConfig(name=name, **kw), data_dir)


def rows(x: torch.Tensor) -> set[bytes]:
    return {r.numpy().tobytes() for r in x.reshape(len(x), -1)}


def counts(y: torch.Tensor, num_classes: int) -> np.ndarray:
    return np.bincount(y.numpy(), minlength=num_classes)


@pytest.fixture(scope="module")
def mnist1d_bundle():
    return load("mnist1d")


# ---------- loaders: shapes and dtypes


def test_mnist1d_standard_sizes(mnist1d_bundle):
    b = mnist1d_bundle
    assert (len(b.train), len(b.val), len(b.test)) == (3600, 400, 1000)
    assert b.kind == "signal" and b.input_shape == (1, 40) and b.num_classes == 10
    assert b.train.x.dtype == torch.float32 and b.train.x.shape == (3600, 1, 40)
    assert b.train.y.dtype == torch.int64 and b.mean == () and b.std == ()
    assert b.meta["n_train"] == 3600 and b.meta["n_val"] == 400 and b.meta["n_test"] == 1000
    json.dumps(b.meta)  # JSON-serializable


def test_mnist1d_no_val_gives_4000_1000_and_keeps_global_rng():
    np.random.seed(123)
    expected = np.random.rand()
    np.random.seed(123)
    b = load("mnist1d", val_fraction=0.0, generator_seed=7)  # a fresh generation
    assert np.random.rand() == expected  # global numpy state restored around make_dataset
    assert (len(b.train), len(b.val), len(b.test)) == (4000, 0, 1000)


@pytest.mark.parametrize("name", ["mnist", "fashion_mnist"])
def test_idx_datasets(name, data_dir):
    b = load(name, data_dir)
    assert (len(b.train), len(b.val), len(b.test)) == (54000, 6000, 10000)
    assert b.train.x.dtype == torch.uint8 and b.train.x.shape[1:] == (1, 28, 28)
    assert b.input_shape == (1, 28, 28) and b.num_classes == 10 and len(b.meta["classes"]) == 10
    assert counts(b.test.y, 10).sum() == 10000 and b.test.y.dtype == torch.int64
    assert len(b.mean) == 1 and 0.1 < b.mean[0] < 0.4


def test_digits():
    b = load("digits")
    assert b.train.x.dtype == torch.uint8 and b.input_shape == (1, 8, 8)
    assert len(b.train) + len(b.val) + len(b.test) == 1797 and len(b.test) == 359
    assert int(b.train.x.max()) == 255
    assert torch.equal(load("digits", seed=5).test.x, b.test.x)  # fixed test split


def write_cifar(root: Path, per_batch: int = 20) -> Path:
    """Tiny files in the CIFAR-10 python format: pickled dicts with b'data' and b'labels'."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i, name in enumerate([f"data_batch_{k}" for k in range(1, 6)] + ["test_batch"]):
        data = rng.integers(0, 256, (per_batch, 3072), dtype=np.uint8)
        data[:, 0] = i  # a batch marker in the first red pixel
        labels = [j % 10 for j in range(per_batch)]
        with open(folder / name, "wb") as f:
            pickle.dump({b"data": data, b"labels": labels}, f)
    return folder


def test_cifar10_from_written_files(tmp_path):
    write_cifar(tmp_path)
    b = load("cifar10", tmp_path)
    assert (len(b.train), len(b.val), len(b.test)) == (90, 10, 20)
    assert b.train.x.dtype == torch.uint8 and b.input_shape == (3, 32, 32)
    assert len(b.mean) == 3 and b.num_classes == 10
    assert set(b.test.x[:, 0, 0, 0].tolist()) == {5}  # test_batch is the test set


def test_tiny_shakespeare(data_dir):
    b = load("tiny_shakespeare", data_dir, seq_len=64)
    vocab = b.meta["vocab"]
    assert (
        b.kind == "text" and b.num_classes == len(vocab) == 65 and vocab == "".join(sorted(vocab))
    )
    assert b.input_shape == (64,)
    for s in (b.train, b.val, b.test):
        assert s.x.dtype == s.y.dtype == torch.int64 and s.x.shape[1] == 64
        assert torch.equal(s.x[:, 1:], s.y[:, :-1])
    total = sum(len(s) for s in (b.train, b.val, b.test)) * 65
    assert abs(len(b.train) * 65 / total - 0.9) < 0.01
    text = (data_dir / "tinyshakespeare" / "input.txt").read_text()
    decode = lambda ids: "".join(vocab[i] for i in ids.tolist())  # noqa: E731
    assert decode(b.train.x[0]) == text[:64] and decode(b.train.y[0]) == text[1:65]
    assert decode(b.train.x[1]) == text[65:129]  # non-overlapping windows of seq_len + 1


def test_text_rejects_noise_and_train_size(data_dir):
    with pytest.raises(ConfigError, match="data.label_noise: not supported for text"):
        load("tiny_shakespeare", data_dir, label_noise=0.1)
    with pytest.raises(ConfigError, match="data.train_size"):
        load("tiny_shakespeare", data_dir, train_size=100)


# ---------- splits


def test_splits_disjoint_by_rows(mnist1d_bundle):
    b = mnist1d_bundle
    tr, va, te = rows(b.train.x), rows(b.val.x), rows(b.test.x)
    assert len(tr) == 3600 and len(va) == 400
    assert not tr & va and not tr & te and not va & te


def test_stratified_split_indices():
    y = torch.tensor([0] * 95 + [1] * 33 + [2] * 7)
    keep, held = stratified_split(y, 0.1, make_generator(0, "t"))
    assert len(held) == round(0.1 * len(y)) and len(keep) + len(held) == len(y)
    assert not set(keep.tolist()) & set(held.tolist())
    for c, n in Counter(y.tolist()).items():
        assert abs(int((y[held] == c).sum()) - 0.1 * n) <= 1


def test_val_stratified(mnist1d_bundle):
    b = mnist1d_bundle
    val_c, train_c = counts(b.val.y, 10), counts(b.train.y, 10)
    assert np.all(np.abs(val_c - 0.1 * (val_c + train_c)) <= 1)


def test_train_size_exact_and_stratified(mnist1d_bundle):
    b = load("mnist1d", train_size=500)
    assert len(b.train) == 500 and len(b.val) == 400 and len(b.test) == 1000
    full = counts(mnist1d_bundle.train.y, 10)
    assert np.all(np.abs(counts(b.train.y, 10) - full * 500 / full.sum()) <= 1)
    assert rows(b.train.x) <= rows(mnist1d_bundle.train.x)  # a subset of the carved train set


def test_train_size_too_large():
    with pytest.raises(ConfigError, match=r"data.train_size: 3601 .*maximum 3600"):
        load("mnist1d", train_size=3601)


@pytest.mark.parametrize("p", [0.0, 0.2, 0.5, 1.0])
def test_label_noise_exact(p, mnist1d_bundle):
    b = load("mnist1d", label_noise=p)
    n_flipped = int((b.train.y != b.clean_train_y).sum())
    assert n_flipped == round(p * 3600) == b.meta["n_noisy"]
    assert b.meta["label_noise"] == p and b.meta["noisy_fraction"] == pytest.approx(p)
    assert torch.equal(b.clean_train_y, mnist1d_bundle.train.y)
    assert torch.equal(b.val.y, mnist1d_bundle.val.y)
    assert torch.equal(b.test.y, mnist1d_bundle.test.y)
    assert torch.equal(b.train.x, mnist1d_bundle.train.x)  # noise never moves the split


def test_label_noise_covers_other_classes():
    y = torch.zeros(1000, dtype=torch.long)
    noisy, idx = add_label_noise(y, 0.9, 10, make_generator(1, "n"))
    assert len(idx) == 900 and set(noisy[idx].tolist()) == set(range(1, 10))


def test_determinism(mnist1d_bundle):
    again = load("mnist1d", label_noise=0.3)
    assert torch.equal(load("mnist1d", label_noise=0.3).train.y, again.train.y)
    assert torch.equal(load("mnist1d").val.x, mnist1d_bundle.val.x)
    other = load("mnist1d", seed=1)
    assert not torch.equal(other.val.x, mnist1d_bundle.val.x)
    assert torch.equal(other.test.x, mnist1d_bundle.test.x)  # test never depends on cfg.seed


# ---------- errors and data folder


@pytest.mark.parametrize("name,folder", [("fashion_mnist", "FashionMNIST/raw"),
                                         ("mnist", "MNIST/raw"),
                                         ("cifar10", "cifar-10-batches-py"),
                                         ("tiny_shakespeare", "tinyshakespeare")])  # fmt: skip
def test_missing_files_message(name, folder, tmp_path):
    with pytest.raises(DataError) as e:
        load(name, tmp_path)
    msg = str(e.value)
    assert "\n" not in msg and str(tmp_path / folder) in msg
    assert "--data-dir" in msg and "--download" in msg and "HARNESS_DATA_DIR" in msg


def test_unknown_dataset_lists_valid_names():
    from harness.config import build_run_config

    with pytest.raises(ConfigError) as e:  # caught when the config is read, not at load time
        build_run_config({"data": {"name": "mnsit"}})
    for name in ("mnist", "mnist1d", "fashion_mnist", "cifar10", "digits", "tiny_shakespeare"):
        assert name in str(e.value)
    assert set(DATASETS.names()) >= {"mnist", "mnist1d", "digits", "cifar10"}


def test_resolve_data_dir_precedence(monkeypatch, tmp_path):
    monkeypatch.setenv("HARNESS_DATA_DIR", "/env")
    assert resolve_data_dir("/cfg", "/cli") == Path("/cli")
    assert resolve_data_dir("/cfg", None) == Path("/cfg")
    assert resolve_data_dir(None, None) == Path("/env")
    monkeypatch.delenv("HARNESS_DATA_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert resolve_data_dir() == tmp_path / "harness" / "datasets"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert resolve_data_dir() == Path.home() / ".cache" / "harness" / "datasets"


# ---------- tensors helpers and corruption


def test_to_float_and_normalize(tmp_path):
    write_cifar(tmp_path)
    b = load("cifar10", tmp_path)
    x01 = b.to_float(b.train.x)
    assert x01.dtype == torch.float32 and 0.0 <= float(x01.min()) and float(x01.max()) <= 1.0
    z = b.prepare(b.train.x)
    assert torch.allclose(z.mean(dim=(0, 2, 3)), torch.zeros(3), atol=1e-4)
    assert torch.allclose(z.std(dim=(0, 2, 3)), torch.ones(3), atol=1e-3)
    assert b.to("cpu").train.x.dtype == torch.uint8


def test_prepare_leaves_signals_unchanged(mnist1d_bundle):
    b = mnist1d_bundle
    assert torch.equal(b.prepare(b.test.x), b.test.x)


def test_shift_corrupt(mnist1d_bundle):
    x = mnist1d_bundle.test.x[:50]
    a = shift_corrupt("signal", x, torch.Generator().manual_seed(0))
    b = shift_corrupt("signal", x, torch.Generator().manual_seed(0))
    assert torch.equal(a, b) and a.shape == x.shape and not torch.equal(a, x)
    assert float((a - x).std()) > 0.05
    img = torch.rand(8, 3, 32, 32)
    out = shift_corrupt("image", img, torch.Generator().manual_seed(0))
    assert out.shape == img.shape and 0.0 <= float(out.min()) and float(out.max()) <= 1.0
    with pytest.raises(ConfigError):
        shift_corrupt("text", torch.zeros(2, 4, dtype=torch.long), torch.Generator())
