"""Bias-variance decompositions of test error over models trained on resampled training sets.

Analysis only (numpy): the inputs are the test-set predictions of M models of one variant,
each trained on its own resampled training set (data seed) and initialisation (seed).

- 0-1 loss, Domingos (2000), "A Unified Bias-Variance Decomposition": per test point the
  main prediction is the mode of the M predicted labels; bias B = 1[main != y*]; variance
  V = P(pred != main). The expected error against the clean label is B + c2 V with c2 = 1
  where B = 0 (variance adds error: "unbiased variance") and c2 = -P(pred = y* | pred != main)
  where B = 1 (variance can only repair a wrong main prediction: "biased variance").
  net variance = E[V_unbiased] - E[P(pred = y*) on biased points], so error = bias + net
  variance exactly. Noise N: the known rate at which the evaluation labels differ from the
  clean label (symmetric to the other K-1 classes, as harness label noise is); with clean
  test labels (MNIST-1D, every built-in test set) N = 0.
- Squared loss on probabilities (Yang et al. 2020, "Rethinking Bias-Variance Trade-off for
  Generalization of Neural Networks"): with p̄ the mean over models of the probability
  vectors, bias² = E_x ||p̄ - y||² and variance = E_x E_models ||p - p̄||², whose sum is the
  mean squared error of the models.
- Cross-entropy (the decomposition Yang et al. use, after Heskes 1998): with p̄ the
  normalised geometric mean of the models' probabilities, bias = CE(y, p̄) and variance =
  E_models KL(p̄ || p), whose sum is the models' mean cross-entropy.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

PROB_FLOOR = 1e-12  # log of a probability stored as float16 zero


@dataclass(frozen=True)
class ZeroOneDecomposition:
    """Domingos (2000) 0-1 loss terms, averaged over the test set."""

    error: float  # expected 0-1 error against the evaluation labels (noise included)
    clean_error: float  # expected 0-1 error against the clean labels = bias + net_variance
    bias: float
    variance: float  # E_x P(pred != main)
    unbiased_variance: float  # variance on points where the main prediction is right
    biased_variance: float  # P(pred = y*) on points where it is wrong (subtracted)
    net_variance: float  # unbiased_variance - biased_variance
    noise: float

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


@dataclass(frozen=True)
class LossDecomposition:
    """bias + variance = loss (the models' mean loss), averaged over the test set."""

    loss: float
    bias: float  # bias² for the squared loss
    variance: float

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


def main_prediction(preds: np.ndarray, num_classes: int) -> np.ndarray:
    """Mode over models (axis 0) of labels (M, N); ties go to the lowest class."""
    counts = np.stack([(preds == c).sum(0) for c in range(num_classes)])  # (K, N)
    return counts.argmax(0)


def zero_one(preds: np.ndarray, y_star: np.ndarray, num_classes: int,
             noise: float = 0.0) -> ZeroOneDecomposition:
    """Domingos' decomposition of labels `preds` (M models, N points) against clean `y_star`.

    `noise` is the known rate at which evaluation labels differ from y* (uniformly over the
    other classes); the expected error against them is noise + (1 - noise K/(K-1)) x
    clean_error (a prediction that is right for y* is wrong with probability noise; one that
    is wrong for y* is right with probability noise/(K-1)).
    """
    preds, y_star = np.asarray(preds), np.asarray(y_star)
    if preds.ndim != 2 or preds.shape[1] != len(y_star):
        raise ValueError(f"preds must be (models, points) matching y_star ({len(y_star)}), "
                         f"got {preds.shape}")
    if not 0.0 <= noise < 1.0:
        raise ValueError(f"noise must be in [0, 1), got {noise=}")
    main = main_prediction(preds, num_classes)
    biased = main != y_star
    variance = (preds != main).mean(0)
    right = (preds == y_star).mean(0)
    unbiased_var = float(np.where(biased, 0.0, variance).mean())
    biased_var = float(np.where(biased, right, 0.0).mean())
    clean = float(biased.mean()) + unbiased_var - biased_var
    factor = 1.0 - noise * num_classes / (num_classes - 1)
    return ZeroOneDecomposition(
        error=noise + factor * clean, clean_error=clean, bias=float(biased.mean()),
        variance=float(variance.mean()), unbiased_variance=unbiased_var,
        biased_variance=biased_var, net_variance=unbiased_var - biased_var, noise=noise)


def one_hot(labels: np.ndarray, num_classes: int) -> np.ndarray:
    return np.eye(num_classes)[np.asarray(labels)]


def squared(predictions: np.ndarray, targets: np.ndarray) -> LossDecomposition:
    """Squared loss of predictions (M, N, K) against targets (N, K): K = 1 for regression,
    class probabilities against one-hot labels for classification (Yang et al. 2020)."""
    p = np.asarray(predictions, dtype=np.float64)
    y = np.asarray(targets, dtype=np.float64)
    if p.ndim != 3 or p.shape[1:] != y.shape:
        raise ValueError(f"predictions must be (models, {y.shape}), got {p.shape}")
    mean = p.mean(0)
    bias2 = float(((mean - y) ** 2).sum(-1).mean())
    variance = float(((p - mean) ** 2).sum(-1).mean())
    loss = float(((p - y) ** 2).sum(-1).mean())
    return LossDecomposition(loss=loss, bias=bias2, variance=variance)


def cross_entropy(probs: np.ndarray, labels: np.ndarray) -> LossDecomposition:
    """Cross-entropy of probabilities (M, N, K) against labels (N,): bias = CE of the
    normalised geometric mean p̄, variance = mean KL(p̄ || p) (Heskes 1998)."""
    logp = np.log(np.clip(np.asarray(probs, dtype=np.float64), PROB_FLOOR, None))
    logp -= np.log(np.exp(logp).sum(-1, keepdims=True))  # renormalise float16 rounding
    labels = np.asarray(labels)
    mean_log = logp.mean(0)  # (N, K)
    log_z = np.log(np.exp(mean_log).sum(-1))  # (N,)
    log_bar = mean_log - log_z[:, None]
    rows = np.arange(len(labels))
    bias = float(-log_bar[rows, labels].mean())
    kl = (np.exp(log_bar)[None] * (log_bar[None] - logp)).sum(-1)  # (M, N)
    loss = float(-logp[:, rows, labels].mean())
    return LossDecomposition(loss=loss, bias=bias, variance=float(kl.mean()))


def decompose(probs: np.ndarray, labels: np.ndarray, noise: float = 0.0) -> dict[str, float]:
    """Every decomposition of one variant's test probabilities (M, N, K) against the clean
    labels (N,), as flat keys: zero_one_*, mse_*, ce_*, plus the models' mean test error."""
    probs = np.asarray(probs, dtype=np.float64)
    k = probs.shape[-1]
    out = {f"zero_one_{key}": v
           for key, v in zero_one(probs.argmax(-1), labels, k, noise).as_dict().items()}
    out.update({f"mse_{key}": v for key, v in squared(probs, one_hot(labels, k)).as_dict().items()})
    out.update({f"ce_{key}": v for key, v in cross_entropy(probs, labels).as_dict().items()})
    out["models"] = float(len(probs))
    out["test_error"] = float((probs.argmax(-1) != labels).mean())
    return out
