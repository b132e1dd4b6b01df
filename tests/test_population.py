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
from torch import nn

from harness.config import build_run_config
from harness.models import create_model
from harness.models.population import (
    alias_members,
    bind_member_grads,
    population_blocker,
    stack_members,
)
from harness.regularizers import REGULARIZERS, Regularizer
from harness.train.grouping import alone_reason, group, population_key
from harness.train.loop import RunRequest, train_run, train_runs

TIMING = ("seconds", "samples_per_sec", "wall_time", "setup_time")
REL, ABS = 1e-5, 1e-6


def mlp(dropout: float = 0.0, width: int = 16) -> nn.Module:
    return create_model("mlp", input_shape=(1, 40), num_classes=10, width=width, depth=2,
                        dropout=dropout)


# ------------------------------------------------------------------ the stacked model


def test_the_stacked_model_computes_each_member_as_alone() -> None:
    torch.manual_seed(0)
    members = [mlp(p) for p in (0.0, 0.2, 0.5)]
    gens = [torch.Generator().manual_seed(k) for k in range(3)]
    starts = [g.get_state() for g in gens]
    population = stack_members(members, gens)
    alias_members(population, members)
    x = torch.randn(3 * 8, 1, 40)
    out = population(x)  # training mode: each member's own dropout masks
    alone = []
    for k, m in enumerate(members):
        torch.set_rng_state(starts[k])  # the run alone draws from its global generator
        alone.append(m(x[8 * k:8 * (k + 1)]))
    torch.testing.assert_close(out, torch.cat(alone), rtol=0, atol=0)
    population.eval()
    torch.testing.assert_close(population(x), torch.cat(
        [m.eval()(x[8 * k:8 * (k + 1)]) for k, m in enumerate(members)]), rtol=0, atol=0)
    # gradients: the population's, sliced per member, are each member's own
    population.zero_grad()
    population(x).square().sum().backward()
    bind_member_grads(population, members)
    for k, m in enumerate(members):
        ref = mlp(0.0)
        ref.load_state_dict(m.state_dict())
        ref.eval()(x[8 * k:8 * (k + 1)]).square().sum().backward()
        for (name, p), q in zip(m.named_parameters(), ref.parameters(), strict=True):
            torch.testing.assert_close(p.grad, q.grad, rtol=1e-6, atol=1e-7, msg=name)


def test_members_alias_their_slice_of_the_population() -> None:
    members = [mlp(), mlp()]
    population = stack_members(members, [torch.Generator(), torch.Generator()])
    alias_members(population, members)
    with torch.no_grad():
        members[1].head.weight.zero_()  # in place on a member: its slice changes
    assert population.head.weight[1].abs().sum() == 0
    assert population.head.weight[0].abs().sum() > 0
    state = members[0].state_dict()  # a run alone's layout
    assert {k: tuple(v.shape) for k, v in state.items()} == \
        {k: tuple(v.shape) for k, v in mlp().state_dict().items()}


def test_what_cannot_be_stacked_says_why() -> None:
    assert population_blocker(mlp()) is None
    cnn = create_model("cnn", input_shape=(1, 40), num_classes=10)
    assert "does not declare info.population" in population_blocker(cnn)
    normed = create_model("mlp", input_shape=(1, 40), num_classes=10, width=8, norm="batchnorm")
    assert "BatchNorm1d" in population_blocker(normed)
    with pytest.raises(ValueError, match="differs in structure"):
        stack_members([mlp(width=8), mlp(width=16)], [torch.Generator()] * 2)


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
    from harness.tracking.store import RunDir

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


# ------------------------------------------------------------------ a study, end to end


