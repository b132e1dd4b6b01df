"""One training loop, readable top to bottom, for one run or a population of runs.

Regularizers plug in through the hooks of `RegularizerStack`; the loop never asks which
regularizers are active. A population (`train_runs` with several runs of one shape) trains
its members as one vectorized model (harness/train/crew.py, harness/models/population.py),
and each member writes exactly what its run writes alone. Results go to the local store
first (the source of truth) and to the tracker passed in (W&B, or none) second, through one
`Tracker` protocol; a W&B failure never stops training.
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
from harness.record.layout import CHECKPOINT, MODEL
from harness.record.run_dir import RunDir
from harness.regularizers import Batch
from harness.tracking.protocol import FanOut, NullTracker, StoreTracker, Tracker
from harness.train import build
from harness.train.checkpoint import checkpoint_due, checkpoint_state, restore
from harness.train.crew import Alone, Member, Population
from harness.train.env import environment
from harness.train.metrics import MemberStats, RunningStats
from harness.train.optim import lr_schedule, set_lr
from harness.train.results import (
    analyse,
    final_evaluation,
    interrupted_status,
    metrics_row,
    summarize,
)
from harness.train.setup import build_member, make_crew

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


@dataclass
class RunRequest:
    """One run to train: its config, its tracker (e.g. W&B; none: the local store only)
    and what to call after each of its epochs."""

    config: RunConfig
    tracker: Tracker | None = None
    on_epoch: list[EpochCallback] = field(default_factory=list)


def study_dir(results_dir: str | Path, study: str) -> Path:
    return Path(results_dir) / study


def build_run_dir(sdir: Path, config: RunConfig, run_id: str) -> RunDir:
    return RunDir.for_run(sdir, config.variant, config.seed, run_id)


def train_run(config: RunConfig, *, results_dir: str | Path = "results",
              data_dir: str | Path | None = None, reporter: Reporter | None = None,
              on_epoch: Iterable[EpochCallback] = (), force: bool = False,
              tracker: Tracker | None = None) -> RunResult:
    """Train one run to the end (or resume it) and store everything about it; `tracker`
    (e.g. `tracking.wandb_tracker.wandb_run_tracker`) gets a copy after the local store."""
    return train_runs([RunRequest(config, tracker, list(on_epoch))], results_dir=results_dir,
                      data_dir=data_dir, reporter=reporter, force=force)[0]


def train_runs(requests: list[RunRequest], *, results_dir: str | Path = "results",
               data_dir: str | Path | None = None, reporter: Reporter | None = None,
               force: bool = False) -> list[RunResult]:
    """Train runs that share their shapes (harness/train/grouping.py) as one population;
    one run trains alone, exactly as it always has. Finished runs are returned as they are;
    a run with a resume checkpoint, or a population that cannot be formed, trains alone."""
    reporter = reporter or SilentReporter()
    dirs = [build_run_dir(study_dir(results_dir, r.config.study), r.config, r.config.run_id())
            for r in requests]
    results = {i: RunResult(d, d.summary or {}, d.metrics()) for i, d in enumerate(dirs)
               if d.finished and not force}
    todo = [i for i in range(len(requests)) if i not in results]
    resuming = len(todo) > 1 and not force and any((dirs[i].path / CHECKPOINT).is_file()
                                                   for i in todo)
    groups = [[i] for i in todo] if resuming else [todo] if todo else []
    for group in groups:
        trained = train_together([requests[i] for i in group], [dirs[i] for i in group],
                                 Path(results_dir), data_dir, reporter, force)
        results.update(zip(group, trained, strict=True))
    return [results[i] for i in range(len(requests))]


def train_together(requests: list[RunRequest], dirs: list[RunDir], results_dir: Path,
                   data_dir: str | Path | None, reporter: Reporter,
                   force: bool) -> list[RunResult]:
    """The loop: set up every member, train epochs until each has finished, finish each."""
    entered = time.perf_counter()
    config = requests[0].config
    build.set_threads(config.train.threads)
    device = build.pick_device(config.train.device)
    build.seed_everything(config.seed)
    seeded = torch.get_rng_state()
    data = build.build_data(config, data_dir, device)
    # a member is built from its seed as alone, after the data: a loader that drew from the
    # global generator would change that for all but the first, so those train one by one
    drew = not torch.equal(seeded, torch.get_rng_state())
    members = [build_member(r.config, d, data, device, results_dir, data_dir, seeded=i == 0)
               for i, (r, d) in enumerate(zip(requests, dirs, strict=True))]
    try:
        if len(members) > 1 and drew:
            raise ValueError("loading the data drew from torch's global generator")
        crew = make_crew(members, device)
    except ValueError:  # models that cannot be stacked after all: one by one, as alone
        return [train_together([r], [d], results_dir, data_dir, reporter, force)[0]
                for r, d in zip(requests, dirs, strict=True)]
    first_epoch = 1
    for member, request in zip(members, requests, strict=True):
        checkpoint = None if force else member.run_dir.load_checkpoint()
        if checkpoint is not None and checkpoint.get("run_id") == member.run_id:
            assert isinstance(crew, Alone)  # train_runs gives a resumed run no company
            first_epoch, member.rows = restore(checkpoint, member.state.model, crew.optimizer,
                                               member.regs, member.order)
            if checkpoint.get("stopped"):  # it had decided to stop: finish without training
                first_epoch = config.train.epochs + 1
        else:
            member.run_dir.clear_for_rerun()
        member.tracked = FanOut(StoreTracker(member.run_dir), request.tracker or NullTracker())
        member.tracked.start({"run_id": member.run_id, **member.config.model_dump(mode="json")},
                             environment(device, member.config.seed), member.rows)
        member.tracked.watch(evaluated_weights(member))  # W&B's best-model artifact
        member.on_epoch = list(request.on_epoch)
    run = Training(crew, data, reporter, entered)
    run.train(first_epoch)
    return [RunResult(m.run_dir, m.summary or {}, m.rows, m.state.model) for m in members]


class Training:
    """The epochs of one crew (a run alone, or a population), and each member's finish."""

    def __init__(self, crew: Alone | Population, data: DataBundle, reporter: Reporter,
                 entered: float) -> None:
        self.crew, self.data, self.reporter, self.entered = crew, data, reporter, entered
        self.config = crew.members[0].config
        ctx = crew.members[0].state.run
        self.lr_at = lr_schedule(self.config.schedule, self.config.optim.lr,
                                 ctx.steps_per_epoch, ctx.epochs)
        self.started = time.perf_counter()
        # a member's timings are its share of the population's (sums over runs stay the
        # compute spent): the population's time over its size
        self.share = 1.0 / crew.size

    def train(self, first_epoch: int) -> None:
        crew, config = self.crew, self.config
        for m in crew.members:
            m.last_checkpoint = self.started
        self.reporter.start(crew_name(crew), config.train.epochs, first_epoch)
        try:
            for epoch in range(first_epoch, config.train.epochs + 1):
                t0 = time.perf_counter()
                stats = train_one_epoch(crew, self.data, self.lr_at, epoch,
                                        config.train.batch_size, autocast(config, self.data))
                self.end_epoch(epoch, stats, time.perf_counter() - t0, t0)
                if all(m.done for m in crew.members):
                    break
            for k, _ in list(training(crew)):
                self.finish(k)
        except BaseException as err:
            for _, m in training(crew):
                summary = summarize(m.rows, {}, m.config, m.state.model,
                                    (time.perf_counter() - self.started) * self.share,
                                    interrupted_status(err), None, m.regs)
                summary["error"] = f"{type(err).__name__}: {err}"
                m.tracked.log_summary(summary)
                m.tracked.fail(summary["status"])
            raise

    def end_epoch(self, epoch: int, stats: RunningStats | MemberStats, train_seconds: float,
                  t0: float) -> None:
        """Each training member's row, tracking, stop decision, checkpoint and callbacks; a
        member whose loss is not finite has diverged and finishes without a row."""
        crew = self.crew
        for k, m in list(training(crew)):
            if not stats.finite(k):
                m.status, m.diverged_epoch = "diverged", epoch
                self.finish(k)
        evaluated = crew.evaluations(self.data)
        shown = False
        for k, m in list(training(crew)):
            row = metrics_row(epoch, stats.read(k), stats.n, train_seconds, evaluated[k] or {},
                              m.state.model, crew.optimizer.param_groups[0]["lr"], t0,
                              self.share)
            m.rows.append(row)
            m.tracked.log_epoch(row)
            if not shown:
                self.reporter.epoch(row)
                shown = True
            m.state.metrics = row
            stop = m.regs.end_epoch(m.state)  # before the checkpoint: exact resume
            if checkpoint_due(m.config, m.last_checkpoint, stop):
                m.run_dir.save_checkpoint(checkpoint_state(
                    m.run_id, epoch, m.rows, own_copy(m.state.model.state_dict()),
                    crew.optimizer_state(k), m.regs, crew.rng_state(k), m.order, stop))
                m.last_checkpoint = time.perf_counter()
            for callback in m.on_epoch:
                callback(epoch, row)
            if stop:
                self.finish(k)

    def finish(self, k: int) -> None:
        """The end of member k's run, as alone: end_training, final evaluation and analysis,
        summary, model.pt; its module then stops sharing the population's tensors."""
        m, data = self.crew.members[k], self.data
        m.regs.end_training(m.state)
        evaluated = m.regs.eval_model(m.state.model)
        final = final_evaluation(evaluated, data, m.config)
        final.update(analyse(evaluated, data, m.config, m.run_dir))
        summary = summarize(m.rows, final, m.config, m.state.model,
                            (time.perf_counter() - self.started) * self.share, m.status,
                            m.diverged_epoch, m.regs)
        summary.update(m.tracked.summary_entries())
        # data, model, tracker: for cost estimates
        summary["setup_time"] = (self.started - self.entered) * self.share
        torch.save(own_copy(evaluated.state_dict()), m.run_dir.path / MODEL)
        (m.run_dir.path / CHECKPOINT).unlink(missing_ok=True)
        m.tracked.log_summary(summary)
        m.tracked.finish()
        m.summary = summary
        self.crew.finish(k)
        self.reporter.end(summary)


