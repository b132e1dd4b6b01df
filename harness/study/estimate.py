"""What a study will cost before it runs: seconds per run from a one-epoch probe of each
distinct model/data shape (or from finished runs of that shape), summed as CPU-hours and
scheduled onto the chosen workers as wall time.

A run is modelled as setup (data, model, final evaluation) + epochs x seconds per epoch
+ the queue's overhead per run. The study as a whole also pays, once: a fresh process's
imports before the first step (timed by importing the worker's modules in a fresh Python,
after the probes), each worker's first-run extra (first kernels: the first probe's excess
over the second), and the report at the end (a fixed part plus a part per run, measured on
finished studies: bench/RESULTS.md).
Regularizers are not part of the shape: their cost (SWA's extra pass, the forward pass of
a teacher, or of any run a regularizer reads) is not probed, and runs that stop early
(early stopping, divergence) make the figure an upper bound.
"""

from __future__ import annotations

import copy
import heapq
import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.config import RunConfig
from harness.record.run_dir import RunDir
from harness.study.plan import RunSpec

# After the last run: report, figures, index, the W&B study run and exit. A line fitted to
# six studies of 4 to 64 runs measured end to end on 2 cores (bench/RESULTS.md).
REPORT_BASE_S = 9.0
REPORT_PER_RUN_S = 0.25
QUEUE_OVERHEAD_S = 0.17  # harness overhead per run (100 tiny runs: 17 s), bench/RESULTS.md
WANDB_OVERHEAD_S = 0.4  # W&B offline init per run (shared/NOTES-wandb-optuna.md); probes skip W&B
PROBE_WAIT_S = 600.0  # a probe copy that has not finished by then is broken
SHAPE_IGNORED = {"data": ("label_noise", "seed", "generator_seed", "data_dir", "download"),
                 "train": ("epochs", "threads", "select", "checkpoint")}


@dataclass
class ShapeCost:
    label: str
    setup_s: float
    epoch_s: float
    source: str  # "probe" | "N finished runs"
    runs: int = 0  # planned runs of this shape still to run
    first_run_extra_s: float = 0.0  # paid once per worker process (first probe - second)

    def run_seconds(self, epochs: int, tracked: bool = False) -> float:
        return (self.setup_s + epochs * self.epoch_s + QUEUE_OVERHEAD_S
                + (WANDB_OVERHEAD_S if tracked else 0.0))


@dataclass
class Estimate:
    workers: int
    threads: int
    shapes: list[ShapeCost]
    run_seconds: dict[str, float] = field(default_factory=dict)  # run id -> seconds
    startup_s: float = 0.0  # a fresh process importing the worker's modules
    report_s: float = 0.0

    @property
    def worker_start_s(self) -> float:
        return self.startup_s + max((s.first_run_extra_s for s in self.shapes), default=0.0)

    @property
    def busy_workers(self) -> int:
        return min(self.workers, len(self.run_seconds))

    @property
    def cpu_hours(self) -> float:
        total = sum(self.run_seconds.values()) + self.busy_workers * self.worker_start_s
        return total * self.threads / 3600.0

    @property
    def wall_seconds(self) -> float:
        if not self.run_seconds:
            return 0.0
        return (self.worker_start_s + makespan(list(self.run_seconds.values()), self.workers)
                + self.report_s)

    def to_json(self) -> dict[str, Any]:
        return {"workers": self.workers, "threads_per_run": self.threads,
                "cpu_hours": self.cpu_hours, "wall_seconds": self.wall_seconds,
                "worker_start_seconds": self.worker_start_s,
                "startup_seconds": self.startup_s, "report_seconds": self.report_s,
                "shapes": [s.__dict__ for s in self.shapes],
                "run_seconds": self.run_seconds}


def makespan(durations: list[float], workers: int) -> float:
    """Wall time of `durations`, in queue order, on `workers` that each take the next queued
    run as soon as they are free (what the run queue does)."""
    loads = [0.0] * max(1, workers)
    for d in durations:
        heapq.heapreplace(loads, loads[0] + d)
    return max(loads)


