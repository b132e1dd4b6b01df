"""Plug-ins from outside the repository: config-named modules, models by import path, the model
contract, entry points of an installed package, and the example package end to end."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pandas as pd
import pytest
import torch
from conftest import tiny_raw

import harness
from harness.config import build_run_config
from harness.errors import ConfigError, DataError

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "plugin"

PLUGIN_SOURCE = '''
import math
from torch import nn
from harness.models import MODELS, ModelInfo
from harness.data import DATASETS


@MODELS.register("{prefix}_net")
class Net(nn.Module):
    def __init__(self, *, input_shape, num_classes, hidden=8):
        super().__init__()
        self.body = nn.Sequential(nn.Flatten(), nn.Linear(math.prod(input_shape), hidden),
                                  nn.ReLU(), nn.Linear(hidden, num_classes))

    def forward(self, x):
        return self.body(x)


class WrongShape(Net):
    def forward(self, x):
        return self.body(x)[:, :3]


class Needs(Net):
    def __init__(self, *, input_shape, num_classes, hidden):  # no default: model.kwargs must say
        super().__init__(input_shape=input_shape, num_classes=num_classes, hidden=hidden)


class NoClasses(nn.Module):
    def __init__(self, *, input_shape):
        super().__init__()


@DATASETS.register("{prefix}_broken_data")
def broken(cfg, data_dir, download):
    return {{"x": [1, 2, 3]}}
'''


@pytest.fixture(autouse=True)
def registries_restored():
    """Every test here registers plug-ins; take them out again so other test files see only
    the built-ins (they iterate over the registries)."""
    from harness.data import DATASETS
    from harness.models import MODELS
    from harness.regularizers import REGULARIZERS

    saved = [(r, dict(r._entries)) for r in (MODELS, DATASETS, REGULARIZERS)]
    yield
    for registry, entries in saved:
        registry._entries.clear()
        registry._entries.update(entries)
    for name in [m for m in sys.modules if m.endswith("_plug") or m.startswith("harness_example")]:
        del sys.modules[name]


def plugin_raw(**sections) -> dict:
    """tiny_raw without model.width (a plug-in model takes no harness options by default)."""
    raw = tiny_raw(**sections)
    raw["model"].pop("width", None)
    return raw


@pytest.fixture
def plugin_module(tmp_path, monkeypatch, request):
    """A fresh importable module (unique name per test, so registries never collide)."""
    prefix = f"p{abs(hash(request.node.name)) % 10**8}"
    (tmp_path / f"{prefix}_plug.py").write_text(PLUGIN_SOURCE.format(prefix=prefix))
    monkeypatch.syspath_prepend(str(tmp_path))
    return prefix


def test_config_plugins_register_a_model_and_did_you_mean_lists_it(plugin_module):
    p = plugin_module
    cfg = build_run_config(plugin_raw(plugins=[f"{p}_plug"], model={"name": f"{p}_net"}))
    assert cfg.model.name == f"{p}_net" and cfg.plugins == [f"{p}_plug"]
    with pytest.raises(ConfigError) as e:
        build_run_config(plugin_raw(model={"name": f"{p}_nett"}))
    assert f"did you mean '{p}_net'" in str(e.value) and "\n" not in str(e.value)


def test_plugins_key_leaves_run_ids_of_existing_configs_unchanged(plugin_module):
    plain = build_run_config(tiny_raw())
    with_plugins = build_run_config(tiny_raw(plugins=[f"{plugin_module}_plug"]))
    assert plain.run_id() == with_plugins.run_id()
    assert "plugins" not in plain.identity() and "kwargs" not in plain.identity()["model"]


def test_unimportable_plugin_is_one_line():
    with pytest.raises(ConfigError, match=r"plugins\[0\] = 'no_such_mod_xyz': import failed: "
                                          r"ModuleNotFoundError"):
        build_run_config(tiny_raw(plugins=["no_such_mod_xyz"]))


def test_model_by_import_path_with_kwargs_trains(plugin_module, tmp_path):
    raw = plugin_raw(model={"name": f"{plugin_module}_plug:Net", "kwargs": {"hidden": 5}})
    out = harness.run(raw, results_dir=tmp_path / "results")
    assert out.summary["status"] == "completed" and len(out.metrics) == 2
    # params of Linear(40, 5) + Linear(5, 10): the kwarg reached the constructor
    assert out.summary["params"] == 40 * 5 + 5 + 5 * 10 + 10
    # the API's tables agree with the run's own files
    assert out.summary["best_val_acc"] == pytest.approx(out.metrics["val_acc"].max())


@pytest.mark.parametrize("model,kwargs,regs,match", [
    ("{p}_plug:Net", {"hiden": 5}, {}, r"model.kwargs: .* takes no argument 'hiden'; "
                                       r"accepted: hidden"),
    ("{p}_plug:Net", {"width": 5}, {}, r"model.kwargs.width: 'width' is a harness option"),
    ("{p}_plug:NoClasses", {}, {}, r"must take keyword arguments input_shape and num_classes; "
                                   r"missing num_classes"),
    ("{p}_plug:Missing", {}, {}, r"has no 'Missing'"),
    ("{p}_net", {}, {"dropout": {"p": 0.1}}, r"regularizers.dropout: dropout is only for .*"
                                             r"does not take it .*info.options"),
    ("{p}_net", {}, {"drop_path": {"rate": 0.1}}, r"regularizers.drop_path: needs a model "
                                                  r"with residual blocks"),
])
def test_contract_violations_are_refused_when_the_config_is_read(plugin_module, model, kwargs,
                                                                 regs, match):
    p = plugin_module
    raw = plugin_raw(plugins=[f"{p}_plug"], model={"name": model.format(p=p), "kwargs": kwargs},
                     regularizers=regs)
    with pytest.raises(ConfigError, match=match) as e:
        build_run_config(raw)
    assert "\n" not in str(e.value)


def test_harness_option_the_plugin_does_not_declare(plugin_module):
    raw = plugin_raw(plugins=[f"{plugin_module}_plug"], model={"name": f"{plugin_module}_net"})
    raw["model"]["width"] = 8
    with pytest.raises(ConfigError, match=r"model: width is only for .*info.options"):
        build_run_config(raw)


def test_wrong_output_shape_is_caught_by_the_dry_forward(plugin_module, tmp_path):
    raw = plugin_raw(model={"name": f"{plugin_module}_plug:WrongShape"})
    with pytest.raises(ConfigError) as e:
        harness.run(raw, results_dir=tmp_path / "results")
    assert str(e.value) == (
        f"model {plugin_module}_plug:WrongShape: forward on a batch of shape (2, 1, 40) returned "
        "shape (2, 3); expected float logits of shape (2, 10) = [batch, num_classes] "
        "(see harness/models/contract.py)")
    assert not list((tmp_path / "results").rglob("summary.json"))  # nothing trained


def test_plugin_dataset_must_return_raw_data(plugin_module, tmp_path):
    raw = tiny_raw(plugins=[f"{plugin_module}_plug"], data={"name": f"{plugin_module}_broken_data"})
    with pytest.raises(DataError, match="the loader returned dict; it must return harness.data"):
        harness.run(raw, results_dir=tmp_path / "results")


def test_example_regularizer_adds_the_mean_squared_logit(monkeypatch):
    monkeypatch.syspath_prepend(str(EXAMPLE))
    from harness_example.regularizers import LogitPenalty

    logits = torch.tensor([[1.0, -2.0], [0.5, 3.0]])
    reg = LogitPenalty(LogitPenalty.Params(value=0.1), ctx=None)
    expected = 1.5 + 0.1 * (1 + 4 + 0.25 + 9) / 4
    assert reg.loss(None, torch.tensor(1.5), None, logits).item() == pytest.approx(expected)


@pytest.mark.slow
def test_study_level_plugins_reach_the_workers_from_the_working_directory(tmp_path,
                                                                          monkeypatch):
    """`plugins:` at the top of a study, a module beside it (not installed): the coordinator
    and its worker process both import it from the working directory; a model by import
    path with a required argument in model.kwargs."""
    (tmp_path / "beside_plug.py").write_text(PLUGIN_SOURCE.format(prefix="beside"))
    (tmp_path / "beside.yaml").write_text(textwrap.dedent("""\
        plugins: [beside_plug]
        base:
          data: {name: mnist1d, num_samples: 600}
          model: {name: "beside_plug:Needs", kwargs: {hidden: 4}}
          train: {epochs: 1, batch_size: 64, threads: 1}
          tracking: {wandb: disabled}
        design: {kind: sweep, parameter: regularizers.label_smoothing.epsilon, values: [0.1]}
        seeds: 1
        """))
    monkeypatch.chdir(tmp_path)
    study = harness.ablation("beside.yaml", workers=1, results_dir="results", report=False)
    assert sorted(study.runs["status"]) == ["completed", "completed"]
    assert set(study.runs["params"]) == {40 * 4 + 4 + 4 * 10 + 10}


# ----------------------------------------------------------------------------- installed


def can_build_wheels() -> bool:
    """setuptools >= 70.1 builds wheels itself; older ones need the `wheel` package."""
    if importlib.util.find_spec("setuptools") is None:
        return False
    import setuptools

    major, minor = (int(p) for p in setuptools.__version__.split(".")[:2])
    return (major, minor) >= (70, 1) or importlib.util.find_spec("wheel") is not None


def install_example(target: Path, work: Path) -> None:
    """pip-install a copy of examples/plugin into `target` (a copy: pip writes build/ beside
    the sources). Without setuptools (no network to fetch it) write the same dist-info that
    pip would: the entry points are what harness reads."""
    src = work / "plugin-src"
    shutil.copytree(EXAMPLE, src, ignore=shutil.ignore_patterns("build", "*.egg-info"))
    if can_build_wheels():
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps",
                        "--no-build-isolation", "--no-index", "--target", str(target), str(src)],
                       check=True, timeout=300)
        return
    shutil.copytree(src / "harness_example", target / "harness_example")
    info = target / "harness_example_plugin-0.1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: harness-example-plugin\n"
                                   "Version: 0.1.0\n")
    (info / "entry_points.txt").write_text(textwrap.dedent("""\
        [harness.models]
        tiny_mlp = harness_example.models
        [harness.datasets]
        blobs = harness_example.data
        [harness.regularizers]
        logit_penalty = harness_example.regularizers
        """))


def harness_cli(args: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "harness.cli", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=900)


@pytest.mark.slow
def test_example_plugin_package_runs_a_study_from_outside_the_repository(tmp_path):
    target, work = tmp_path / "site", tmp_path / "elsewhere"
    work.mkdir()
    install_example(target, tmp_path)
    shutil.copy(EXAMPLE / "studies" / "example_plugin.yaml", work / "my_study.yaml")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(target), str(REPO)]),
           "OMP_NUM_THREADS": "1"}

    listing = harness_cli(["datasets", "--json"], work, env)
    assert listing.returncode == 0, listing.stderr
    rows = {r["name"]: r for r in json.loads(listing.stdout)["datasets"]}
    assert rows["blobs"]["source"] == "harness_example.data (harness-example-plugin)"
    assert rows["blobs"]["kind"] == "signal" and rows["mnist1d"]["source"] == "built-in"

    done = harness_cli(["ablation", "my_study.yaml"], work, env)
    assert done.returncode == 0, done.stdout + done.stderr
    sdir = work / "results" / "my_study"
    assert (sdir / "report.html").is_file() and (sdir / "report.md").is_file()
    runs = pd.read_csv(sdir / "runs.csv")
    assert sorted(runs["status"]) == ["completed"] * 3
    study = harness.load_study(sdir)  # here, where the plug-in is not installed
    assert sorted(study.runs["variant"]) == sorted(runs["variant"]) and study.left_out.empty
    assert len(study.metrics) == 3 * 2 and set(study.metrics["epoch"]) == {1, 2}
    configs = [json.loads(p.read_text()) for p in sdir.glob("runs/*/config.json")]
    assert {c["model"]["name"] for c in configs} == {"tiny_mlp"}
    assert {c["data"]["name"] for c in configs} == {"blobs"}
    assert sorted(str(c["regularizers"].get("logit_penalty")) for c in configs) == \
        ["None", "{'value': 0.01}", "{'value': 0.1}"]
    # the summary's mean per variant is the mean of its runs (one seed: the run's value)
    by_run = runs.set_index("variant")["best_test_acc"]
    for _, row in study.summary.iterrows():
        assert row["best_test_acc_mean"] == pytest.approx(by_run[row["variant"]])


@pytest.mark.slow
def test_broken_entry_point_is_reported_where_it_matters(tmp_path):
    site = tmp_path / "site"
    (site / "broken_plug").mkdir(parents=True)
    (site / "broken_plug" / "__init__.py").write_text("raise RuntimeError('bad plug-in')\n")
    info = site / "broken_plug-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: broken-plug\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[harness.models]\nbroken = broken_plug\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), str(REPO)])}
    ok = harness_cli(["datasets"], tmp_path, env)  # models not asked for: unaffected
    assert ok.returncode == 0 and "mnist1d" in ok.stdout
    bad = harness_cli(["run", "--model", "brokn", "--epochs", "1"], tmp_path, env)
    assert bad.returncode == 2
    assert ("plug-in 'broken' (broken-plug, broken_plug) failed to load: RuntimeError: "
            "bad plug-in") in bad.stdout + bad.stderr


# ------------------------------------------------------------- a regularizer in one file

TOY_REGULARIZER = '''
"""A toy regularizer in one file: scales the loss and counts the training batches."""
from typing import ClassVar

from pydantic import Field

from harness.regularizers import Params, Phase, Regularizer, Requires, register


class ToyParams(Params):
    scale: float = Field(1.0, gt=0.0)


@register
class Toy(Regularizer[ToyParams]):
    name = "{name}"
    phase = Phase.AUGMENT
    requires: ClassVar[Requires] = Requires(data=frozenset({{"signal"}}),
                                            excludes=frozenset({{"label_smoothing"}}))

    def __init__(self, params, ctx):
        super().__init__(params, ctx)
        self.batches = 0

    def transform_batch(self, state, batch):
        self.batches += 1
        return batch

    def loss(self, state, loss, batch, logits):
        return loss * self.params.scale

    def summary(self):
        return {{"toy_batches": self.batches, "toy_scale": self.params.scale}}

    def state_dict(self):
        return {{"batches": self.batches}}

    def load_state_dict(self, state):
        self.batches = state.get("batches", 0)
'''


def test_a_regularizer_written_in_one_file_of_a_temp_package_trains(tmp_path, monkeypatch,
                                                                    request):
    """README's promise: one file with an `@register` class, named in `plugins:`, is a
    regularizer: typed params, `requires` checked with the built-ins, hooks called."""
    from harness.data import load_data
    from harness.regularizers import REGULARIZERS
    from harness.train.build import steps_per_epoch

    pkg = f"t{abs(hash(request.node.name)) % 10**8}_pkg_plug"
    name = f"{pkg}_toy"
    (tmp_path / pkg).mkdir()
    (tmp_path / pkg / "__init__.py").write_text("")
    (tmp_path / pkg / "toy_plug.py").write_text(TOY_REGULARIZER.format(name=name))
    monkeypatch.syspath_prepend(str(tmp_path))
    plugins = [f"{pkg}.toy_plug"]

    raw = tiny_raw(plugins=plugins, regularizers={name: {"scale": 2.0}})
    result = harness.run(raw, results_dir=tmp_path / "results")
    cls = REGULARIZERS.get(name)
    assert cls.Params.__name__ == "ToyParams"  # taken from Regularizer[ToyParams]
    config = build_run_config(raw)
    steps = steps_per_epoch(len(load_data(config.data).train.y), 64)
    assert result.summary["status"] == "completed"
    assert result.summary["toy_batches"] == 2 * steps and result.summary["toy_scale"] == 2.0

    # the loss hook acted: Adam is invariant to the loss scale, so the run follows the same
    # weights and its logged training loss is twice that of the run without the plug-in
    base = harness.run(tiny_raw(), results_dir=tmp_path / "results")
    scaled, plain = result.metrics["train_loss"], base.metrics["train_loss"]
    assert len(scaled) == len(plain) == 2
    assert list(scaled) == pytest.approx([2 * v for v in plain], rel=1e-3)

    with pytest.raises(ConfigError, match=rf"regularizers.{name}: cannot be combined with "
                                          r"regularizers.label_smoothing; keep one"):
        build_run_config(tiny_raw(plugins=plugins,
                                  regularizers={name: {}, "label_smoothing": {}}))
    with pytest.raises(ConfigError, match=rf"regularizers.{name}: defined for 1-D signals; "
                                          r"dataset mnist holds images"):
        build_run_config(tiny_raw(plugins=plugins, data={"name": "mnist"},
                                  regularizers={name: {}}))
    with pytest.raises(ConfigError, match=rf"regularizers.{name}.scale = 0"):
        build_run_config(tiny_raw(plugins=plugins, regularizers={name: {"scale": 0}}))
