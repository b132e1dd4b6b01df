"""Study-specific sections reach the report: double descent figures and statements."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import tiny_raw

from harness.report.build import build_report
from harness.study.execute import run_study
from harness.study.spec import StudyConfig


@pytest.mark.slow
def test_double_descent_section_and_figures_are_in_the_report(tmp_path: Path) -> None:
    study = StudyConfig(name="double_descent_tiny", seeds=1,
                        base=tiny_raw(model={"name": "mlp", "width": 4, "depth": 1},
                                      data={"label_noise": 0.2}),
                        design={"kind": "sweep", "parameter": "model.width",
                                "values": [2, 8, 32]})
    run_study(study, source="t", results_dir=tmp_path, workers=1)
    paths = build_report(tmp_path / "double_descent_tiny", index=False)
    html = paths.html.read_text()
    md = paths.markdown.read_text()
    dd_figs = sorted((tmp_path / "double_descent_tiny" / "figures" / "double_descent")
                     .glob("*.png"))
    assert dd_figs, "no double-descent figures drawn"
    assert "Double descent" in html and "second descent" in html
    for fig in dd_figs:  # every figure: a file for report.md, embedded in report.html
        assert f"figures/double_descent/{fig.name}" in md
    assert html.count("data:image/png;base64,") >= len(dd_figs) + 3
    assert md.count("## Double descent") == 1
