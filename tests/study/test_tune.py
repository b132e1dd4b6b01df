"""Optuna tuning on the validation split: space validation, no test-set access during the
search, reproducibility, parallel workers on one storage, pruning, conditional params, a
dead worker's trial retried, the old two-file layout refused."""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import optuna
import pytest
from conftest import REPO, tiny_raw, tiny_study
from optuna.trial import TrialState

from harness.errors import ConfigError
from harness.publish.finish import report_tuning
from harness.report.tune_report import tuning_section, write_outputs
from harness.study import search, tune
from harness.study.execute import drive_workers
from harness.study.search import create_search, search_progress
from harness.study.spec import StudyConfig
from harness.study.storage import default_storage_url
from harness.study.tune_space import parse_tune
from harness.study.worker import worker_loop
from harness.train import build

SPACE = {
    "regularizers.dropout.p": {"type": "float", "low": 0.0, "high": 0.5},
    "use_mixup": {"type": "categorical", "choices": [True, False]},
    "regularizers.mix.mixup_alpha": {"type": "float", "low": 0.1, "high": 1.0,
                                     "when": {"use_mixup": True}},
}


def make_study(name: str = "tq", space: dict | None = None, base: dict | None = None,
               **tune_opts) -> StudyConfig:
    t = {"n_trials": 3, "confirm_seeds": 2, "sampler": {"name": "tpe", "n_startup_trials": 2},
         "pruner": "none", "space": space if space is not None else SPACE, **tune_opts}
    return tiny_study(name, kind="tune", tune=t, base=base)


# ----------------------------------------------------------------------------- validation

F = {"type": "float", "low": 0.0, "high": 0.5}
BAD = [
    ({"regularizers.dropout.p": {"type": "gauss", "low": 0, "high": 1}}, {},
     "tune.space.regularizers.dropout.p: unknown type 'gauss'"),
    ({"regularizers.dropout.p": {"type": "float", "low": 0.5, "high": 0.5}}, {},
     "tune.space.regularizers.dropout.p: low (0.5) must be below high (0.5)"),
    ({"regularizers.weight_decay.value": {"type": "float", "low": 0, "high": 1, "log": True}}, {},
     "tune.space.regularizers.weight_decay.value: log scale needs low > 0"),
    ({"regularizers.mix.mixup_alpha": {**F, "low": 0.1, "when": {"use_mix": True}}}, {},
     "tune.space.regularizers.mix.mixup_alpha.when: 'use_mix' is not a param"),
    ({"regularizers.dropout.p": {"type": "float", "low": 0.0, "high": 1.0}}, {},
     "tune.space.regularizers.dropout.p: at regularizers.dropout.p = 1.0 the run config is "
     "invalid"),
    ({"regularizers.dropuot.p": F}, {}, "tune.space.regularizers.dropuot.p: at"),
    ({"regularizers.dropout.p": F}, {"sampler": "grid"},
     "tune.space.regularizers.dropout.p: the grid sampler needs the values of a float param"),
    ({"regularizers.dropout.p": {"type": "categorical", "choices": []}}, {},
     "needs a non-empty choices list"),
    ({"data.val_fraction": F}, {}, "tune.space.data.val_fraction: data.val_fraction cannot be "
     "tuned"),
    ({"use_mixup": {"type": "categorical", "choices": [True, False]}}, {},
     "switch 'use_mixup' gates no param"),
    ({"regularizers.dropout.p": F}, {"objective": "test_acc"}, "unknown objective 'test_acc'"),
    ({"regularizers.dropout.p": F}, {"objectives": ["val_acc", "val_ece"], "pruner": "median"},
     "cannot prune multi-objective"),
    ({"regularizers.dropout.p": F}, {"n_trials": None}, "give a budget"),
    ({"regularizers.dropout.p": F}, {"confirm_seeds": [0, 1]}, "must not contain the search seed"),
    ({"regularizers.dropout.p": F}, {"sampler": "bayes"}, "unknown sampler 'bayes'"),
    ({"regularizers.dropout.p": F}, {"sampler": {"name": "tpe", "n_startup": 3}},
     "tune.sampler: bad option for tpe"),
    ({"regularizers.dropout.p": {**F, "lo": 0}}, {}, "unknown field 'lo'"),
]


