"""W&B study dashboards: per-run metric definitions and flat config keys read back from
offline runs, the study-level run (table, images, native line plots), the Report spec built
offline, and `harness sync` with a fake `wandb sync`. Nothing touches the network."""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from conftest import isolate_wandb_env, tiny_raw
from wandb_offline import offline_charts, read_offline_run

from harness.publish import study_run as wandb_study_run
from harness.publish import sync as wandb_sync
from harness.publish import wandb as wandb_study
from harness.publish import wandb_report
from harness.publish.study_run import comparison_frame, log_study_run, study_curves
from harness.publish.sync import sync_study
from harness.publish.wandb_report import build_report_spec, create_wandb_report
from harness.record.disk import atomic_write_json
from harness.record.schema import read_manifest
from harness.study.plan import expand, study_manifest
from harness.study.spec import StudyConfig
from harness.tracking.wandb_tracker import flat_keys, variant_params, wandb_run_tracker
from harness.train.loop import train_run
from harness.train.metrics import generalization_gap as gap_metrics

STUDY = "wb_width"
FAKE_KEY = "a" * 40  # the right shape for wandb's key check; never sent anywhere.


def close(a: Any, b: Any) -> bool:
    return math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=1e-12)


@dataclass
class TinyStudy:
    sdir: Path
    results: list[Any]  # RunResult per training run
    summary_csv: pd.DataFrame
    figures: list[Path]


def png(path: Path, color: tuple[int, int, int]) -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (12, 8), color).save(path)


@pytest.fixture(scope="module")
def width_study(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TinyStudy]:
    """A width sweep (baseline width 16 + width=32) x 2 seeds, trained with W&B offline, plus
    study.json, a summary.csv and two figures, as run_study and the report would leave them.

    Module-scoped, so it sets up its own W&B isolation (the autouse fixture is per test).
    """
    base = tmp_path_factory.mktemp("wandb_study")
    data_dir = Path(os.environ["HARNESS_DATA_DIR"])
    with pytest.MonkeyPatch.context() as mp:
        isolate_wandb_env(mp, base)
        raw = tiny_raw(tracking={"wandb": "offline", "project": "harness-test"},
                       regularizers={"dropout": {"p": 0.1}})
        study = StudyConfig(name=STUDY, description="Width sweep for the W&B tests.", base=raw,
                            design={"kind": "sweep", "parameter": "model.width",
                                    "values": [32]}, seeds=2)
        specs = expand(study)
        results_dir = base / "results"
        sdir = results_dir / STUDY
        atomic_write_json(sdir / "study.json", study_manifest(study, specs))
        results = [train_run(s.config, results_dir=results_dir, data_dir=data_dir,
                             tracker=wandb_run_tracker(s.config, results_dir))
                   for s in specs]
        # What the report engineer's build_report writes (format only matters to W&B here).
        summary = pd.DataFrame({"variant": ["width=32", "baseline"], "n_included": [2, 2],
                                "swept_value": [32.0, 16.0],
                                "best_test_acc_mean": [0.31, 0.27],
                                "best_test_acc_ci95": [0.02, float("nan")]})
        summary.to_csv(sdir / "summary.csv", index=False)
        figures = [sdir / "figures" / "curves_loss.png", sdir / "figures" / "sweep.png"]
        png(figures[0], (200, 10, 10))
        png(figures[1], (10, 10, 200))
        (sdir / "report.html").write_text("<html>report</html>")
        yield TinyStudy(sdir, results, summary, figures)
        try:
            import wandb

            wandb.teardown()
        except Exception:
            pass


# ----------------------------------------------------------------------------- per run


