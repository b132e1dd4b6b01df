"""Tiny Shakespeare, character level: positional 90/5/5 split into next-character windows."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from harness.data.base import DATASETS, RawData, dataset_info
from harness.data.vision import missing_files_error
from harness.errors import ConfigError, DataError

URL = "https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt"
SPLIT = (0.9, 0.05)  # train, val; test is the rest (by position, so no leakage across windows)


def encode(text: str, vocab: str) -> np.ndarray:
    """Characters -> int64 ids (index in the sorted vocabulary)."""
    lookup = {c: i for i, c in enumerate(vocab)}
    return np.fromiter((lookup[c] for c in text), dtype=np.int64, count=len(text))


def windows(ids: np.ndarray, seq_len: int, part: str) -> tuple[np.ndarray, np.ndarray]:
    """Non-overlapping windows of seq_len + 1: x = w[:-1], y = w[1:]."""
    n = len(ids) // (seq_len + 1)
    if n == 0:
        raise ConfigError(f"data.seq_len: {seq_len} is longer than the {part} text ({len(ids)})")
    w = ids[: n * (seq_len + 1)].reshape(n, seq_len + 1)
    return np.ascontiguousarray(w[:, :-1]), np.ascontiguousarray(w[:, 1:])


def _download(path: Path) -> None:
    """Fetch char-rnn's input.txt (only when the user passed --download)."""
    import urllib.request

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        urllib.request.urlretrieve(URL, path)
    except Exception as e:  # network errors come in many types; report them as one line
        path.unlink(missing_ok=True)
        raise DataError(f"tiny_shakespeare: download into {path.parent} failed: {e}") from e


@DATASETS.register("tiny_shakespeare")
@dataset_info(kind="text", download=True, files=lambda d: [d / "tinyshakespeare" / "input.txt"])
def load_tiny_shakespeare(cfg, data_dir: Path, download: bool) -> RawData:
    """int64 (N, seq_len) inputs and next-character targets; num_classes = vocab size."""
    folder = data_dir / "tinyshakespeare"
    path = folder / "input.txt"
    if not path.is_file():
        if not download:
            raise missing_files_error("tiny_shakespeare", folder)
        _download(path)
    text = path.read_text(encoding="utf-8")
    vocab = "".join(sorted(set(text)))
    ids = encode(text, vocab)
    n_train, n_val = int(SPLIT[0] * len(ids)), int(SPLIT[1] * len(ids))
    parts = {
        "train": ids[:n_train],
        "val": ids[n_train : n_train + n_val],
        "test": ids[n_train + n_val :],
    }
    (xt, yt), (xv, yv), (xs, ys) = (windows(a, cfg.seq_len, k) for k, a in parts.items())
    return RawData(
        kind="text",
        x_train=xt, y_train=yt, x_val=xv, y_val=yv, x_test=xs, y_test=ys,
        num_classes=len(vocab),
        classes=list(vocab),
        source=str(path),
        extra={"vocab": vocab, "chars": {k: len(a) for k, a in parts.items()}},
    )  # fmt: skip
