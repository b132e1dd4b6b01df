"""timm's image models by name, with no code: `model: {name: "timm:resnet10t"}`.

timm's factory takes its own arguments (`in_chans`, `num_classes`, `img_size`, `drop_rate`),
not the harness's constructor contract (`input_shape`, `num_classes`), and a wrapper class
used to be the only way in. This adapter maps one onto the other: the channels of the
data's (C, H, W) go to `in_chans`, its (H, W) to `img_size` for the models that have one
(ViTs and their kin; convolutional nets take any size), the class count to `num_classes`,
the `dropout` regularizer's rate to `drop_rate` (timm's dropout before the classifier),
`model.patch_size` to `patch_size` (ViTs), and `model.kwargs` to timm as they are
(`drop_path_rate`, `depth`, ...). Weights are never
downloaded (`pretrained=False`): fine-tune from a run with `model.init_from` instead.

The name is checked when the config is read (timm installed, the model known to timm);
the model is built on PyTorch's meta device before anything is written, which also counts
its parameters for the worker choice; then, as for any plug-in, one real batch in eval mode
checks that logits of shape [batch, num_classes] come out.
"""

from __future__ import annotations

import difflib
import functools
from collections.abc import Callable
from typing import Any

from torch import nn

from harness.errors import ConfigError
from harness.models.base import ModelInfo

PREFIX = "timm:"
HARNESS_SETS = {"pretrained", "num_classes", "in_chans", "img_size", "drop_rate"}
INFO = ModelInfo(kinds=frozenset({"image"}), options=frozenset({"dropout", "patch_size"}))


def is_timm(name: str) -> bool:
    return name.startswith(PREFIX)


def import_timm() -> Any:
    try:
        import timm
    except ImportError:
        raise ConfigError("model.name: timm models need the timm package: pip install timm "
                          "(in the environment that has harness)") from None
    return timm


@functools.cache
def timm_model(name: str) -> Callable[..., nn.Module]:
    """The factory for `timm:<model>`: checked to exist, taking the harness's arguments."""
    timm = import_timm()
    model_name = name[len(PREFIX):]
    if not timm.is_model(model_name):
        close = difflib.get_close_matches(model_name, timm.list_models(), n=3)
        hint = f" (did you mean {', '.join(repr(PREFIX + c) for c in close)}?)" if close else ""
        raise ConfigError(f"model.name = {name!r}: timm has no model {model_name!r}{hint}; "
                          "its names: timm.list_models()")

    def build(*, input_shape: tuple[int, ...], num_classes: int, dropout: float = 0.0,
              **kwargs: Any) -> nn.Module:
        if len(input_shape) != 3:
            raise ConfigError(f"model {name}: timm models take images (C, H, W); the data's "
                              f"samples have shape {tuple(input_shape)}")
        taken = sorted(set(kwargs) & HARNESS_SETS)
        if taken:
            raise ConfigError(f"model.kwargs.{taken[0]}: set by the harness for {name} (from "
                              "the data and the dropout regularizer); remove it")
        args = {"pretrained": False, "num_classes": num_classes, "in_chans": input_shape[0],
                "drop_rate": dropout, **kwargs}
        try:  # models with a fixed input size (ViT, Swin, ...) are told the data's
            return timm.create_model(model_name, img_size=tuple(input_shape[1:]), **args)
        except TypeError as err:
            if "img_size" not in str(err):
                raise
        return timm.create_model(model_name, **args)  # any size (convolutional nets)

    build.info = INFO  # type: ignore[attr-defined]  # read by model_info, as a class's
    build.__name__ = build.__qualname__ = model_name
    build.__module__ = "timm"  # a plug-in, not a built-in: the contract checks apply
    return build
