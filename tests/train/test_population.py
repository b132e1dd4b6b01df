"""Population training: runs of one shape trained as one vectorized model must each write
what they would write alone.

Tolerance: every recorded number (epoch rows, summary, the saved weights) within 1e-5
relative (1e-6 absolute) of the run trained alone. The population computes each member's
layers with one batched matrix product where a run alone uses one matrix product per
layer; on this CPU both give the same floats or differ in the last bits (measured worst
relative difference over these cases: about 4e-8), and the dropout masks, mixing draws and
data order are each member's own, drawn from its own generators exactly as alone. Timing
fields (seconds, samples per second, wall and setup time) are not compared.

One case per regularizer family that declares population support: a population of
members differing in the family's strength (and one member without it), each compared
with its run alone.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
import torch
from conftest import tiny_raw

from harness.config import build_run_config
from harness.regularizers import REGULARIZERS, Regularizer
from harness.train.grouping import alone_reason, group, population_key
from harness.train.loop import RunRequest, train_run, train_runs

TIMING = ("seconds", "samples_per_sec", "wall_time", "setup_time")
REL, ABS = 1e-5, 1e-6


# ------------------------------------------------------------------ grouping


def test_runs_share_a_key_when_only_seed_and_regularizer_settings_differ() -> None:
    def key(**sections: Any) -> str | None:
        return population_key(build_run_config(tiny_raw(**sections)))

    base = key()
    assert base is not None
    assert key(seed=3) == base
    assert key(regularizers={"dropout": {"p": 0.3}}) == base
    assert key(regularizers={"weight_decay": {"value": 0.1}, "ema": {"decay": 0.9}}) == base
    assert key(model={"width": 32}) != base
    assert key(optim={"lr": 0.01}) != base
    assert key(train={"epochs": 3}) != base
    # SWA sets the lr the members share: only equal SWA settings share a population
    swa = key(regularizers={"swa": {"start_epoch": 2, "lr": 0.01}})
    assert swa not in (None, base)
    assert key(regularizers={"swa": {"start_epoch": 2, "lr": 0.01}}, seed=4) == swa
    assert key(regularizers={"swa": {"start_epoch": 2, "lr": 0.02}}) != swa
    assert alone_reason(build_run_config(tiny_raw(regularizers={"l1": {}}))) == \
        "regularizer l1 does not declare population support"
    assert "does not declare info.population" in alone_reason(
        build_run_config(tiny_raw(model={"name": "cnn"})))
    # transformer1d cannot be built on the meta device (its DropPath rates call .item()):
    # the reason given is still the one that holds, not a failed inspection
    assert alone_reason(build_run_config(tiny_raw(model={"name": "transformer1d"}))) == \
        "model transformer1d does not declare info.population"


def test_group_makes_consecutive_populations_of_at_most_size() -> None:
    items = ["a1", "b1", "a2", "x", "a3", "b2", "a4"]
    key = {"a": "A", "b": "B", "x": None}
    groups = group(items, lambda s: key[s[0]], 3)
    assert groups == [["a1", "a2", "a3"], ["b1", "b2"], ["x"], ["a4"]]
    assert group(items, lambda s: key[s[0]], 1) == [[i] for i in items]


def test_only_hooks_a_member_can_run_alone_are_declared() -> None:
    """A population calls each member's hooks on its own module: a loss hook (its penalty
    would not reach the stacked gradients) or module surgery cannot be supported."""
    for name in REGULARIZERS.names():
        cls = REGULARIZERS.get(name)
        if cls.population is not None:
            assert cls.loss is Regularizer.loss, name
            assert cls.on_model is Regularizer.on_model, name


# ------------------------------------------------------------------ members vs alone

# Per family: each member's regularizers (a population of three), epochs.
CASES: dict[str, tuple[list[dict[str, Any]], int]] = {
    "dropout": ([{"dropout": {"p": 0.1}}, {"dropout": {"p": 0.5}}, {}], 3),
    "label_smoothing": ([{"label_smoothing": {"epsilon": 0.1}},
                         {"label_smoothing": {"epsilon": 0.3}}, {}], 3),
    "weight_decay": ([{"weight_decay": {"value": 0.05}},
                      {"weight_decay": {"value": 0.5, "mode": "l2"}}, {}], 3),
    "mix": ([{"mix": {"mixup_alpha": 0.4}},
             {"mix": {"mixup_alpha": 1.0, "cutmix_alpha": 1.0}}, {}], 3),
    "grad_clip": ([{"grad_clip": {"threshold": 0.05}},
                   {"grad_clip": {"mode": "value", "threshold": 0.001}},
                   {"grad_clip": {"mode": "agc", "threshold": 0.005}}], 3),
    "ema": ([{"ema": {"decay": 0.9}}, {"ema": {"decay": 0.5, "use_buffers": False}}, {}], 3),
    "swa": ([{"swa": {"start_epoch": 2, "lr": 0.001}}] * 3, 4),
    "early_stopping": ([{"early_stopping": {"patience": 1}},
                        {"early_stopping": {"patience": 2, "monitor": "val_acc"}},
                        {"early_stopping": {"patience": 3, "restore_best": False}}], 10),
}
FAST = {"dropout", "early_stopping"}


def test_every_family_declaring_population_support_has_a_case() -> None:
    declared = {n for n in REGULARIZERS.names() if REGULARIZERS.get(n).population is not None}
    assert declared == set(CASES)


def close(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return (math.isnan(a) and math.isnan(b)) or math.isclose(a, b, rel_tol=REL,
                                                                 abs_tol=ABS)
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(close(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(close(x, y) for x, y in zip(a, b, strict=True))
    return a == b


def without_timing(d: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in d.items() if not any(t in k for t in TIMING)}


def assert_same_run(member: Path, alone: Path) -> None:
    assert sorted(p.name for p in member.iterdir()) == sorted(p.name for p in alone.iterdir())
    for name in ("config.json", "summary.json"):
        got, want = (json.loads((d / name).read_text()) for d in (member, alone))
        assert close(without_timing(got), without_timing(want)), name
    rows = [[without_timing(r) for r in json.loads(json.dumps(d))]
            for d in (read_rows(member), read_rows(alone))]
    assert close(rows[0], rows[1])
    sizes = [(d / "model.pt").stat().st_size for d in (member, alone)]
    assert sizes[0] == sizes[1]  # the member's weights alone, not the population's tensors
    got, want = (torch.load(d / "model.pt", weights_only=True) for d in (member, alone))
    assert got.keys() == want.keys()
    for k in got:
        torch.testing.assert_close(got[k], want[k], rtol=REL, atol=ABS, msg=k)


def read_rows(run: Path) -> list[dict[str, Any]]:
    from harness.record.run_dir import RunDir

    return RunDir(run).metrics()


@pytest.mark.parametrize("family", [pytest.param(n, marks=() if n in FAST else pytest.mark.slow)
                                    for n in CASES])
def test_a_member_writes_what_its_run_writes_alone(family: str, tmp_path: Path) -> None:
    regularizers, epochs = CASES[family]
    configs = [build_run_config(tiny_raw(variant=f"m{i}", seed=i, regularizers=regs,
                                         train={"epochs": epochs}))
               for i, regs in enumerate(regularizers)]
    assert len({population_key(c) for c in configs} - {None}) == 1
    together = train_runs([RunRequest(c) for c in configs], results_dir=tmp_path / "pop")
    alone = [train_run(c, results_dir=tmp_path / "alone") for c in configs]
    for member, run in zip(together, alone, strict=True):
        assert member.run_dir.path.name == run.run_dir.path.name  # same run id, same folder
        assert_same_run(member.run_dir.path, run.run_dir.path)
    if family == "early_stopping":  # each stops on its own curve, at its own epoch
        stops = [r.summary["stop_epoch"] for r in alone]
        assert [m.summary["stop_epoch"] for m in together] == stops
        assert len(set(stops)) > 1, stops


def test_a_member_resumes_alone_from_its_own_checkpoint(tmp_path: Path) -> None:
    """Interrupted after its second epoch, each member's checkpoint is the one its run would
    have written alone: resumed alone, it ends where the uninterrupted run ends."""
    configs = [build_run_config(tiny_raw(variant=f"m{i}", seed=i, train={"epochs": 4},
                                         regularizers={"dropout": {"p": p}, "ema": {}}))
               for i, p in enumerate((0.1, 0.4))]

    def interrupt(epoch: int, row: dict[str, Any]) -> None:
        if epoch == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_runs([RunRequest(configs[0]), RunRequest(configs[1], on_epoch=[interrupt])],
                   results_dir=tmp_path / "pop")
    resumed = train_runs([RunRequest(c) for c in configs], results_dir=tmp_path / "pop")
    assert [len(r.rows) for r in resumed] == [4, 4]
    for member, config in zip(resumed, configs, strict=True):
        run = train_run(config, results_dir=tmp_path / "alone")
        assert_same_run(member.run_dir.path, run.run_dir.path)


def test_runs_that_cannot_share_a_model_train_one_by_one(tmp_path: Path) -> None:
    configs = [build_run_config(tiny_raw(variant=f"w{w}", model={"width": w}))
               for w in (8, 16)]
    assert population_key(configs[0]) != population_key(configs[1])
    together = train_runs([RunRequest(c) for c in configs], results_dir=tmp_path / "pop")
    for member, config in zip(together, configs, strict=True):
        assert_same_run(member.run_dir.path,
                        train_run(config, results_dir=tmp_path / "alone").run_dir.path)


@pytest.mark.slow
def test_the_gpu_mask_generators_train_on_the_cpu_too(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """On a GPU each member's masks come from a generator of the device seeded with its
    seed (the only device-specific step of a population): run that choice on the CPU. A
    member without dropout is still its run alone; members with dropout train, each with
    its own masks, the same on every repetition."""
    from harness.train import setup

    monkeypatch.setattr(setup, "dropout_generators", setup.device_generators)
    configs = [build_run_config(tiny_raw(variant=f"m{i}", seed=i, regularizers=regs))
               for i, regs in enumerate(({}, {"dropout": {"p": 0.3}}, {"dropout": {"p": 0.3}}))]
    first = train_runs([RunRequest(c) for c in configs], results_dir=tmp_path / "a")
    again = train_runs([RunRequest(c) for c in configs], results_dir=tmp_path / "b")
    assert_same_run(first[0].run_dir.path,
                    train_run(configs[0], results_dir=tmp_path / "alone").run_dir.path)
    for a, b in zip(first, again, strict=True):
        assert_same_run(a.run_dir.path, b.run_dir.path)
        assert a.summary["status"] == "completed" and math.isfinite(a.summary["final_test_loss"])
    assert first[1].rows[-1]["train_loss"] != first[2].rows[-1]["train_loss"]