@pytest.mark.parametrize(("space", "opts", "message"), BAD,
                         ids=[f"bad{i}" for i in range(len(BAD))])
def test_bad_spaces_are_rejected_with_file_and_key(space, opts, message):
    study = make_study(space=space, **opts)
    with pytest.raises(ConfigError) as err:
        parse_tune(study, "studies/bad.yaml")
    assert str(err.value).startswith("studies/bad.yaml: tune"), str(err.value)
    assert message in str(err.value), str(err.value)


def test_shipped_tuning_studies_are_valid():
    from harness.study.spec import find_study_file, load_study

    for name in ("tune_cnn_mnist1d", "tune_vit_fashion", "tune_multiobjective"):
        path = find_study_file(name)
        assert path.read_text().startswith("#")
        study = load_study(name)
        spec = parse_tune(study, str(path))
        assert study.kind == "tune" and study.description
        assert spec.n_trials
    assert parse_tune(load_study("tune_multiobjective"), "x").multi


# ----------------------------------------------------------------------------- the search


class Forbidden:
    """Stands in for the test split while the search runs: any use of it fails the test."""

    def __getattr__(self, name):
        raise AssertionError(f"the search touched the test split (.{name})")

    def __len__(self):
        raise AssertionError("the search touched the test split (len)")


@pytest.mark.slow
def test_search_never_reads_the_test_set_then_retrain_does(tmp_path, monkeypatch):
    phase = {"search": True}
    real_build_data = build.build_data

    def guarded(config, data_dir, device):
        data = real_build_data(config, data_dir, device)
        return dataclasses.replace(data, test=Forbidden()) if phase["search"] else data

    real_retrain = tune.retrain

    def retrain(*args, **kwargs):
        phase["search"] = False
        return real_retrain(*args, **kwargs)

    monkeypatch.setattr(build, "build_data", guarded)
    monkeypatch.setattr(tune, "retrain", retrain)
    study = make_study(n_trials=3)
    out = tune.run_tuning(study, source="t.yaml", results_dir=tmp_path, workers=1)
    assert out.complete + out.pruned >= 3 and out.failed == 0

    sdir = tmp_path / "tq"
    ostudy = optuna.load_study(study_name="tq:tune", storage=f"sqlite:///{sdir / 'queue.db'}")
    params = {f"trial-{t.number}": t.params for t in ostudy.trials}
    for p in params.values():  # conditional params: alpha only when its switch is on
        assert ("mix_mixup_alpha" in p) == (p["use_mixup"] is True)  # the queue's and W&B's name
    trial_runs = sorted((sdir / "search" / "tq" / "runs").iterdir())
    assert trial_runs
    for run in trial_runs:
        cfg = json.loads((run / "config.json").read_text())
        summary = json.loads((run / "summary.json").read_text())
        assert cfg["train"]["eval_test"] is False
        assert not any(k.startswith(("test_", "final_test", "best_test")) for k in summary)
        # the switch gates the whole `mix` plug-in
        assert ("mix" in cfg["regularizers"]) == params[cfg["variant"]]["use_mixup"]
    # the retrain read the test set, with fresh seeds, baseline and tuned
    manifest = json.loads((sdir / "study.json").read_text())
    assert manifest["design"]["kind"] == "one_at_a_time" and manifest["seeds"] == [1, 2]
    assert {v["name"] for v in manifest["variants"]} <= {"baseline", "tuned"}
    summaries = [json.loads(p.read_text()) for p in (sdir / "runs").glob("*/summary.json")]
    assert {s["variant"] for s in summaries} >= {"baseline"}
    assert all(s["seed"] in (1, 2) and s.get("best_test_acc") is not None for s in summaries)

    write_outputs(out)
    info = json.loads((sdir / "tuning.json").read_text())
    assert info["trials"]["complete"] + info["trials"]["pruned"] >= 3
    assert info["best"]["params"] == out.best_params and info["epochs_consumed"] > 0
    section = tuning_section(sdir)
    assert section["best_params"] and section["retrain"][0]["variant"] == "baseline"
    assert section["figures"] and all((sdir / f["path"]).is_file() for f in section["figures"])
    assert "Hyperparameter search" in section["markdown"]

    # resumable: the same budget again runs no new trial; a larger one continues the study
    n = len(ostudy.trials)
    tune.run_tuning(study, source="t.yaml", results_dir=tmp_path, workers=1)
    assert len(ostudy.trials) == n
    with pytest.raises(ConfigError, match="another base config, space"):
        create_search(f"sqlite:///{sdir / 'queue.db'}",
                      make_study(space={"regularizers.dropout.p": F}),
                      parse_tune(make_study(space={"regularizers.dropout.p": F}), "t"), "t")
    # one storage: the search and its retrain queue, nothing else
    assert sorted(p.name for p in sdir.iterdir() if p.suffix in (".db", ".journal")) == \
        ["queue.db"]
    assert set(optuna.get_all_study_names(f"sqlite:///{sdir / 'queue.db'}")) == \
        {"tq:tune", "tq:runs"}


