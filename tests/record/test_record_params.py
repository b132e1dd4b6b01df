"""record/params.py: the design's swept parameters, each variant's swept values, and the
one labeller's forms."""

from __future__ import annotations

from harness.record.params import param_label, sweep_axis, swept_parameters, swept_values

GRID = {"kind": "grid", "parameters": {
    "regularizers": {"none": {}, "wd": {"weight_decay": {"value": 0.5}}},
    "model.width": [2, 8]}}
SWEEP = {"kind": "sweep", "parameter": "regularizers.dropout.p", "values": [0.1, 0.3],
         "baseline_value": 0.0}


def test_a_parameter_has_one_name_per_form() -> None:
    p = param_label("regularizers.dropout.p")
    assert (p.key, p.short, p.wandb, p.display) == (
        "regularizers.dropout.p", "dropout.p", "dropout_p", "dropout p")
    w = param_label("model.width")
    assert (w.short, w.wandb, w.display) == ("width", "width", "width")
    assert param_label("seed").short == "seed"


def test_the_swept_parameters_of_each_design() -> None:
    assert swept_parameters(SWEEP) == ["regularizers.dropout.p"]
    assert swept_parameters(GRID) == ["regularizers", "model.width"]
    assert swept_parameters({"kind": "one_at_a_time", "variants": {"a": {}}}) == []
    assert swept_parameters(None) == []
    assert sweep_axis(SWEEP) == "regularizers.dropout.p" and sweep_axis(GRID) is None
    assert sweep_axis({"kind": "grid", "parameters": {"model.width": [1, 2]}}) == "model.width"


def test_a_variant_holds_its_own_values_the_baseline_its_place_on_the_design() -> None:
    config = {"regularizers": {"dropout": {"p": 0.3}}, "model": {"width": 8}}
    assert swept_values(SWEEP, {"regularizers.dropout.p": 0.3}, False, config) == {
        "regularizers.dropout.p": 0.3}
    assert swept_values(SWEEP, {}, True, {"regularizers": {}}) == {"regularizers.dropout.p": 0.0}
    no_value = {k: v for k, v in SWEEP.items() if k != "baseline_value"}
    assert swept_values(no_value, {}, True, config) == {"regularizers.dropout.p": 0.3}


def test_a_grid_baseline_sits_on_the_point_its_config_matches() -> None:
    """A section axis matches on the entries the study file sets (a resolved section may hold
    more); a section that matches no label leaves the axis out."""
    assert swept_values(GRID, {}, True, {"regularizers": {}, "model": {"width": 8}}) == \
        {"regularizers": "none", "model.width": 8}
    resolved = {"weight_decay": {"value": 0.5, "decoupled": True}}
    assert swept_values(GRID, {}, True, {"regularizers": resolved, "model": {"width": 2}}) == \
        {"regularizers": "wd", "model.width": 2}
    other = {"weight_decay": {"value": 0.1}}
    assert swept_values(GRID, {}, True, {"regularizers": other, "model": {"width": 2}}) == \
        {"model.width": 2}
    own = {"regularizers": "wd", "model.width": 2}
    assert swept_values(GRID, own, False, {"regularizers": resolved}) == own
