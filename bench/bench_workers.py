"""Study throughput with 1 and 2 local workers, measured in one run (issue: ablation).

Runs the same small study (MNIST-1D CNN, 4 variants x 2 seeds) into two fresh
results folders, first with 1 worker (2 threads), then with 2 workers (1 thread
each), and prints runs per hour and the ratio. Target: 2 workers >= 1.7x one.
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

STUDY = {
    "name": "bench_workers",
    "description": "throughput benchmark",
    "base": {"data": {"name": "mnist1d"}, "model": {"name": "cnn", "width": 32},
             "train": {"epochs": 8, "batch_size": 128}, "tracking": {"wandb": "disabled"}},
    "design": {"kind": "sweep", "parameter": "regularizers.dropout.p", "values": [0.1, 0.2, 0.3]},
    "seeds": 2,
}


def timed(workers: int, root: Path) -> tuple[float, int]:
    study = StudyConfig.model_validate(STUDY)
    t0 = time.perf_counter()
    out = run_study(study, source="bench", results_dir=root / f"w{workers}", workers=workers,
                    report=False)
    return time.perf_counter() - t0, out.finished


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        t1, n1 = timed(1, root)
        t2, n2 = timed(2, root)
    rate1, rate2 = n1 / t1 * 3600, n2 / t2 * 3600
    ratio = rate2 / rate1
    lines = [
        f"Machine: {machine()}.",
        "",
        "`python bench/bench_workers.py`: the same study (MNIST-1D CNN width 32, 8 epochs, "
        f"{n1} runs) with 1 worker x 2 threads, then 2 workers x 1 thread, one process run.",
        "",
        "| workers | wall time (s) | runs per hour |",
        "|---|---|---|",
        f"| 1 | {t1:.1f} | {rate1:.0f} |",
        f"| 2 | {t2:.1f} | {rate2:.0f} |",
        "",
        f"Ratio 2 workers / 1 worker: **{ratio:.2f}x** (target >= 1.7x).",
    ]
    print("\n".join(lines))
    write_section("Study throughput: 1 vs 2 workers", "\n".join(lines))


if __name__ == "__main__":
    main()