def shape_key(cfg: RunConfig) -> str:
    """Everything that sets the cost of an epoch: data size, model, batch, evaluation."""
    d = cfg.model_dump(mode="json", include={"data", "model", "train"})
    for section, keys in SHAPE_IGNORED.items():
        for k in keys:
            d[section].pop(k, None)
    return json.dumps(d, sort_keys=True)


def shape_label(cfg: RunConfig) -> str:
    m, d = cfg.model, cfg.data
    size = f"{m.name}" + (f" width {m.width}" if m.width else "") + \
        (f" depth {m.depth}" if m.depth else "")
    data = d.name + (f" train_size {d.train_size}" if d.train_size else "")
    test = "" if cfg.train.eval_test else ", test set off"
    return f"{size} on {data}, batch {cfg.train.batch_size}{test}"


def from_finished(runs: list[RunDir]) -> tuple[float, float, float] | None:
    """(setup, seconds per epoch, first-run extra) from finished runs, or None without
    timings. A worker's first run also pays the fresh process's cost: the setup is the lower
    median over runs, and the slowest setup's excess over it is the per-worker extra."""
    setups, epochs = [], []
    for rd in runs:
        rows = [r for r in rd.metrics() if isinstance(r.get("seconds"), (int, float))]
        summary = rd.summary or {}
        wall = summary.get("wall_time")  # from the first epoch on
        if not rows or not isinstance(wall, (int, float)):
            continue
        per_epoch = sum(r["seconds"] for r in rows) / len(rows)
        epochs.append(per_epoch)
        before = summary.get("setup_time") or 0.0  # data, model, tracker (newer runs)
        setups.append(before + max(0.0, wall - per_epoch * len(rows)))
    if not epochs:
        return None
    setup = sorted(setups)[(len(setups) - 1) // 2]
    return setup, sum(epochs) / len(epochs), max(setups) - setup


def probe(cfg: RunConfig, threads: int, data_dir: Path | None,
          between: Callable[[], None] | None = None) -> tuple[float, float, float]:
    """Train two epochs of `cfg` twice in a throwaway folder: (setup seconds, seconds per
    epoch) from the second, where the epoch is the second one (a model's first epoch pays
    one-off costs: on a tiny model about twice a later one), and how much longer the first
    run took (a fresh worker's cost). `between` runs after the first run (a barrier, so
    that copies probing together time their second runs side by side)."""
    from harness.regularizers.base import REGULARIZERS, reads_other_runs
    from harness.train.loop import train_run

    raw = copy.deepcopy(cfg.model_dump(mode="json"))
    raw["train"].update(epochs=2, threads=threads, checkpoint=False)
    raw["tracking"]["wandb"] = "disabled"
    raw.update(study="dry-run-probe", variant="probe")
    # Upstream run folders are not in the throwaway folder: the probe starts from scratch
    # and without the regularizers that read another run (a distillation teacher: its
    # forward pass, a fraction of a step, is left out).
    raw["model"]["init_from"] = None
    raw["regularizers"] = {name: params for name, params in raw["regularizers"].items()
                           if not reads_other_runs(REGULARIZERS.get(name))}
    totals, epoch_s, epochs_s = [], 0.0, 0.0
    with tempfile.TemporaryDirectory(prefix="harness-probe-") as tmp:
        for seed in (0, 1):
            if seed == 1 and between is not None:
                between()
            one = RunConfig.model_validate({**raw, "seed": seed})
            t0 = time.perf_counter()
            result = train_run(one, results_dir=tmp, data_dir=data_dir)
            totals.append(time.perf_counter() - t0)
            seconds = [float(r["seconds"]) for r in result.rows] or [totals[-1]]
            epoch_s, epochs_s = seconds[-1], sum(seconds)
    return max(0.0, totals[1] - epochs_s), epoch_s, max(0.0, totals[0] - totals[1])


def probe_copy(cfg_json: str, threads: int, data_dir: Path | None, barrier: Any,
               results: Any) -> None:
    """One of the copies `probe_side_by_side` starts (a worker process's entry)."""
    cfg = RunConfig.model_validate_json(cfg_json)
    try:
        results.put(probe(cfg, threads, data_dir, between=lambda: barrier.wait(PROBE_WAIT_S)))
    except Exception as err:  # the coordinator reports it; a broken barrier frees the rest
        barrier.abort()
        results.put(err)


def probe_side_by_side(cfg: RunConfig, threads: int, data_dir: Path | None,
                       copies: int) -> tuple[float, float, float]:
    """`probe` in `copies` worker processes at once, their timed runs side by side: a study's
    workers share the machine's memory bandwidth and caches, and two single-threaded
    copies of a small model each run about 1.3x slower than one alone on 2 cores
    (bench/RESULTS.md), which a lone probe does not see. Means over the copies."""
    if copies <= 1:
        return probe(cfg, threads, data_dir)
    from harness.study.processes import worker_context

    ctx = worker_context()
    barrier, results = ctx.Barrier(copies), ctx.Queue()
    procs = [ctx.Process(target=probe_copy, daemon=True,
                         args=(cfg.model_dump_json(), threads, data_dir, barrier, results))
             for _ in range(copies)]
    for proc in procs:
        proc.start()
    got = [results.get(timeout=PROBE_WAIT_S) for _ in procs]
    for proc in procs:
        proc.join()
    errors = [g for g in got if isinstance(g, BaseException)]
    if errors:
        raise errors[0]
    setups, epochs, firsts = zip(*got, strict=True)
    return sum(setups) / len(got), sum(epochs) / len(got), sum(firsts) / len(got)


def time_fresh_import() -> subprocess.Popen[bytes]:
    """Start timing a fresh Python importing what a worker imports; read with
    `import_seconds`. Run alone: beside a probe it slowed a two-thread probe 2.3x
    (bench/RESULTS.md)."""
    code = ("import time; t = time.perf_counter(); import harness.study.worker_preload; "
            "print(time.perf_counter() - t)")
    return subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL)