@pytest.mark.slow
def test_training_run_metric_definitions_and_summaries(width_study: TinyStudy) -> None:
    result = width_study.results[0]
    run_dir = result.summary["wandb"]["run_dir"]
    assert run_dir and Path(run_dir).parent == width_study.sdir / "wandb"
    run = read_offline_run(Path(run_dir))
    assert run.complete and run.group == STUDY and run.job_type == result.summary["variant"]

    defs = {d["name"]: d for d in run.metric_definitions}
    assert defs["epoch"]["step_metric"] is None
    assert defs["*"]["glob"] and defs["*"]["step_metric"] == "epoch"
    assert defs["val_acc"]["summary"] == ["max"] and defs["val_acc"]["step_metric"] == "epoch"
    assert defs["val_loss"]["summary"] == ["min"] and defs["val_loss"]["step_metric"] == "epoch"

    rows = result.rows
    assert [h["epoch"] for h in run.history] == [r["epoch"] for r in rows]
    assert close(run.summary["val_acc"]["max"], max(r["val_acc"] for r in rows))
    assert close(run.summary["val_loss"]["min"], min(r["val_loss"] for r in rows))
    # "final test accuracy at the best-val epoch", under a key that says so.
    local = result.run_dir.summary
    assert close(run.summary["test_acc_at_best_val"], local["best_test_acc"])
    assert close(run.summary["test_error_at_best_val"], 1 - local["best_test_acc"])
    assert close(run.summary["test_error_final"], 1 - local["final_test_acc"])
    assert close(run.summary["train_error_final"], 1 - local["final_train_eval_acc"])
    assert run.summary["best_val_epoch"] == local["best_epoch"]
    # the loss AT the best-val epoch, named so; W&B's val_loss.min is the minimum over epochs
    assert close(run.summary["val_loss_at_best_val"], local["best_val_loss"])
    assert not [k for k in run.summary if k.startswith("best_") and k != "best_val_epoch"]


@pytest.mark.slow
def test_training_run_flat_config_keys(width_study: TinyStudy) -> None:
    by_variant = {r.summary["variant"]: r for r in width_study.results}
    result = by_variant["width=32"]
    run = read_offline_run(Path(result.summary["wandb"]["run_dir"]))
    cfg = run.config
    assert cfg["study"] == STUDY and cfg["variant"] == "width=32"
    assert cfg["seed"] == result.summary["seed"]
    assert cfg["run_id"] == result.summary["run_id"]  # the local store's id
    assert cfg["width"] == 32 and cfg["dropout_p"] == 0.1 and cfg["label_noise"] == 0
    assert not [k for k in cfg if "." in k]  # W&B reads a dot as nesting
    assert run.notes == "Width sweep for the W&B tests."  # the study description
    assert "dropout" in run.tags
    assert cfg["model"]["width"] == 32  # the nested config is kept beside the flat keys

    # What flat_keys adds once wired into loop.wandb_config (swept values from study.json).
    manifest = read_manifest(width_study.sdir)
    swept = variant_params(manifest, "width=32")
    assert swept == {"model.width": 32}
    assert variant_params(manifest, "baseline") == {"model.width": 16}
    extra = flat_keys(result.run_dir.config, swept)
    assert extra["width"] == 32 and "lr" in extra and "epochs" in extra
    assert variant_params(read_manifest(width_study.sdir / "no-such-study"), "x") == {}


def test_gap_metrics_follow_the_report_definition() -> None:
    row = {"train_loss": 0.5, "train_eval_loss": 0.4, "val_loss": 0.9,
           "train_eval_acc": 0.95, "val_acc": 0.8}
    gaps = gap_metrics(row)
    assert close(gaps["gap_loss"], 0.5) and close(gaps["gap_acc"], 0.15)
    assert gap_metrics({"train_loss": 1.0}) == {}


# ----------------------------------------------------------------------------- study run


