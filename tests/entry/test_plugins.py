"""Plug-ins from outside the repository: config-named modules, models by import path, the model
contract, entry points of an installed package, and the example package end to end."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pandas as pd
import pytest
import torch
from conftest import REPO, tiny_raw

import harness
from harness.config import build_run_config
from harness.errors import ConfigError, DataError

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
    for name in [m for m in sys.modules if m.endswith("_plug") or m.startswith("my_project")]:
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


def test_the_plugins_key_is_not_part_of_a_runs_identity(plugin_module):
    plain = build_run_config(tiny_raw())
    with_plugins = build_run_config(tiny_raw(plugins=[f"{plugin_module}_plug"]))
    assert plain.run_id() == with_plugins.run_id()
    assert "plugins" not in plain.identity()


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
    from my_project.harness_plugins import LogitPenalty

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


DOCS = REPO / "docs" / "extending.md"
SECTION = "## Bring your own model, dataset and regularizer"


def docs_section() -> tuple[dict[str, str], list[str]]:
    """The plug-in section of the docs as written: its files (code blocks whose first line
    is `# <path>`) and its shell commands (the bash block, comments cut)."""
    text = DOCS.read_text().split(SECTION, 1)[1].split("\n## ", 1)[0]
    files, commands = {}, []
    for lang, body in re.findall(r"```(\w+)\n(.*?)```", text, flags=re.S):
        first, _, rest = body.partition("\n")
        if lang == "bash":
            commands += [line.split("#")[0].strip() for line in body.splitlines()
                         if line.split("#")[0].strip()]
        elif first.startswith("# ") and lang in ("python", "toml", "yaml"):
            files[first[2:].strip()] = rest
    return files, commands


def test_the_docs_package_is_examples_plugin_file_for_file():
    files, commands = docs_section()
    assert sorted(files) == ["my_project/my_project/__init__.py",
                             "my_project/my_project/harness_plugins.py",
                             "my_project/pyproject.toml", "my_study.yaml"]
    for path, text in files.items():
        assert (EXAMPLE / path.removeprefix("my_project/")).read_text() == text, path
    assert commands == ["pip install -e ./my_project", "harness datasets",
                        "harness ablation my_study.yaml"]


def fresh_venv(root: Path) -> Path:
    """A new virtual environment that sees the project's installed packages (torch, wandb,
    optuna, ...: a .pth line naming this interpreter's site-packages) instead of installing
    them again: installing torch, even from this machine's wheels, takes minutes and
    gigabytes. Only plain paths are added, so the project's own editable harness is not."""
    import sysconfig

    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(root)], check=True,
                   timeout=120)
    site = next((root / "lib").glob("python*/site-packages"))
    paths = dict.fromkeys([sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]])
    (site / "project_packages.pth").write_text("".join(f"{p}\n" for p in paths))
    return root / "bin"


def pip_install(bin_dir: Path, *args: str, cwd: Path | None = None) -> None:
    """pip install without network (this machine's setuptools, no index)."""
    subprocess.run([str(bin_dir / "python"), "-m", "pip", "install", "-q", "--no-index",
                    "--no-build-isolation", *args], check=True, cwd=cwd, timeout=600)


