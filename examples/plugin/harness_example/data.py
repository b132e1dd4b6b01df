"""Noisy class prototypes as 1-D signals, generated in memory: no files, no download."""

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from harness.data import DATASETS, RawData, dataset_info


class BlobsOptions(BaseModel):  # data.kwargs, checked before anything runs
    model_config = ConfigDict(extra="forbid")
    classes: int = Field(4, ge=2)
    length: int = Field(16, ge=2)
    noise: float = Field(1.0, ge=0.0)


@DATASETS.register("blobs")
@dataset_info(kind="signal", files=lambda data_dir: [], options=BlobsOptions)
def load_blobs(cfg, data_dir, download):
    """One random prototype per class plus Gaussian noise; 800 train / 200 test."""
    opts = BlobsOptions.model_validate(cfg.kwargs)
    rng = np.random.default_rng(0)  # fixed: the same dataset in every run
    prototypes = rng.normal(size=(opts.classes, 1, opts.length))
    y = np.arange(1000) % opts.classes
    x = prototypes[y] + opts.noise * rng.normal(size=(1000, 1, opts.length))
    return RawData(kind="signal", x_train=x[:800].astype(np.float32), y_train=y[:800],
                   x_test=x[800:].astype(np.float32), y_test=y[800:],
                   num_classes=opts.classes, classes=[str(c) for c in range(opts.classes)],
                   source="harness_example.data")
