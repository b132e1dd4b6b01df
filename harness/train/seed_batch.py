"""Seed-batched training: the N seeds of one variant trained as one vmapped model.

An ablation study trains every variant with several seeds. When the runs differ only in
their seed, their models have the same architecture, so their parameters can be stacked
(`torch.func.stack_module_state`) and all seeds trained at once by one `vmap`ped
`functional_call`: one forward/backward and one optimizer step per step for all seeds,
bigger kernels, and the per-step Python cost paid once instead of N times.

What each seed keeps, so its results equal a separate `train_run` in distribution:
- its own initialization: seed s's model is built after `seed_everything(s)`, exactly as
  `train_run` builds it (the initial weights are identical to the separate run's);
- its own batch order: a `torch.Generator` seeded with s, as `train_run` uses (identical);
- its own dropout masks and augmentation draws: `vmap(..., randomness="different")` and
  per-sample augmentation of the seeds' batches stacked into one (independent draws, from
  the one global RNG, so not the same draws as the separate run: equal in distribution);
- its own optimizer math: Adam/AdamW/SGD are elementwise, so one optimizer over the
  stacked tensors is the N optimizers side by side (one shared step count and lr schedule,
  which are the same in every seed anyway);
- its own weight decay (decoupled or L2, elementwise; biases/norm parameters are chosen by
  their per-seed ndim), grad norm (per seed, before any update) and statistics.
Without dropout and augmentation a seed's trajectory is the separate run's up to
floating-point summation order (grouped vs plain convolutions).

Supported (`can_batch_seeds` says why not otherwise, and `train_seeds_batched` then runs
the seeds one after another with `train_run`):
- models `cnn` and `mlp` without BatchNorm: BatchNorm's running statistics are buffers
  updated in place during training, which vmap over stacked buffers does not support
  without `replace_all_batch_norm_modules_`, and that changes what the model computes
  (no running statistics: eval mode would use batch statistics). So BatchNorm runs fall
  back. `cnn` defaults to BatchNorm: give the variant `norm: {kind: none}` (or layernorm,
  rmsnorm, groupnorm); `mlp` defaults to none.
- regularizers: dropout, weight_decay, label_smoothing, norm (not batchnorm), augment.
  Everything else (mixup pairs samples within a batch, clipping needs a per-seed norm,
  EMA/SWA/early stopping keep per-run state...) falls back.
- no torch.compile, no resumable checkpoint: an interrupted batch leaves no
  checkpoint.pt and no summary.json, so its runs start again from scratch (a run that
  already has a checkpoint from a separate attempt is resumed separately instead).

Store: every seed gets its own run folder in the format `train_run` writes: config.json,
env.json (plus a "seed_batch" entry: seeds trained together and the batch's wall time),
metrics.csv with the same columns, summary.json with the same keys, model.pt,
test_predictions.pt. Per-epoch rows are written as each epoch ends. W&B: each seed's rows
are replayed into its own W&B run after training (one run open at a time), so W&B sees the
same metrics and summary, but not live. A row's `samples_per_sec` is that seed's samples
over the batched epoch's training seconds (the batch's throughput is the sum over seeds);
a summary's `wall_time` is the batch's wall time divided by the number of seeds.
"""

from __future__ import annotations

import copy
import inspect
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.func import functional_call, stack_module_state, vmap

from harness.config import RunConfig
from harness.data import DataBundle
from harness.models import MODELS
from harness.regularizers import Batch, RegularizerStack
from harness.regularizers.weight_decay import WeightDecayParams, decays
from harness.train import build
from harness.train.env import environment
from harness.train.loop import (
    Reporter,
    RunResult,
    SilentReporter,
    analyse,
    build_run_dir,
    final_evaluation,
    interrupted_status,
    metrics_row,
    open_tracker,
    study_dir,
    summarize,
    tracker_info,
    train_run,
)
from harness.train.metrics import cross_entropy
from harness.train.optim import build_optimizer, lr_schedule, set_lr

