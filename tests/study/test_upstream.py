"""Upstream runs: planned first, referred to by folder (so by run id), waited for in the
queue; a distillation teacher is one."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from conftest import tiny_raw, tiny_study
from optuna.trial import TrialState

from harness.errors import ConfigError
from harness.record import StudyRecord
from harness.record.load import UPSTREAM_REASON
from harness.study.execute import run_study
from harness.study.plan import expand, study_manifest
from harness.study.queue import RunQueue
from harness.study.spec import StudyConfig
from harness.study.storage import default_storage_url
from harness.study.worker import worker_loop

PRETRAIN = {"data": {"num_samples": 800}, "train": {"epochs": 1}}


def finetune_study(upstream=None, seeds=2, **base) -> StudyConfig:
    return tiny_study(
        "ft", seeds=seeds, upstream=upstream if upstream is not None else {"pretrain": PRETRAIN},
        design={"kind": "grid", "parameters": {"model.init_from": {"scratch": None,
                                                                   "pretrained": "pretrain"}}},
        **base)


def by_variant(specs):
    out = {}
    for s in specs:
        out.setdefault(s.variant, []).append(s)
    return out


def test_upstream_runs_come_first_and_downstream_runs_point_at_their_folder():
    specs = expand(finetune_study(), "t")
    assert [s.upstream for s in specs] == [True, True] + [False] * (len(specs) - 2)
    runs = by_variant(specs)
    pre = {s.seed: s for s in runs["pretrain"]}
    assert set(pre) == {0, 1}  # one upstream run per seed: each seed pretrains its own
    assert pre[0].config.data.num_samples == 800 and pre[0].config.train.epochs == 1
    assert pre[0].config.model.init_from is None and not pre[0].depends_on
    for s in runs["init_from=pretrained"]:
        up = pre[s.seed]
        assert s.depends_on == [up.run_id]
        assert s.config.model.init_from == f"ft/runs/pretrain-s{s.seed}-{up.run_id}"
    for s in runs.get("init_from=scratch", []) + runs["baseline"]:  # the same run: one
        assert not s.depends_on and s.config.model.init_from is None
    manifest = study_manifest(finetune_study(), specs)
    assert {p["run_id"] for p in manifest["upstream"]} == {s.run_id for s in pre.values()}
    assert not {p["run_id"] for p in manifest["planned"]} & {s.run_id for s in pre.values()}


def test_a_changed_upstream_config_changes_the_downstream_run_ids():
    a = by_variant(expand(finetune_study(), "t"))["init_from=pretrained"]
    b = by_variant(expand(finetune_study({"pretrain": {**PRETRAIN, "train": {"epochs": 2}}}),
                          "t"))["init_from=pretrained"]
    assert {s.run_id for s in a}.isdisjoint(s.run_id for s in b)
    # a fixed seed: one upstream run shared by every seed
    shared = by_variant(expand(finetune_study({"pretrain": {**PRETRAIN, "seed": 5}}), "t"))
    assert [s.seed for s in shared["pretrain"]] == [5]
    assert {s.depends_on[0] for s in shared["init_from=pretrained"]} == \
        {shared["pretrain"][0].run_id}


def test_upstream_mistakes_are_one_line_errors():
    with pytest.raises(ConfigError, match=r"t: upstream.pretrain: unknown key 'train.epoch'"):
        expand(finetune_study({"pretrain": {"train": {"epoch": 1}}}), "t")
    clash = StudyConfig(name="c", base=tiny_raw(model={"init_from": "dropout"}), seeds=1,
                        upstream={"dropout": {}}, design={"kind": "one_at_a_time", "variants": {
                            "dropout": {"regularizers": {"dropout": {"p": 0.1}}}}})
    with pytest.raises(ConfigError, match="upstream run 'dropout' has the name of a variant"):
        expand(clash, "t")
    kd = StudyConfig(name="k", base=tiny_raw(regularizers={"distillation": {
        "teacher": {"upstream": "big"}}}), seeds=1, design={"kind": "sweep",
        "parameter": "regularizers.distillation.alpha", "values": [0.2]})
    with pytest.raises(ConfigError, match=r"teacher.upstream = 'big': not an upstream run of "
                                          r"this study \(none declared\)"):
        expand(kd, "t")


def test_a_distillation_teacher_config_is_an_upstream_run():
    teacher = {"config": {"model": {"name": "mlp", "width": 32}}}
    s = StudyConfig(name="kd", base=tiny_raw(), seeds=1, design={
        "kind": "one_at_a_time", "variants": {"kd": {"regularizers": {"distillation": {
            "teacher": teacher}}}}})
    specs = by_variant(expand(s, "t"))
    (up,), (student,) = specs["teacher"], specs["kd"]
    # the student's config, no regularizers, the overrides on top, as variant "teacher"
    from harness.config import build_run_config

    expected = s.base | {"study": "kd", "variant": "teacher", "seed": 0, "regularizers": {},
                         "model": {**s.base["model"], **teacher["config"]["model"]}}
    assert up.run_id == build_run_config(expected).run_id()
    assert student.config.regularizers["distillation"]["teacher"] == {
        "run": f"kd/runs/teacher-s0-{up.run_id}"}
    assert student.depends_on == [up.run_id]


def test_a_downstream_run_queued_first_waits_for_its_upstream(tmp_path: Path):
    """Queue the fine-tuning run before its pretraining: the worker defers it, trains the
    upstream run, then fine-tunes from its weights."""
    s = finetune_study(seeds=1)
    specs = expand(s, "t")
    pre = by_variant(specs)["pretrain"][0]
    down = by_variant(specs)["init_from=pretrained"][0]
    url = default_storage_url(tmp_path / "ft")
    (tmp_path / "ft").mkdir()
    q = RunQueue.open(url, "ft")
    q.enqueue_missing([down, pre], set())
    assert worker_loop(url, "ft", tmp_path) == 2
    trials = q.by_run()
    assert [t.state for t in trials[down.run_id]] == [TrialState.PRUNED, TrialState.COMPLETE]
    assert trials[down.run_id][0].user_attrs["failure"] == "waiting"
    assert trials[pre.run_id][0].state == TrialState.COMPLETE
    assert trials[pre.run_id][0].number < trials[down.run_id][1].number
    folder = tmp_path / down.config.model.init_from
    assert (folder / "model.pt").is_file()


def test_a_downstream_run_of_a_failed_upstream_fails_with_why(tmp_path: Path):
    s = finetune_study(seeds=1)
    specs = by_variant(expand(s, "t"))
    pre, down = specs["pretrain"][0], specs["init_from=pretrained"][0]
    url = default_storage_url(tmp_path / "ft")
    (tmp_path / "ft").mkdir()
    q = RunQueue.open(url, "ft")
    q.enqueue_missing([pre], set())
    job = q.pop()
    q.fail(job, "no data", "final")  # a failure the user must fix: not retried now
    q.enqueue_missing([down], set())
    assert worker_loop(url, "ft", tmp_path) == 0
    (t,) = q.by_run()[down.run_id]
    assert t.state == TrialState.FAIL
    assert t.user_attrs["error"] == f"upstream run {pre.run_id} did not finish (failed); see " \
                                    "its run folder or the queue"


@pytest.mark.slow
def test_fine_tuning_study_end_to_end(tmp_path: Path):
    s = finetune_study(seeds=1)
    out = run_study(s, source="t", results_dir=tmp_path, workers=1)
    assert out.finished == out.total == 3 and not out.failed  # scratch = baseline
    record = StudyRecord.load(tmp_path / "ft")
    left = {d["variant"]: d["reason"] for d in record.left_out()}
    assert left == {"pretrain": UPSTREAM_REASON}
    specs = by_variant(expand(s, "t"))
    down = specs["init_from=pretrained"][0]
    pre_weights = torch.load(tmp_path / down.config.model.init_from / "model.pt",
                             weights_only=True)
    first = next(k for k in pre_weights if not k.startswith("head."))
    fine = torch.load(next((tmp_path / "ft" / "runs").glob(f"*-{down.run_id}")) / "model.pt",
                      weights_only=True)
    assert fine[first].shape == pre_weights[first].shape
    assert not torch.equal(fine[first], pre_weights[first])  # trained on from there


def test_a_tuning_study_refuses_upstream_runs():
    with pytest.raises(ValueError, match="upstream: runs are planned by ablation studies only"):
        StudyConfig(name="t", kind="tune", tune={"x": 1}, upstream={"pretrain": {}})


def test_a_plug_in_that_declares_an_upstream_run_gets_it_planned(monkeypatch):
    """The planner names no plug-in: any regularizer's `upstream` is planned first, with the
    run config it asks for, and linked back through its `linked`."""
    from typing import Any

    from harness.regularizers import REGULARIZERS, Params, Regularizer, UpstreamNeed
    from harness.regularizers.base import reads_other_runs

    class SourceParams(Params):
        overrides: dict[str, Any] | None = None
        folder: str | None = None

    class FromSource(Regularizer[SourceParams]):
        name = "from_source"

        @classmethod
        def upstream(cls, params: SourceParams) -> list[UpstreamNeed]:
            if params.overrides is None:
                return []
            return [UpstreamNeed("overrides", "overrides", "source", overrides=params.overrides)]

        @classmethod
        def linked(cls, raw: dict[str, Any], need: UpstreamNeed, folder: str) -> dict[str, Any]:
            return {"folder": folder}

    monkeypatch.setitem(REGULARIZERS._entries, "from_source", FromSource)
    s = StudyConfig(name="src", base=tiny_raw(), seeds=[3], design={
        "kind": "one_at_a_time", "variants": {"v": {"regularizers": {"from_source": {
            "overrides": {"optim": {"lr": 0.01}}}}}}})
    specs = by_variant(expand(s, "t"))
    (up,), (run,) = specs["source"], specs["v"]
    assert up.config.optim.lr == 0.01 and up.config.regularizers == {} and up.seed == 3
    assert run.config.regularizers["from_source"] == {
        "folder": f"src/runs/source-s3-{up.run_id}"}
    assert run.depends_on == [up.run_id] and up.upstream
    assert reads_other_runs(FromSource)
    assert [n for n in REGULARIZERS.names() if reads_other_runs(REGULARIZERS.get(n))] == [
        "distillation", "from_source"]
