"""A run's identity covers what changes its numbers (issue 32, item 13): the numerics
version is hashed into every run id, fixed small runs pin the numbers of this version
(tests/golden/numerics.json), and a study never averages runs of two numerics versions."""

from __future__ import annotations

import hashlib
import json
import math
import shutil
from pathlib import Path

import pytest
from conftest import tiny_raw
from golden_numerics import EPOCH_KEYS, FINAL_KEYS, GOLDEN, RUNS, train

import harness.config as config_module
from harness.config import build_run_config
from harness.numerics import NUMERICS_VERSION
from harness.record.identity import identity_of, run_id_of

LOSS_RTOL = 1e-5  # losses after a few epochs: rounding across CPUs stays far below this
ACC_ATOL = 0.025  # one sample of the smallest split (48 validation samples)
BUMP = ("If you changed the numerics on purpose, bump NUMERICS_VERSION in "
        "harness/numerics.py (the run ids change with it, so no study averages runs of both "
        "versions) and regenerate the golden numbers: python tests/golden_numerics.py "
        "--write. If not, this change moved training numbers by accident.")


def sha12(identity: dict) -> str:
    blob = json.dumps(identity, sort_keys=True, separators=(",", ":"))
    return hashlib.sha1(blob.encode()).hexdigest()[:12]


def close(key: str, got: object, want: object) -> bool:
    if not isinstance(got, (int, float)) or not isinstance(want, (int, float)):
        return got == want
    if key.endswith("acc"):
        return abs(got - want) <= ACC_ATOL
    if key == "best_epoch" or key == "epoch":
        return got == want
    return math.isclose(got, want, rel_tol=LOSS_RTOL, abs_tol=1e-7)


def differences(name: str, got: dict, want: dict) -> list[str]:
    out = []
    if len(got["epochs"]) != len(want["epochs"]):
        out.append(f"{name}: {len(got['epochs'])} epochs, golden {len(want['epochs'])}")
    for row, ref in zip(got["epochs"], want["epochs"], strict=False):
        out += [f"{name} epoch {ref['epoch']} {k}: {row.get(k)!r}, golden {ref.get(k)!r}"
                for k in EPOCH_KEYS if not close(k, row.get(k), ref.get(k))]
    out += [f"{name} {k}: {got.get(k)!r}, golden {want.get(k)!r}"
            for k in (*FINAL_KEYS, "status") if not close(k, got.get(k), want.get(k))]
    return out


@pytest.mark.slow
def test_golden_runs_train_to_the_committed_numbers():
    """Every golden run trains to the numbers committed for this numerics version, under the
    run id committed with them."""
    golden = json.loads(GOLDEN.read_text())
    assert golden["numerics"] == NUMERICS_VERSION, (
        f"NUMERICS_VERSION is {NUMERICS_VERSION} but {GOLDEN.name} holds version "
        f"{golden['numerics']}: regenerate it with python tests/golden_numerics.py --write")
    assert sorted(golden["runs"]) == sorted(RUNS), (
        "the golden runs changed: regenerate with python tests/golden_numerics.py --write")
    problems = []
    for name in sorted(RUNS):
        got, want = train(name), golden["runs"][name]
        problems += differences(name, got, want)
        if got["run_id"] != want["run_id"]:
            problems.append(f"{name}: run id {got['run_id']}, golden {want['run_id']} (the "
                            "identity rule changed: stored runs would no longer be found)")
    assert not problems, ("The golden runs no longer train to their committed numbers while "
                          f"NUMERICS_VERSION is still {NUMERICS_VERSION}:\n  "
                          + "\n  ".join(problems[:12]) + f"\n{BUMP}")


def test_the_numerics_version_is_part_of_every_run_id(monkeypatch):
    """The id hashes the identity with the version in it; another version, another id."""
    config = build_run_config(tiny_raw(), "test")
    identity = config.identity()
    assert identity["numerics"] == NUMERICS_VERSION
    assert config.run_id() == sha12(identity)
    monkeypatch.setattr(config_module, "NUMERICS_VERSION", NUMERICS_VERSION + 1)
    bumped = config.run_id()
    assert bumped != sha12(identity)
    assert bumped == sha12({**identity, "numerics": NUMERICS_VERSION + 1})


