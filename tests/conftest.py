import os
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]  # test_suite_settings runs small pytest sessions

REPO = Path(__file__).resolve().parents[1]
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
