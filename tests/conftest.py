import os
from pathlib import Path
from typing import Any

import pytest

pytest_plugins = ["pytester"]  # test_suite_settings runs small pytest sessions

REPO = Path(__file__).resolve().parents[1]
TESTS = REPO / "tests"  # the helper modules (faults, browser, wandb_offline) live here
# Tests and CI read the shared datasets from HARNESS_DATA_DIR;
# default: the folder beside the checkout.
os.environ.setdefault("HARNESS_DATA_DIR", str(REPO.parent / "shared" / "datasets"))
# The suite sees the built-ins only: a plug-in a user installed (its entry points) must not
# register names the tests do not expect, in this process or any it starts. The tests of
# entry points turn them on for the processes they start.
os.environ["HARNESS_ENTRY_POINTS"] = "off"


@pytest.fixture
def data_dir() -> Path:
    return Path(os.environ["HARNESS_DATA_DIR"])


@pytest.fixture(autouse=True)
def isolated_wandb(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch):
    """W&B never sees a key, a terminal or the user's folders in tests."""
    root = tmp_path_factory.getbasetemp() / "wandb-home"
    for var in ("WANDB_CACHE_DIR", "WANDB_DATA_DIR", "WANDB_CONFIG_DIR", "WANDB_ARTIFACT_DIR"):
        monkeypatch.setenv(var, str(root / var.lower()))
    for var in ("WANDB_API_KEY", "WANDB_MODE", "WANDB_DIR", "HARNESS_WANDB_UNREACHABLE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setenv("NETRC", str(root / "no-netrc"))


def tiny_raw(**sections) -> dict:
    """A run config that trains in about a second: small MNIST-1D, small MLP, 2 epochs."""
    raw = {
        "data": {"name": "mnist1d", "num_samples": 600},
        "model": {"name": "mlp", "width": 16},
        "train": {"epochs": 2, "batch_size": 64, "threads": 1, "checkpoint_every_s": 0},
        "tracking": {"wandb": "disabled"},
    }
    for key, value in sections.items():
        if isinstance(value, dict) and isinstance(raw.get(key), dict):
            raw[key] = {**raw[key], **value}
        else:
            raw[key] = value
    return raw


# The design of the study most tests share: dropout p 0.1 and 0.5 against p = 0.
DROPOUT_SWEEP = {"kind": "sweep", "parameter": "regularizers.dropout.p", "values": [0.1, 0.5],
                 "baseline_value": 0.0}
SHARED_STUDY = "shared"  # the name of the one trained study (`trained_study`)


def tiny_study_raw(name: str = "t", *, seeds: Any = 2, design: dict | None = None,
                   description: str = "", base: dict | None = None,
                   **sections: Any) -> dict[str, Any]:
    """The one study builder, as the study file would hold it: `base` (default
    `tiny_raw(**sections)`), by default the dropout sweep, and any study key (claim,
    upstream, workers, kind: tune with its `tune` section, ...) given as a keyword."""
    study_keys = {k: sections.pop(k) for k in list(sections) if k in STUDY_KEYS}
    if study_keys.get("kind") != "tune":  # a tuning study: a search space, its own seeds
        study_keys.update(design=design or DROPOUT_SWEEP, seeds=seeds)
    return {"name": name, "description": description,
            "base": base if base is not None else tiny_raw(**sections), **study_keys}


def tiny_study(name: str = "t", **keys: Any) -> Any:
    """`tiny_study_raw` validated: a StudyConfig."""
    from harness.study.spec import StudyConfig

    return StudyConfig.model_validate(tiny_study_raw(name, **keys))


def study_file(folder: Path, name: str = "t", **keys: Any) -> Path:
    """`tiny_study_raw` written as folder/<name>.yaml, for the command line."""
    import yaml

    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(tiny_study_raw(name, **keys)))
    return path


STUDY_KEYS = ("claim", "compare", "upstream", "data_seeds", "analysis", "workers", "storage",
              "confirm", "kind", "tune", "launcher", "plugins")


def other_tests(name: str) -> Any:
    """The test module `name` of another folder (a scenario that reruns its test): its folder
    joins the import path first, as pytest's own import of it does."""
    import importlib
    import sys

    (path,) = TESTS.glob(f"*/{name}.py")
    if str(path.parent) not in sys.path:
        sys.path.insert(0, str(path.parent))
    return importlib.import_module(name)


