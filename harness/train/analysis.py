"""End-of-run analysis of the final (eval) model: calibration, memorization, robustness, cost.

`final_analysis` runs once after training and returns scalars for summary.json plus the
test-set predicted labels (for between-seed disagreement in the report):

- ece: expected calibration error on the test set, 15 equal-width confidence bins
  (Guo et al. 2017, "On Calibration of Modern Neural Networks"; computed in
  harness/train/calibration.py). Over tokens for text.
- mia_auc: membership inference by a loss-threshold attack (Yeom et al. 2018, "Privacy Risk
  in Machine Learning"): members are up to 2000 training examples (with the labels the model
  was trained on, i.e. noisy ones if any), non-members the same number of test examples; the
  attack calls an example a member when its loss is low, and its ROC AUC is reported
  (0.5 = no memorization signal).
- mia_advantage: 2 * (mia_auc - 0.5), the threshold-free (AUC-based) membership advantage in
  [-1, 1]; 0 = no advantage. (Not the max over thresholds of TPR - FPR.)
- shift_acc: accuracy on a seeded `shift_corrupt` copy of the test set (None for text).
- flops: forward FLOPs for one sample counted by torch.utils.flop_counter.FlopCounterMode
  (a multiply-add counts as 2 FLOPs, as torch counts it).
- reliability: per-bin {"confidence", "accuracy", "count"} lists behind the ECE.
- calibration with its direction (harness.train.calibration): mean max-softmax confidence,
  accuracy, overconfidence = confidence - accuracy (> 0 over-confident, < 0 under-confident),
  test NLL, and NLL / ECE / confidence after temperature scaling with T fitted on the
  validation split (Guo et al. 2017).

Store with `summary_entries(scalars)` (keys final_ece, final_mia_auc, final_mia_advantage,
final_shift_acc, flops, final_reliability, final_<calibration key>) and
`save_predictions(run_path, preds)`.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import nn

from harness.config import RunConfig
from harness.record.disk import atomic_torch_save
from harness.record.layout import TEST_LABELS, TEST_PREDICTIONS, TEST_PROBS
from harness.train.calibration import (
    CALIBRATION_KEYS,
    calibration_summary,
    expected_calibration_error,
)

if TYPE_CHECKING:
    import numpy as np

MIA_MAX_EXAMPLES = 2000  # members (train) and as many non-members (test)
SHIFT_SEED = 20240601  # + data.seed: the same corrupted test set for every run seed


# ----------------------------------------------------------------------------- metrics


def loss_threshold_auc(member_losses: torch.Tensor, nonmember_losses: torch.Tensor) -> float:
    """ROC AUC of the attack score -loss (members positive); ties count one half.

    Equals sklearn.metrics.roc_auc_score(labels, -losses) (Mann-Whitney U / (n1 * n0)).
    Average ranks are computed in torch (scipy's rankdata would cost an import per worker).
    """
    m = member_losses.detach().double().flatten().cpu()
    nm = nonmember_losses.detach().double().flatten().cpu()
    n1, n0 = len(m), len(nm)
    if n1 == 0 or n0 == 0:
        return float("nan")
    ranks = average_ranks(torch.cat([-m, -nm]))
    return float((ranks[:n1].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


def average_ranks(values: torch.Tensor) -> torch.Tensor:
    """1-based ranks, tied values sharing their mean rank (scipy.stats.rankdata's default)."""
    _, inverse, counts = torch.unique(values, sorted=True, return_inverse=True,
                                      return_counts=True)
    last = counts.cumsum(0).double()
    return (last - (counts.double() - 1) / 2)[inverse]


def mia_advantage(auc: float) -> float:
    """Threshold-free membership advantage 2 * (AUC - 0.5)."""
    return 2.0 * (auc - 0.5)


def unmarked_flop_counter() -> Any:
    """torch's FlopCounterMode without importing torch._dynamo (about 2 s per process).

    torch marks every dispatch mode's __torch_dispatch__ "do not trace" for torch.compile,
    and the mark imports torch._dynamo on its first call. Counting one eager forward pass
    (never the compiled wrapper) gains nothing from it, so the mode below is torch's own
    with the mark left off. It leans on torch's internals: `forward_flops` falls back to
    torch's own counter when it fails."""
    import inspect

    from torch.utils import flop_counter as fc

    class UnmarkedMode(fc._FlopCounterMode):
        @classmethod
        def _should_skip_dynamo(cls) -> bool:
            return False  # read when the class is made: no mark, so no torch._dynamo

        __torch_dispatch__ = inspect.unwrap(fc._FlopCounterMode.__torch_dispatch__)

    class Counter(fc.FlopCounterMode):
        def __enter__(self) -> Any:  # torch's __enter__ with the unmarked mode
            self.flop_counts.clear()
            self.mod_tracker.__enter__()
            try:
                self.mode = UnmarkedMode(self)
                self.mode.__enter__()
            except BaseException:
                self.mod_tracker.__exit__(None, None, None)  # leave no module hooks behind
                raise
            return self

    return Counter(display=False)


def torch_flop_counter() -> Any:
    from torch.utils.flop_counter import FlopCounterMode

    return FlopCounterMode(display=False)


def forward_flops(model: nn.Module, sample: torch.Tensor) -> float | None:
    """FLOPs of one eval-mode forward pass on `sample` (batch of 1); None if not countable."""
    was_training = model.training
    model.eval()
    try:
        for make_counter in (unmarked_flop_counter, torch_flop_counter):
            try:
                counter = make_counter()
                with counter, torch.no_grad():
                    model(sample)
                return float(counter.get_total_flops())
            except Exception:  # an op the counter cannot trace must not fail the run
                continue
        return None
    finally:
        model.train(was_training)


# ----------------------------------------------------------------------------- the pass


@torch.no_grad()
def _logits(model: nn.Module, x: torch.Tensor, prepare, batch_size: int) -> torch.Tensor:
    from harness.train.metrics import predict_logits

    return predict_logits(model, x, prepare, batch_size)


def _per_example_loss(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Cross-entropy per example; for sequences (N, T, V) the mean over tokens."""
    if logits.dim() == 3:
        per_token = F.cross_entropy(logits.transpose(1, 2), y, reduction="none")  # (N, T)
        return per_token.mean(1)
    return F.cross_entropy(logits, y, reduction="none")


def final_analysis(model: nn.Module, data: Any, config: Any) -> tuple[dict[str, Any], torch.Tensor]:
    """Scalars (ece, mia_auc, mia_advantage, shift_acc, flops, reliability, n_train, n_val,
    n_test) and the test predictions (int64 (N,) or (N, T) for text), on the CPU.

    Any metric that cannot be computed is None; this never raises for a metric.
    """
    scalars, preds, _ = final_outputs(model, data, config)
    return scalars, preds


def final_outputs(model: nn.Module, data: Any,
                  config: Any) -> tuple[dict[str, Any], torch.Tensor, torch.Tensor]:
    """final_analysis plus the test-set class probabilities ((N, K), or (N, T, V) for text)."""
    bs = getattr(getattr(config, "train", None), "eval_batch_size", 2048) or 2048
    out: dict[str, Any] = {"ece": None, "mia_auc": None, "mia_advantage": None,
                           "shift_acc": None, "flops": None, "reliability": None,
                           "n_train": len(data.train.y), "n_val": len(data.val.y),
                           "n_test": len(data.test.y)}
    test_logits = _logits(model, data.test.x, data.prepare, bs)
    preds = test_logits.argmax(-1).cpu()
    probs = test_logits.float().softmax(-1)
    flat_probs = probs.reshape(-1, probs.size(-1))
    ece, bins = expected_calibration_error(flat_probs, data.test.y.reshape(-1).to(probs.device))
    out.update(ece=ece, reliability=bins)
    val_logits = _logits(model, data.val.x, data.prepare, bs) if len(data.val.y) else None
    out.update(calibration_summary(test_logits, data.test.y, val_logits,
                                   data.val.y if val_logits is not None else None))

    k = min(MIA_MAX_EXAMPLES, len(data.train.y), len(data.test.y))
    if k > 0:
        member = _per_example_loss(_logits(model, data.train.x[:k], data.prepare, bs),
                                   data.train.y[:k])
        nonmember = _per_example_loss(test_logits[:k], data.test.y[:k])
        auc = loss_threshold_auc(member, nonmember)
        out.update(mia_auc=auc, mia_advantage=mia_advantage(auc))

    if data.kind in ("image", "signal"):
        try:
            from harness.data.corruption import shift_corrupt

            seed = SHIFT_SEED + int(getattr(getattr(config, "data", None), "seed", 0) or 0)
            shifted = shift_corrupt(data.kind, data.test.x, torch.Generator().manual_seed(seed))
            shift_logits = _logits(model, shifted, data.prepare, bs)
            out["shift_acc"] = float((shift_logits.argmax(-1) == data.test.y).float().mean())
        except Exception:  # robustness metric only; never fail the run for it
            out["shift_acc"] = None

    if len(data.test.x):
        out["flops"] = forward_flops(model, data.prepare(data.test.x[:1]))
    return out, preds, probs.cpu()


def summary_entries(scalars: dict[str, Any]) -> dict[str, Any]:
    """The keys under which the loop stores final_analysis scalars in summary.json."""
    return {
        "final_ece": scalars.get("ece"),
        "final_mia_auc": scalars.get("mia_auc"),
        "final_mia_advantage": scalars.get("mia_advantage"),
        "final_shift_acc": scalars.get("shift_acc"),
        "flops": scalars.get("flops"),
        "final_reliability": scalars.get("reliability"),
        **{f"final_{k}": scalars.get(k) for k in CALIBRATION_KEYS},
        "split_sizes": {"train": scalars.get("n_train"), "val": scalars.get("n_val"),
                        "test": scalars.get("n_test")},
    }


# ----------------------------------------------------------------------------- storage


def save_predictions(run_path: Path | str, preds: torch.Tensor) -> Path:
    """test_predictions.pt: int16 labels (atomic write)."""
    path = Path(run_path) / TEST_PREDICTIONS
    atomic_torch_save(path, preds.detach().cpu().to(torch.int16))
    return path


def save_probabilities(run_path: Path | str, probs: torch.Tensor, labels: torch.Tensor) -> None:
    """test_probs.npy (float16 (N, K) class probabilities) and test_labels.npy (int16 (N,);
    test labels are never noised), each written atomically. Classification only: a text
    model's (N, T, vocab) probabilities are too large to keep per run."""
    if probs.dim() != 2:
        return
    _save_npy(Path(run_path) / TEST_LABELS, labels.detach().cpu().to(torch.int16).numpy())
    _save_npy(Path(run_path) / TEST_PROBS, probs.detach().cpu().to(torch.float16).numpy())


def _save_npy(path: Path, array: np.ndarray) -> None:
    import io

    import numpy as np

    from harness.record.disk import atomic_write_bytes

    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=False)
    atomic_write_bytes(path, buf.getvalue())


def load_probabilities(run_path: Path | str) -> tuple[np.ndarray, np.ndarray] | None:
    """A run's (test probabilities (N, K), test labels (N,)), or None when it has none (older
    runs, text) or they are unreadable or disagree in length."""
    import numpy as np

    try:
        probs = np.load(Path(run_path) / TEST_PROBS, allow_pickle=False)
        labels = np.load(Path(run_path) / TEST_LABELS, allow_pickle=False)
    except (OSError, ValueError):
        return None
    if probs.ndim != 2 or labels.shape != (len(probs),):
        return None
    return probs, labels.astype(np.int64)


def load_predictions(run_path: Path | str) -> torch.Tensor | None:
    path = Path(run_path) / TEST_PREDICTIONS
    if not path.is_file():
        return None
    try:
        t = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:
        return None
    return t if isinstance(t, torch.Tensor) else None


def validation_ece(config: RunConfig, run_path: Path | str,
                   data_dir: Path | None) -> float | None:
    """ECE (15 bins, Guo et al. 2017) of a finished run's evaluated weights (its model.pt:
    the EMA/SWA average when one was on) on the VALIDATION split, what a search on
    calibration selects by (the test split is never read); None without a validation split."""
    from harness.train import build
    from harness.train.metrics import predict_logits

    device = torch.device("cpu")
    data = build.build_data(config, data_dir, device)
    if not len(data.val.y):
        return None
    model = build.load_run_model(Path(run_path), data, device).eval()
    with torch.no_grad():
        logits = predict_logits(model, data.val.x, data.prepare, config.train.eval_batch_size)
    probs = logits.float().softmax(-1)
    ece, _ = expected_calibration_error(probs.reshape(-1, probs.size(-1)),
                                        data.val.y.reshape(-1).to(probs.device))
    return ece
