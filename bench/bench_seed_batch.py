"""Seed-batched training vs sequential runs: 8 seeds of the MNIST-1D CNN (norm: none).

In ONE process, interleaved repetitions of: (seq) the 8 seeds trained one after another
with `train_run`, (batch) the same 8 configs with `train_seeds_batched` (one vmapped
model). Same configs, data, epochs, threads; W&B disabled in both (it costs the same per
run either way). Reported:
  training samples/s: all seeds' training samples over the seconds spent in training
      steps (from each run's metrics rows: samples / samples_per_sec per epoch; for the
      batch, every seed's row holds the batch's epoch time, so one seed's is counted);
  wall: the 8 `train_run` calls vs the one `train_seeds_batched` call (per-epoch val
      evaluation, store writes, final evaluation and end-of-run analysis for every seed).
Also checks that the batch's per-seed test accuracies match the separate runs'.
Usage: python bench/bench_seed_batch.py [--reps 3] [--seeds 8] [--epochs 3] [--threads 1]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from bench_loops import machine, replace_section  # noqa: E402

from harness.config import build_run_config  # noqa: E402
from harness.train.loop import train_run  # noqa: E402
from harness.train.seed_batch import can_batch_seeds, train_seeds_batched  # noqa: E402

RESULTS = REPO / "bench" / "RESULTS.md"
SECTION = "Seed-batched training"
NOTES = (
    'Why the CNN gains nothing here: one step of the MNIST-1D CNN at batch 128 is compute-'
    "bound on this CPU (about 20 ms of convolutions at one thread). vmap turns the seeds' "
    'convolutions into one grouped convolution with the same FLOPs, and adds layout copies '
    'around max-pooling and reductions in the backward pass, so one batched step costs '
    'about as much as the 8 separate steps (a profile of forward+backward alone: 8 separate'
    ' steps 180-245 ms, one batched step 280-310 ms, under load). Batching removes the per-'
    'step Python/dispatch cost and per-run fixed costs, which is where the small MLP gains.'
    ' The >= 3x target needs hardware that one small run leaves idle (a GPU, where such '
    'models are launch-bound, or an idle many-core CPU); it is not met on this shared '
    '2-core CPU.'
)


def configs(seeds: int, epochs: int, threads: int, model: str = "cnn") -> list[Any]:
    raw = {"study": "bench_seeds", "variant": f"{model}_nonorm",
           "data": {"name": "mnist1d"}, "model": {"name": model},
           "regularizers": {"norm": {"kind": "none"}},
           "train": {"epochs": epochs, "batch_size": 128, "threads": threads, "device": "cpu"},
           "tracking": {"wandb": "disabled"}}
    return [build_run_config({**raw, "seed": s}, "bench") for s in range(seeds)]


def train_seconds(rows: list[dict[str, Any]], n: int) -> float:
    return sum(n / r["samples_per_sec"] for r in rows)


def run_sequential(cfgs: list[Any], n: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-seq-") as tmp:
        t0 = time.perf_counter()
        results = [train_run(c, results_dir=tmp, force=True) for c in cfgs]
        wall = time.perf_counter() - t0
    secs = sum(train_seconds(r.rows, n) for r in results)
    samples = sum(n * len(r.rows) for r in results)
    return {"sps": samples / secs, "wall": wall,
            "acc": [r.summary["final_test_acc"] for r in results]}


def run_batched(cfgs: list[Any], n: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-batch-") as tmp:
        t0 = time.perf_counter()
        results = train_seeds_batched(cfgs, tmp, force=True)
        wall = time.perf_counter() - t0
    secs = train_seconds(results[0].rows, n)  # the batch's epochs, shared by every seed
    samples = sum(n * len(r.rows) for r in results)
    return {"sps": samples / secs, "wall": wall,
            "acc": [r.summary["final_test_acc"] for r in results]}


def measure(model: str, args: argparse.Namespace, n: int) -> dict[str, Any]:
    cfgs = configs(args.seeds, args.epochs, args.threads, model)
    ok, why = can_batch_seeds(cfgs)
    assert ok, why
    run_batched(cfgs[:2], n)  # warm-up: imports, allocator, vmap
    res: dict[str, list[dict[str, Any]]] = {"seq": [], "batch": []}
    for rep in range(args.reps):
        for name, fn in (("seq", run_sequential), ("batch", run_batched)):
            r = fn(cfgs, n)
            res[name].append(r)
            print(f"{model} rep {rep} {name:5s} {r['sps']:8.0f} training samples/s  wall "
                  f"{r['wall']:6.1f} s  mean test acc {statistics.mean(r['acc']):.4f}",
                  flush=True)

    def med(name: str, key: str) -> float:
        return statistics.median(r[key] for r in res[name])

    def paired(fn: Any) -> float:
        return statistics.median(fn(s, b) for s, b in zip(res["seq"], res["batch"],
                                                             strict=True))

    return {"seq_sps": med("seq", "sps"), "batch_sps": med("batch", "sps"),
            "seq_wall": med("seq", "wall"), "batch_wall": med("batch", "wall"),
            "sps_ratio": paired(lambda s, b: b["sps"] / s["sps"]),
            "wall_ratio": paired(lambda s, b: s["wall"] / b["wall"]),
            "acc_seq": res["seq"][0]["acc"], "acc_batch": res["batch"][0]["acc"]}


def rows_for(model: str, m: dict[str, Any], seeds: int) -> list[str]:
    a, b = m["acc_seq"], m["acc_batch"]
    diff = max(abs(x - y) for x, y in zip(a, b, strict=True))
    return [
        f"| {model} | {seeds} sequential `train_run` | {m['seq_sps']:.0f} | "
        f"{m['seq_wall']:.1f} | {statistics.mean(a):.4f} ({statistics.stdev(a):.4f}) |",
        f"| {model} | `train_seeds_batched` | {m['batch_sps']:.0f} | {m['batch_wall']:.1f} | "
        f"{statistics.mean(b):.4f} ({statistics.stdev(b):.4f}) |",
        f"| {model} | **batched / sequential** | **{m['sps_ratio']:.2f}x** | "
        f"**{m['wall_ratio']:.2f}x** (speed) | max per-seed difference {diff:.4f} |",
    ]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--seeds", type=int, default=8)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--models", default="cnn,mlp")
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    from harness.data import load_data

    n = len(load_data(configs(2, 1, 1)[0].data).train.y)
    info = machine()
    load_before = os.getloadavg()
    t_bench = time.perf_counter()
    models = args.models.split(",")
    measured = {m: measure(m, args, n) for m in models}
    load_after = os.getloadavg()
    bench_s = time.perf_counter() - t_bench
    table = ["| model | | training samples/s | wall (s) | mean final test acc (sd over "
             "seeds) |", "|---|---|---|---|---|"]
    for m in models:
        table += rows_for(m, measured[m], args.seeds)
    print("\n".join(table))
    if args.no_write:
        return
    per_seed = "; ".join(
        f"{m}: " + ", ".join(f"s{i} {a:.3f}/{b:.3f}" for i, (a, b) in
                             enumerate(zip(r["acc_seq"], r["acc_batch"], strict=True)))
        for m, r in measured.items())
    body = "\n".join([
        f"Measured {info['date']} by `bench/bench_seed_batch.py` on {info['nproc']} cores "
        f"({info['cpu']}), CPU only, torch {info['torch']}, {args.threads} torch thread(s) "
        f"in both. Load average before/after: {load_before[0]:.2f} / {load_after[0]:.2f} "
        f"(machine shared with other jobs); bench took {bench_s:.0f} s.",
        "",
        f"{args.seeds} seeds of MNIST-1D models with `norm: {{kind: none}}` (no BatchNorm): "
        f"`cnn` defaults (the target case) and `mlp` defaults (a small, overhead-bound "
        f"model), {n} training samples, {args.epochs} epochs, batch 128, Adam, cosine "
        f"schedule, W&B disabled. Sequential: {args.seeds} `train_run` calls; batched: one "
        f"`train_seeds_batched` call (stacked parameters, one vmapped forward/backward and "
        f"optimizer step per step). Medians of {args.reps} interleaved repetitions (seq, "
        f"batch, seq, ...); ratios are medians of the per-repetition ratios. Training "
        f"samples/s: samples over the seconds in training steps; wall: the whole calls "
        f"(per-epoch evaluation and store writes, final evaluation and analysis of every "
        f"seed included).",
        "",
        *table,
        "",
        f"Per-seed final test accuracy, sequential/batched (first repetition): {per_seed}. "
        "Without dropout or augmentation a batched seed follows its separate run's "
        "trajectory (same init, same batch order) up to floating-point summation order.",
        "",
        "Target: >= 3x the samples/s of 8 sequential runs (MNIST-1D CNN).",
        "",
        NOTES,
    ])
    replace_section(RESULTS, SECTION, body)
    print(f"wrote section '{SECTION}' of {RESULTS}")


if __name__ == "__main__":
    main()
