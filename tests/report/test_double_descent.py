"""Double descent: peak and threshold detection on curves with known answers, the width x
epoch heatmap builder, and a tiny real width sweep end to end."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from harness.report.double_descent import (
    describe_double_descent,
    find_peak,
    interpolation_threshold,
    width_epoch_heatmap,
)
from harness.report.double_descent_figures import double_descent_figures
from harness.report.double_descent_section import (
    collect_points,
    double_descent_section,
    study_kind,
)

WIDTHS = [1, 2, 4, 8, 16, 32, 64, 128, 256]
# classic double descent: falls, rises to a peak at 16, falls below the first minimum
DD = [0.60, 0.45, 0.35, 0.40, 0.55, 0.42, 0.33, 0.30, 0.28]
TRAIN = [0.70, 0.55, 0.40, 0.20, 0.005, 0.0, 0.0, 0.0, 0.0]


# ----------------------------------------------------------------------------- threshold


def test_threshold_is_smallest_width_at_zero_train_error():
    assert interpolation_threshold(WIDTHS, TRAIN) == 16
    assert interpolation_threshold(WIDTHS, TRAIN, tol=0.0) == 32
    assert interpolation_threshold(list(reversed(WIDTHS)), list(reversed(TRAIN))) == 16


def test_threshold_none_when_never_interpolating():
    assert interpolation_threshold([1, 2, 4], [0.5, 0.3, 0.2]) is None
    assert interpolation_threshold([], []) is None
    assert interpolation_threshold([1, 2], [float("nan"), 0.0]) == 2


# ----------------------------------------------------------------------------- peak


def test_peak_of_a_double_descent_curve():
    p = find_peak(WIDTHS, DD)
    assert p.found
    assert p.x == 16 and p.height == pytest.approx(0.55)
    assert p.min_before_x == 4 and p.min_before == pytest.approx(0.35)
    assert p.last_x == 256 and p.last_value == pytest.approx(0.28)
    assert p.prominence == pytest.approx(0.20)


def test_peak_is_found_with_unsorted_input():
    order = [5, 0, 8, 3, 1, 7, 2, 6, 4]
    p = find_peak([WIDTHS[i] for i in order], [DD[i] for i in order])
    assert p.x == 16 and p.min_before_x == 4


@pytest.mark.parametrize("curve", [
    [0.6, 0.5, 0.45, 0.4, 0.35, 0.3, 0.29, 0.28, 0.27],  # monotone decreasing
    [0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5, 0.55, 0.6],  # monotone increasing (overfitting)
    [0.6, 0.5, 0.4, 0.35, 0.35, 0.35, 0.35, 0.35, 0.35],  # plateau
])
def test_monotone_curve_has_no_second_descent(curve):
    p = find_peak(WIDTHS, curve)
    assert not p.found and p.x is None and p.prominence <= 0
    d = describe_double_descent(WIDTHS, curve)
    assert d["observed"] is False
    assert "No second descent" in d["text"]


def test_u_shape_without_second_descent_is_not_one():
    # classical U: the "peak" is the last point, which cannot be a second descent
    p = find_peak(WIDTHS, [0.6, 0.5, 0.4, 0.35, 0.38, 0.42, 0.48, 0.55, 0.6])
    assert not p.found


def test_describe_with_noisy_seeds_observed():
    rng = np.random.default_rng(0)
    seeds = np.array(DD)[None, :] + rng.normal(0, 0.01, size=(3, len(DD)))
    d = describe_double_descent(WIDTHS, seeds, np.array([TRAIN] * 3))
    assert d["observed"] is True
    assert d["peak_x"] == 16 and d["min_before_x"] == 4 and d["last_x"] == 256
    assert d["threshold_x"] == 16
    assert d["n_seeds"] == 3
    assert 0 < d["spread"] < 0.05
    assert d["peak_height"] == pytest.approx(seeds[:, 4].mean())
    assert "second descent was observed" in d["text"]
    assert "16" in d["text"]


def test_describe_peak_within_spread_is_not_observed():
    # a 1-point bump of 0.01 with seeds that disagree by ~0.05: not a second descent
    base = np.array([0.6, 0.5, 0.4, 0.35, 0.36, 0.345, 0.34, 0.335, 0.33])
    seeds = np.stack([base + 0.05, base - 0.05, base])
    d = describe_double_descent(WIDTHS, seeds)
    assert d["peak_found"] is True
    assert d["observed"] is False
    assert d["spread"] == pytest.approx(0.05)
    assert "No clear second descent" in d["text"]


def test_describe_accepts_per_point_seed_lists():
    per_point = [[v, v + 0.01] for v in DD]
    d = describe_double_descent(WIDTHS, per_point)
    assert d["n_seeds"] == 2 and d["peak_x"] == 16 and d["observed"]


def test_smoothing_ignores_a_single_noisy_spike():
    # one spike at width 2 (before the minimum) would be picked unsmoothed? no: its score is
    # bounded by the rise over the min before it (none lower before it) -> real peak wins
    curve = [0.60, 0.62, 0.35, 0.40, 0.55, 0.42, 0.33, 0.30, 0.28]
    assert find_peak(WIDTHS, curve).x == 16
    assert find_peak(WIDTHS, curve, smooth=3).x == 16


# ----------------------------------------------------------------------------- heatmap


def _rows(errors):
    return [{"epoch": e + 1, "test_acc": 1 - v} for e, v in enumerate(errors)]


def test_heatmap_from_constructed_runs():
    runs = [
        {"width": 8, "rows": _rows([0.5, 0.4, 0.3])},
        {"width": 8, "rows": _rows([0.7, 0.6, 0.5])},  # second seed: averaged
        {"width": 2, "rows": _rows([0.9, 0.8])},  # stopped early: NaN at epoch 3
        {"config": {"model": {"width": 32}}, "rows": _rows([0.2, 0.1, 0.05])},
    ]
    widths, epochs, m = width_epoch_heatmap(runs)
    assert widths == [2, 8, 32]
    assert epochs == [1, 2, 3]
    assert m.shape == (3, 3)
    assert m[0, 1] == pytest.approx(0.6) and m[2, 1] == pytest.approx(0.4)
    assert m[1, 0] == pytest.approx(0.8) and math.isnan(m[2, 0])
    assert m[2, 2] == pytest.approx(0.05)


def test_study_kind_detection(tmp_path):
    def manifest(name, design, **extra):
        d = tmp_path / name
        d.mkdir()
        (d / "study.json").write_text(json.dumps({"name": name, "design": design, **extra}))
        return d

    assert study_kind(manifest("anything", {"kind": "sweep", "parameter": "model.width"})) \
        == "width"
    assert study_kind(manifest("x2", {"kind": "grid", "parameters": {
        "data.train_size": [100, 200]}})) == "samples"
    # the kind comes from the design, never the name: epoch-wise is asked for explicitly
    assert study_kind(manifest("double_descent_epochs", {"kind": "sweep", "parameter":
                                                         "model.width"})) == "width"
    assert study_kind(manifest("long_run", {"kind": "sweep", "parameter": "model.width"},
                               analysis="double_descent_epochs")) == "epochs"
    assert study_kind(manifest("double_descent_x", {"kind": "sweep", "parameter":
                                                    "optim.lr"})) is None
    assert study_kind(manifest("x3", {"kind": "one_at_a_time", "variants": {
        "cnn_w2": {"model": {"width": 2}}, "mlp_w8": {"model": {"name": "mlp", "width": 8}}}})) \
        == "width"
    assert study_kind(manifest("dropout", {"kind": "sweep", "parameter":
                                           "regularizers.dropout.p"})) is None
    assert double_descent_section(tmp_path / "dropout") is None


# ----------------------------------------------------------------------------- end to end


@pytest.mark.slow
def test_tiny_real_width_sweep_end_to_end(tmp_path):
    from harness.study.execute import run_study
    from harness.study.spec import StudyConfig

    study = StudyConfig.model_validate({
        "name": "double_descent_tiny",
        "base": {"data": {"name": "mnist1d", "num_samples": 600, "train_size": 120,
                          "label_noise": 0.2},
                 "model": {"name": "mlp", "width": 4, "depth": 1},
                 "optim": {"name": "adam", "lr": 0.01}, "schedule": {"name": "constant"},
                 "train": {"epochs": 4, "batch_size": 64, "threads": 1, "checkpoint": False},
                 "tracking": {"wandb": "disabled"}},
        "design": {"kind": "sweep", "parameter": "model.width", "values": [2, 4, 16, 64]},
        "seeds": 1,
    })
    out = run_study(study, source="test", results_dir=tmp_path, workers=1)
    assert out.finished == 4 and not out.failed  # the baseline (width 4) is a sweep point
    sdir = tmp_path / "double_descent_tiny"

    kind, points = collect_points(sdir)
    assert kind == "width"
    assert sorted(p.x for p in points) == [2, 4, 16, 64]
    assert {p.series for p in points} == {"mlp"}  # the baseline run joins the sweep

    section = double_descent_section(sdir)
    assert section is not None and section["kind"] == "width"
    (s,) = section["series"]
    assert s["xs"] == [2, 4, 16, 64]
    for x, test_mean, train_mean, params in zip(s["xs"], s["test_mean"], s["train_mean"],
                                                s["params"], strict=True):
        (p,) = [p for p in points if p.x == x]
        summary = p.run.summary
        assert test_mean == pytest.approx(1 - summary["final_test_acc"])
        assert train_mean == pytest.approx(1 - summary["final_train_eval_acc"])
        assert params == summary["params"] == 51 * x + 10
    d = s["description"]
    assert d["n_seeds"] == 1 and d["last_x"] == 64
    assert section["statements"] and section["markdown"].startswith("## ")

    figs = double_descent_figures(sdir, tmp_path / "figs", section=section)
    titles = [t for t, _ in figs]
    assert titles == ["Test and train error vs width (mlp)",
                      "Test and train error vs parameter count",
                      "Test error over width x epoch (mlp)"]
    for _, path in figs:
        assert path.parent == tmp_path / "figs"
        assert path.is_file() and path.read_bytes()[:4] == b"\x89PNG"
    # the heatmap holds the runs' own per-epoch test errors
    widths, epochs, m = width_epoch_heatmap(p.run for p in points)
    assert widths == [2, 4, 16, 64] and epochs == [1, 2, 3, 4]
    (p64,) = [p for p in points if p.x == 64]
    assert m[-1, -1] == pytest.approx(1 - p64.run.metrics["test_acc"].iloc[-1])


@pytest.mark.slow
def test_grid_series_from_a_constructed_regularized_study(tmp_path):
    """A regularizers x width grid: one curve per regularizer; the baseline run (which takes
    the place of the grid point with its config) lands in its own series."""
    from harness.numerics import NUMERICS_VERSION
    from harness.record.disk import atomic_write_json
    from harness.record.run_dir import RunDir
    from harness.study.plan import expand, study_manifest
    from harness.study.spec import StudyConfig

    study = StudyConfig.model_validate({
        "name": "double_descent_reg_tiny",
        "base": {"data": {"name": "mnist1d", "label_noise": 0.2},
                 "model": {"name": "mlp", "width": 8, "depth": 1}},
        "design": {"kind": "grid", "parameters": {
            "regularizers": {"none": {}, "weight_decay": {"weight_decay": {"value": 0.5}}},
            "model.width": [2, 8, 32]}},
        "seeds": 2,
    })
    specs = expand(study, "test")
    assert len(specs) == 12  # the baseline is the (none, 8) grid point
    sdir = tmp_path / study.name
    atomic_write_json(sdir / "study.json", study_manifest(study, specs))
    curve = {"regularizers=none": {2: 0.5, 8: 0.6, 32: 0.4},
             "regularizers=weight_decay": {2: 0.5, 8: 0.45, 32: 0.4}}
    for s in specs:
        label = "regularizers=weight_decay" if s.config.regularizers else "regularizers=none"
        err = curve[label][s.config.model.width] + 0.01 * s.seed
        rd = RunDir.for_run(sdir, s.variant, s.seed, s.run_id)
        rd.write_config({"run_id": s.run_id, "numerics": NUMERICS_VERSION,  # as the store does
                         **s.config.model_dump(mode="json")})
        rd.write_metrics([{"epoch": 1, "test_acc": 0.1}, {"epoch": 2, "test_acc": 1 - err}])
        rd.write_summary({"status": "completed", "params": 51 * s.config.model.width + 10,
                          "final_test_acc": 1 - err, "final_train_eval_acc": 1.0})
    section = double_descent_section(sdir)
    assert section["kind"] == "width"
    by = {s["label"]: s for s in section["series"]}
    assert set(by) == set(curve)
    for label, s in by.items():
        assert s["xs"] == [2, 8, 32] and s["n_seeds"] == 2
        assert s["test_mean"] == pytest.approx([curve[label][w] + 0.005 for w in (2, 8, 32)])
    assert by["regularizers=none"]["description"]["observed"] is True
    assert by["regularizers=none"]["description"]["peak_x"] == 8
    assert by["regularizers=weight_decay"]["description"]["observed"] is False
    figs = double_descent_figures(sdir, tmp_path / "figs", section=section)
    assert "Test error vs width, overlaid" in [t for t, _ in figs]


def test_train_size_threshold_is_the_largest_size_still_interpolated():
    sizes = [250, 500, 1000, 2000, 4000]
    train = [0.0, 0.0, 0.004, 0.15, 0.3]
    assert interpolation_threshold(sizes, train, largest=True) == 1000
    d = describe_double_descent(sizes, [0.5, 0.55, 0.6, 0.5, 0.4], train,
                                threshold_largest=True, x_name="train size")
    assert d["threshold_x"] == 1000 and d["peak_x"] == 1000 and d["observed"]
    assert "largest train size with train error" in d["text"]


