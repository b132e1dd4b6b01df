"""Bias-variance decompositions against hand-computed cases and closed forms."""

from __future__ import annotations

import math

import numpy as np
import pytest

from harness.report import bias_variance as bv


def test_zero_one_by_hand():
    # 4 models, 3 points, 3 classes; clean labels 0, 1, 2.
    preds = np.array([[0, 1, 0],
                      [0, 2, 0],
                      [0, 2, 1],
                      [1, 2, 2]])
    d = bv.zero_one(preds, np.array([0, 1, 2]), num_classes=3)
    # point 0: main 0 (right), V = 1/4.  point 1: main 2 (wrong), V = 1/4, P(pred = 1) = 1/4.
    # point 2: main 0 (wrong), V = 2/4, P(pred = 2) = 1/4.
    assert d.bias == pytest.approx(2 / 3)
    assert d.variance == pytest.approx((1 / 4 + 1 / 4 + 2 / 4) / 3)
    assert d.unbiased_variance == pytest.approx((1 / 4) / 3)
    assert d.biased_variance == pytest.approx((1 / 4 + 1 / 4) / 3)
    assert d.net_variance == pytest.approx((1 / 4 - 1 / 4 - 1 / 4) / 3)
    # errors: 1/4, 3/4, 3/4
    assert d.clean_error == pytest.approx((1 / 4 + 3 / 4 + 3 / 4) / 3)
    assert d.noise == 0.0 and d.error == d.clean_error


def test_zero_one_bias_plus_net_variance_is_the_error():
    rng = np.random.default_rng(0)
    preds = rng.integers(0, 5, size=(9, 400))
    y = rng.integers(0, 5, size=400)
    d = bv.zero_one(preds, y, 5)
    assert d.bias + d.net_variance == pytest.approx((preds != y).mean(), abs=1e-12)


def test_zero_one_noise_matches_the_exact_expectation_over_noisy_labels():
    rng = np.random.default_rng(1)
    k, p = 4, 0.3
    preds = rng.integers(0, k, size=(7, 200))
    y = rng.integers(0, k, size=200)
    # P(label = c | x): 1 - p for the clean class, p / (K - 1) for each other one
    label_probs = np.full((200, k), p / (k - 1))
    label_probs[np.arange(200), y] = 1 - p
    exact = 1 - np.mean([label_probs[np.arange(200), m] for m in preds])
    d = bv.zero_one(preds, y, k, noise=p)
    assert d.error == pytest.approx(exact, abs=1e-12)
    assert d.noise == p


def test_identical_models_have_no_variance():
    probs = np.tile(np.array([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]]), (5, 1, 1))
    labels = np.array([0, 1])
    out = bv.decompose(probs, labels)
    assert out["zero_one_variance"] == 0 and out["mse_variance"] == 0
    assert out["ce_variance"] == pytest.approx(0.0, abs=1e-12)
    assert out["ce_bias"] == pytest.approx(-(math.log(0.7) + math.log(0.1)) / 2)
    assert out["mse_bias"] == pytest.approx(((0.3**2 + 0.04 + 0.01) + (0.01 + 0.81 + 0.64)) / 2)
    assert out["zero_one_bias"] == 0.5 and out["test_error"] == 0.5


def test_cross_entropy_two_models_by_hand():
    probs = np.array([[[0.8, 0.2]], [[0.2, 0.8]]])  # two models, one point, label 0
    d = bv.cross_entropy(probs, np.array([0]))
    # geometric mean of (0.8, 0.2) and (0.2, 0.8) is (0.4, 0.4): normalised (0.5, 0.5)
    assert d.bias == pytest.approx(math.log(2))
    kl = 0.5 * math.log(0.5 / 0.8) + 0.5 * math.log(0.5 / 0.2)
    assert d.variance == pytest.approx(kl)
    assert d.loss == pytest.approx(-(math.log(0.8) + math.log(0.2)) / 2)
    assert d.bias + d.variance == pytest.approx(d.loss)


def test_cross_entropy_and_squared_terms_add_up_on_random_probabilities():
    rng = np.random.default_rng(2)
    logits = rng.normal(size=(6, 300, 10)) * 2
    probs = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    labels = rng.integers(0, 10, size=300)
    ce = bv.cross_entropy(probs, labels)
    assert ce.bias + ce.variance == pytest.approx(ce.loss, rel=1e-12)
    sq = bv.squared(probs, bv.one_hot(labels, 10))
    assert sq.bias + sq.variance == pytest.approx(sq.loss, rel=1e-12)
    # the mean squared error computed directly
    direct = np.mean([((p - np.eye(10)[labels]) ** 2).sum(-1).mean() for p in probs])
    assert sq.loss == pytest.approx(direct, rel=1e-12)


def _linear_data(rng: np.random.Generator, n: int, d: int) -> np.ndarray:
    return rng.normal(size=(n, d))


def test_least_squares_decomposition_matches_the_closed_form():
    """Fixed design X, y = X w + noise (sd sigma), resampled noise = resampled training sets.
    OLS is unbiased and its prediction variance at x is sigma² xᵀ(XᵀX)⁻¹x; ridge shrinks
    E[ŵ] = (XᵀX + λI)⁻¹XᵀX w, which gives its bias² in closed form."""
    rng = np.random.default_rng(3)
    n, d, sigma, lam, models = 40, 5, 0.5, 20.0, 20000
    x, x_test = _linear_data(rng, n, d), _linear_data(rng, 50, d)
    w = rng.normal(size=d)
    f_test = x_test @ w
    ys = x @ w + sigma * rng.normal(size=(models, n))  # one training set per model
    gram = x.T @ x
    for penalty in (0.0, lam):
        w_hat = np.linalg.solve(gram + penalty * np.eye(d), x.T @ ys.T).T  # (models, d)
        preds = (w_hat @ x_test.T)[..., None]  # (models, points, 1)
        got = bv.squared(preds, f_test[:, None])
        inv = np.linalg.inv(gram + penalty * np.eye(d))
        mean_w = inv @ gram @ w
        bias2 = np.mean((x_test @ (mean_w - w)) ** 2)
        cov = sigma**2 * inv @ gram @ inv
        variance = np.mean(np.einsum("nd,de,ne->n", x_test, cov, x_test))
        assert got.bias + got.variance == pytest.approx(got.loss, rel=1e-12)
        assert got.variance == pytest.approx(variance, rel=0.03)
        if penalty == 0.0:
            assert got.bias < 0.01 * got.variance  # unbiased up to Monte Carlo error
        else:
            assert got.bias == pytest.approx(bias2, rel=0.03)
            assert bias2 > 0.05  # the case is not trivially unbiased


@pytest.mark.parametrize("bad", [np.zeros((3,)), np.zeros((2, 5))])
def test_zero_one_rejects_mismatched_shapes(bad):
    with pytest.raises(ValueError, match="preds must be"):
        bv.zero_one(bad, np.zeros(4, dtype=int), 3)
