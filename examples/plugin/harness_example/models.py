"""A two-layer perceptron written as a user would write their own model."""

import math
from typing import ClassVar

from torch import nn

from harness.models import MODELS, ModelInfo


@MODELS.register("tiny_mlp")
class TinyMLP(nn.Module):
    # What the harness may ask of it: 1-D signals or images, a width to sweep, and the
    # dropout rate the `dropout` regularizer sets. Without `info` a model takes no options.
    info: ClassVar[ModelInfo] = ModelInfo(kinds=frozenset({"signal", "image"}),
                                          options=frozenset({"width", "dropout"}))

    def __init__(self, *, input_shape, num_classes, width=32, dropout=0.0):
        super().__init__()
        self.net = nn.Sequential(
            nn.Flatten(), nn.Linear(math.prod(input_shape), width), nn.ReLU(),
            nn.Dropout(dropout), nn.Linear(width, num_classes),
        )

    def forward(self, x):
        return self.net(x)  # logits [batch, num_classes]
