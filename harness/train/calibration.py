"""Calibration with its direction, and temperature scaling. Guo et al. 2017, "On Calibration
of Modern Neural Networks", ICML.

ECE alone says how far confidence is from accuracy, not which way: a model made
under-confident by label smoothing and an over-confident one can have the same ECE. So a run
also records the mean max-softmax confidence, the accuracy and their difference
(overconfidence > 0: over-confident), the test negative log-likelihood, and the same after
temperature scaling: one scalar T > 0 dividing the logits, fitted by minimising the NLL on
the validation split (the test set is never used to fit it). T > 1 means the model was
over-confident on validation, T < 1 under-confident.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F

# Scalars calibration_summary returns (stored in summary.json as final_<key>).
CALIBRATION_KEYS = ("confidence", "accuracy", "overconfidence", "nll", "temperature",
                    "nll_ts", "ece_ts", "confidence_ts", "overconfidence_ts")
LOG_T_BOUND = 6.0  # T in [e^-6, e^6]: beyond that the logits are all-or-nothing anyway
ECE_BINS = 15  # equal-width confidence bins, as in Guo et al. 2017


def reliability_bins(confidence: torch.Tensor, correct: torch.Tensor,
                     n_bins: int = ECE_BINS) -> dict[str, list[float]]:
    """Per bin (lo, hi] of max-softmax confidence: mean confidence, accuracy and count.

    Empty bins hold confidence/accuracy 0 and count 0. Bin m covers ((m-1)/M, m/M]; a
    confidence of exactly 0 falls into the first bin.
    """
    conf = confidence.detach().double().flatten().cpu()
    corr = correct.detach().double().flatten().cpu()
    idx = (torch.ceil(conf * n_bins).long() - 1).clamp_(0, n_bins - 1)
    count = torch.bincount(idx, minlength=n_bins).double()
    conf_sum = torch.zeros(n_bins, dtype=torch.float64).index_add_(0, idx, conf)
    acc_sum = torch.zeros(n_bins, dtype=torch.float64).index_add_(0, idx, corr)
    safe = count.clamp(min=1)
    return {"confidence": (conf_sum / safe).tolist(), "accuracy": (acc_sum / safe).tolist(),
            "count": [int(c) for c in count.tolist()]}


def ece_from_bins(bins: dict[str, list[float]]) -> float:
    """sum_m |B_m|/n * |acc(B_m) - conf(B_m)|."""
    n = sum(bins["count"])
    if n == 0:
        return float("nan")
    return float(sum(c / n * abs(a - f) for c, a, f in
                     zip(bins["count"], bins["accuracy"], bins["confidence"], strict=True)))


def expected_calibration_error(probs: torch.Tensor, labels: torch.Tensor,
                               n_bins: int = ECE_BINS) -> tuple[float, dict[str, list[float]]]:
    """ECE of class probabilities (N, K) against labels (N,)."""
    conf, pred = probs.max(-1)
    bins = reliability_bins(conf, pred == labels, n_bins)
    return ece_from_bins(bins), bins


def _flat(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, K) float64 logits and (N,) labels on the CPU; sequences (N, T, V) become tokens."""
    return (logits.detach().reshape(-1, logits.size(-1)).double().cpu(),
            labels.detach().reshape(-1).long().cpu())


def nll(logits: torch.Tensor, labels: torch.Tensor, temperature: float = 1.0) -> float:
    """Mean negative log-likelihood of softmax(logits / T)."""
    z, y = _flat(logits, labels)
    return float(F.cross_entropy(z / temperature, y))


def fit_temperature(logits: torch.Tensor, labels: torch.Tensor) -> float:
    """T minimising the mean NLL of softmax(logits / T) on (logits, labels).

    Newton's method on t = log T (the NLL is smooth in t; first and second derivatives in
    closed form), with a step halving whenever a step does not lower the NLL, so it cannot
    diverge. At the optimum E_y[z_y] = E_softmax(z/T)[z] over the examples.
    """
    z, y = _flat(logits, labels)
    if len(y) == 0:
        return math.nan
    zy = z.gather(1, y[:, None]).squeeze(1)

    def value_grad_hess(t: float) -> tuple[float, float, float]:
        s = math.exp(-t)  # 1 / T
        p = (z * s).softmax(-1)
        mean_z = (p * z).sum(-1)
        var_z = (p * z * z).sum(-1) - mean_z ** 2
        f = float((torch.logsumexp(z * s, -1) - s * zy).mean())
        # d/dt of s * (mean_z - zy) with ds/dt = -s, and d mean_z / ds = var_z.
        g = float((-s * (mean_z - zy)).mean())
        h = float((s * (mean_z - zy) + s * s * var_z).mean())
        return f, g, h

    t = 0.0
    f, g, h = value_grad_hess(t)
    for _ in range(100):
        step = -g / h if h > 1e-12 else -math.copysign(0.5, g)
        step = max(-1.0, min(1.0, step))
        while True:
            t_new = max(-LOG_T_BOUND, min(LOG_T_BOUND, t + step))
            f_new, g_new, h_new = value_grad_hess(t_new)
            if f_new <= f + 1e-15 or abs(step) < 1e-12:
                break
            step /= 2
        converged = abs(t_new - t) < 1e-10
        t, f, g, h = t_new, f_new, g_new, h_new
        if converged or abs(g) < 1e-12:
            break
    return math.exp(t)


def confidence_accuracy(logits: torch.Tensor, labels: torch.Tensor,
                        temperature: float = 1.0) -> tuple[float, float]:
    """Mean max-softmax confidence and accuracy of softmax(logits / T)."""
    z, y = _flat(logits, labels)
    conf, pred = (z / temperature).softmax(-1).max(-1)
    return float(conf.mean()), float((pred == y).double().mean())


def calibration_summary(test_logits: torch.Tensor, test_labels: torch.Tensor,
                        val_logits: torch.Tensor | None,
                        val_labels: torch.Tensor | None) -> dict[str, Any]:
    """Every CALIBRATION_KEYS scalar on the test set; the *_ts ones with T fitted on
    validation (None without a validation split)."""
    out: dict[str, Any] = dict.fromkeys(CALIBRATION_KEYS)
    z, y = _flat(test_logits, test_labels)
    if len(y) == 0:
        return out
    conf, acc = confidence_accuracy(z, y)
    out.update(confidence=conf, accuracy=acc, overconfidence=conf - acc, nll=nll(z, y))
    if val_logits is None or val_labels is None or val_labels.numel() == 0:
        return out
    t = fit_temperature(val_logits, val_labels)
    conf_ts, _ = confidence_accuracy(z, y, t)
    ece_ts, _ = expected_calibration_error((z / t).softmax(-1), y)
    out.update(temperature=t, nll_ts=nll(z, y, t), ece_ts=ece_ts, confidence_ts=conf_ts,
               overconfidence_ts=conf_ts - acc)
    return out


def direction(overconfidence: float, tolerance: float = 0.01) -> str:
    """'over-confident', 'under-confident' or 'calibrated' (|confidence - accuracy| <= tol)."""
    if overconfidence is None or not math.isfinite(overconfidence):
        return "n/a"
    if overconfidence > tolerance:
        return "over-confident"
    if overconfidence < -tolerance:
        return "under-confident"
    return "calibrated"
