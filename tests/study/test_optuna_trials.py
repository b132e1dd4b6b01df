"""What an Optuna user sees of the harness's trials (issue 32, items 14, 15 and 18): every
trial links its W&B run, pruned ones included; result files are Optuna artifacts with
pointers in the trial, not inline base64; parameters carry one name in tuning, ablation
queues and W&B; ablation trials have learning curves; the tuning summary reads as numbers."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import optuna
import pytest
from conftest import isolate_wandb_env, tiny_raw
from optuna.trial import TrialState
from test_optuna_queue import dashboard as dashboard_fixture  # noqa: F401  (a fixture)
from test_optuna_queue import get
from wandb_offline import read_offline_run

from harness.errors import ConfigError
from harness.record.run_dir import list_run_dirs
from harness.study.execute import run_study
from harness.study.queue import queue_study_name
from harness.study.spec import StudyConfig
from harness.study.trial_files import ARTIFACT_DIR, TRAVELLING_FILES

INLINE_LIMIT = 1024  # optuna-dashboard shows a user attr cut at this many characters


@pytest.fixture(scope="module")
def ablation(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A two-variant sweep run through its queue by one local worker (W&B disabled)."""
    base = tmp_path_factory.mktemp("trials")
    raw = tiny_raw(regularizers={"dropout": {"p": 0.1}}, train={"epochs": 3})
    study = StudyConfig(name="atrials", base=raw, seeds=1,
                        design={"kind": "sweep", "parameter": "regularizers.dropout.p",
                                "values": [0.3]})
    run_study(study, source="t.yaml", results_dir=base, workers=1)
    return base / "atrials"


def queue_trials(sdir: Path) -> tuple[optuna.Study, list[optuna.trial.FrozenTrial]]:
    ostudy = optuna.load_study(study_name=queue_study_name("atrials"),
                               storage=f"sqlite:///{sdir / 'queue.db'}")
    return ostudy, ostudy.get_trials(states=(TrialState.COMPLETE,))


@pytest.mark.slow
def test_result_files_are_artifacts_with_pointers(ablation: Path,
                                                  dashboard_fixture: Any) -> None:  # noqa: F811
    """No trial holds a file inline: trials_dataframe has no file column and no cell with a
    file's bytes; each travelling file is an Optuna artifact of its trial, byte for byte the
    run folder's, listed and served by optuna-dashboard (--artifact-dir)."""
    ostudy, trials = queue_trials(ablation)
    assert len(trials) == 2
    frame = ostudy.trials_dataframe()
    assert "user_attrs_files" not in frame.columns
    folders = {rd.path.name.rsplit("-", 1)[1]: rd.path for rd in list_run_dirs(ablation)}
    store = optuna.artifacts.FileSystemArtifactStore(str(ablation / ARTIFACT_DIR))
    for trial in trials:
        folder = folders[trial.user_attrs["run_id"]]
        pointer = trial.user_attrs["artifacts"]
        assert Path(pointer["dir"]) == (ablation / ARTIFACT_DIR).resolve()
        assert sorted(pointer["files"]) == sorted(n for n in TRAVELLING_FILES
                                                  if (folder / n).is_file())
        metas = optuna.artifacts.get_all_artifact_meta(trial, storage=ostudy._storage)
        assert {m.filename: m.artifact_id for m in metas} == pointer["files"]
        for name, artifact_id in pointer["files"].items():
            with store.open_reader(artifact_id) as reader:
                assert reader.read() == (folder / name).read_bytes()
    for column in frame.columns:
        for value in frame[column]:
            text = value if isinstance(value, str) else ""
            assert len(text) < INLINE_LIMIT, column
    base = dashboard_fixture(f"sqlite:///{ablation / 'queue.db'}", ablation / ARTIFACT_DIR)
    studies = {s["study_name"]: s for s in get(f"{base}/api/studies")["study_summaries"]}
    sid = studies[queue_study_name("atrials")]["study_id"]
    detail = get(f"{base}/api/studies/{sid}?after=0")
    served = [t for t in detail["trials"] if t["state"] == "Complete"]
    assert served and all({a["filename"] for a in t["artifacts"]} >= {"env.json"}
                          for t in served)
    first = served[0]
    env = next(a for a in first["artifacts"] if a["filename"] == "env.json")
    import urllib.request

    url = f"{base}/artifacts/{sid}/{first['trial_id']}/{env['artifact_id']}"
    with urllib.request.urlopen(url, timeout=30) as response:
        assert json.loads(response.read())  # env.json, whole