def evaluated_weights(member: Member) -> Callable[[], dict[str, Any]]:
    """The member's evaluated weights, read when asked (a tracker copies the best epoch's)."""
    return lambda: member.regs.eval_model(member.state.model).state_dict()


def own_copy(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Each tensor copied to the CPU on its own: a population member's parameters are views
    of the stacked tensors, which torch.save would otherwise write whole."""
    return {k: v.detach().to("cpu", copy=True) for k, v in state.items()}


def training(crew: Alone | Population) -> Iterable[tuple[int, Member]]:
    return ((k, m) for k, m in enumerate(crew.members) if not m.done)


def crew_name(crew: Alone | Population) -> str:
    first = crew.members[0].config
    name = f"{first.variant} seed {first.seed}"
    return name if crew.size == 1 else f"{name} and {crew.size - 1} more (population)"


def autocast(config: RunConfig, data: DataBundle) -> contextlib.AbstractContextManager:
    """bf16 autocast on CUDA when asked; reusable (entered once per step)."""
    if config.train.amp == "bf16" and data.train.y.device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def train_one_epoch(crew: Alone | Population, data: DataBundle, lr_at: Callable[[int], float],
                    epoch: int, batch_size: int,
                    amp: contextlib.AbstractContextManager) -> RunningStats | MemberStats:
    device = data.train.y.device
    stats = crew.start_epoch(epoch, device)
    steps = crew.members[0].state.run.steps_per_epoch
    orders = crew.orders(len(data.train.y)).to(device)  # each member's own data order
    for i in range(steps):
        step = (epoch - 1) * steps + i
        crew.set_step(step)
        idx = orders[:, i * batch_size:(i + 1) * batch_size].reshape(-1)  # member-major
        y = data.train.y[idx]
        batch = crew.transform_batch(Batch(x=data.to_float(data.train.x[idx]), y=y, targets=y))
        with amp:
            logits = crew.forward(data.normalize(batch.x))
            loss, losses = crew.loss(logits, batch)
        crew.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        grad_norms = crew.grad_norms()  # before clipping: what the data asked for
        crew.hook("after_backward")
        set_lr(crew.optimizer, lr_at(step))
        crew.hook("before_step")
        crew.optimizer.step()
        crew.hook("after_step")
        stats.add(losses, logits, batch.y, grad_norms)
        if (device.type == "cpu" or i % 25 == 0) and not stats.any_finite(crew.active):
            break  # diverged (every member): stop at once (on CUDA every 25 steps, no sync)
    return stats
