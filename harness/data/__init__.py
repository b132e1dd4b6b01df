"""Datasets as in-memory tensors: registry, loaders, seeded splits and label noise."""

from harness.data import digits, image_folder, mnist1d, standard, text, vision  # noqa: F401
from harness.data.base import DATASETS, DataBundle, DatasetInfo, RawData, Split, dataset_info
from harness.data.load import load_data, resolve_data_dir

__all__ = ["DATASETS", "DataBundle", "DatasetInfo", "RawData", "Split", "dataset_info", "load_data",
           "resolve_data_dir"]