def import_seconds(proc: subprocess.Popen[bytes]) -> float:
    out, _ = proc.communicate()
    try:
        return float(out.decode().strip().splitlines()[-1])
    except (ValueError, IndexError):
        return 0.0


def estimate(specs: list[RunSpec], sdir: Path, *, workers: int, threads: int,
             data_dir: Path | None = None, finished: set[str] | None = None,
             startup: bool = True) -> Estimate:
    """Seconds for every run still to run, from finished runs of the same shape where the
    study has some, else from a one-epoch probe per shape; with `startup`, plus the study's
    one-off costs (a fresh process's imports, the report)."""
    import harness.study.worker_preload  # noqa: F401  (the probe's first run then pays no imports)

    finished = finished or set()
    by_shape: dict[str, list[RunSpec]] = {}
    for s in specs:
        by_shape.setdefault(shape_key(s.config), []).append(s)
    out = Estimate(workers, threads, [])
    side_by_side = min(workers, sum(s.run_id not in finished for s in specs))
    for group in by_shape.values():
        todo = [s for s in group if s.run_id not in finished]
        if not todo:
            continue
        done = [RunDir.for_run(sdir, s.variant, s.seed, s.run_id) for s in group
                if s.run_id in finished]
        measured = from_finished(done)
        source = f"{len(done)} finished run(s)" if measured else "probe"
        setup, epoch, first = measured or probe_side_by_side(
            todo[0].config, threads, data_dir, side_by_side)
        cost = ShapeCost(shape_label(todo[0].config), setup, epoch, source, len(todo), first)
        out.shapes.append(cost)
        for s in todo:
            out.run_seconds[s.run_id] = cost.run_seconds(
                s.config.train.epochs, s.config.tracking.wandb != "disabled")
    # after the probes (beside them it took a core from a 2-thread probe); none to run: none
    if startup and out.run_seconds:
        out.startup_s = import_seconds(time_fresh_import())
        out.report_s = REPORT_BASE_S + REPORT_PER_RUN_S * len(specs)
    return out
