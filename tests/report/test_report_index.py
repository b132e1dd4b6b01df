"""results/index.html reads each study's headline, run counts and generation date from the
report itself, so a copied or committed report (no runs/ folder, new mtime) still lists right."""

from __future__ import annotations

import os
from pathlib import Path

from constructed import quick_figures

from harness.report import build_index

assert quick_figures  # a fixture, imported for pytest to find


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


def test_the_atlas_draws_every_finished_studys_claims(tmp_path: Path, quick_figures) -> None:
    """results/index.html opens with one forest plot of every study's claims, and one line
    per claim giving the effect, its CI, the margin, the verdict and the regime."""
    import json

    from test_report_findings import CLAIM, GAINS, VAL, calibration_study, sweep

    from harness.report import atlas, build_report

    sweep(tmp_path / "dropout", GAINS, VAL, [CLAIM])
    calibration_study(tmp_path / "label_smoothing")
    build_report(tmp_path / "dropout", index=False)
    build_report(tmp_path / "label_smoothing", index=False)
    index = build_index(tmp_path).read_text()
    assert index.index('id="atlas"') < index.index("Every study")
    assert index.count('<img src="data:image/png;base64,') == 1
    # fixed seeds and a choice among 3: Bonferroni, so the interval is at 1 - 0.05 / 3
    assert ("<strong>dropout</strong>: dropout.p=0.5 vs baseline: +6.1 [−2.8, +15.0] pts "
            "(98.3% CI) in test_acc (margin ±1.0 pts): undecided, detected before adjustment "
            "only. Regime: mlp (width 256, depth 2) on mnist1d, 1000 training samples, 10% "
            "label noise, 8 epochs.") in index
    assert "(best: dropout.p=0.5, chosen on validation)" in index
    # a claim that expects a fall (ECE down) is turned: right is always the claimed way
    record = json.loads((tmp_path / "label_smoothing" / "claims.json").read_text())
    [row] = atlas.entries("label_smoothing", record)
    assert row.diff > 0 and row.sign == -1 and row.scaled(row.diff) == -row.diff / row.margin
    assert "label_smoothing</strong>: label_smoothing.epsilon=0.3 vs baseline" in index