@pytest.mark.slow
def test_study_run_holds_table_images_and_line_plots(width_study: TinyStudy) -> None:
    sdir = width_study.sdir
    info = log_study_run(sdir, mode="offline", project="harness-test", entity=None)
    assert not info.failed, info.error
    assert info.mode == "offline" and info.run_dir and info.sync_command
    run_dir = Path(info.run_dir)
    assert run_dir.parent == sdir / "wandb"
    run = read_offline_run(run_dir)
    assert run.complete and run.exit_code == 0
    assert (run.group, run.job_type, run.name) == (STUDY, "report", f"{STUDY}-report")

    report = str((sdir / "report.html").resolve())
    assert run.config["report_path"] == report and run.summary["report_path"] == report
    assert run.summary["report_url"].startswith("file://")
    assert run.summary["best_variant"] == "width=32"

    (row,) = run.history
    table = row["comparison"]
    assert table["_type"] == "table-file" and table["nrows"] == len(width_study.summary_csv)
    content = json.loads((run_dir / "files" / table["path"]).read_text())
    assert content["columns"] == list(width_study.summary_csv.columns)
    assert [r[0] for r in content["data"]] == ["width=32", "baseline"]
    assert content["data"][1][-1] is None  # NaN written as null

    assert info.images == ["figures/curves_loss", "figures/sweep"]
    for key in info.images:
        image = row[key]
        assert image["_type"] == "image-file" and image["format"] == "png"
        assert (image["width"], image["height"]) == (12, 8)
        assert (run_dir / "files" / image["path"]).is_file()
        assert run.summary[key]["_type"] == "image-file"

    assert info.plots == ["sweep/best_test_acc_vs_width", "double_descent/error_vs_width"]
    charts = offline_charts(run_dir)
    for key in info.plots:
        assert row[f"{key}_table"]["_type"] == "table-file"
        assert charts[key]["panel_config"]["panelDefId"] == "wandb/line/v0"
    assert charts[info.plots[0]]["panel_config"]["fieldSettings"]["x"] == "width"
    sweep = json.loads((run_dir / "files" / row[f"{info.plots[0]}_table"]["path"]).read_text())
    assert [r[0] for r in sweep["data"]] == [16, 32]  # baseline width 16, then the sweep value
    dd = json.loads((run_dir / "files" / row[f"{info.plots[1]}_table"]["path"]).read_text())
    assert dd["columns"] == ["width", "error", "curve"]
    assert {r[2] for r in dd["data"]} == {"test error", "train error (noisy labels)",
                                          "test error at best-val epoch"}
    final = [r.summary["final_test_acc"] for r in width_study.results
             if r.run_dir.config["model"]["width"] == 32]
    (dd32,) = [r for r in dd["data"] if r[0] == 32 and r[2] == "test error"]
    assert close(dd32[1], 1 - sum(final) / len(final))


@pytest.mark.slow
def test_study_curves_average_seeds(width_study: TinyStudy) -> None:
    curves = {c.key: c for c in study_curves(width_study.sdir)}
    sweep = curves["sweep/best_test_acc_vs_width"]
    for width, mean_acc, n in sweep.rows:
        accs = [r.summary["best_test_acc"] for r in width_study.results
                if r.run_dir.config["model"]["width"] == width]
        assert n == 2 and close(mean_acc, sum(accs) / len(accs))


@pytest.mark.slow
def test_comparison_table_without_summary_csv_is_the_reports(width_study: TinyStudy,
                                                              tmp_path: Path) -> None:
    """Without summary.csv the W&B table is computed by the report's own code from the study
    record: the same means, and a run folder that fails its integrity check is left out."""
    copy = tmp_path / width_study.sdir.name
    shutil.copytree(width_study.sdir, copy, symlinks=True)
    (copy / "summary.csv").unlink()
    foreign = copy / "runs" / "intruder-s0-000000000000"
    foreign.mkdir()
    atomic_write_json(foreign / "config.json", {"variant": "baseline", "seed": 9})
    atomic_write_json(foreign / "summary.json", {"status": "completed", "best_test_acc": 1.0})
    frame = comparison_frame(copy).set_index("variant")
    by_variant: dict[str, list[float]] = {}
    for r in width_study.results:
        by_variant.setdefault(r.summary["variant"], []).append(r.summary["best_test_acc"])
    for variant, accs in by_variant.items():
        assert frame.loc[variant, "n_included"] == len(accs)
        assert close(frame.loc[variant, "best_test_acc_mean"], sum(accs) / len(accs))


class BrokenPayloadTracker:
    def __init__(self, **kwargs: Any) -> None:
        self.mode, self.failed, self.info, self.run_dir = "offline", False, {}, None
        self.finished_with: int | None = None

    def log(self, data: dict[str, Any]) -> None:  # pragma: no cover - never reached
        raise AssertionError

    def set_summary(self, summary: dict[str, Any]) -> None:  # pragma: no cover
        raise AssertionError

    def finish(self, exit_code: int = 0) -> None:
        self.finished_with = exit_code


def test_study_run_failure_is_one_warning_not_an_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    made: list[BrokenPayloadTracker] = []

    def factory(**kwargs: Any) -> BrokenPayloadTracker:
        made.append(BrokenPayloadTracker(**kwargs))
        return made[-1]

    def explode(*args: Any) -> dict[str, Any]:
        raise ValueError("table exploded")

    monkeypatch.setattr(wandb_study_run, "_study_payload", explode)
    with caplog.at_level(logging.WARNING, logger="harness.publish.study_run"):
        info = log_study_run(tmp_path, mode="offline", project="p", entity=None,
                             tracker_factory=factory)
    assert info.failed and "table exploded" in (info.error or "")
    assert made[0].finished_with == 1
    assert len([r for r in caplog.records if r.levelno == logging.WARNING]) == 1


