"""results/index.html reads each study's headline, run counts and generation date from the
report itself, so a copied or committed report (no runs/ folder, new mtime) still lists right."""

from __future__ import annotations

import os
from pathlib import Path

from harness.report import build_index


def test_index_uses_what_the_report_stored(tmp_path: Path) -> None:
    study = tmp_path / "example"
    study.mkdir()
    (study / "report.html").write_text(
        '<head><meta name="harness-headline" content="Dropout p = 0.5 raises test accuracy '
        'by 5.5 points &amp; more.">\n<meta name="harness-generated" content="2020-01-02 03:04 '
        'UTC">\n<meta name="harness-runs" content="12">\n'
        '<meta name="harness-included" content="11"></head>')
    os.utime(study / "report.html", (1.7e9, 1.7e9))  # an mtime unrelated to the report's date
    (tmp_path / "queued" / "runs" / "a-s0-x").mkdir(parents=True)  # a study without a report
    html = build_index(tmp_path).read_text()
    assert "Dropout p = 0.5 raises test accuracy by 5.5 points &amp; more." in html
    assert "12 runs (11 in the means)" in html
    assert "report generated 2020-01-02 03:04 UTC" in html
    assert "2023-11" not in html  # 1.7e9 s is November 2023: the mtime is never shown
    assert "queued" in html and "no report yet" in html and "1 run folder(s)" in html
