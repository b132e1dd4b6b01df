"""Calibration with direction and temperature scaling, checked against independent
computations (scipy's scalar minimiser, numpy formulas, a real model's final analysis)."""

import math

import numpy as np
import pytest
import torch
from scipy.optimize import minimize_scalar
from scipy.special import log_softmax

from harness.train import build
from harness.train.analysis import expected_calibration_error, final_analysis, summary_entries
from harness.train.calibration import (
    CALIBRATION_KEYS,
    calibration_summary,
    direction,
    fit_temperature,
    nll,
)


def _sample(n: int, k: int, scale: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Labels drawn from softmax(z) (so z is calibrated); logits scale * z."""
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(n, k, generator=g, dtype=torch.float64) * 2.0
    y = torch.multinomial(z.softmax(-1), 1, generator=g).squeeze(1)
    return z * scale, y


def _scipy_temperature(logits: torch.Tensor, labels: torch.Tensor) -> float:
    z, y = logits.numpy(), labels.numpy()

    def mean_nll(log_t: float) -> float:
        return float(-log_softmax(z / np.exp(log_t), axis=1)[np.arange(len(y)), y].mean())

    res = minimize_scalar(mean_nll, bounds=(-6, 6), method="bounded",
                          options={"xatol": 1e-10})
    return float(np.exp(res.x))


@pytest.mark.parametrize("scale", [0.3, 1.0, 3.0])
def test_temperature_matches_direct_minimisation_of_val_nll(scale):
    logits, labels = _sample(4000, 10, scale, seed=1)
    t = fit_temperature(logits, labels)
    assert t == pytest.approx(_scipy_temperature(logits, labels), rel=1e-5)
    # Labels come from softmax(logits / scale): the fit recovers the scale (sampling noise).
    assert t == pytest.approx(scale, rel=0.1)
    # And it is a minimum: nudging T either way raises the NLL.
    best = nll(logits, labels, t)
    assert best < min(nll(logits, labels, t * 1.02), nll(logits, labels, t / 1.02))


def test_temperature_for_sequences_fits_over_tokens():
    logits, labels = _sample(600, 7, 2.0, seed=2)
    seq_logits, seq_labels = logits.reshape(100, 6, 7), labels.reshape(100, 6)
    assert fit_temperature(seq_logits, seq_labels) == pytest.approx(
        _scipy_temperature(logits, labels), rel=1e-5)


def test_summary_has_the_direction_and_uses_validation_only():
    val_logits, val_labels = _sample(3000, 10, 3.0, seed=3)  # over-confident by 3x
    test_logits, test_labels = _sample(3000, 10, 3.0, seed=4)
    s = calibration_summary(test_logits, test_labels, val_logits, val_labels)
    assert set(s) == set(CALIBRATION_KEYS)
    probs = test_logits.softmax(-1)
    conf = float(probs.max(-1).values.mean())
    acc = float((probs.argmax(-1) == test_labels).double().mean())
    assert s["confidence"] == pytest.approx(conf) and s["accuracy"] == pytest.approx(acc)
    assert s["overconfidence"] == pytest.approx(conf - acc) and s["overconfidence"] > 0.05
    assert direction(s["overconfidence"]) == "over-confident"
    manual_nll = float(-log_softmax(test_logits.numpy(), axis=1)[
        np.arange(len(test_labels)), test_labels.numpy()].mean())
    assert s["nll"] == pytest.approx(manual_nll)
    t = _scipy_temperature(val_logits, val_labels)  # fitted on val, not on test
    assert s["temperature"] == pytest.approx(t, rel=1e-5)
    assert s["nll_ts"] == pytest.approx(nll(test_logits, test_labels, t), rel=1e-6)
    assert s["nll_ts"] < s["nll"]
    ece_before, _ = expected_calibration_error(probs, test_labels)
    ece_after, _ = expected_calibration_error((test_logits / t).softmax(-1), test_labels)
    assert s["ece_ts"] == pytest.approx(ece_after) and ece_after < ece_before / 2
    assert abs(s["overconfidence_ts"]) < 0.03


def test_under_confident_model_and_no_validation_split():
    logits, labels = _sample(3000, 10, 0.3, seed=5)
    s = calibration_summary(logits, labels, None, None)
    assert s["overconfidence"] < -0.05 and direction(s["overconfidence"]) == "under-confident"
    assert s["temperature"] is None and s["ece_ts"] is None
    assert direction(0.004) == "calibrated" and direction(math.nan) == "n/a"


@pytest.mark.slow
def test_a_real_run_stores_calibration_in_its_summary():
    from harness.config import build_run_config
    from harness.models import create_model

    cfg = build_run_config({"data": {"name": "mnist1d", "num_samples": 600},
                            "model": {"name": "mlp", "width": 16},
                            "tracking": {"wandb": "disabled"}}, "test")
    data = build.build_data(cfg, None, torch.device("cpu"))
    model = create_model("mlp", input_shape=data.input_shape, num_classes=data.num_classes,
                         width=16)
    scalars, _ = final_analysis(model, data, cfg)
    entries = summary_entries(scalars)
    with torch.no_grad():
        model.eval()
        val_logits = model(data.prepare(data.val.x))
    assert entries["final_temperature"] == pytest.approx(
        _scipy_temperature(val_logits.double(), data.val.y), rel=1e-4)
    for k in CALIBRATION_KEYS:
        assert math.isfinite(entries[f"final_{k}"]), k


def test_report_names_the_largest_calibration_change_and_whether_temperature_undoes_it():
    import pandas as pd

    from harness.report.sections import calibration_finding

    def row(variant, base, over, ece, ece_ts, t):
        return {"variant": variant, "is_baseline": base, "overconfidence_mean": over,
                "ece_mean": ece, "ece_ts_mean": ece_ts, "temperature_mean": t}

    summary = pd.DataFrame([row("baseline", True, -0.04, 0.041, 0.014, 0.75),
                            row("eps=0.1", False, -0.19, 0.186, 0.016, 0.42),
                            row("eps=0.2", False, -0.29, 0.289, 0.015, 0.31)])
    text = calibration_finding(summary)
    assert "eps=0.2 moves confidence − accuracy from -0.040 (baseline, under-confident) " \
        "to -0.290 (under-confident)" in text
    assert "ECE 0.041 → 0.289" in text and "T = 0.310" in text
    assert "one scalar undoes" in text
    summary.loc[2, "ece_ts_mean"] = 0.2  # 0.2 > 1.5 * 0.014 + 0.01: not undone
    assert "one scalar does not undo it" in calibration_finding(summary)
    assert calibration_finding(summary[summary["is_baseline"]]) is None  # nothing to compare


@pytest.mark.slow
def test_validation_ece_reads_the_saved_model_on_the_validation_split(tmp_path):
    """What a search on calibration selects by: the finished run's saved weights, scored on
    the validation split, against a 15-bin ECE written out here."""
    from conftest import tiny_raw

    from harness.config import build_run_config
    from harness.train.analysis import validation_ece
    from harness.train.loop import train_run

    cfg = build_run_config(tiny_raw())
    result = train_run(cfg, results_dir=tmp_path)
    data = build.build_data(cfg, None, torch.device("cpu"))
    with torch.no_grad():
        result.model.eval()
        probs = result.model(data.prepare(data.val.x)).softmax(-1).numpy()
    conf, pred, y = probs.max(1), probs.argmax(1), data.val.y.numpy()
    bins = np.minimum((conf * 15).astype(int), 14)  # (k/15, (k+1)/15]; 1.0 in the last
    bins = np.where(conf * 15 == bins, bins - 1, bins).clip(0, 14)
    expected = sum(abs((pred[bins == b] == y[bins == b]).mean() - conf[bins == b].mean())
                   * (bins == b).mean() for b in range(15) if (bins == b).any())
    assert validation_ece(cfg, result.run_dir.path, None) == pytest.approx(expected, abs=1e-6)