# ----------------------------------------------------------------------------- report spec


@pytest.mark.slow
def test_report_spec_panels_grouping_and_run_filter(width_study: TinyStudy) -> None:
    spec = build_report_spec(width_study.sdir, project="harness-test", entity=None)
    assert spec["study"] == STUDY and spec["project"] == "harness-test"
    train, study_rs = spec["runsets"]["train"], spec["runsets"]["study"]
    assert train["where"] == {"group": STUDY, "job_type_not": ["report", "trial"]}
    assert train["filters"] == (f"Metric('Group') == '{STUDY}' and Metric('JobType') != 'report'"
                                " and Metric('JobType') != 'trial'")
    assert train["groupby"] == ["config.variant"]
    assert study_rs["where"] == {"group": STUDY, "job_type": "report"}

    sections = {s["title"]: s for s in spec["sections"]}
    assert list(sections) == ["Learning curves", "Generalization gap", "Headline",
                              "Study summary"]
    curves = sections["Learning curves"]["panels"]
    assert [p["y"] for p in curves] == [["train_eval_loss"], ["val_loss"], ["train_eval_acc"],
                                        ["val_acc"]]
    for panel in curves + sections["Generalization gap"]["panels"]:
        assert panel["type"] == "line" and panel["x"] == "epoch"
        assert panel["groupby"] == "variant" and panel["groupby_rangefunc"] == "minmax"
    assert [p["y"] for p in sections["Generalization gap"]["panels"]] == [["gap_loss"],
                                                                           ["gap_acc"]]
    headline = sections["Headline"]["panels"]
    scatter = [p for p in headline if p["type"] == "scatter"]
    assert {(p["x"], p["y"]) for p in scatter} == {
        ("config.width", "summary.test_error_final"),
        ("config.width", "summary.train_error_final"),
        ("config.width", "summary.test_error_at_best_val")}
    (parallel,) = [p for p in headline if p["type"] == "parallel_coordinates"]
    assert parallel["columns"][0] == "config.width"
    media = [p for p in sections["Study summary"]["panels"] if p["type"] == "media"]
    assert media[0]["media_keys"] == ["figures/curves_loss", "figures/sweep"]
    assert sections["Study summary"]["runset"] == "study"

    wr = pytest.importorskip("wandb_workspaces.reports.v2")
    from wandb_workspaces import expr

    report = wandb_report.report_from_spec(spec)  # built, never saved: no network
    grids = [b for b in report.blocks if isinstance(b, wr.PanelGrid)]
    assert len(grids) == 4
    assert grids[0].runsets[0].filters == train["filters"]
    assert grids[0].runsets[0].groupby == ["config.variant"]
    assert expr.expr_to_filters(train["filters"]).filters  # W&B's own parser accepts it
    line = grids[0].panels[0]
    assert isinstance(line, wr.LinePlot) and line.groupby == wr.Config("variant")
    assert line.groupby_rangefunc == "minmax"
    assert any(isinstance(p, wr.ScatterPlot) for p in grids[2].panels)
    assert any(isinstance(p, wr.ParallelCoordinatesPlot) for p in grids[2].panels)


def test_report_spec_for_an_ablation_is_a_bar_per_variant(tmp_path: Path) -> None:
    atomic_write_json(tmp_path / "study.json", {"name": "oat", "design": {
        "kind": "one_at_a_time", "variants": {"dropout": {}}}})
    spec = build_report_spec(tmp_path, project="p", entity="me")
    (headline,) = [s for s in spec["sections"] if s["title"] == "Headline"]
    assert [p["type"] for p in headline["panels"]] == ["bar"]
    assert headline["panels"][0]["metrics"] == ["test_acc_at_best_val"]
    assert spec["runsets"]["train"]["where"]["group"] == "oat"
    assert [p["y"] for p in spec["sections"][0]["panels"]][0] == ["train_loss"]


@pytest.mark.slow
def test_wandb_report_offline_says_how_to_create_it_later(width_study: TinyStudy) -> None:
    outcome = create_wandb_report(width_study.sdir, mode="offline")
    assert outcome.ok and outcome.url is None
    assert f"harness wandb-report {STUDY}" in outcome.message
    assert "\n" not in outcome.message


# ----------------------------------------------------------------------------- sync