BATCHABLE_MODELS = ("cnn", "mlp")
BATCHABLE_REGULARIZERS = ("dropout", "weight_decay", "label_smoothing", "norm", "augment")


# ------------------------------------------------------------------------ eligibility


def model_norm(config: RunConfig) -> str:
    """The normalization layer the run's model will have (norm regularizer or default)."""
    norm = (config.regularizers.get("norm") or {}).get("kind")
    if norm is not None:
        return norm
    param = inspect.signature(MODELS.get(config.model.name)).parameters.get("norm")
    return "none" if param is None else param.default


def can_batch_seeds(configs: Sequence[RunConfig]) -> tuple[bool, str]:
    """(True, "") when these runs can train as one seed-batched model; else (False, why)."""
    if len(configs) < 2:
        return False, "fewer than 2 seeds"
    first = configs[0]
    seeds = [c.seed for c in configs]
    if len(set(seeds)) != len(seeds):
        return False, f"repeated seeds {seeds}"

    def same(c: RunConfig) -> dict[str, Any]:
        d = c.identity()
        d.pop("seed", None)
        return {**d, "study": c.study, "variant": c.variant}

    ref = same(first)
    for c in configs[1:]:
        if same(c) != ref:
            return False, f"seed {c.seed} differs from seed {first.seed} in more than the seed"
    if first.model.init_from or first.model.freeze or first.model.freeze_body \
            or first.optim.body_lr_scale != 1.0:
        return False, "fine-tuning (model.init_from, freeze, optim.body_lr_scale)"
    if first.model.name not in BATCHABLE_MODELS:
        return False, (f"model {first.model.name}: seed batching supports "
                       f"{', '.join(BATCHABLE_MODELS)}")
    norm = model_norm(first)
    if norm == "batchnorm":
        return False, ("batchnorm: running statistics cannot be vmapped; use "
                       "norm: {kind: none|layernorm|rmsnorm|groupnorm}")
    others = sorted(set(first.regularizers) - set(BATCHABLE_REGULARIZERS))
    if others:
        return False, (f"regularizer(s) {', '.join(others)}: seed batching supports "
                       f"{', '.join(BATCHABLE_REGULARIZERS)}")
    if first.train.compile:
        return False, "train.compile"
    if build.pick_device(first.train.device).type != "cpu" and first.train.amp != "off":
        return False, "train.amp"
    return True, ""


# ------------------------------------------------------------------------ the batched model


class SeedStats:
    """RunningStats for S seeds at once: (S,) sums on the device, read once per epoch."""

    def __init__(self, seeds: int, device: torch.device) -> None:
        z = torch.zeros(seeds, device=device, dtype=torch.float64)
        self.loss, self.correct, self.grad_norm = z.clone(), z.clone(), z.clone()
        self.n = 0
        self.steps = 0

    def add(self, losses: torch.Tensor, logits: torch.Tensor, y: torch.Tensor,
            grad_norms: torch.Tensor) -> None:
        count = y.shape[1]
        self.loss += losses.detach().double() * count
        self.correct += (logits.detach().argmax(-1) == y).sum(1).double()
        self.grad_norm += grad_norms.double()
        self.n += count
        self.steps += 1

    def read(self) -> list[dict[str, float]]:
        """One dict per seed, with the keys and meaning of `RunningStats.read`."""
        n = max(1, self.n)
        loss, correct = (self.loss / n).tolist(), (self.correct / n).tolist()
        gnorm = (self.grad_norm / max(1, self.steps)).tolist()
        return [{"train_loss": a, "train_acc": b, "grad_norm": c}
                for a, b, c in zip(loss, correct, gnorm, strict=True)]