def invoke_cli(args: list[str]) -> Any:
    """`harness ARGS` in this process (typer's runner), exceptions raised as they are."""
    from typer.testing import CliRunner

    from harness.cli import app

    return CliRunner().invoke(app, args, catch_exceptions=False)


def sweep_file(folder: Path, name: str = "tiny", seeds: int = 2, **extra: Any) -> Path:
    """A one-value dropout sweep as a study file, one worker: what the command-line tests run."""
    return study_file(folder, name, seeds=seeds, description="tiny dropout sweep",
                      design={"kind": "sweep", "parameter": "regularizers.dropout.p",
                              "values": [0.3]}, workers=1, **extra)


@pytest.fixture(scope="session")
def trained_study(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The one trained study the tests that only read one share: the dropout sweep (3
    variants x 2 seeds, 3 epochs) run through its queue by one worker with W&B offline, its
    report and results/index.html built and its W&B study run logged offline. A test that
    changes a study folder works on a copy (`shutil.copytree`)."""
    from harness.publish.study_run import log_study_run
    from harness.report.build import build_report
    from harness.study.execute import run_study

    base = tmp_path_factory.mktemp("shared-study")
    sdir = base / "results" / SHARED_STUDY
    with pytest.MonkeyPatch.context() as mp:
        isolate_wandb_env(mp, base)
        study = tiny_study(SHARED_STUDY, description="dropout on a tiny MLP",
                           train={"epochs": 3},
                           tracking={"wandb": "offline", "project": "harness-test"})
        run_study(study, source="shared.yaml", results_dir=base / "results", workers=1)
        build_report(sdir, index=True)
        log_study_run(sdir, mode="offline", project="harness-test", entity=None)
        import wandb

        wandb.teardown()
    return sdir


@pytest.fixture(scope="session")
def text_slice(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data folder holding the first 30,000 characters of Tiny Shakespeare (`data.data_dir`):
    a language-model run in seconds, where the whole text takes about a minute."""
    source = Path(os.environ["HARNESS_DATA_DIR"]) / "tinyshakespeare" / "input.txt"
    root = tmp_path_factory.mktemp("text_slice")
    (root / "tinyshakespeare").mkdir()
    (root / "tinyshakespeare" / "input.txt").write_text(source.read_text()[:30_000])
    return root


def unreadable_fashion_mnist(root: Path) -> Path:
    """A data folder whose Fashion-MNIST files are there but are not IDX files: a study
    starts (its files are found before anything is written) and each run fails reading them."""
    raw = root / "FashionMNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    for stem in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
                 "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"):
        (raw / stem).write_bytes(b"not an idx file")
    return root


TIMING = {"samples_per_sec", "seconds"}  # metrics.csv columns that differ between equal runs


def strip_timing(rows: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if k not in TIMING} for r in rows]


@pytest.fixture
def wandb_server(monkeypatch: pytest.MonkeyPatch):
    """A loopback port that accepts connections, as WANDB_BASE_URL: the harness's one-connect
    reachability probe passes (nothing here speaks W&B's API; nothing is sent)."""
    import socket

    with socket.create_server(("127.0.0.1", 0)) as server:
        url = f"http://127.0.0.1:{server.getsockname()[1]}"
        monkeypatch.setenv("WANDB_BASE_URL", url)
        yield url


def isolate_wandb_env(mp: pytest.MonkeyPatch, base: Path) -> None:
    """`isolated_wandb` for module-scoped fixtures: W&B's folders under base, no key."""
    for var in ("WANDB_CACHE_DIR", "WANDB_DATA_DIR", "WANDB_CONFIG_DIR", "TMPDIR"):
        (base / var).mkdir(exist_ok=True)
        mp.setenv(var, str(base / var))
    for var in ("WANDB_API_KEY", "WANDB_MODE", "WANDB_DIR", "WANDB_BASE_URL",
                "HARNESS_WANDB_UNREACHABLE"):
        mp.delenv(var, raising=False)
    mp.setenv("WANDB_SILENT", "true")
    mp.setenv("NETRC", str(base / "no-netrc"))


@pytest.fixture
def seed_and_one_thread():
    """Small tensors: one thread is fastest (and immune to a busy machine); seed 0."""
    import torch  # here, not at the top: collecting the suite stays free of torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    yield
    torch.set_num_threads(threads)