def test_a_config_saved_before_versioning_keeps_its_id():
    """A config.json without a version (runs of version 1) hashes as it did when it was
    written (identity without the key); one stamped with the version hashes with it."""
    config = build_run_config(tiny_raw(), "test")
    saved = {"run_id": "x", **config.model_dump(mode="json")}
    before = {k: v for k, v in config.identity().items() if k != "numerics"}
    assert run_id_of(identity_of(saved)) == sha12(before)
    assert run_id_of(identity_of({**saved, "numerics": NUMERICS_VERSION})) == config.run_id()


def test_a_run_of_other_numerics_is_not_averaged(tmp_path):
    """A study folder holding a run of this version and a copy of it as version 1 would have
    saved it (no version in config.json, the folder named by its version-1 id): the record
    keeps the first and leaves the second out, saying which numerics trained it."""
    from harness.record import StudyRecord
    from harness.record.disk import atomic_write_json
    from harness.train.loop import train_run

    config = build_run_config(tiny_raw(study="mixed", variant="baseline"), "test")
    new = train_run(config, results_dir=tmp_path).run_dir.path
    saved = json.loads((new / "config.json").read_text())
    assert saved["numerics"] == NUMERICS_VERSION
    old_saved = {k: v for k, v in saved.items() if k != "numerics"}
    old_id = run_id_of(identity_of(old_saved))
    assert old_id != config.run_id()
    old = new.parent / new.name.replace(config.run_id(), old_id)
    shutil.copytree(new, old)
    atomic_write_json(old / "config.json", {**old_saved, "run_id": old_id})
    for name in ("summary.json",):
        summary = json.loads((old / name).read_text())
        atomic_write_json(old / name, {**summary, "run_id": old_id})
    planned = [{"run_id": rid, "variant": "baseline", "seed": 0}
               for rid in (config.run_id(), old_id)]
    atomic_write_json(tmp_path / "mixed" / "study.json",
                      {"name": "mixed", "planned": planned, "numerics": NUMERICS_VERSION,
                       "baseline": "baseline"})
    record = StudyRecord.load(tmp_path / "mixed")
    assert [r.run_id for r in record.included] == [config.run_id()]
    (left,) = [r for r in record.left_out() if r["run_id"] == old_id]
    assert f"numerics version 1, the plan by version {NUMERICS_VERSION}" in left["reason"]


def test_golden_file_is_readable_and_covers_every_model_family():
    golden = json.loads(Path(GOLDEN).read_text())
    models = {RUNS[name]["model"]["name"] for name in golden["runs"]}
    assert models == {"mlp", "cnn", "resnet", "vit", "transformer1d"}


@pytest.mark.slow
def test_a_worker_refuses_a_run_queued_by_other_numerics(tmp_path, monkeypatch):
    """A run queued by a coordinator of other numerics (its id hashes another version) is
    failed, saying why, and nothing is trained under an id that does not describe it."""
    from optuna.trial import TrialState

    from harness.study.plan import expand
    from harness.study.queue import RunQueue
    from harness.study.spec import StudyConfig
    from harness.study.worker import worker_loop

    study = StudyConfig(name="older", base=tiny_raw(), seeds=1,
                        design={"kind": "sweep", "parameter": "model.width", "values": [8]})
    monkeypatch.setattr(config_module, "NUMERICS_VERSION", NUMERICS_VERSION - 1)
    specs = expand(study)  # as a harness one version older plans them
    monkeypatch.undo()
    url = f"sqlite:///{tmp_path / 'queue.db'}"
    queue = RunQueue.open(url, "older")
    for spec in specs:
        queue.enqueue(spec)
    assert worker_loop(url, "older", tmp_path / "results") == len(specs)
    failed = queue.trials(TrialState.COMPLETE) + queue.trials(TrialState.FAIL)
    assert len(failed) == len(specs)
    for trial in failed:
        assert "queued by another harness version" in str(trial.user_attrs.get("error"))
    assert not list((tmp_path / "results").glob("older/runs/*/summary.json"))
