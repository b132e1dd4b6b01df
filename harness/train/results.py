"""What a run records: its epoch rows, the evaluations in them, its final evaluation and
analysis, and its summary."""

from __future__ import annotations

import time
from typing import Any

from torch import nn

from harness.config import RunConfig
from harness.data import DataBundle
from harness.models import count_parameters
from harness.record.run_dir import RunDir
from harness.regularizers import RegularizerStack
from harness.train.analysis import (
    final_outputs,
    save_predictions,
    save_probabilities,
    summary_entries,
)
from harness.train.metrics import evaluate, generalization_gap, weight_norm


def metrics_row(epoch: int, train_stats: dict[str, float], n_samples: int,
                train_seconds: float, evaluated: dict[str, float], model: nn.Module,
                lr: float, t0: float, share: float = 1.0) -> dict[str, Any]:
    """One metrics.csv row: the epoch's running training statistics, the evaluations, the
    lr, the weight norm and the timing (`seconds` runs from t0 to now). `share`: the part
    of that time that is this run's (1 / K for each of K runs trained as one population)."""
    row: dict[str, Any] = {"epoch": epoch, **train_stats}
    row.update(evaluated)
    row.update(generalization_gap(row))
    row["lr"] = lr
    row["weight_norm"] = weight_norm(model)
    row["samples_per_sec"] = n_samples / max(train_seconds * share, 1e-9)
    row["seconds"] = (time.perf_counter() - t0) * share
    return row


def evaluations(model: nn.Module, data: DataBundle, config: RunConfig) -> dict[str, float]:
    """Eval-mode loss/accuracy on train (a fixed subset, noisy labels), val and test."""
    bs = config.train.eval_batch_size
    out: dict[str, float] = {}
    if config.train.eval_train:
        k = config.train.eval_train_max
        r = evaluate(model, data.train.x[:k], data.train.y[:k], data.prepare, bs)
        out.update(train_eval_loss=r.loss, train_eval_acc=r.acc)
    if len(data.val.y):
        r = evaluate(model, data.val.x, data.val.y, data.prepare, bs)
        out.update(val_loss=r.loss, val_acc=r.acc)
    if config.train.eval_test:
        r = evaluate(model, data.test.x, data.test.y, data.prepare, bs)
        out.update(test_loss=r.loss, test_acc=r.acc)
    return out


def final_evaluation(model: nn.Module, data: DataBundle, config: RunConfig) -> dict[str, float]:
    return {f"final_{k}": v for k, v in evaluations(model, data, config).items()}


def analyse(model: nn.Module, data: DataBundle, config: RunConfig,
            run_dir: RunDir) -> dict[str, Any]:
    """Calibration, memorization, robustness and cost of the final model (reads the test
    set, so skipped when the run must not: tuning)."""
    if not config.train.eval_test:
        return {}
    scalars, predictions, probabilities = final_outputs(model, data, config)
    save_predictions(run_dir.path, predictions)
    save_probabilities(run_dir.path, probabilities, data.test.y)
    return summary_entries(scalars)


def best_row(rows: list[dict[str, Any]], select: str) -> dict[str, Any] | None:
    scored_rows = [r for r in rows if r.get(select) is not None]
    if not scored_rows:
        return None
    if select.endswith("loss"):
        return min(scored_rows, key=lambda r: (r[select], r["epoch"]))
    return max(scored_rows, key=lambda r: (r[select], -r.get("val_loss", 0.0), -r["epoch"]))


def summarize(rows: list[dict[str, Any]], final: dict[str, float], config: RunConfig,
              model: nn.Module, wall: float, status: str, diverged_epoch: int | None,
              regs: RegularizerStack) -> dict[str, Any]:
    s: dict[str, Any] = {
        "run_id": config.run_id(), "study": config.study, "variant": config.variant,
        "seed": config.seed, "status": status, "epochs_run": len(rows),
        "diverged_epoch": diverged_epoch, "params": count_parameters(model),
        "wall_time": wall,
    }
    if rows:
        last = rows[-1]
        s.update({f"last_{k}": v for k, v in last.items() if k != "epoch"})
        best = best_row(rows, config.train.select)
        if best is not None:
            s["best_epoch"] = best["epoch"]
            s.update({f"best_{k}": v for k, v in best.items() if k != "epoch"})
        s["samples_per_sec"] = sum(r["samples_per_sec"] for r in rows) / len(rows)
    s.update(final)
    s.update(regs.summary())
    return s


def interrupted_status(err: BaseException) -> str:
    if type(err).__name__ == "TrialPruned":
        return "pruned"
    if isinstance(err, KeyboardInterrupt):
        return "interrupted"
    return "failed"