def per_seed_grad_norm(params: Sequence[torch.Tensor]) -> torch.Tensor:
    """(S,) global grad norm of each seed (all parameters), like `global_grad_norm`."""
    norms = [torch.linalg.vector_norm(p.grad.flatten(1), dim=1) for p in params
             if p.grad is not None]
    return torch.linalg.vector_norm(torch.stack(norms), dim=0)


@torch.no_grad()
def batched_weight_decay(optimizer: torch.optim.Optimizer, params: WeightDecayParams) -> None:
    """The weight_decay regularizer's `before_step` on stacked parameters: which tensors
    decay is decided on one seed's slice (`p[0]`), whose ndim is the unstacked one."""
    if params.value == 0.0:
        return
    for group in optimizer.param_groups:
        ps = [p for p in group["params"]
              if p.grad is not None and decays(p[0], params.exclude_bias_and_norm)]
        if not ps:
            continue
        if params.mode == "decoupled":
            torch._foreach_mul_(ps, 1.0 - group["lr"] * params.value)
        else:
            torch._foreach_add_([p.grad for p in ps], ps, alpha=params.value)


class SeedBatch:
    """The S seeds' models stacked: parameters (S, ...) trained by one vmapped call."""

    def __init__(self, models: list[nn.Module]) -> None:
        self.models = models
        params, buffers = stack_module_state(models)
        self.names = list(params)
        self.params = params
        self.buffers = buffers
        self.base = copy.deepcopy(models[0]).to("meta")

        def loss_and_logits(p: dict[str, torch.Tensor], b: dict[str, torch.Tensor],
                            x: torch.Tensor, targets: torch.Tensor):
            logits = functional_call(self.base, (p, b), (x,))
            return cross_entropy(logits.float(), targets), logits

        self.forward = vmap(loss_and_logits, randomness="different")

    def parameters(self) -> list[torch.Tensor]:
        return list(self.params.values())

    @torch.no_grad()
    def sync_models(self) -> None:
        """Copy each seed's slice into its own nn.Module (for evaluation and saving)."""
        for i, model in enumerate(self.models):
            for name, p in model.named_parameters():
                p.copy_(self.params[name][i])
            for name, b in model.named_buffers():
                if name in self.buffers:
                    b.copy_(self.buffers[name][i])


# ------------------------------------------------------------------------ training


def train_seeds_batched(configs: Sequence[RunConfig], results_dir: str | Path = "results", *,
                        data_dir: str | Path | None = None, reporter: Reporter | None = None,
                        force: bool = False,
                        tracker_factory: Callable[..., Any] | None = None) -> list[RunResult]:
    """Train the seeds of one variant; results in the order of `configs`.

    Finished runs are returned from the store (unless force); runs with a checkpoint left
    by an interrupted separate attempt resume separately; the rest train as one batch when
    `can_batch_seeds` allows it, else one after another with `train_run`.
    """
    configs = list(configs)
    results: dict[int, RunResult] = {}
    todo: list[int] = []
    sdir_cache: dict[str, Path] = {}
    for i, cfg in enumerate(configs):
        sdir = sdir_cache.setdefault(cfg.study, study_dir(results_dir, cfg.study))
        run_dir = build_run_dir(sdir, cfg, cfg.run_id())
        if run_dir.finished and not force:
            results[i] = RunResult(run_dir, run_dir.summary or {}, run_dir.metrics())
        elif (run_dir.path / "checkpoint.pt").is_file() and not force:
            results[i] = train_run(cfg, results_dir=results_dir, data_dir=data_dir,
                                   reporter=reporter, tracker_factory=tracker_factory)
        else:
            todo.append(i)
    ok, _why = can_batch_seeds([configs[i] for i in todo])
    if ok:
        batch = _train_batch([configs[i] for i in todo], results_dir, data_dir,
                             reporter or SilentReporter(), tracker_factory)
        results.update(zip(todo, batch, strict=True))
    else:
        for i in todo:
            results[i] = train_run(configs[i], results_dir=results_dir, data_dir=data_dir,
                                   reporter=reporter, force=force,
                                   tracker_factory=tracker_factory)
    return [results[i] for i in range(len(configs))]


