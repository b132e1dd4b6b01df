"""What a plug-in model must provide, in one place, and the checks that enforce it.

A model is an `nn.Module` class (or a function returning one), registered with
`@MODELS.register("name")` or named by import path, `model.name: "pkg.mod:Class"`; timm's
models plug in by name through an adapter, `model.name: "timm:resnet10t"`
(harness/models/timm_adapter.py).

Required:

- `__init__(*, input_shape, num_classes, **options)`: `input_shape` is one sample's shape
  without the batch dimension, (C, H, W) for images, (C, L) for 1-D signals, (T,) for
  text; `num_classes` is the number of classes (the vocabulary size for text).
- `forward(x)` takes a float batch `[batch, *input_shape]` (images normalized per
  channel; text: int64 token ids) and returns logits `[batch, num_classes]`
  (`[batch, T, vocab]` for a language model). No softmax: the loss takes logits.

Optional, a class attribute `info: ClassVar[ModelInfo]` (harness.models.base) saying
what the harness may ask of it; without one a plug-in takes every data kind and no
harness options:

- `kinds`: the data kinds it takes (`{"image"}`, `{"signal"}`, `{"text"}`);
- `options`: the harness options its constructor accepts, each a keyword argument:
  `width`, `depth` (model.width / model.depth, sweepable), `dropout` (set by the
  `dropout` regularizer: a rate in [0, 1)), `norm` (the `norm` regularizer: none |
  batchnorm | layernorm | rmsnorm | groupnorm), `drop_path` (the `drop_path`
  regularizer, with `residual=True`), `tie_weights` (`weight_tying`, with
  `language_model=True`), `embed_dropout`, `attn_dropout`, `head_dropout`, `dropout_sites`
  (the `dropout` regularizer's embed_p, attn_p, head_p, sites), `norm_position`,
  `patch_size`, `heads`;
- `residual` / `language_model`: structural facts regularizers check.

A regularizer that needs an option the model does not declare (dropout on a model
without `dropout`) is refused when the config is checked, before anything trains.
Regularizers that work on any module (weight decay, L1/L2, label smoothing, mixup,
clipping, EMA/SWA, spectral norm, DropConnect on Linear layers, early stopping) need
nothing. `model.kwargs: {...}` passes the model's own further keyword arguments.

Before training, a plug-in model is built and given one batch of the real data in eval
mode; an output that is not logits of the right shape is one error line.
"""

from __future__ import annotations

import inspect
from typing import Any

import torch
from torch import nn

from harness.errors import ConfigError
from harness.models.base import MODELS, model_info
from harness.models.timm_adapter import is_timm, timm_model

CONTRACT = "harness/models/contract.py"
__all__ = ["check_forward", "check_logits", "check_signature", "is_builtin", "model_info",
           "resolve_model"]


def is_import_path(name: str) -> bool:
    return ":" in name


def resolve_model(name: str) -> Any:
    """The class (or factory) for a registered name, a 'pkg.mod:Class' import path or a
    'timm:<model>' name (harness/models/timm_adapter.py)."""
    if not is_import_path(name):
        return MODELS.get(name)
    if is_timm(name):
        return timm_model(name)
    from harness.plugins import import_object

    obj = import_object(name, "model.name")
    if not callable(obj):
        raise ConfigError(f"model.name = {name!r}: not a class or function "
                          f"(see {CONTRACT})")
    return obj


def is_builtin(obj: Any) -> bool:
    return (getattr(obj, "__module__", "") or "").startswith("harness.")


def check_signature(name: str, obj: Any, kwargs: dict[str, Any]) -> None:
    """Refuse, before training, a constructor that cannot take what the harness passes."""
    try:
        params = inspect.signature(obj).parameters
    except (TypeError, ValueError):
        return  # a C-level callable: nothing to inspect; the dry forward still checks it
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    missing = [] if takes_any else [k for k in ("input_shape", "num_classes") if k not in params]
    if missing:
        raise ConfigError(f"model {name}: its constructor must take keyword arguments "
                          f"input_shape and num_classes; missing {', '.join(missing)} "
                          f"(see {CONTRACT})")
    unknown = [] if takes_any else [k for k in kwargs if k not in params]
    if unknown:
        accepted = [k for k in params if k not in ("self", "input_shape", "num_classes")]
        raise ConfigError(f"model.kwargs: {name} takes no argument {unknown[0]!r}; "
                          f"accepted: {', '.join(accepted) or '(none)'}")


def check_forward(name: str, model: nn.Module, x: torch.Tensor, num_classes: int,
                  language_model: bool) -> None:
    """Feed one batch in eval mode (no statistics updated, no randomness used) and check
    that logits of shape [batch, num_classes] ([batch, T, vocab] for an LM) come out."""
    if not isinstance(model, nn.Module):
        raise ConfigError(f"model {name}: built a {type(model).__name__}, not a torch.nn.Module "
                          f"(see {CONTRACT})")
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            out = model(x)
    except Exception as e:  # user code: one line naming the shape it was given
        raise ConfigError(f"model {name}: forward on a batch of shape {tuple(x.shape)} failed: "
                          f"{type(e).__name__}: {e} (see {CONTRACT})") from None
    finally:
        model.train(was_training)
    check_logits(name, tuple(x.shape), out, num_classes, language_model)


def check_logits(name: str, x_shape: tuple[int, ...], out: Any, num_classes: int,
                 language_model: bool) -> None:
    """`out` is float logits of shape [batch, num_classes] ([batch, T, vocab] for an LM)."""
    want = (x_shape[0], *x_shape[1:2], num_classes) if language_model else (x_shape[0], num_classes)
    got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
    if got != want or not out.is_floating_point():
        raise ConfigError(f"model {name}: forward on a batch of shape {x_shape} returned "
                          f"{got if isinstance(got, str) else f'shape {got}'}; expected float "
                          f"logits of shape {want} = [batch, "
                          f"{'T, vocab' if language_model else 'num_classes'}] (see {CONTRACT})")