def study_record(results_dir: Path, population: int,
                 monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """Train a tiny dropout study (2 variants x 2 seeds, W&B offline) with populations of
    `population`; what each run left in its folder, its queue trial and its W&B run."""
    from harness.study import worker
    from harness.study.execute import run_study

    sizes: list[int] = []

    def counted(requests: list[RunRequest], **kwargs: Any) -> Any:
        sizes.append(len(requests))
        return train_runs(requests, **kwargs)

    monkeypatch.setattr(worker, "train_runs", counted)
    from wandb_offline import read_offline_run

    from harness.study.queue import RunQueue
    from harness.study.spec import StudyConfig

    raw = tiny_raw(tracking={"wandb": "offline", "project": "harness-test"})
    study = StudyConfig(name="pop", base=raw, seeds=2,
                        design={"kind": "sweep", "parameter": "regularizers.dropout.p",
                                "values": [0.3], "baseline_value": 0.0})
    out = run_study(study, source="test", results_dir=results_dir, workers=1,
                    population=population)
    assert out.finished == out.total == 4 and not out.failed
    assert sizes == [population] * (4 // population)  # in-process worker: every run queued
    queue = RunQueue.open(f"sqlite:///{out.study_dir / 'queue.db'}", "pop")
    record: dict[str, Any] = {}
    for trial in queue.trials():
        attrs = trial.user_attrs
        summary = attrs["summary"]
        wandb_run = read_offline_run(Path(summary["wandb"]["run_dir"]))
        record[attrs["run_id"]] = {
            "state": trial.state.name, "params": trial.params, "attrs": sorted(attrs),
            "summary": without_timing(summary), "rows": [without_timing(r) for r in
                                                          attrs["rows"]],
            "files": sorted(attrs.get("files", {})),
            "wandb": {"id": wandb_run.run_id, "name": wandb_run.name,
                      "group": wandb_run.group, "job_type": wandb_run.job_type,
                      "config": wandb_run.config, "complete": wandb_run.complete,
                      "summary": sorted(wandb_run.summary),
                      "history": [sorted(r) for r in wandb_run.history]}}
    return record


@pytest.mark.slow
def test_a_study_trained_in_populations_records_what_it_records_alone(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Run folders aside (compared above), the queue's results and the W&B runs of a study
    trained in populations are those of the study trained run by run."""
    together = study_record(tmp_path / "together", 4, monkeypatch)
    alone = study_record(tmp_path / "alone", 1, monkeypatch)
    assert together.keys() == alone.keys() and len(together) == 4
    for run_id, want in alone.items():
        got = together[run_id]
        for part in ("state", "params", "attrs", "files", "wandb"):
            got_part, want_part = got[part], want[part]
            if part == "wandb":  # the W&B run's folder (and so its path) holds a timestamp
                got_part = {k: v for k, v in got_part.items() if k != "path"}
                want_part = {k: v for k, v in want_part.items() if k != "path"}
            assert close(got_part, want_part), (run_id, part)
        summary_got = {k: v for k, v in got["summary"].items() if k != "wandb"}
        summary_want = {k: v for k, v in want["summary"].items() if k != "wandb"}
        assert close(summary_got, summary_want), run_id
        assert close(got["rows"], want["rows"]), run_id


def test_runs_that_cannot_share_a_model_train_one_by_one(tmp_path: Path) -> None:
    configs = [build_run_config(tiny_raw(variant=f"w{w}", model={"width": w}))
               for w in (8, 16)]
    assert population_key(configs[0]) != population_key(configs[1])
    together = train_runs([RunRequest(c) for c in configs], results_dir=tmp_path / "pop")
    for member, config in zip(together, configs, strict=True):
        assert_same_run(member.run_dir.path,
                        train_run(config, results_dir=tmp_path / "alone").run_dir.path)


def test_the_study_chooses_the_population_size_and_says_why() -> None:
    from harness.study.execute import decide_population
    from harness.study.plan import expand
    from harness.study.spec import StudyConfig

    def plan(base: dict[str, Any], seeds: int = 3) -> list[Any]:
        return expand(StudyConfig(name="k", base=base, seeds=seeds, design={
            "kind": "sweep", "parameter": "regularizers.dropout.p", "values": [0.1, 0.3],
            "baseline_value": 0.0}))

    specs = plan(tiny_raw())  # 9 runs of one shape
    chosen = decide_population(None, specs, workers=2)
    assert (chosen.size, chosen.workers) == (5, 2)  # ceil(9 / 2) per worker
    assert "populations of up to 5 runs" in chosen.lines[0]
    assert decide_population(None, specs, workers=16).workers == 9  # one run per population
    alone = decide_population(1, specs, workers=2)
    assert alone.size == 1 and "every run trains alone" in alone.lines[0]
    mixed = decide_population(None, plan(tiny_raw(regularizers={"l1": {}})), workers=2)
    assert mixed.size == 1
    assert mixed.lines == ["trains alone: regularizer l1 does not declare population support "
                           "(9 runs)"]
    # a model too big for a population on the CPU: a step's work caps the size
    params = 40 * 1024 + 1024 + 1024 * 1024 + 1024 + 1024 * 10 + 10
    wide = decide_population(None, plan(tiny_raw(model={"width": 1024}), seeds=10), workers=1)
    assert wide.size == 2**28 // (64 * params) == 3
    wider = decide_population(None, plan(tiny_raw(model={"width": 4096})), workers=1)
    assert wider.size == 1 and wider.lines[0].startswith("every run trains alone (a ")


def test_a_worker_takes_the_next_queued_runs_of_its_shape(tmp_path: Path) -> None:
    """gather pops runs while the next queued one shares the first one's key, and never
    more than the size; a run of another shape stays queued for the next population."""
    from harness.study.plan import expand
    from harness.study.populate import gather
    from harness.study.queue import RunQueue
    from harness.study.spec import StudyConfig

    specs = expand(StudyConfig(name="g", base=tiny_raw(), seeds=2, design={
        "kind": "one_at_a_time", "variants": {"p3": {"regularizers": {"dropout": {"p": 0.3}}},
                                              "wide": {"model": {"width": 32}},
                                              "p5": {"regularizers": {"dropout": {"p": 0.5}}}}}))
    queue = RunQueue.open(f"sqlite:///{tmp_path / 'q.db'}", "g")
    queue.distributions(specs)
    queue.enqueue_missing(specs, set())  # in plan order: variant by variant
    variants = []
    while (job := queue.pop()) is not None:
        crew, carried = gather(queue, job, 3)
        assert carried is None  # nobody else pops here
        variants.append([j.spec.variant for j in crew])
    assert variants == [["baseline", "baseline", "p3"], ["p3"], ["wide", "wide"],
                        ["p5", "p5"]]

    # queued with the runs of one shape next to each other, the same runs make full ones
    from harness.study.populate import queue_order

    assert [s.variant for s in queue_order(specs)] == [
        "baseline", "baseline", "p3", "p3", "p5", "p5", "wide", "wide"]


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