def search_once(root: Path) -> list[dict]:
    study = make_study(n_trials=4)
    spec = parse_tune(study, "t.yaml")
    root.mkdir()
    url = f"sqlite:///{root / 'queue.db'}"
    create_search(url, study, spec, "t.yaml")
    worker_loop(url, "tq", root, threads=1, worker=0, parallel=False)
    ostudy = optuna.load_study(study_name="tq:tune", storage=url)
    return [t.params for t in sorted(ostudy.trials, key=lambda t: t.number)]


@pytest.mark.slow
def test_seeded_search_with_one_worker_is_reproducible(tmp_path):
    first, second = search_once(tmp_path / "a"), search_once(tmp_path / "b")
    assert len(first) == 4 and first == second


@pytest.mark.slow
def test_two_worker_processes_share_one_storage(tmp_path):
    study = make_study(n_trials=4)
    spec = parse_tune(study, "t.yaml")
    sdir = tmp_path / "tq"
    sdir.mkdir()
    url = default_storage_url(sdir)
    assert url == f"sqlite:///{(sdir / 'queue.db').resolve()}"
    ostudy = create_search(url, study, spec, "t.yaml")
    drive_workers(url, "tq", results_dir=tmp_path, data_dir=None, workers=2, kinds=("tune",),
                  total=4, count=lambda: search_progress(ostudy, spec))
    trials = ostudy.get_trials()
    finished = [t for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    assert len(finished) >= 4
    assert len({t.number for t in trials}) == len(trials)
    workers = {t.user_attrs["worker"].rsplit(":", 2)[1] for t in finished}
    assert len(workers) == 2  # both processes ran trials
    runs = [p.name for p in (sdir / "search" / "tq" / "runs").iterdir()]
    assert len(runs) == len({r.rsplit("-", 1)[1] for r in runs})  # each run folder once


@pytest.mark.slow
def test_pruned_trial_is_recorded_and_its_run_says_pruned(tmp_path, monkeypatch):
    # ThresholdPruner(lower=1.1) prunes any accuracy at the first report: deterministic
    monkeypatch.setattr(search, "make_pruner", lambda spec, **kw:
                        optuna.pruners.ThresholdPruner(lower=1.1, n_warmup_steps=0))
    study = make_study(n_trials=1)
    spec = parse_tune(study, "t.yaml")
    url = f"sqlite:///{tmp_path / 'queue.db'}"
    create_search(url, study, spec, "t.yaml")
    assert worker_loop(url, "tq", tmp_path, threads=1, worker=0, parallel=False) == 1
    (t,) = optuna.load_study(study_name="tq:tune", storage=url).trials
    assert t.state == TrialState.PRUNED and t.user_attrs["epochs_trained"] == 1
    (summary,) = (tmp_path / "tq" / "search" / "tq" / "runs").glob("trial-0-*/summary.json")
    s = json.loads(summary.read_text())
    assert s["status"] == "pruned" and s["epochs_run"] == 1


@pytest.mark.slow
def test_dead_workers_trial_is_failed_and_queued_again(tmp_path, monkeypatch):
    """A trial whose worker stopped beating is failed and queued again with its params; the
    next worker takes that copy first."""
    monkeypatch.setenv("HARNESS_HEARTBEAT_SECONDS", "1")
    study = make_study()
    url = f"sqlite:///{tmp_path / 'queue.db'}"
    ostudy = create_search(url, study, parse_tune(study, "t.yaml"), "t.yaml")
    dead = search.Search(url, "tq", worker=0).pop()  # popped, then its worker "dies"
    time.sleep(6)  # well past the grace period (3 beats of 1 s), also on a loaded machine
    source = search.Search(url, "tq", worker=1)
    source.recover()
    states = [t.state for t in ostudy.get_trials()]
    assert states == [TrialState.FAIL, TrialState.WAITING]
    retry = ostudy.get_trials()[1]
    assert retry.params == dead.trial.params and retry.system_attrs["failed_trial"] == 0
    job = source.pop()
    assert job.trial.number == 1 and job.spec.run_id == dead.spec.run_id


# ----------------------------------------------------------------------------- W&B


@pytest.mark.slow
def test_tuning_study_reaches_wandb_like_an_ablation(tmp_path, monkeypatch):
    """One `trial` job type for the search, the study-level report run, every offline run
    seen by sync (the search folder too), and a Report whose run filter matches its intro."""
    import re

    from wandb_offline import read_offline_run

    from harness.publish.sync import offline_run_dirs
    from harness.publish.wandb_report import build_report_spec

    monkeypatch.setenv("TMPDIR", str(tmp_path))
    base = tiny_raw(tracking={"wandb": "offline", "project": "harness-test"})
    study = StudyConfig.model_validate({
        "name": "twb", "kind": "tune", "base": base, "description": "Tuning for W&B.",
        "tune": {"n_trials": 3, "confirm_seeds": 1, "pruner": "none",
                 "sampler": {"name": "random"},
                 "space": {"regularizers.dropout.p": {"type": "float", "low": 0.0,
                                                      "high": 0.5}}}})
    out = tune.run_tuning(study, source="t.yaml", results_dir=tmp_path, workers=1)
    report_tuning(out, lambda line: None)  # what `harness tune` does next
    sdir = tmp_path / "twb"
    runs = {d: read_offline_run(d) for d in offline_run_dirs(sdir)}
    trials = [r for r in runs.values() if r.job_type == "trial"]
    assert len(trials) == out.complete == 3
    assert all(d.is_relative_to(sdir / "search") for d, r in runs.items() if r.job_type == "trial")
    ostudy = optuna.load_study(study_name=search.optuna_study_name("twb"),
                               storage=f"sqlite:///{sdir / 'queue.db'}")
    by_number = {t.number: t for t in ostudy.trials}
    for r in trials:
        t = by_number[r.config["optuna_trial"]]
        assert r.config["dropout_p"] == pytest.approx(t.params["dropout_p"])
        assert Path(t.user_attrs["wandb"]["run_dir"]) in runs
    reports = [r for r in runs.values() if r.job_type == "report"]
    assert len(reports) == 1 and reports[0].group == "twb"
    training = [r for r in runs.values() if r.job_type not in ("report", "trial")]
    assert {r.job_type for r in training} == {"baseline", "tuned"}
    assert all(r.notes == "Tuning for W&B." for r in training + trials)

    spec = build_report_spec(sdir, project="harness-test", entity=None)
    where = spec["runsets"]["train"]["where"]
    selected = [r for r in runs.values()
                if r.group == where["group"] and r.job_type not in where["job_type_not"]]
    said = int(re.search(r": (\d+) runs", spec["intro"]).group(1))
    assert said == len(selected) == len(training) == 2


# ----------------------------------------------------------------------------- one executor


def test_one_worker_takes_search_trials_then_queued_runs_from_one_storage(tmp_path):
    """What `harness worker --study NAME --storage URL` does for a tuning study: the search's
    trials until its budget is spent, then the runs queued beside it in the same storage."""
    from harness.study.plan import expand
    from harness.study.queue import RunQueue

    study = make_study(n_trials=1, space={"regularizers.dropout.p": F})
    url = f"sqlite:///{tmp_path / 'queue.db'}"
    ostudy = create_search(url, study, parse_tune(study, "t.yaml"), "t.yaml")
    retrain = tune.confirmation_study(study, parse_tune(study, "t.yaml"),
                                      {"tuned": {"regularizers.dropout.p": 0.1}})
    specs = [s for s in expand(retrain, "t.yaml") if s.variant == "baseline"][:1]
    RunQueue.open(url, "tq").enqueue_missing(specs, set())
    assert worker_loop(url, "tq", tmp_path, threads=1) == 2
    (trial,) = ostudy.get_trials()
    assert trial.state == TrialState.COMPLETE and trial.user_attrs["variant"] == "trial-0"
    (run,) = RunQueue.open(url, "tq").trials(TrialState.COMPLETE)
    assert run.user_attrs["run_id"] == specs[0].run_id
    assert (tmp_path / "tq" / "search" / "tq" / "runs").is_dir()
    summary = json.loads(next((tmp_path / "tq" / "runs").glob("*/summary.json")).read_text())
    assert summary["variant"] == "baseline" and summary.get("best_test_acc") is not None


@pytest.mark.timeout(240)
@pytest.mark.slow
@pytest.mark.parametrize("workers", [1, 2])
def test_a_search_whose_every_trial_fails_ends_and_exits_1(tmp_path, workers):
    """Every trial fails with a final error (the data files are missing): each worker stops
    at its first failed trial instead of failing through the budget, nothing is retrained,
    the summary says why, and the CLI exits 1."""
    import yaml
    from test_study import unreadable_data_base
    from typer.testing import CliRunner

    from harness.cli import app

    study = make_study(n_trials=6, space={"regularizers.dropout.p": F},
                       base=unreadable_data_base(tmp_path))
    path = tmp_path / "tq.yaml"
    path.write_text(yaml.safe_dump(study.model_dump(mode="json", exclude_unset=True)))
    out = CliRunner().invoke(app, ["tune", str(path), "--workers", str(workers),
                                   "--results-dir", str(tmp_path / "r")])
    assert out.exit_code == 1, out.output
    assert "no trial completed: nothing to retrain" in out.output
    assert "not an IDX file" in out.output
    url = f"sqlite:///{tmp_path / 'r' / 'tq' / 'queue.db'}"
    trials = optuna.load_study(study_name="tq:tune", storage=url).get_trials()
    # one trial per worker process, and one more by the coordinator for what they left
    assert len(trials) == (1 if workers == 1 else workers + 1)
    assert {(t.state, t.user_attrs.get("failure")) for t in trials} == {(TrialState.FAIL,
                                                                         "final")}
    assert "search: 0 complete, 0 pruned" in out.output
    assert not (tmp_path / "r" / "tq" / "runs").exists()  # no retrain


def test_the_study_package_never_imports_the_report_package():
    import ast

    root = REPO / "harness" / "study"
    for path in root.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import) else
                     [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            assert not any(n.startswith("harness.report") for n in names), path.name