def _train_batch(configs: list[RunConfig], results_dir: str | Path,
                 data_dir: str | Path | None, reporter: Reporter,
                 tracker_factory: Callable[..., Any] | None) -> list[RunResult]:
    first, seeds = configs[0], [c.seed for c in configs]
    entered = time.perf_counter()
    build.set_threads(first.train.threads)
    device = build.pick_device(first.train.device)
    sdir = study_dir(results_dir, first.study)
    data = build.build_data(first, data_dir, device)  # data.seed, not the run seed: shared
    ctx = build.run_context(first, data, device)
    ctx.extra.update(results_dir=Path(results_dir), data_dir=data_dir)

    stacks, models = [], []
    for cfg in configs:  # each seed's model exactly as train_run initializes it
        build.seed_everything(cfg.seed)
        regs = RegularizerStack.from_config(cfg, ctx)
        stacks.append(regs)
        models.append(build.build_model(cfg, data, regs).to(device))
    if any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in models[0].modules()):
        raise ValueError("seed batching: the model has BatchNorm (can_batch_seeds should "
                         "have refused it)")
    net = SeedBatch(models)
    optimizer = build_optimizer(first.optim, [{"params": net.parameters(),
                                               "param_names": net.names}])
    lr_at = lr_schedule(first.schedule, first.optim.lr, ctx.steps_per_epoch, ctx.epochs)
    orders = [torch.Generator().manual_seed(s) for s in seeds]
    wd = first.regularizers.get("weight_decay")
    wd_params = None if wd is None else WeightDecayParams.model_validate(wd)
    torch.manual_seed(first.seed)  # dropout/augmentation draws of the whole batch

    run_dirs = [build_run_dir(sdir, c, c.run_id()) for c in configs]
    for cfg, run_dir in zip(configs, run_dirs, strict=True):
        run_dir.clear_for_rerun()
        (run_dir.path / "checkpoint.pt").unlink(missing_ok=True)
        run_dir.write_config({"run_id": cfg.run_id(), **cfg.model_dump(mode="json")})
        env = environment(device, cfg.seed)
        env["seed_batch"] = {"seeds": seeds}
        run_dir.write_env(env)

    rows: list[list[dict[str, Any]]] = [[] for _ in configs]
    status = ["completed"] * len(configs)
    diverged: list[int | None] = [None] * len(configs)
    started = time.perf_counter()
    reporter.start(f"{first.variant} seeds {','.join(map(str, seeds))} (batched)",
                   ctx.epochs, 1)
    try:
        for epoch in range(1, ctx.epochs + 1):
            t0 = time.perf_counter()
            stats = _train_epoch(net, data, stacks[0], optimizer, lr_at, orders, epoch,
                                 ctx.steps_per_epoch, first.train.batch_size, wd_params)
            train_seconds = time.perf_counter() - t0
            net.sync_models()
            for i, (cfg, seed_stats) in enumerate(zip(configs, stats.read(), strict=True)):
                if status[i] != "completed":
                    continue
                if not torch.isfinite(torch.tensor(seed_stats["train_loss"])):
                    status[i], diverged[i] = "diverged", epoch
                    continue
                # seconds: the batch's training time plus this seed's own evaluation
                row = metrics_row(epoch, seed_stats, stats.n, train_seconds,
                                  stacks[i].eval_model(models[i]), models[i], data, cfg,
                                  optimizer.param_groups[0]["lr"],
                                  time.perf_counter() - train_seconds)
                rows[i].append(row)
                run_dirs[i].write_metrics(rows[i])
                stacks[i].end_epoch(epoch, row, models[i])
            live = [r[-1] for r, st in zip(rows, status, strict=True) if st == "completed" and r]
            if live:
                reporter.epoch(live[0])
            if all(s != "completed" for s in status):
                break

        finals = []
        for i, cfg in enumerate(configs):
            stacks[i].end_training(models[i])
            model = stacks[i].eval_model(models[i])
            final = final_evaluation(model, data, cfg)
            final.update(analyse(model, data, cfg, run_dirs[i]))
            finals.append(final)
    except BaseException as err:  # as train_run: the store says how each run ended
        wall = (time.perf_counter() - started) / len(configs)
        for i, cfg in enumerate(configs):
            summary = summarize(rows[i], {}, cfg, models[i], wall, interrupted_status(err),
                                None, stacks[i])
            summary["error"] = f"{type(err).__name__}: {err}"
            run_dirs[i].write_summary(summary)
        raise
    out: list[RunResult] = []
    wall = (time.perf_counter() - started) / len(configs)
    for i, cfg in enumerate(configs):
        summary = summarize(rows[i], finals[i], cfg, models[i], wall, status[i], diverged[i],
                            stacks[i])
        tracker = (tracker_factory or open_tracker)(cfg, cfg.run_id(), sdir)
        for row in rows[i]:
            tracker.log_epoch(row)
        summary["wandb"] = tracker_info(tracker)
        summary["setup_time"] = (started - entered) / len(configs)  # as train_run's, shared
        torch.save({k: v.detach().cpu() for k, v in
                    stacks[i].eval_model(models[i]).state_dict().items()},
                   run_dirs[i].path / "model.pt")
        run_dirs[i].write_summary(summary)
        tracker.set_summary(summary)
        tracker.finish()
        out.append(RunResult(run_dirs[i], summary, rows[i], models[i]))
    env_note = {"seeds": seeds, "batch_wall_time": wall * len(configs)}
    for cfg, run_dir in zip(configs, run_dirs, strict=True):
        env = run_dir.read_json("env.json") or environment(device, cfg.seed)
        env["seed_batch"] = env_note
        run_dir.write_env(env)
    reporter.end(out[0].summary)
    return out


