"""Run the benchmark scripts one after another (`make bench`, or `make bench ARGS=workers`).

Each writes its own section of bench/RESULTS.md. They take long (tens of minutes on 2
cores): pass names to run only some: loops, workers, pruning, study_times, errors.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
SCRIPTS = {
    "vs_plain": "bench_vs_plain.py",
    "workers": "bench_workers.py",
    "loops": "bench_loops.py",
    "pruning": "bench_pruning.py",
    "study_times": "study_times.py",
    "errors": "bench_errors.py",
}


def main() -> int:
    names = sys.argv[1:] or list(SCRIPTS)
    unknown = [n for n in names if n not in SCRIPTS]
    if unknown:
        print(f"error: unknown benchmark {', '.join(unknown)}; valid: {', '.join(SCRIPTS)}",
              file=sys.stderr)
        return 2
    for name in names:
        print(f"== {name}", flush=True)
        code = subprocess.call([sys.executable, str(HERE / SCRIPTS[name])])
        if code:
            return code
    return 0


if __name__ == "__main__":
    sys.exit(main())
