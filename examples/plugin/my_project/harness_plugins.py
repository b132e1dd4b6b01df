"""A model, a dataset and a regularizer for harness: importing this module registers them."""
import math
from typing import ClassVar

import numpy as np
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from harness.data import DATASETS, RawData, dataset_info
from harness.models import MODELS, ModelInfo
from harness.regularizers import Params, Regularizer, register


@MODELS.register("tiny_mlp")
class TinyMLP(nn.Module):
    # optional: the data kinds it takes and the harness options its constructor accepts
    # (width is sweepable; dropout is set by the dropout regularizer)
    info: ClassVar[ModelInfo] = ModelInfo(kinds=frozenset({"signal", "image"}),
                                          options=frozenset({"width", "dropout"}))

    def __init__(self, *, input_shape, num_classes, width=32, dropout=0.0):
        super().__init__()
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(math.prod(input_shape), width),
                                 nn.ReLU(), nn.Dropout(dropout), nn.Linear(width, num_classes))

    def forward(self, x):
        return self.net(x)  # logits [batch, num_classes]


class BlobsOptions(BaseModel):  # data.kwargs, checked before anything runs
    model_config = ConfigDict(extra="forbid")
    classes: int = Field(4, ge=2)
    noise: float = Field(1.0, ge=0.0)


@DATASETS.register("blobs")
@dataset_info(kind="signal", files=lambda data_dir: [], options=BlobsOptions)
def load_blobs(cfg, data_dir, download):
    """Noisy class prototypes as 1-D signals, made in memory: 800 train / 200 test."""
    opts = BlobsOptions.model_validate(cfg.kwargs)
    rng = np.random.default_rng(0)  # the same data in every run
    y = np.arange(1000) % opts.classes
    x = rng.normal(size=(opts.classes, 1, 16))[y] + opts.noise * rng.normal(size=(1000, 1, 16))
    return RawData(kind="signal", x_train=x[:800].astype(np.float32), y_train=y[:800],
                   x_test=x[800:].astype(np.float32), y_test=y[800:], num_classes=opts.classes,
                   classes=[str(c) for c in range(opts.classes)], source="my_project")


class LogitPenaltyParams(Params):  # regularizers.logit_penalty, validated
    value: float = Field(..., ge=0.0)


@register
class LogitPenalty(Regularizer[LogitPenaltyParams]):
    """Logit squeezing: add the mean squared logit to the loss (Kannan et al. 2018)."""

    name = "logit_penalty"

    def loss(self, state, loss, batch, logits):
        return loss + self.params.value * logits.pow(2).mean()
