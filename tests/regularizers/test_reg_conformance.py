"""The shared contract every registered regularizer meets, parametrized over the registry so
a new one is covered the day it registers (as timm tests every model, optuna every storage):

- its state round-trips: an interrupted run resumed from the checkpoint (fresh instances
  loaded from `state_dict`) ends bit for bit where the uninterrupted run ends, and a fresh
  instance loaded from the saved state hands back the same state;
- evaluation is unaffected where the literature says so: dropout-like ones are the identity
  in eval mode, and the ones that never touch the model build the baseline's model;
- switched off (p = 0, strength 0, or a setting that never acts) a short run equals the
  baseline bit for bit with the same seed.

Where a property does not apply, the regularizer is listed below with the reason.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import torch
from conftest import strip_timing, tiny_raw

from harness.config import RunConfig, build_run_config
from harness.regularizers import REGULARIZERS, RegularizerStack
from harness.study.upstream import train_with_upstream
from harness.train import build
from harness.train.loop import train_run as train_one


def train_run(cfg: RunConfig, **kwargs: Any) -> Any:
    """A run as `harness run` trains it: a distillation teacher.config trains first."""
    return train_with_upstream(cfg, train_one, **kwargs)

NAMES = REGULARIZERS.names()
# The training-based checks of these stay in `make test-fast`; the rest are marked slow.
FAST = {"dropout", "early_stopping", "weight_decay"}


def fast_or_slow(names: list[str]) -> list[Any]:
    return [pytest.param(n, marks=() if n in FAST else pytest.mark.slow) for n in names]

# Dropout-like: random in training, the identity in eval mode (Srivastava et al. 2014;
# Wan et al. 2013; Huang et al. 2016): eval output = the same weights without it.
EVAL_IDENTITY = {"dropout", "dropconnect", "drop_path"}
# They change what the model computes in eval mode too, by design.
EDITS_EVAL_MODEL = {
    "spectral_norm": "reparametrizes weights: eval uses W / sigma(W)",
    "norm": "chooses the normalization layers",
    "weight_tying": "shares the embedding with the head (fewer parameters)",
    "distillation": "on_model trains or loads its teacher (test_reg_optimization covers it)",
}
# The setting that switches each one off. Absent: no such setting (listed with the reason).
OFF = {
    "mix": {"mixup_alpha": 0.2, "prob": 0.0},
    "distillation": {"alpha": 1.0, "teacher": {"config": {"model": {"name": "mlp"},
                                                          "train": {"epochs": 1}}}},
    "drop_path": {"rate": 0.0},
    "dropconnect": {"p": 0.0},
    "dropout": {"p": 0.0, "embed_p": 0.0, "attn_p": 0.0, "head_p": 0.0},  # every placement
    "early_stopping": {"patience": 100, "restore_best": False},  # never stops, never restores
    "elastic_net": {"value": 0.0},
    "l1": {"value": 0.0},
    "l2": {"value": 0.0},
    "grad_clip": {"mode": "norm", "threshold": 1e30},  # never reached: scale 1
    "label_smoothing": {"epsilon": 0.0},
    "weight_decay": {"value": 0.0},
}
NO_OFF_SETTING = {
    "augment": "one transform must be on (an empty augment is refused at validation)",
    "ema": "decay is in (0, 1): not configuring it is its off state",
    "swa": "start_epoch is within the run: not configuring it is its off state",
    "norm": "a layer choice, not a strength ('none' is another architecture)",
    "spectral_norm": "a reparametrization without a strength",
    "weight_tying": "sharing is on or off by being configured",
    "time_mask": "width >= 1 (a span of U{0..width}): not configuring it is its off state",
    "freq_mask": "width >= 1 (a band of U{0..width} bins): not configuring it is its off state",
    "token_dropout": "p > 0: not configuring it is its off state",
}


def test_the_lists_name_registered_regularizers_and_cover_each_once() -> None:
    listed = [*EVAL_IDENTITY, *EDITS_EVAL_MODEL, *OFF, *NO_OFF_SETTING]
    assert set(listed) <= set(NAMES)
    assert not EVAL_IDENTITY & set(EDITS_EVAL_MODEL)
    assert not set(OFF) & set(NO_OFF_SETTING)
    assert set(OFF) | set(NO_OFF_SETTING) == set(NAMES), "add the new one to OFF or NO_OFF"


def run_config(name: str, params: dict[str, Any] | None, text_dir: Path,
               epochs: int = 3) -> RunConfig:
    """A tiny run (MNIST-1D MLP, or the regularizer's example model/dataset), params
    None: the same run without it."""
    reg = REGULARIZERS.get(name)
    regs = {} if params is None else {name: params}
    raw = tiny_raw(regularizers=regs, train={"epochs": epochs})
    overrides = dict(reg.example_overrides)
    if overrides.get("model.name", "mlp") != "mlp":  # small: the property, not the model
        overrides.update({"model.width": 8, "model.depth": 1})
    if overrides.get("data.name") == "tiny_shakespeare":
        overrides.update({"data.seq_len": 32, "data.data_dir": str(text_dir),
                          "model.width": 32, "model.depth": 1})
    return build_run_config(raw, overrides=overrides)


def same_state(a: Any, b: Any) -> bool:
    """Equal nested state (tensors compared exactly)."""
    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        return isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor) and torch.equal(a, b)
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same_state(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return len(a) == len(b) and all(same_state(x, y) for x, y in zip(a, b, strict=True))
    return a == b


def weights(run_dir: Path) -> dict[str, torch.Tensor]:
    return torch.load(run_dir / "model.pt", weights_only=True)


# ------------------------------------------------------------------ state round trip


@pytest.mark.parametrize("name", fast_or_slow(NAMES))
def test_state_round_trips_through_a_resume(name: str, tmp_path: Path, text_slice: Path) -> None:
    reg = REGULARIZERS.get(name)
    cfg = run_config(name, dict(reg.example), text_slice)
    full = train_run(cfg, results_dir=tmp_path / "full")

    def interrupt(epoch: int, row: dict[str, Any]) -> None:
        if epoch == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_run(cfg, results_dir=tmp_path / "cut", on_epoch=[interrupt])
    (cut_dir,) = {p.parent for p in (tmp_path / "cut").rglob("checkpoint.pt")}
    saved = torch.load(cut_dir / "checkpoint.pt", weights_only=True)["regularizers"][name]

    # a fresh instance loaded from the saved state hands the same state back
    data = build.build_data(cfg, None, torch.device("cpu"))
    fresh = RegularizerStack.from_config(cfg, build.run_context(cfg, data, torch.device("cpu")))
    (item,) = [r for r in fresh.items if r.name == name]
    item.load_state_dict(copy.deepcopy(saved))
    assert same_state(item.state_dict(), saved)

    resumed = train_run(cfg, results_dir=tmp_path / "cut")
    assert strip_timing(resumed.rows) == strip_timing(full.rows)
    for key in ("epochs_run", *item.summary()):  # its own summary fields too
        if key == "teacher_run":  # the teacher's folder, inside each run's own results folder
            continue
        assert resumed.summary[key] == full.summary[key], key
    a, b = weights(full.run_dir.path), weights(resumed.run_dir.path)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


# ------------------------------------------------------------------ evaluation mode


def built_models(name: str, text_dir: Path) -> tuple[torch.nn.Module, torch.nn.Module, Any]:
    """(model with the regularizer's example, the same model without it), same seed."""
    reg = REGULARIZERS.get(name)
    cfg = run_config(name, dict(reg.example), text_dir)
    plain = run_config(name, None, text_dir)
    data = build.build_data(cfg, None, torch.device("cpu"))
    models = []
    for c in (cfg, plain):
        regs = RegularizerStack.from_config(c, build.run_context(c, data, torch.device("cpu")))
        torch.manual_seed(0)
        models.append(build.build_model(c, data, regs))
    return models[0], models[1], data.prepare(data.train.x[:64])


@pytest.mark.parametrize("name", NAMES)
def test_evaluation_is_unaffected_where_the_literature_says_so(name: str,
                                                                 text_slice: Path) -> None:
    if name in EDITS_EVAL_MODEL:
        pytest.skip(f"{name}: {EDITS_EVAL_MODEL[name]}")
    model, plain, x = built_models(name, text_slice)
    plain.load_state_dict(model.state_dict())  # same parameters, same names
    with torch.no_grad():
        assert torch.equal(model.eval()(x), plain.eval()(x))
        if name in EVAL_IDENTITY:  # and it does act in training
            torch.manual_seed(1)
            assert not torch.equal(model.train()(x), plain.train()(x))
        else:  # it never touches the model: the baseline's model, in both modes
            state, base = model.state_dict(), plain.state_dict()
            assert all(torch.equal(state[k], base[k]) for k in base)
            assert [type(m) for m in model.modules()] == [type(m) for m in plain.modules()]


# ------------------------------------------------------------------ off = baseline


@pytest.fixture(scope="module")
def baselines(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return {}  # run id -> (rows, weights): one baseline per example model/dataset


@pytest.mark.parametrize("name", fast_or_slow(NAMES))
def test_switched_off_it_equals_the_baseline_bit_for_bit(
    name: str, tmp_path: Path, text_slice: Path, baselines: dict[str, Any]
) -> None:
    if name in NO_OFF_SETTING:
        pytest.skip(f"{name}: {NO_OFF_SETTING[name]}")
    off = train_run(run_config(name, OFF[name], text_slice, epochs=2), results_dir=tmp_path)
    plain = run_config(name, None, text_slice, epochs=2)
    if plain.run_id() not in baselines:
        base = train_run(plain, results_dir=tmp_path / "plain")
        baselines[plain.run_id()] = (strip_timing(base.rows), weights(base.run_dir.path))
    rows, base_weights = baselines[plain.run_id()]
    assert strip_timing(off.rows) == rows
    got = weights(off.run_dir.path)
    assert got.keys() == base_weights.keys()
    assert all(torch.equal(got[k], base_weights[k]) for k in got)