@pytest.mark.slow
def test_ablation_trials_have_learning_curves_and_flat_params(ablation: Path) -> None:
    """Each queued trial reports every epoch's val_acc as an intermediate value (its value
    is the best of them), under the param name W&B uses (dropout_p)."""
    _, trials = queue_trials(ablation)
    folders = {rd.path.name.rsplit("-", 1)[1]: rd for rd in list_run_dirs(ablation)}
    for trial in trials:
        rows = folders[trial.user_attrs["run_id"]].metrics()
        assert trial.intermediate_values == {int(r["epoch"]): pytest.approx(r["val_acc"])
                                             for r in rows}
        assert trial.value == pytest.approx(max(r["val_acc"] for r in rows))
        assert set(trial.params) == {"dropout_p"}


@pytest.fixture(scope="module")
def tuned(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A 3-trial search (W&B offline) whose trial 1 the pruner stops after its first epoch
    and whose trial 2 crashes there (a 4th trial then completes the budget)."""
    from harness.study import tune

    base = tmp_path_factory.mktemp("tuned")
    study = StudyConfig.model_validate({
        "name": "ttrials", "kind": "tune",
        "base": tiny_raw(train={"epochs": 3},
                         tracking={"wandb": "offline", "project": "harness-test"}),
        "tune": {"n_trials": 3, "confirm_seeds": 1, "pruner": "median",
                 "sampler": {"name": "random"},
                 "space": {"regularizers.dropout.p": {"type": "float", "low": 0.0,
                                                      "high": 0.5}}}})
    with pytest.MonkeyPatch.context() as mp:
        isolate_wandb_env(mp, base)
        def should_prune(trial: optuna.trial.Trial) -> bool:
            if trial.number == 2:
                raise RuntimeError("simulated crash in trial 2")
            return trial.number == 1

        mp.setattr(optuna.trial.Trial, "should_prune", should_prune)
        out = tune.run_tuning(study, source="t.yaml", results_dir=base, workers=1)
        yield out
        import wandb

        wandb.teardown()


@pytest.mark.slow
def test_every_trial_links_its_wandb_run_pruned_included(tuned: Any) -> None:
    trials = tuned.search.get_trials()
    states = {t.number: t.state for t in trials}
    assert states[1] == TrialState.PRUNED and states[2] == TrialState.FAIL
    assert TrialState.COMPLETE in states.values()
    for trial in trials:
        link = trial.user_attrs["wandb"]
        run = read_offline_run(Path(link["run_dir"]))
        assert run.config["optuna_trial"] == trial.number
        assert run.config["dropout_p"] == pytest.approx(trial.params["dropout_p"])


@pytest.mark.slow
def test_tuning_uses_the_queue_and_wandb_param_names(tuned: Any) -> None:
    """The search's Optuna params are the flat labels of the run queue and W&B (dropout_p),
    and the best trial's overrides map back to the dotted config key."""
    complete = [t for t in tuned.search.get_trials() if t.state == TrialState.COMPLETE]
    assert complete and all(set(t.params) == {"dropout_p"} for t in complete)
    best = tuned.top[0]
    assert tuned.spec.overrides(best.params) == {"regularizers.dropout.p": best.params[
        "dropout_p"]}
    frame = tuned.search.trials_dataframe()
    assert "params_dropout_p" in frame.columns


@pytest.mark.slow
def test_tuning_summary_prints_numbers_not_lists(tuned: Any) -> None:
    text = tuned.best_text()
    value, p = tuned.best_values[0], tuned.best_params["dropout_p"]
    assert text == f"best val_acc {value:.4g} with dropout_p={p:.4g}"
    assert "[" not in text and not re.search(r"\d{8}", text)


def test_two_space_keys_with_one_label_are_refused() -> None:
    from harness.study.tune_space import parse_tune

    study = StudyConfig.model_validate({
        "name": "clash", "kind": "tune", "base": tiny_raw(),
        "tune": {"n_trials": 2, "space": {
            "optim.lr": {"type": "float", "low": 1e-4, "high": 1e-2},
            "schedule.lr": {"type": "float", "low": 1e-4, "high": 1e-2}}}})
    with pytest.raises(ConfigError, match="share the name 'lr'"):
        parse_tune(study, "clash.yaml")
