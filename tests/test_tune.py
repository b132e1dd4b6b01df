"""Optuna tuning on the validation split: space validation, no test-set access during the
search, reproducibility, parallel journal workers, pruning, conditional params."""

from __future__ import annotations

import dataclasses
import json
import socket
from pathlib import Path

import optuna
import pytest
from conftest import tiny_raw
from optuna.trial import TrialState

from harness.errors import ConfigError
from harness.study import tune
from harness.study.spec import StudyConfig
from harness.study.tune_space import parse_tune
from harness.train import build

SPACE = {
    "regularizers.dropout.p": {"type": "float", "low": 0.0, "high": 0.5},
    "use_mixup": {"type": "categorical", "choices": [True, False]},
    "regularizers.mixup.alpha": {"type": "float", "low": 0.1, "high": 1.0,
                                 "when": {"use_mixup": True}},
}


def make_study(name: str = "tq", space: dict | None = None, **tune_opts) -> StudyConfig:
    t = {"n_trials": 3, "confirm_seeds": 2, "sampler": {"name": "tpe", "n_startup_trials": 2},
         "pruner": "none", "space": space if space is not None else SPACE, **tune_opts}
    return StudyConfig.model_validate({"name": name, "kind": "tune", "base": tiny_raw(),
                                       "tune": t})


# ----------------------------------------------------------------------------- validation

