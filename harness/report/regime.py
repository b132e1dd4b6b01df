"""The regime a study runs in, in one line for its headline: model, data, training length.

A study built to overfit (1000 noisy samples) must not read as a benchmark result, so the
headline names what was trained on what, and for how long.
"""

from __future__ import annotations

from typing import Any


def _model(model: dict[str, Any]) -> str:
    sizes = [f"{k} {model[k]}" for k in ("width", "depth") if model.get(k) is not None]
    name = str(model.get("name") or "model")
    return f"{name} ({', '.join(sizes)})" if sizes else name


def _samples(data: dict[str, Any], split_sizes: dict[str, Any] | None) -> str:
    n_train = (split_sizes or {}).get("train")
    if data.get("train_size") is not None:
        return f"{data['train_size']} training samples"
    if n_train is not None:
        return f"the full training set ({n_train} samples)"
    return "the full training set"


def regime(base: dict[str, Any], split_sizes: dict[str, Any] | None = None) -> str:
    """'Regime: mlp (width 256, depth 2) on mnist1d, 1000 training samples, 10% label
    noise, 60 epochs.' from a study's base config (defaults where a key is absent)."""
    data = base.get("data") or {}
    train = base.get("train") or {}
    noise = float(data.get("label_noise") or 0.0)
    epochs = train.get("epochs", 30)
    parts = [f"{_model(base.get('model') or {})} on {data.get('name', 'mnist1d')}",
             _samples(data, split_sizes),
             f"{noise:.0%} label noise" if noise else "clean labels",
             f"{epochs} epoch{'' if epochs == 1 else 's'}"]
    return "Regime: " + ", ".join(parts) + "."
