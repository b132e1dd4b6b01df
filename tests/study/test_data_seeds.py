"""Data seeds (resampled training sets) in the plan, and the test probabilities each run keeps."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import tiny_raw, tiny_study

from harness.config import build_run_config
from harness.data.load import load_data
from harness.errors import ConfigError
from harness.study.plan import expand, study_manifest
from harness.study.spec import StudyConfig, load_study
from harness.train.analysis import load_probabilities
from harness.train.loop import train_run


def width_study(**keys) -> StudyConfig:
    return tiny_study("bv", data={"num_samples": 600, "train_size": 200},
                      design={"kind": "one_at_a_time", "variants": {"w32": {"model": {
                          "width": 32}}}}, **keys)


def test_data_seeds_cross_seeds_and_change_run_ids():
    specs = expand(width_study(seeds=2, data_seeds=[0, 3]))
    assert len(specs) == 2 * 2 * 2
    base = [s for s in specs if s.is_baseline]
    assert sorted((s.config.data.seed, s.seed) for s in base) == [
        (0, 0), (0, 1), (3, 3000), (3, 3001)]
    assert len({s.run_id for s in specs}) == 8
    # the data seed alone changes the id: same run seed, other training set
    same = StudyConfig(name="bv", base=tiny_raw(data={"seed": 3}), design={"kind": "grid",
                       "parameters": {"model.width": [16]}}, seeds=[0])
    plain = StudyConfig(name="bv", base=tiny_raw(), design={"kind": "grid",
                        "parameters": {"model.width": [16]}}, seeds=[0])
    assert expand(same)[0].run_id != expand(plain)[0].run_id
    manifest = study_manifest(width_study(seeds=2, data_seeds=2), expand(
        width_study(seeds=2, data_seeds=2)))
    assert manifest["data_seeds"] == [0, 1] and manifest["seeds"] == [0, 1, 1000, 1001]


def test_without_data_seeds_the_plan_is_unchanged():
    specs = expand(width_study(seeds=2))
    assert [(s.config.data.seed, s.seed) for s in specs if s.is_baseline] == [(0, 0), (0, 1)]


def test_data_seeds_resample_training_but_keep_the_test_set():
    a = load_data(build_run_config(tiny_raw(data={"train_size": 200, "seed": 0})).data)
    b = load_data(build_run_config(tiny_raw(data={"train_size": 200, "seed": 1})).data)
    assert torch.equal(a.test.x, b.test.x) and torch.equal(a.test.y, b.test.y)
    assert not torch.equal(a.train.x, b.train.x)


@pytest.mark.parametrize("keys, message", [
    ({"data_seeds": 0}, "data_seeds must be >= 1"),
    ({"data_seeds": [1, 1]}, "data_seeds must be a non-empty list of distinct"),
    ({"data_seeds": 2, "seeds": [5, 1000]}, "seeds must be below 1000"),
    ({"data_seeds": 2, "confirm": {"max": 5}}, "confirm: .*without data_seeds"),
])
def test_bad_data_seeds_are_one_line(tmp_path: Path, keys, message):
    import yaml

    raw = {"base": tiny_raw(), "design": {"kind": "grid", "parameters": {"model.width": [8]}},
           **keys}
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(ConfigError, match=message) as err:
        load_study(path)
    assert "\n" not in str(err.value) and str(path) in str(err.value)


def test_a_run_keeps_its_test_probabilities(tmp_path: Path):
    cfg = build_run_config(tiny_raw())
    res = train_run(cfg, results_dir=tmp_path)
    saved = load_probabilities(res.run_dir.path)
    assert saved is not None
    probs, labels = saved
    assert probs.dtype == np.float16
    data = load_data(cfg.data)
    np.testing.assert_array_equal(labels, data.test.y.numpy())
    assert probs.shape == (len(data.test.y), data.num_classes)
    np.testing.assert_allclose(probs.astype(np.float64).sum(1), 1.0, atol=5e-3)
    # the saved probabilities give the run's final test accuracy
    acc = float((probs.argmax(1) == data.test.y.numpy()).mean())
    assert acc == pytest.approx(res.summary["final_test_acc"], abs=2 / len(data.test.y))
    assert not list(res.run_dir.path.glob("*.tmp*"))  # written atomically, no leftovers


@pytest.mark.slow
def test_report_decomposes_each_width_from_the_saved_probabilities(tmp_path: Path):
    from harness.record.load import StudyRecord
    from harness.report.bias_variance_report import variant_rows
    from harness.report.build import build_report
    from harness.study.execute import run_study

    out = run_study(width_study(seeds=1, data_seeds=2), source="test", results_dir=tmp_path,
                    workers=1)
    md = build_report(out.study_dir).markdown.read_text()
    assert "## Bias-variance decomposition" in md or "Bias-variance decomposition" in md
    rows, notes = variant_rows(StudyRecord.load(out.study_dir))
    assert [r["variant"] for r in rows] == ["baseline", "w32"] and not notes
    record = StudyRecord.load(out.study_dir)
    for r in rows:
        runs = record.runs_of(r["variant"])
        assert r["models"] == 2 and r["data_seeds"] == 2
        # the models' mean test error, as each run's own summary recorded it
        error = np.mean([1 - run.summary["final_test_acc"] for run in runs])
        assert r["test_error"] == pytest.approx(error, abs=2e-3)
        assert r["zero_one_bias"] + r["zero_one_net_variance"] == pytest.approx(
            r["test_error"], abs=1e-9)
        assert r["zero_one_noise"] == 0.0
        assert f"| {r['variant']}" in md and f"{r['zero_one_bias']:.3f}" in md
    assert (out.study_dir / "figures" / "bias_variance" / "zero_one.png").is_file()
