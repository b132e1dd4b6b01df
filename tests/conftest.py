import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# Tests and CI read the shared datasets from HARNESS_DATA_DIR;
# default: the folder beside the checkout.
os.environ.setdefault("HARNESS_DATA_DIR", str(REPO.parent / "shared" / "datasets"))


@pytest.fixture
def data_dir() -> Path:
    return Path(os.environ["HARNESS_DATA_DIR"])
