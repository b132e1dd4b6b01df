"""What a built-in dataset will hold, known without loading it: per-sample shape, classes and
the number of training samples. Lets a config be refused before any data is generated or
read (a train_size larger than the data, a model too large for memory)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

MNIST1D_CLASSES = 10
DIGITS_TOTAL = 1797  # sklearn's load_digits
DIGITS_TEST_FRACTION = 0.2  # harness/data/digits.py


@dataclass(frozen=True)
class DataShape:
    input_shape: tuple[int, ...]
    num_classes: int
    train_pool: int | None  # training samples before validation carving; None: unknown


def _mnist1d(cfg: Any) -> DataShape:
    generated = cfg.num_samples // MNIST1D_CLASSES * MNIST1D_CLASSES
    return DataShape((1, 40), MNIST1D_CLASSES, int(generated * (1.0 - cfg.test_fraction)))


KNOWN: dict[str, Any] = {
    "mnist1d": _mnist1d,
    "digits": lambda cfg: DataShape(
        (1, 8, 8), 10, DIGITS_TOTAL - int(round(DIGITS_TEST_FRACTION * DIGITS_TOTAL))),
    "mnist": lambda cfg: DataShape((1, 28, 28), 10, 60000),
    "fashion_mnist": lambda cfg: DataShape((1, 28, 28), 10, 60000),
    "cifar10": lambda cfg: DataShape((3, 32, 32), 10, 50000),
    "cifar100": lambda cfg: DataShape(
        (3, 32, 32), 20 if cfg.kwargs.get("labels") == "coarse" else 100, 50000),
    "svhn": lambda cfg: DataShape((3, 32, 32), 10, 73257),
    "kmnist": lambda cfg: DataShape((1, 28, 28), 10, 60000),
    "emnist_letters": lambda cfg: DataShape((1, 28, 28), 26, 124800),
}


def known_shape(cfg: Any) -> DataShape | None:
    """The shape of dataset cfg.name, or None when it cannot be known without loading."""
    fn = KNOWN.get(cfg.name)
    return fn(cfg) if fn else None


def train_samples_after_val(cfg: Any) -> int | None:
    """Training samples left once the validation split is carved (as data/load.py does)."""
    shape = known_shape(cfg)
    if shape is None or shape.train_pool is None:
        return None
    return shape.train_pool - cfg.val_count(shape.train_pool)
