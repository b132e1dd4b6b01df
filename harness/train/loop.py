"""One training run, readable top to bottom.

Regularizers plug in through the hooks of `RegularizerStack`; the loop never
asks which regularizers are active. Results go to the local store first (the
source of truth) and to the tracker passed in (W&B, or none) second, through one `Tracker`
protocol; a W&B failure never stops training.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import nn

from harness.config import RunConfig
from harness.data import DataBundle
from harness.models import count_parameters
from harness.regularizers import Batch, RegularizerStack, TrainState
from harness.tracking.protocol import FanOut, NullTracker, StoreTracker, Tracker
from harness.tracking.store import RunDir
from harness.train import build, transfer
from harness.train.analysis import (
    final_outputs,
    save_predictions,
    save_probabilities,
    summary_entries,
)
from harness.train.env import environment
from harness.train.metrics import (
    RunningStats,
    cross_entropy,
    evaluate,
    generalization_gap,
    global_grad_norm,
    weight_norm,
)
from harness.train.optim import build_optimizer, lr_schedule, set_lr

EpochCallback = Callable[[int, dict[str, Any]], None]


class Reporter(Protocol):
    """Progress display (console bar, study progress); every method optional in spirit."""

    def start(self, name: str, epochs: int, first_epoch: int) -> None: ...
    def epoch(self, row: dict[str, Any]) -> None: ...
    def end(self, summary: dict[str, Any]) -> None: ...


class SilentReporter:
    def start(self, name: str, epochs: int, first_epoch: int) -> None: ...
    def epoch(self, row: dict[str, Any]) -> None: ...
    def end(self, summary: dict[str, Any]) -> None: ...


@dataclass
class RunResult:
    run_dir: RunDir
    summary: dict[str, Any]
    rows: list[dict[str, Any]] = field(default_factory=list)
    model: nn.Module | None = None


def study_dir(results_dir: str | Path, study: str) -> Path:
    return Path(results_dir) / study


def train_run(config: RunConfig, *, results_dir: str | Path = "results",
              data_dir: str | Path | None = None, reporter: Reporter | None = None,
              on_epoch: Iterable[EpochCallback] = (), force: bool = False,
              tracker: Tracker | None = None) -> RunResult:
    """Train one run to the end (or resume it) and store everything about it; `tracker`
    (e.g. `tracking.wandb_run.wandb_run_tracker`) gets a copy after the local store."""
    reporter = reporter or SilentReporter()
    run_id = config.run_id()
    sdir = study_dir(results_dir, config.study)
    run_dir = build_run_dir(sdir, config, run_id)
    if run_dir.finished and not force:
        return RunResult(run_dir, run_dir.summary or {}, run_dir.metrics())

    entered = time.perf_counter()
    build.set_threads(config.train.threads)
    device = build.pick_device(config.train.device)
    build.seed_everything(config.seed)
    data = build.build_data(config, data_dir, device)
    ctx = build.run_context(config, data, device, results_dir=Path(results_dir),
                            data_dir=None if data_dir is None else Path(data_dir))
    regs = RegularizerStack.from_config(config, ctx)
    model = build.build_model(config, data, regs, results_dir=results_dir)
    transfer.freeze(model, config)  # fine-tuning: model.freeze / freeze_body
    model = model.to(device)
    if config.train.channels_last and device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    optimizer = build_optimizer(config.optim,
                                transfer.param_groups(model, config.optim.body_lr_scale))
    lr_at = lr_schedule(config.schedule, config.optim.lr, ctx.steps_per_epoch, ctx.epochs)
    state = TrainState(run=ctx, model=model, optimizer=optimizer)
    order = torch.Generator().manual_seed(config.seed)

    rows: list[dict[str, Any]] = []
    first_epoch = 1
    checkpoint = None if force else run_dir.load_checkpoint()
    if checkpoint is not None and checkpoint.get("run_id") == run_id:
        first_epoch, rows = restore(checkpoint, model, optimizer, regs, order)
        if checkpoint.get("stopped"):  # it had decided to stop: finish without training
            first_epoch = ctx.epochs + 1
    else:
        run_dir.clear_for_rerun()
    tracked = FanOut(StoreTracker(run_dir), tracker or NullTracker())
    tracked.start({"run_id": run_id, **config.model_dump(mode="json")},
                  environment(device, config.seed), rows)
    forward = model_forward(model, config, device)
    status, diverged_epoch, started = "completed", None, time.perf_counter()
    last_checkpoint = started
    reporter.start(f"{config.variant} seed {config.seed}", ctx.epochs, first_epoch)
    try:
        for epoch in range(first_epoch, ctx.epochs + 1):
            t0 = time.perf_counter()
            stats = train_one_epoch(forward, state, data, regs, lr_at, order, epoch,
                                    config.train.batch_size, autocast(config, device))
            if not stats.finite():
                status, diverged_epoch = "diverged", epoch
                break
            row = epoch_row(epoch, stats, model, regs, data, config, optimizer, t0)
            rows.append(row)
            tracked.log_epoch(row)
            reporter.epoch(row)
            state.metrics = row
            stop = regs.end_epoch(state)  # before the checkpoint: exact resume
            if checkpoint_due(config, last_checkpoint, stop):
                run_dir.save_checkpoint(checkpoint_state(run_id, epoch, rows, model,
                                                         optimizer, regs, order, stop))
                last_checkpoint = time.perf_counter()
            for callback in on_epoch:
                callback(epoch, row)
            if stop:
                break
        regs.end_training(state)
        final = final_evaluation(regs.eval_model(model), data, config)
        final.update(analyse(regs.eval_model(model), data, config, run_dir))
    except BaseException as err:
        summary = summarize(rows, {}, config, model, time.perf_counter() - started,
                            interrupted_status(err), None, regs)
        summary["error"] = f"{type(err).__name__}: {err}"
        tracked.log_summary(summary)
        tracked.fail(summary["status"])
        raise
    summary = summarize(rows, final, config, model, time.perf_counter() - started, status,
                        diverged_epoch, regs)
    summary.update(tracked.summary_entries())
    summary["setup_time"] = started - entered  # data, model, tracker: for cost estimates
    torch.save({k: v.detach().cpu() for k, v in regs.eval_model(model).state_dict().items()},
               run_dir.path / "model.pt")
    (run_dir.path / "checkpoint.pt").unlink(missing_ok=True)
    tracked.log_summary(summary)
    tracked.finish()
    reporter.end(summary)
    return RunResult(run_dir, summary, rows, model)


def build_run_dir(sdir: Path, config: RunConfig, run_id: str) -> RunDir:
    return RunDir.for_run(sdir, config.variant, config.seed, run_id)


def model_forward(model: nn.Module, config: RunConfig, device: torch.device) -> nn.Module:
    """The callable used for training steps: optionally compiled (CUDA users ask for it)."""
    # compile wraps the module in a callable that forwards to it
    return torch.compile(model) if config.train.compile else model  # type: ignore[return-value]


def autocast(config: RunConfig, device: torch.device) -> contextlib.AbstractContextManager:
    """bf16 autocast on CUDA when asked; reusable (entered once per step)."""
    if config.train.amp == "bf16" and device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def train_one_epoch(forward: nn.Module, state: TrainState, data: DataBundle,
                    regs: RegularizerStack, lr_at: Callable[[int], float],
                    order: torch.Generator, epoch: int, batch_size: int,
                    amp: contextlib.AbstractContextManager) -> RunningStats:
    model, optimizer, steps = state.model, state.optimizer, state.run.steps_per_epoch
    state.epoch = epoch
    model.train()
    device = data.train.y.device
    stats = RunningStats(device)
    perm = torch.randperm(len(data.train.y), generator=order).to(device)
    for i in range(steps):
        step = state.step = (epoch - 1) * steps + i
        idx = perm[i * batch_size:(i + 1) * batch_size]
        y = data.train.y[idx]
        batch = regs.transform_batch(state, Batch(x=data.to_float(data.train.x[idx]), y=y,
                                                  targets=y))
        with amp:
            logits = forward(data.normalize(batch.x))
            loss = regs.loss(state, cross_entropy(logits.float(), batch.targets), batch, logits)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        grad_norm = global_grad_norm(model)  # before clipping: what the data asked for
        regs.after_backward(state)
        set_lr(optimizer, lr_at(step))
        regs.before_step(state)
        optimizer.step()
        regs.after_step(state)
        stats.add(loss, logits, batch.y, grad_norm)
        if (device.type == "cpu" or i % 25 == 0) and not stats.finite():
            break  # diverged: stop at once (on CUDA every 25 steps, to avoid a sync a step)
    return stats


def epoch_row(epoch: int, stats: RunningStats, model: nn.Module, regs: RegularizerStack,
              data: DataBundle, config: RunConfig, optimizer: torch.optim.Optimizer,
              t0: float) -> dict[str, Any]:
    train_seconds = time.perf_counter() - t0
    return metrics_row(epoch, stats.read(), stats.n, train_seconds, regs.eval_model(model),
                       model, data, config, optimizer.param_groups[0]["lr"], t0)


def metrics_row(epoch: int, train_stats: dict[str, float], n_samples: int,
                train_seconds: float, eval_model: nn.Module, model: nn.Module,
                data: DataBundle, config: RunConfig, lr: float, t0: float) -> dict[str, Any]:
    """One metrics.csv row: the epoch's running training statistics, the evaluations, the
    lr, the weight norm and the timing (`seconds` runs from t0 to now)."""
    row: dict[str, Any] = {"epoch": epoch, **train_stats}
    row.update(evaluations(eval_model, data, config))
    row.update(generalization_gap(row))
    row["lr"] = lr
    row["weight_norm"] = weight_norm(model)
    row["samples_per_sec"] = n_samples / max(train_seconds, 1e-9)
    row["seconds"] = time.perf_counter() - t0
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
    scored = [r for r in rows if r.get(select) is not None]
    if not scored:
        return None
    if select.endswith("loss"):
        return min(scored, key=lambda r: (r[select], r["epoch"]))
    return max(scored, key=lambda r: (r[select], -r.get("val_loss", 0.0), -r["epoch"]))


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


# ------------------------------------------------------------------ checkpoint / resume


def checkpoint_due(config: RunConfig, last: float, stop: bool) -> bool:
    """A resume checkpoint after this epoch? Always when the run decided to stop (a resume
    must not train on); otherwise once `checkpoint_every_s` of training has passed."""
    if not config.train.checkpoint:
        return False
    return stop or time.perf_counter() - last >= config.train.checkpoint_every_s


def checkpoint_state(run_id: str, epoch: int, rows: list[dict[str, Any]], model: nn.Module,
                     optimizer: torch.optim.Optimizer, regs: RegularizerStack,
                     order: torch.Generator, stopped: bool = False) -> dict[str, Any]:
    return {"run_id": run_id, "epoch": epoch, "rows": rows, "stopped": stopped,
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(), "regularizers": regs.state_dict(),
            "torch_rng": torch.get_rng_state(), "order_rng": order.get_state()}


def restore(ckpt: dict[str, Any], model: nn.Module, optimizer: torch.optim.Optimizer,
            regs: RegularizerStack, order: torch.Generator) -> tuple[int, list[dict[str, Any]]]:
    """Continue an interrupted run from its last finished epoch, bit for bit on CPU."""
    model.load_state_dict(ckpt["model"])
    optimizer.load_state_dict(ckpt["optimizer"])
    regs.load_state_dict(ckpt["regularizers"])
    torch.set_rng_state(ckpt["torch_rng"])
    order.set_state(ckpt["order_rng"])
    return ckpt["epoch"] + 1, list(ckpt["rows"])