def fake_study(tmp_path: Path) -> Path:
    sdir = tmp_path / "s"
    for name in ("offline-run-1-good", "offline-run-2-bad", "offline-run-3-done"):
        folder = sdir / "wandb" / name
        folder.mkdir(parents=True)
        (folder / f"run-{name[-4:]}.wandb").write_bytes(b":W&B")
    (sdir / "wandb" / "offline-run-3-done" / "run-done.wandb.synced").write_text("")
    (sdir / "wandb" / "latest-run").mkdir()  # not an offline run folder
    return sdir


def test_sync_reports_synced_failed_and_skipped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, wandb_server: str
) -> None:
    sdir = fake_study(tmp_path)
    calls: list[tuple[list[str], float]] = []

    def fake_run(cmd: list[str], timeout: float) -> subprocess.CompletedProcess:
        calls.append((cmd, timeout))
        if cmd[-1].endswith("bad"):
            return subprocess.CompletedProcess(
                cmd, 1, stdout="Syncing: ...\n",
                stderr="wandb: ERROR Error while calling W&B API: permission denied\ntrace")
        return subprocess.CompletedProcess(cmd, 0, stdout="Syncing: ... done.\n", stderr="")

    monkeypatch.setenv("WANDB_API_KEY", FAKE_KEY)
    monkeypatch.setattr(wandb_sync, "_run_command", fake_run)
    progress: list[str] = []
    result = sync_study(sdir, timeout_s=7, progress=progress.append)
    assert [ln.split(":")[0] for ln in progress] == [
        "[1/3] wandb/offline-run-1-good", "[2/3] wandb/offline-run-2-bad",
        "[3/3] wandb/offline-run-3-done"]
    assert "synced (" in progress[0] and "FAILED" in progress[1] and "skipped" in progress[2]
    assert [c[0][-2:] for c in calls] == [
        ["sync", str(sdir / "wandb" / "offline-run-1-good")],
        ["sync", str(sdir / "wandb" / "offline-run-2-bad")]]
    assert all(timeout == 7 for _, timeout in calls)
    assert [p.name for p in result.synced] == ["offline-run-1-good"]
    assert {p.name: why for p, why in result.failed.items()} == {
        "offline-run-2-bad": "wandb: ERROR Error while calling W&B API: permission denied"}
    assert [p.name for p in result.skipped] == ["offline-run-3-done"]
    assert not result.ok
    lines = result.lines()
    assert "1 synced, 1 failed, 1 skipped" in lines[0]
    assert any("FAILED  offline-run-2-bad" in ln for ln in lines)


def test_sync_timeout_and_missing_login_are_failures(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, wandb_server: str
) -> None:
    sdir = fake_study(tmp_path)

    def hang(cmd: list[str], timeout: float) -> subprocess.CompletedProcess:
        raise subprocess.TimeoutExpired(cmd, timeout)

    monkeypatch.setattr(wandb_sync, "_run_command", hang)
    result = sync_study(sdir)  # no key: nothing is run, every folder fails with the hint
    assert len(result.failed) == 3 and not result.synced
    assert all("wandb login" in why for why in result.failed.values())

    monkeypatch.setenv("WANDB_API_KEY", FAKE_KEY)
    result = sync_study(sdir, timeout_s=3, include_synced=True)
    assert len(result.failed) == 3
    assert all(why == "timed out after 3 s" for why in result.failed.values())
    assert sync_study(tmp_path / "empty").lines()[0].endswith("0 synced, 0 failed")


@pytest.mark.slow
def test_finish_study_logs_the_study_run_and_records_links(width_study: TinyStudy) -> None:
    lines = wandb_study.finish_study(width_study.sdir)  # tracking.wandb: offline in study.json
    assert lines[0].startswith("W&B study run saved offline: ")
    assert f"harness wandb-report {STUDY}" in lines[-1]
    links = json.loads((width_study.sdir / "wandb.json").read_text())
    assert links["study_run"]["mode"] == "offline" and not links["study_run"]["failed"]
    assert links["study_run"]["sync_command"].startswith("wandb sync ")
    assert "harness wandb-report" in links["report_hint"]


# ----------------------------------------------------------------------------- panels resolve


