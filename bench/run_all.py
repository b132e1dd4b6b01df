"""Run the benchmark scripts one after another (`make bench`, or `make bench ARGS=workers`).

Each writes its own section of bench/RESULTS.md. They take long (tens of minutes on 2
cores): pass names to run only some: vs_plain, population, population_paths, loops,
workers, pruning, study_times, errors. `--device cuda` (`make bench ARGS="vs_plain
--device cuda"`) goes to the scripts that train on a GPU: vs_plain, population.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
SCRIPTS = {
    "vs_plain": "bench_vs_plain.py",
    "population": "profile_population.py",
    "population_paths": "bench_population_paths.py",
    "workers": "bench_workers.py",
    "loops": "bench_loops.py",
    "pruning": "bench_pruning.py",
    "study_times": "study_times.py",
    "errors": "bench_errors.py",
}


ON_DEVICE = {"vs_plain", "population"}  # the scripts that take --device


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("names", nargs="*")
    ap.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    args = ap.parse_args()
    names = args.names or (list(SCRIPTS) if args.device == "cpu" else sorted(ON_DEVICE))
    unknown = [n for n in names if n not in SCRIPTS]
    if unknown:
        print(f"error: unknown benchmark {', '.join(unknown)}; valid: {', '.join(SCRIPTS)}",
              file=sys.stderr)
        return 2
    cpu_only = [n for n in names if args.device != "cpu" and n not in ON_DEVICE]
    if cpu_only:
        print(f"error: --device {args.device}: {', '.join(cpu_only)} run(s) on the CPU only; "
              f"on a GPU: {', '.join(sorted(ON_DEVICE))}", file=sys.stderr)
        return 2
    for name in names:
        print(f"== {name}", flush=True)
        device = ["--device", args.device] if name in ON_DEVICE else []
        code = subprocess.call([sys.executable, str(HERE / SCRIPTS[name]), *device])
        if code:
            return code
    return 0


if __name__ == "__main__":
    sys.exit(main())