@pytest.mark.slow
def test_the_docs_plugin_section_works_as_written(tmp_path):
    """docs/extending.md, followed exactly, from a folder outside the repository in a fresh
    virtual environment: its files written as shown, harness installed from this checkout
    (a copy: pip writes build/ beside the sources), then its commands, `pip` and `harness`
    being the fresh environment's (pip offline here: --no-index --no-build-isolation)."""
    pytest.importorskip("setuptools")
    files, commands = docs_section()
    work = tmp_path / "elsewhere"
    for path, text in files.items():
        (work / path).parent.mkdir(parents=True, exist_ok=True)
        (work / path).write_text(text)
    bin_dir = fresh_venv(tmp_path / "venv")
    source = tmp_path / "harness-src"
    shutil.copytree(REPO / "harness", source / "harness",
                    ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, source / name)
    pip_install(bin_dir, "--no-deps", str(source))
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(HARNESS_ENTRY_POINTS="on", OMP_NUM_THREADS="1")
    outputs = []
    for command in commands:
        program, *args = command.split()
        if program == "pip":
            pip_install(bin_dir, *args[1:], cwd=work)
            continue
        done = subprocess.run([str(bin_dir / program), *args], cwd=work, env=env,
                              capture_output=True, text=True, timeout=900)
        assert done.returncode == 0, (command, done.stdout + done.stderr)
        outputs.append(done.stdout + done.stderr)

    listing = next(o for o in outputs if "blobs" in o)
    assert re.search(r"^  blobs\s+signal\s+my_project\.harness_plugins \(my-project\)", listing,
                     flags=re.M), listing
    sdir = work / "results" / "my_study"
    assert (sdir / "report.html").is_file() and (sdir / "report.md").is_file()
    runs = pd.read_csv(sdir / "runs.csv")
    assert sorted(runs["status"]) == ["completed"] * 6  # 3 variants x 2 seeds
    study = harness.load_study(sdir)  # here, where the plug-in is not installed
    assert study.left_out.empty and len(study.metrics) == 6 * 3
    configs = [json.loads(p.read_text()) for p in sdir.glob("runs/*/config.json")]
    assert {(c["model"]["name"], c["data"]["name"]) for c in configs} == {("tiny_mlp", "blobs")}
    assert sorted(str(c["regularizers"].get("logit_penalty")) for c in configs) == \
        ["None", "None", "{'value': 0.01}", "{'value': 0.01}", "{'value': 0.1}", "{'value': 0.1}"]
    by_variant = runs.groupby("variant")["best_test_acc"].mean()
    for _, row in study.summary.iterrows():
        assert row["best_test_acc_mean"] == pytest.approx(by_variant[row["variant"]])
    # 16 * 16 + 16 + 16 * 4 + 4 parameters: the plug-in model was counted (small: a worker
    # per core), where it used to fall back to "larger models" and half the throughput
    assert set(runs["params"]) == {340}
    assert "small models (<= 340 parameters) run one per core" in outputs[-1]


