"""Fine-tuning: start from a finished run's weights, freeze parts, a lower lr for the body.

`model.init_from` names a finished run folder (config.json + model.pt) of the same model
family; in a study it may name an upstream run, which the planner replaces by that run's
folder (relative to the results folder) and trains first. The classifier head (the
parameters under `head.`, as every built-in model names it) is kept when the upstream run
learnt the same classes (same dataset, same class count) and freshly initialized otherwise:
the labels of another dataset mean other things.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from harness.config import RunConfig
from harness.errors import ConfigError
from harness.record.layout import MODEL
from harness.record.run_dir import finished_run
from harness.train.optim import default_param_groups

HEAD = "head"  # the classifier's module name in every built-in model


def is_head(name: str) -> bool:
    return name == HEAD or name.startswith(HEAD + ".")


def load_weights(model: nn.Module, config: RunConfig, results_dir: str | Path) -> Path | None:
    """Copy the weights of `model.init_from` into `model`; the head too when the classes are
    the same. Returns the folder read (None when the run starts from scratch)."""
    ref = config.model.init_from
    if ref is None:
        return None
    key = "model.init_from"
    folder, saved = finished_run(ref, results_dir, key)
    family = (saved.get("model") or {}).get("name")
    if family != config.model.name:
        raise ConfigError(f"{key} = {ref!r}: a run of model {family!r}; this run's model is "
                          f"{config.model.name!r} (init_from takes a run of the same model)")
    state = torch.load(folder / MODEL, map_location="cpu", weights_only=True)
    own = model.state_dict()
    same_classes = (saved.get("data") or {}).get("name") == config.data.name and all(
        state[k].shape == own[k].shape for k in own if is_head(k) and k in state)
    keep = {k: v for k, v in state.items() if same_classes or not is_head(k)}
    wrong = [k for k, v in keep.items() if k in own and v.shape != own[k].shape]
    missing = [k for k in own if not is_head(k) and k not in keep]
    if wrong or missing:
        what = (f"{wrong[0]} is {tuple(keep[wrong[0]].shape)} there, "
                f"{tuple(own[wrong[0]].shape)} here") if wrong else f"{missing[0]} is missing"
        raise ConfigError(f"{key} = {ref!r}: its weights do not fit this model ({what}); "
                          "width, depth and input shape must match the upstream run")
    model.load_state_dict(keep, strict=False)
    return folder


def freeze(model: nn.Module, config: RunConfig) -> list[str]:
    """Turn off gradients of the parameters `model.freeze` (prefixes) or `model.freeze_body`
    name. Returns the frozen names. A prefix that matches nothing is an error."""
    names = [n for n, _ in model.named_parameters()]
    for prefix in config.model.freeze:
        if not any(n == prefix or n.startswith(prefix + ".") for n in names):
            tops = sorted({n.split(".")[0] for n in names})
            raise ConfigError(f"model.freeze: {prefix!r} matches no parameter of "
                              f"{config.model.name}; prefixes start with one of: "
                              f"{', '.join(tops)}")
    frozen = []
    for n, p in model.named_parameters():
        if (config.model.freeze_body and not is_head(n)) or any(
                n == q or n.startswith(q + ".") for q in config.model.freeze):
            p.requires_grad_(False)
            frozen.append(n)
    if frozen and len(frozen) == len(names):
        raise ConfigError(f"model.freeze: every parameter of {config.model.name} is frozen; "
                          "nothing would train")
    return frozen


def param_groups(model: nn.Module, body_lr_scale: float) -> list[dict[str, Any]]:
    """The trainable parameters, named: one group, or (body_lr_scale < 1) the body at that
    fraction of the lr and the head at the full lr (the loop's set_lr reads `lr_scale`)."""
    if body_lr_scale == 1.0:
        return default_param_groups(model)
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    groups = []
    for scale, part in ((body_lr_scale, [x for x in named if not is_head(x[0])]),
                        (1.0, [x for x in named if is_head(x[0])])):
        if part:
            groups.append({"params": [p for _, p in part], "param_names": [n for n, _ in part],
                           "lr_scale": scale})
    return groups