def panel_keys(report: Any) -> list[tuple[str, str]]:
    """(where, key) of every metric a Report's panels point at, from wandb-workspaces' own
    serialisation: where is config / summary / history / media."""
    found: list[tuple[str, str]] = []

    def accessor(ref: str) -> None:
        section, _, key = ref.partition(":")
        if section == "config":  # config:<key>.value
            found.append(("config", key.removesuffix(".value")))
        elif section == "summary":
            found.append(("summary", key))

    for block in report.blocks:
        for panel in getattr(block, "panels", None) or []:
            cfg = json.loads(panel._to_model().model_dump_json(by_alias=True))["config"]
            for key in ("xAxis", "yAxis"):
                if cfg.get(key) and ":" in cfg[key]:
                    accessor(cfg[key])
                elif cfg.get(key):
                    found.append(("history", cfg[key]))
            for column in cfg.get("columns") or []:
                accessor(column["accessor"])
            if isinstance(cfg.get("metrics"), list):
                kind = "history" if "xAxis" in cfg else "summary"
                found += [(kind, m) for m in cfg["metrics"]]
            if cfg.get("groupBy"):
                found.append(("config", cfg["groupBy"].removesuffix(".value")))
            for key in cfg.get("mediaKeys") or []:
                found.append(("media", key))
    return found


def nested(d: dict[str, Any], dotted: str) -> bool:
    for part in dotted.split("."):
        if not isinstance(d, dict) or part not in d:
            return False
        d = d[part]
    return True


@pytest.mark.slow
@pytest.mark.parametrize("which", ["width", "dropout"])
def test_every_report_panel_key_exists_in_the_offline_runs(
    which: str, width_study: TinyStudy, trained_study: Path
) -> None:
    """Built with wandb-workspaces, every panel's keys resolve in what the runs logged."""
    wr = pytest.importorskip("wandb_workspaces.reports.v2")
    sdir = width_study.sdir if which == "width" else trained_study  # a dotted swept key
    if which == "width":
        log_study_run(sdir, mode="offline", project="harness-test", entity=None)
    spec = build_report_spec(sdir, project="harness-test", entity=None)
    report = wandb_report.report_from_spec(spec)
    runs = [read_offline_run(p) for p in wandb_study.offline_run_dirs(sdir)]
    training = [r for r in runs if r.job_type != "report"]
    (study_run,) = [r for r in runs if r.job_type == "report"][-1:]
    assert training and all(r.complete for r in runs)
    grids = [b for b in report.blocks if isinstance(b, wr.PanelGrid)]
    keys = [(grid.runsets[0].name, k) for grid in grids for k in panel_keys(
        wr.Report(project="p", entity="e", blocks=[grid]))]
    assert len(keys) >= 10
    for runset, (where, key) in keys:
        targets = [study_run] if runset.endswith("study run") else training
        for run in targets:
            if where == "config":
                assert key in run.config, (runset, where, key, sorted(run.config))
            elif where == "summary":
                assert nested(run.summary, key), (runset, key, sorted(run.summary))
            else:  # history and media keys: logged in some row
                assert any(key in row for row in run.history), (runset, where, key)
    if which == "dropout":
        assert ("config", "dropout_p") in [k for _, k in keys]
        values = sorted(r.config["dropout_p"] for r in training)
        assert values == [0.0, 0.0, 0.1, 0.1, 0.5, 0.5]  # the baseline's value too


@pytest.mark.slow
def test_wandb_report_dry_run_writes_the_spec(width_study: TinyStudy, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from harness.cli import app

    results = width_study.sdir.parent
    out = CliRunner().invoke(app, ["wandb-report", STUDY, "--results-dir", str(results),
                                   "--dry-run"])
    assert out.exit_code == 0, out.output
    spec = json.loads((width_study.sdir / "wandb_report.json").read_text())
    assert spec == json.loads(json.dumps(build_report_spec(
        width_study.sdir, project="harness-test", entity=None)))
    # without --dry-run and offline: says what to change, not "run this command"
    out = CliRunner().invoke(app, ["wandb-report", STUDY, "--results-dir", str(results)])
    assert out.exit_code == 1 and "--dry-run" in out.output
    assert f"harness wandb-report {STUDY}" not in out.output


def test_sync_command_says_why_nothing_synced_in_one_line(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from harness.cli import app

    fake_study(tmp_path)  # results dir tmp_path, study "s", three offline folders, no login
    out = CliRunner().invoke(app, ["sync", "s", "--results-dir", str(tmp_path),
                                   "--timeout", "5"])
    assert out.exit_code == 2  # the user can fix it: `wandb login`
    lines = out.output.strip().splitlines()
    assert lines[0] == "syncing 3 offline W&B run folder(s) of s"
    assert lines[1].startswith("error: s: nothing synced: not logged in to W&B: run `wandb "
                               "login` or set WANDB_API_KEY") and len(lines) == 2