F = {"type": "float", "low": 0.0, "high": 0.5}
BAD = [
    ({"regularizers.dropout.p": {"type": "gauss", "low": 0, "high": 1}}, {},
     "tune.space.regularizers.dropout.p: unknown type 'gauss'"),
    ({"regularizers.dropout.p": {"type": "float", "low": 0.5, "high": 0.5}}, {},
     "tune.space.regularizers.dropout.p: low (0.5) must be below high (0.5)"),
    ({"regularizers.weight_decay.value": {"type": "float", "low": 0, "high": 1, "log": True}}, {},
     "tune.space.regularizers.weight_decay.value: log scale needs low > 0"),
    ({"regularizers.mixup.alpha": {**F, "low": 0.1, "when": {"use_mix": True}}}, {},
     "tune.space.regularizers.mixup.alpha.when: 'use_mix' is not a param"),
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
    out = tune.run_tuning(study, source="t.yaml", results_dir=tmp_path, workers=1, report=False)
    assert out.complete + out.pruned >= 3 and out.failed == 0

    sdir = tmp_path / "tq"
    ostudy = optuna.load_study(study_name="tq:tune", storage=f"sqlite:///{sdir / 'tune.db'}")
    params = {f"trial-{t.number}": t.params for t in ostudy.trials}
    for p in params.values():  # conditional params: alpha only when its switch is on
        assert ("regularizers.mixup.alpha" in p) == (p["use_mixup"] is True)
    trial_runs = sorted((sdir / "search" / "tq" / "runs").iterdir())
    assert trial_runs
    for run in trial_runs:
        cfg = json.loads((run / "config.json").read_text())
        summary = json.loads((run / "summary.json").read_text())
        assert cfg["train"]["eval_test"] is False
        assert not any(k.startswith(("test_", "final_test", "best_test")) for k in summary)
        # the old `mixup` key of the space is read as the `mix` plug-in
        assert ("mix" in cfg["regularizers"]) == params[cfg["variant"]]["use_mixup"]
    # the retrain read the test set, with fresh seeds, baseline and tuned
    manifest = json.loads((sdir / "study.json").read_text())
    assert manifest["design"]["kind"] == "one_at_a_time" and manifest["seeds"] == [1, 2]
    assert {v["name"] for v in manifest["variants"]} <= {"baseline", "tuned"}
    summaries = [json.loads(p.read_text()) for p in (sdir / "runs").glob("*/summary.json")]
    assert {s["variant"] for s in summaries} >= {"baseline"}
    assert all(s["seed"] in (1, 2) and s.get("best_test_acc") is not None for s in summaries)

    info = json.loads((sdir / "tuning.json").read_text())
    assert info["trials"]["complete"] + info["trials"]["pruned"] >= 3
    assert info["best"]["params"] == out.best_params and info["epochs_consumed"] > 0
    section = tune.tuning_section(sdir)
    assert section["best_params"] and section["retrain"][0]["variant"] == "baseline"
    assert section["figures"] and all((sdir / f["path"]).is_file() for f in section["figures"])
    assert "Hyperparameter search" in section["markdown"]

    # resumable: the same budget again runs no new trial; a larger one continues the study
    n = len(ostudy.trials)
    tune.run_tuning(study, source="t.yaml", results_dir=tmp_path, workers=1, report=False)
    assert len(ostudy.trials) == n
    with pytest.raises(ConfigError, match="another base config, space"):
        tune.create_search(f"sqlite:///{sdir / 'tune.db'}",
                           make_study(space={"regularizers.dropout.p": F}),
                           parse_tune(make_study(space={"regularizers.dropout.p": F}), "t"), "t")


def search_once(root: Path) -> list[dict]:
    study = make_study(n_trials=4)
    spec = parse_tune(study, "t.yaml")
    url = f"sqlite:///{root / 'tune.db'}"
    tune.create_search(url, study, spec, "t.yaml")
    tune.tune_worker_loop(url, "tq", root, threads=1, worker=0, parallel=False)
    ostudy = optuna.load_study(study_name="tq:tune", storage=url)
    return [t.params for t in sorted(ostudy.trials, key=lambda t: t.number)]


def test_seeded_search_with_one_worker_is_reproducible(tmp_path):
    first, second = search_once(tmp_path / "a"), search_once(tmp_path / "b")
    assert len(first) == 4 and first == second


@pytest.mark.slow
def test_journal_storage_with_two_worker_processes(tmp_path):
    study = make_study(n_trials=4)
    spec = parse_tune(study, "t.yaml")
    sdir = tmp_path / "tq"
    url = tune.default_tune_storage(sdir, workers=2)
    assert url.startswith("journal:") and url.endswith("tune.journal")
    ostudy = tune.create_search(url, study, spec, "t.yaml")
    tune.drive_search(url, study, spec, "t.yaml", ostudy, tmp_path, None, workers=2)
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
    monkeypatch.setattr(tune, "make_pruner", lambda spec, **kw:
                        optuna.pruners.ThresholdPruner(lower=1.1, n_warmup_steps=0))
    study = make_study(n_trials=1)
    spec = parse_tune(study, "t.yaml")
    url = f"sqlite:///{tmp_path / 'tune.db'}"
    tune.create_search(url, study, spec, "t.yaml")
    tune.tune_worker_loop(url, study, tmp_path, threads=1, worker=0, parallel=False)
    (t,) = optuna.load_study(study_name="tq:tune", storage=url).trials
    assert t.state == TrialState.PRUNED and t.user_attrs["epochs_trained"] == 1
    (summary,) = (tmp_path / "tq" / "search" / "tq" / "runs").glob("trial-0-*/summary.json")
    s = json.loads(summary.read_text())
    assert s["status"] == "pruned" and s["epochs_run"] == 1


@pytest.mark.slow
def test_dead_workers_trial_is_failed_and_queued_again(tmp_path):
    study = make_study()
    spec = parse_tune(study, "t.yaml")
    url = f"journal:{tmp_path / 'tune.journal'}"
    ostudy = tune.create_search(url, study, spec, "t.yaml")
    trial = ostudy.ask({"regularizers.dropout.p": optuna.distributions.FloatDistribution(0, .5)})
    trial.set_user_attr("worker", f"{socket.gethostname()}:999999999:{trial.number}")
    assert tune.requeue_orphans(ostudy) == 1
    states = [t.state for t in ostudy.get_trials()]
    assert states == [TrialState.FAIL, TrialState.WAITING]
    retry = ostudy.get_trials()[1]
    assert retry.params == ostudy.get_trials()[0].params
    assert retry.system_attrs["failed_trial"] == 0


# ----------------------------------------------------------------------------- W&B


@pytest.mark.slow
def test_tuning_study_reaches_wandb_like_an_ablation(tmp_path, monkeypatch):
    """One `trial` job type for the search, the study-level report run, every offline run
    seen by sync (the search folder too), and a Report whose run filter matches its intro."""
    import re

    from wandb_offline import read_offline_run

    from harness.tracking.wandb_report import build_report_spec
    from harness.tracking.wandb_sync import offline_run_dirs

    monkeypatch.setenv("TMPDIR", str(tmp_path))
    base = tiny_raw(tracking={"wandb": "offline", "project": "harness-test"})
    study = StudyConfig.model_validate({
        "name": "twb", "kind": "tune", "base": base, "description": "Tuning for W&B.",
        "tune": {"n_trials": 3, "confirm_seeds": 1, "pruner": "none",
                 "sampler": {"name": "random"},
                 "space": {"regularizers.dropout.p": {"type": "float", "low": 0.0,
                                                      "high": 0.5}}}})
    out = tune.run_tuning(study, source="t.yaml", results_dir=tmp_path, workers=1)
    sdir = tmp_path / "twb"
    runs = {d: read_offline_run(d) for d in offline_run_dirs(sdir)}
    trials = [r for r in runs.values() if r.job_type == "trial"]
    assert len(trials) == out.complete == 3
    assert all(d.is_relative_to(sdir / "search") for d, r in runs.items() if r.job_type == "trial")
    ostudy = optuna.load_study(study_name=tune.optuna_study_name("twb"),
                               storage=f"sqlite:///{sdir / 'tune.db'}")
    by_number = {t.number: t for t in ostudy.trials}
    for r in trials:
        t = by_number[r.config["optuna_trial"]]
        assert r.config["dropout_p"] == pytest.approx(t.params["regularizers.dropout.p"])
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
