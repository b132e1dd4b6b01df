"""The study record: only trusted, planned, finished runs reach a mean; every other run is
listed with why. Reproduces each way the old reader could be silently wrong."""

from __future__ import annotations

import json
import math
import os
import shutil
from pathlib import Path

import pandas as pd
import pytest
from conftest import tiny_raw, tiny_study, unreadable_fashion_mnist
from scipy import stats as sps

from harness.record import StudyRecord
from harness.report.build import build_report
from harness.study.execute import run_study
from harness.study.spec import StudyConfig

UNREADABLE = "not an IDX file"  # why each run of the unreadable_data variant fails


def _study(seeds: int, data_dir: Path, **extra) -> StudyConfig:
    return tiny_study("trust", seeds=seeds, train={"epochs": 3}, design={
        "kind": "one_at_a_time", "variants": {
            "dropout": {"regularizers": {"dropout": {"p": 0.3}}},
            "unreadable_data": {"data": {"name": "fashion_mnist", "data_dir": str(data_dir)},
                                "model": {"name": "mlp"}}}}, **extra)


@pytest.fixture(scope="module")
def damaged(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A study run with 3 seeds, then re-planned with 2 (seed 2 becomes stale), one run's
    metrics truncated, a foreign run folder linked in, and a variant that fails at run time."""
    root = tmp_path_factory.mktemp("record")
    bad = unreadable_fashion_mnist(root / "unreadable")
    run_study(_study(3, bad), source="t", results_dir=root, workers=1)
    out = run_study(_study(2, bad), source="t", results_dir=root, workers=1)
    sdir = root / "trust"
    runs = sdir / "runs"
    truncated = next(runs.glob("dropout-s1-*"))
    metrics = pd.read_csv(truncated / "metrics.csv")
    metrics.head(1).to_csv(truncated / "metrics.csv", index=False)
    other = root / "elsewhere"
    run_study(StudyConfig(name="elsewhere", seeds=1, base=tiny_raw(),
                          design={"kind": "sweep", "parameter": "model.width", "values": [8]}),
              source="t", results_dir=root, workers=1)
    foreign = next((other / "runs").glob("baseline-s0-*"))
    os.symlink(foreign, runs / f"baseline-s5-{foreign.name.rsplit('-', 1)[1]}")
    paths = build_report(sdir, index=False)
    return {"sdir": sdir, "paths": paths, "truncated": truncated, "outcome": out}


def test_failed_runs_are_reported_with_their_reason(damaged: dict) -> None:
    failed = damaged["outcome"].failed
    assert len(failed) == 2 and all(line.startswith("unreadable_data seed ") for line in failed)
    assert all(UNREADABLE in line for line in failed), failed


def test_means_use_only_trusted_planned_finished_runs(damaged: dict) -> None:
    sdir = damaged["sdir"]
    summary = pd.read_csv(sdir / "summary.csv").set_index("variant")
    # Independent: read the planned, untouched runs' summary.json by hand.
    planned = {p["run_id"] for p in json.loads((sdir / "study.json").read_text())["planned"]}
    by_variant: dict[str, list[float]] = {}
    for folder in (sdir / "runs").iterdir():
        if folder.is_symlink() or folder == damaged["truncated"]:
            continue
        run_id = folder.name.rsplit("-", 1)[1]
        s = folder / "summary.json"
        if run_id in planned and s.is_file():
            data = json.loads(s.read_text())
            by_variant.setdefault(data["variant"], []).append(data["best_test_acc"])
    assert sorted(by_variant) == ["baseline", "dropout"]
    assert len(by_variant["baseline"]) == 2 and len(by_variant["dropout"]) == 1
    for variant, accs in by_variant.items():
        row = summary.loc[variant]
        assert row["n_included"] == len(accs)
        assert row["best_test_acc_mean"] == pytest.approx(sum(accs) / len(accs), rel=1e-12)
        if len(accs) > 1:
            half = sps.t.ppf(0.975, len(accs) - 1) * pd.Series(accs).std(ddof=1) / math.sqrt(
                len(accs))
            assert row["best_test_acc_ci95"] == pytest.approx(half, rel=1e-9)
    assert summary.loc["unreadable_data", "n_included"] == 0


def test_each_left_out_run_is_listed_with_why(damaged: dict) -> None:
    record = StudyRecord.load(damaged["sdir"])
    reasons = {(d["variant"], d["seed"]): d["reason"] for d in record.left_out()}
    assert "not in the current plan" in reasons[("baseline", 2)]
    assert "not in the current plan" in reasons[("dropout", 2)]
    assert "truncated" in reasons[("dropout", 1)]
    assert "link to outside the study folder" in reasons[("baseline", 0)] or any(
        "link to outside" in r for r in reasons.values())
    assert UNREADABLE in reasons[("unreadable_data", 0)]
    html = damaged["paths"].html.read_text()
    for text in ("not in the current plan", "truncated", "link to outside the study folder",
                 UNREADABLE):
        assert text in html, text
    assert "every run completed" not in html and "passed the integrity checks" not in html


def test_header_counts_planned_runs(damaged: dict) -> None:
    md = damaged["paths"].markdown.read_text()
    assert "**Seeds:** 0, 1" in md
    assert "6 planned; 3 in the means" in md


def test_edited_config_and_disagreeing_summary_are_caught(damaged: dict, tmp_path: Path) -> None:
    copy = tmp_path / "trust"
    shutil.copytree(damaged["sdir"], copy, symlinks=True)
    base0 = next((copy / "runs").glob("baseline-s0-*"))
    cfg = json.loads((base0 / "config.json").read_text())
    cfg["optim"]["lr"] = 0.5
    (base0 / "config.json").write_text(json.dumps(cfg))
    base1 = next((copy / "runs").glob("baseline-s1-*"))
    s = json.loads((base1 / "summary.json").read_text())
    s["best_test_acc"] = 0.99
    (base1 / "summary.json").write_text(json.dumps(s))
    record = StudyRecord.load(copy)
    # by folder: the linked foreign run is a baseline seed 0 too
    reasons = {d["path"]: d["reason"] for d in record.left_out()}
    assert "edited" in reasons[base0.name]
    assert "summary and metrics disagree" in reasons[base1.name]
    assert not record.runs_of("baseline")


@pytest.mark.slow
def test_single_axis_grid_runs_and_reports(tmp_path: Path) -> None:
    study = StudyConfig(name="grid1", seeds=1, base=tiny_raw(),
                        design={"kind": "grid", "parameters": {"model.width": [8, 16]}})
    out = run_study(study, source="t", results_dir=tmp_path, workers=1)
    build_report(out.study_dir)
    assert not out.failed
    summary = pd.read_csv(tmp_path / "grid1" / "summary.csv")
    assert set(summary["swept_value"].dropna()) == {8.0, 16.0}
    assert (tmp_path / "grid1" / "report.html").is_file()


@pytest.mark.slow
def test_early_stopping_study_compares_restored_model_with_both_references(
        tmp_path: Path) -> None:
    """The declared comparison: each variant's restored (final) model vs the baseline's last
    epoch and vs the baseline's retrospective best-val checkpoint, with epochs run."""
    study = StudyConfig(
        name="es", seeds=2, base=tiny_raw(train={"epochs": 6}, optim={"lr": 0.05}),
        design={"kind": "one_at_a_time", "variants": {
            "patience_1": {"regularizers": {"early_stopping": {"patience": 1}}}}},
        compare={"metric": "final_test_acc", "reference": "last_test_acc",
                 "also_against": ["best_test_acc"]})
    run_study(study, source="t", results_dir=tmp_path, workers=1)
    paths = build_report(tmp_path / "es", index=False)
    summary = pd.read_csv(paths.summary_csv).set_index("variant")
    runs = {}
    for folder in (tmp_path / "es" / "runs").iterdir():
        s = json.loads((folder / "summary.json").read_text())
        runs[(s["variant"], s["seed"])] = s
    diffs_last = [runs[("patience_1", k)]["final_test_acc"] - runs[("baseline", k)]["last_test_acc"]
                  for k in (0, 1)]
    diffs_best = [runs[("patience_1", k)]["final_test_acc"] - runs[("baseline", k)]["best_test_acc"]
                  for k in (0, 1)]
    row = summary.loc["patience_1"]
    assert row["compare_metric"] == "final_test_acc" and row["compare_reference"] == "last_test_acc"
    assert row["delta"] == pytest.approx(sum(diffs_last) / 2, abs=1e-12)
    assert row["vs_best_test_acc_delta"] == pytest.approx(sum(diffs_best) / 2, abs=1e-12)
    epochs = [runs[("patience_1", k)]["epochs_run"] for k in (0, 1)]
    assert row["epochs_run_mean"] == pytest.approx(sum(epochs) / 2)
    md = paths.markdown.read_text()
    assert "vs baseline test acc @ last epoch" in md and "vs baseline test acc @ best val" in md
    assert "compute saved" in md


def test_a_run_is_checked_against_its_config_as_saved() -> None:
    """The id is recomputed from config.json as saved, without validating it (a plug-in model
    need not be installed where the study is read); an edit of the same file is caught."""
    from harness.config import RunConfig
    from harness.numerics import NUMERICS_VERSION
    from harness.record.load import recompute_id

    config = RunConfig.model_validate(tiny_raw())
    saved = {**config.model_dump(mode="json"), "run_id": config.run_id(),  # as the store
             "numerics": NUMERICS_VERSION}                               # writes it
    assert recompute_id(saved) == config.run_id()
    saved["model"]["name"] = "pkg.not_installed:Net"  # hashing never looks the model up
    assert recompute_id(saved) not in (None, config.run_id())
    edited = {**saved, "optim": {**saved["optim"], "lr": 0.5}}
    assert recompute_id(edited) != recompute_id(saved)
    assert recompute_id({"seed": 0}) is None  # not a run config at all
