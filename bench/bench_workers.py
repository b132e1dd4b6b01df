"""Study throughput with 1 and 2 local workers, measured in one run (issue: ablation).

Runs the same small study into fresh results folders, first with 1 worker (2
threads), then with 2 workers (1 thread each), and prints runs per hour and the
ratio, for two models: the MNIST-1D CNN (convolutions use both threads well) and
the MLP of the dropout study (small matrix products, which do not).
Target: 2 workers >= 1.7x one.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from results_md import machine, write_section  # noqa: E402

from harness.study.execute import run_study  # noqa: E402
from harness.study.spec import StudyConfig  # noqa: E402

CASES = {
    "MNIST-1D CNN width 32, 8 epochs": {"data": {"name": "mnist1d"},
                                         "model": {"name": "cnn", "width": 32},
                                         "train": {"epochs": 8, "batch_size": 128}},
    "dropout study's MLP (width 256, 1000 samples), 30 epochs": {
        "data": {"name": "mnist1d", "train_size": 1000, "label_noise": 0.1},
        "model": {"name": "mlp", "width": 256, "depth": 2},
        "train": {"epochs": 30, "batch_size": 128}},
}


def timed(base: dict, workers: int, root: Path) -> tuple[float, int]:
    study = StudyConfig.model_validate({
        "name": "bench_workers", "description": "throughput benchmark",
        "base": {**base, "tracking": {"wandb": "disabled"}},
        "design": {"kind": "sweep", "parameter": "regularizers.dropout.p",
                   "values": [0.1, 0.2, 0.3]},
        "seeds": 2})
    t0 = time.perf_counter()
    out = run_study(study, source="bench", results_dir=root / f"w{workers}", workers=workers)
    return time.perf_counter() - t0, out.finished


def main() -> None:
    lines = [
        f"Machine: {machine()}.",
        "",
        "`python bench/bench_workers.py`: the same study (4 variants x 2 seeds = 8 runs, W&B "
        "off) with 1 worker x 2 threads, then 2 workers x 1 thread, in one process run. Wall "
        "time includes starting the worker processes.",
        "",
        "| study | 1 worker: s (runs/h) | 2 workers: s (runs/h) | ratio |",
        "|---|---|---|---|",
    ]
    for name, base in CASES.items():
        with tempfile.TemporaryDirectory() as tmp:
            t1, n1 = timed(base, 1, Path(tmp))
            t2, n2 = timed(base, 2, Path(tmp))
        rate1, rate2 = n1 / t1 * 3600, n2 / t2 * 3600
        lines.append(f"| {name} | {t1:.1f} ({rate1:.0f}) | {t2:.1f} ({rate2:.0f}) | "
                     f"**{rate2 / rate1:.2f}x** |")
    lines += ["", "Target: 2 workers >= 1.7x one worker."]
    print("\n".join(lines))
    write_section("Study throughput: 1 vs 2 workers", "\n".join(lines))


if __name__ == "__main__":
    main()