def _train_epoch(net: SeedBatch, data: DataBundle, regs: RegularizerStack,
                 optimizer: torch.optim.Optimizer, lr_at: Callable[[int], float],
                 orders: list[torch.Generator], epoch: int, steps: int, batch_size: int,
                 wd: WeightDecayParams | None) -> SeedStats:
    """`train_one_epoch` for S seeds: the same steps, in the same order, on stacked tensors.

    `regs` is one seed's stack: for the supported regularizers `transform_batch` is
    per-sample (augmentation, label smoothing), so it runs on the S * B samples at once;
    the model-side ones (dropout, norm) are in the model; weight decay is applied here.
    """
    device = data.train.y.device
    seeds = len(orders)
    stats = SeedStats(seeds, device)
    perms = torch.stack([torch.randperm(len(data.train.y), generator=g) for g in orders])
    perms = perms.to(device)
    params = net.parameters()
    for i in range(steps):
        step = (epoch - 1) * steps + i
        idx = perms[:, i * batch_size:(i + 1) * batch_size]  # (S, B)
        b = idx.shape[1]
        flat = idx.reshape(-1)
        y = data.train.y[flat]
        batch = regs.transform_batch(Batch(x=data.to_float(data.train.x[flat]), y=y, targets=y))
        x = data.normalize(batch.x)
        x = x.view(seeds, b, *x.shape[1:])
        targets = batch.targets.view(seeds, b, *batch.targets.shape[1:])
        losses, logits = net.forward(net.params, net.buffers, x, targets)
        optimizer.zero_grad(set_to_none=True)
        losses.sum().backward()  # seeds share no parameters: each gets its own gradient
        grad_norms = per_seed_grad_norm(params)
        set_lr(optimizer, lr_at(step))
        if wd is not None:
            batched_weight_decay(optimizer, wd)
        optimizer.step()
        stats.add(losses, logits, batch.y.view(seeds, b), grad_norms)
    return stats
