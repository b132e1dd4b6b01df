"""The committed examples are what the committed code makes of the committed runs: rebuilt
from results/example*/runs, the report's text equals the committed one (but for the time it
was generated). `python -m harness.report.examples` regenerates them."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from conftest import REPO

from harness.report.build import build_report
from harness.report.examples import EXAMPLE_FILES, EXAMPLES

ROOT = REPO
GENERATED = re.compile(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2} UTC")


def text(path: Path) -> str:
    return GENERATED.sub("<generated>", path.read_text())


@pytest.mark.slow
@pytest.mark.parametrize("folder", list(EXAMPLES))
def test_the_committed_example_reproduces_from_its_runs(folder: str, tmp_path: Path) -> None:
    src = ROOT / "results" / folder
    runs = sorted((src / "runs").iterdir())
    assert runs, f"{src}: no committed runs"
    for run in runs:
        assert {f.name for f in run.iterdir()} <= set(EXAMPLE_FILES), run
    dst = tmp_path / folder
    shutil.copytree(src / "runs", dst / "runs")
    shutil.copy2(src / "study.json", dst / "study.json")
    build_report(dst, index=False)
    for name in ("report.md", "summary.csv", "claims.json"):
        assert text(dst / name) == text(src / name), \
            f"{folder}/{name} differs from a rebuild: run python -m harness.report.examples"
    for ref in re.findall(r"!\[[^\]]*\]\(([^)]+)\)", (src / "report.md").read_text()):
        assert (src / ref).is_file(), ref
