"""Datasets as in-memory tensors: registry, loaders, seeded splits and label noise."""

from harness.data import digits, mnist1d, text, vision  # noqa: F401  (register loaders)
from harness.data.base import DATASETS, DataBundle, RawData, Split
from harness.data.load import load_data, resolve_data_dir

__all__ = ["DATASETS", "DataBundle", "RawData", "Split", "load_data", "resolve_data_dir"]
