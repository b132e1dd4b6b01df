"""Kill a running study again and again, then check nothing was lost or run twice.

Runs a small study (2 workers) once cleanly, then again in another folder while
SIGKILLing the whole process group (coordinator and workers) at random moments N
times, restarting it after each kill, and finally letting it finish. Every run's
per-epoch metrics must equal the clean run's (training is deterministic on CPU and
resume is exact), every run must exist once, and the queue must hold exactly one
completed trial per run. Writes a section of bench/RESULTS.md.

    python bench/fault_injection.py [KILLS]       # default 8
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))

from results_md import machine, write_section  # noqa: E402

from harness.record.run_dir import list_run_dirs  # noqa: E402
from harness.study.queue import RunQueue  # noqa: E402
from harness.study.storage import default_storage_url  # noqa: E402

STUDY = {
    "name": "faults", "description": "fault injection", "seeds": 2,
    "base": {"data": {"name": "mnist1d", "num_samples": 1000},
             "model": {"name": "mlp", "width": 32},
             "train": {"epochs": 8, "batch_size": 32},
             "regularizers": {"ema": {"decay": 0.9}},
             "tracking": {"wandb": "disabled"}},
    "design": {"kind": "sweep", "parameter": "regularizers.dropout.p", "values": [0.1, 0.3]},
}
TIMING = {"samples_per_sec", "seconds"}


def command(study_file: Path, results: Path) -> list[str]:
    return [sys.executable, "-m", "harness.cli", "ablation", str(study_file), "--workers", "2",
            "--results-dir", str(results), "--no-report"]


def runs(results: Path) -> dict[str, list[dict]]:
    return {r.config["run_id"]: [{k: v for k, v in row.items() if k not in TIMING}
                                 for row in r.metrics()]
            for r in list_run_dirs(results / "faults") if r.finished}


def main() -> None:
    kills = int(sys.argv[1]) if len(sys.argv) > 1 else 8
    rng = random.Random(0)
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "HARNESS_HEARTBEAT_SECONDS": "2"}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        study_file = root / "faults.yaml"
        study_file.write_text(yaml.safe_dump(STUDY))
        clean = root / "clean"
        subprocess.run(command(study_file, clean), env=env, check=True,
                       capture_output=True)
        expected = runs(clean)
        faulty = root / "faulty"
        survived, moments = 0, []
        for _ in range(kills):
            proc = subprocess.Popen(command(study_file, faulty), env=env,
                                    start_new_session=True, stdout=subprocess.DEVNULL,
                                    stderr=subprocess.DEVNULL)
            delay = rng.uniform(1.0, 8.0)
            try:
                proc.wait(timeout=delay)
                break  # it finished before this kill
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
                survived += 1
                moments.append(delay)
        t0 = time.perf_counter()
        final = subprocess.run(command(study_file, faulty), env=env, capture_output=True,
                               text=True)
        finish = time.perf_counter() - t0
        got = runs(faulty)
        q = RunQueue.open(default_storage_url(faulty / "faults"), "faults")
        from optuna.trial import TrialState

        complete = [t.user_attrs["run_id"] for t in q.trials(TrialState.COMPLETE)]
        folders = len(list_run_dirs(faulty / "faults"))
    lost = [rid for rid in expected if rid not in got]
    differ = [rid for rid in expected if rid in got and got[rid] != expected[rid]]
    duplicated = len(complete) - len(set(complete))
    lines = [
        f"Machine: {machine()}. `python bench/fault_injection.py {kills}`: a study of "
        f"{len(expected)} runs (MLP with EMA, 8 epochs, 2 workers) killed with SIGKILL "
        "(whole process group: coordinator and workers) at random moments "
        f"({', '.join(f'{m:.1f}' for m in moments)} s after each start), restarted after "
        "each kill, then let finish.",
        "",
        "| kills survived | runs expected | run folders | runs lost | runs with metrics "
        "different from the clean run | duplicate completed trials | final exit code |",
        "|---|---|---|---|---|---|---|",
        f"| {survived} | {len(expected)} | {folders} | {len(lost)} | {len(differ)} | "
        f"{duplicated} | {final.returncode} |",
        "",
        f"The final invocation took {finish:.1f} s. Target: 0 runs lost, 0 duplicates, "
        "metrics identical to the clean run.",
    ]
    print("\n".join(lines))
    write_section("Fault injection", "\n".join(lines))
    if lost or differ or duplicated or final.returncode:
        sys.exit(1)


if __name__ == "__main__":
    main()