def harness_cli(args: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    """`harness ARGS` with installed plug-ins loaded (the suite turns them off)."""
    return subprocess.run([sys.executable, "-m", "harness.cli", *args], cwd=cwd,
                          env={**env, "HARNESS_ENTRY_POINTS": "on"}, capture_output=True,
                          text=True, timeout=900)


def fake_distribution(site: Path, group: str, module: str, source: str) -> None:
    """An installed package as pip leaves it: a module and a dist-info with one entry point."""
    (site / f"{module}.py").write_text(source)
    info = site / f"{module}-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {module}\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(f"[{group}]\nclash = {module}\n")


def test_the_suite_loads_no_installed_plugin(tmp_path, monkeypatch):
    """A plug-in installed where the tests run (here: one registering a regularizer under a
    built-in's name, which broke 8 tests) is not loaded: HARNESS_ENTRY_POINTS=off, set by
    conftest.py for this process and every process a test starts."""
    from harness import plugins

    module = f"clash_plug_{os.getpid()}"
    fake_distribution(tmp_path, "harness.regularizers", module,
                      "raise RuntimeError('an installed plug-in was imported')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(plugins, "_loaded", {})
    assert os.environ["HARNESS_ENTRY_POINTS"] == "off"
    assert plugins.load_entry_points("regularizer") == [] and module not in sys.modules
    monkeypatch.setenv("HARNESS_ENTRY_POINTS", "on")  # the same package, seen when on
    monkeypatch.setattr(plugins, "_loaded", {})
    (load,) = plugins.load_entry_points("regularizer")
    assert (load.name, load.dist) == ("clash", module)
    assert load.error == "RuntimeError: an installed plug-in was imported"


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


# ------------------------------------------------------------------ worker choice, datasets


def test_a_plugin_model_is_counted_for_the_worker_choice(plugin_module, tmp_path):
    """A plug-in model on a plug-in dataset (whose shape only loading tells): its parameters
    are counted, so a small one gets a single-threaded worker per core; it used to get the
    'larger models' choice: half the workers."""
    from harness.study.execute import choose_workers
    from harness.study.plan import expand
    from harness.study.spec import StudyConfig

    p = plugin_module
    (tmp_path / f"{p}_data_plug.py").write_text(textwrap.dedent(f"""\
        import numpy as np
        from harness.data import DATASETS, RawData

        @DATASETS.register("{p}_signals")
        def load(cfg, data_dir, download):
            y = np.arange(300) % 3
            x = np.ones((300, 1, 12), dtype=np.float32) * y[:, None, None]
            return RawData(kind="signal", x_train=x[:200], y_train=y[:200], x_test=x[200:],
                           y_test=y[200:], num_classes=3, classes=["a", "b", "c"], source="t")
        """))
    study = StudyConfig.model_validate({
        "name": "w", "plugins": [f"{p}_plug", f"{p}_data_plug"], "seeds": 2,
        "base": plugin_raw(data={"name": f"{p}_signals"}, model={"name": f"{p}_net"}),
        "design": {"kind": "sweep", "parameter": "model.kwargs.hidden", "values": [4, 6]}})
    specs = expand(study, "w.yaml")
    workers, why = choose_workers(specs, len(specs))
    largest = 12 * 8 + 8 + 8 * 3 + 3  # Linear(12, hidden=8) + Linear(8, 3): the default hidden
    assert why.endswith(f"small models (<= {largest:,} parameters) run one per core")
    assert workers == min(os.cpu_count() or 1, len(specs))


def test_datasets_lists_an_installed_plugin_that_failed_to_load(tmp_path, monkeypatch):
    """It used to leave the plug-in out without a word (only `harness run` said why)."""
    from typer.testing import CliRunner

    from harness import plugins
    from harness.cli import app
    from harness.data import DATASETS

    module = f"broken_data_plug_{os.getpid()}"
    fake_distribution(tmp_path, "harness.datasets", module,
                      "raise ImportError('No module named my_project')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("HARNESS_ENTRY_POINTS", "on")
    monkeypatch.setattr(plugins, "_loaded", {})
    monkeypatch.setattr(DATASETS, "_discovered", False)
    out = CliRunner().invoke(app, ["datasets", "--json"])
    assert out.exit_code == 0, out.output
    line = (f"plug-in 'clash' ({module}, {module}) failed to load: ImportError: No module "
            "named my_project")
    assert f"warning: {line}" in " ".join(out.stderr.split())
    assert json.loads(out.stdout)["failed_plugins"] == [line]


# ----------------------------------------------------------------------------- timm


def timm_run(**model: object) -> dict:
    """tiny_raw on digits (8x8 images, bundled with scikit-learn) with a small timm model."""
    return plugin_raw(data={"name": "digits"}, model={"name": "timm:test_resnet", **model})


@pytest.mark.slow
def test_a_timm_model_is_counted_on_the_meta_device():
    """The adapter maps the data's (C, H, W) and class count onto timm's arguments; the
    count is timm's own model's, built with those arguments by hand."""
    timm = pytest.importorskip("timm")
    from harness.train.preflight import parameter_count

    cfg = build_run_config(timm_run())
    reference = timm.create_model("test_resnet", num_classes=10, in_chans=1, pretrained=False)
    assert parameter_count(cfg) == sum(p.numel() for p in reference.parameters())
    vit = build_run_config(timm_run(name="timm:test_vit", patch_size=4))
    reference = timm.create_model("test_vit", num_classes=10, in_chans=1, img_size=(8, 8),
                                  patch_size=4, pretrained=False)
    assert parameter_count(vit) == sum(p.numel() for p in reference.parameters())


@pytest.mark.parametrize(("model", "data", "match"), [
    ({"name": "timm:test_resnett"}, "digits",
     r"timm has no model 'test_resnett' \(did you mean 'timm:test_resnet'"),
    ({"kwargs": {"num_classes": 3}}, "digits",
     r"model.kwargs.num_classes: set by the harness from the data"),
    ({"kwargs": {"in_chans": 3}}, "digits",
     r"model.kwargs.in_chans: set by the harness for timm:test_resnet"),
    ({"kwargs": {"drop_rat": 0.1}}, "digits",
     r"model timm:test_resnet: building it for input_shape \(1, 8, 8\) and num_classes 10 "
     r"failed: TypeError: .*unexpected keyword argument 'drop_rat'"),
    ({}, "mnist1d", r"model.name = 'timm:test_resnet': takes images; dataset mnist1d holds "
                    r"1-D signals"),
])
def test_timm_mistakes_are_one_line_before_anything_is_written(model, data, match):
    pytest.importorskip("timm")
    from harness.train.preflight import check_model_sizes

    with pytest.raises(ConfigError, match=match) as e:
        raw = timm_run(**model)
        raw["data"] = {"name": data}
        check_model_sizes([build_run_config(raw)], "x.yaml")
    assert "\n" not in str(e.value)


@pytest.mark.slow
def test_a_timm_model_trains_with_a_one_line_spec(tmp_path):
    timm = pytest.importorskip("timm")
    out = harness.run(timm_run(), results_dir=tmp_path / "results",
                      regularizers__dropout__p=0.2)  # reaches timm as drop_rate
    assert out.summary["status"] == "completed" and len(out.metrics) == 2
    reference = timm.create_model("test_resnet", num_classes=10, in_chans=1, drop_rate=0.2)
    assert out.summary["params"] == sum(p.numel() for p in reference.parameters())
    assert out.summary["best_val_acc"] == pytest.approx(out.metrics["val_acc"].max())
