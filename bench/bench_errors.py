"""How long a user waits for the answer to a bad input, and whether PyTorch was loaded.

Each case is a fresh `python -m harness.cli ...` (as a user types it), timed wall-clock
REPEATS times; the median is reported with the load average, since on a shared machine
the figure mostly measures the others. A separate run with `-X importtime` says whether
torch was imported before the error was printed. Writes a section of bench/RESULTS.md.

    python bench/bench_errors.py [REPEATS]      # default 5
"""

from __future__ import annotations

import os
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from results_md import cores, cpu_model, write_section  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
STUDY = "name: typo\nseeds: 2\nbase: {model: {name: mlp}, train: {epocs: 3}}\n" \
        "design: {kind: sweep, parameter: regularizers.dropout.p, values: [0.1]}\n"
CASES: dict[str, tuple[str, bytes, list[str]]] = {
    # name: (file, content, arguments after `harness`)
    "misspelt study name": ("", b"", ["ablation", "dropuot"]),
    "unknown key in a study's base": ("typo.yaml", STUDY.encode(), ["ablation", "typo.yaml"]),
    "negative seed": ("neg.yaml", STUDY.replace("seeds: 2", "seeds: [0, -1]").encode(),
                      ["ablation", "neg.yaml"]),
    "out-of-range value in a run config": ("run.yaml", b"train: {epochs: 0}\n",
                                           ["run", "--config", "run.yaml"]),
    "duplicate key": ("dup.yaml", b"name: d\nbase: {}\nbase: {}\n", ["ablation", "dup.yaml"]),
    "binary file": ("bin.yaml", b"\x7fELF\x02\x01\x00\x00", ["ablation", "bin.yaml"]),
    "20,000-deep list": ("deep.yaml", b"a: " + b"[" * 20000 + b"]" * 20000,
                         ["ablation", "deep.yaml"]),
    "alias bomb": ("bomb.yaml", b"a: &a [x, x, x, x, x, x, x, x, x, x]\n" + b"".join(
        f"{c}: &{c} [{', '.join(['*' + p] * 10)}]\n".encode()
        for p, c in zip("abcdefgh", "bcdefghi", strict=True)), ["ablation", "bomb.yaml"]),
    "unknown model name (needs the registry)": ("model.yaml", b"model: {name: cnnn}\n",
                                                ["run", "--config", "model.yaml"]),
}


def run(args: list[str], cwd: Path, importtime: bool = False) -> tuple[float, float, str]:
    """(wall seconds, CPU seconds of the child, its stderr)."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    flags = ["-X", "importtime"] if importtime else []
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    done = subprocess.run([sys.executable, *flags, "-m", "harness.cli", *args], cwd=cwd,
                          env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, done.stderr


def main() -> None:
    repeats = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    rows = []
    loads = []
    with tempfile.TemporaryDirectory() as tmp:
        cwd = Path(tmp)
        for name, (file, content, args) in CASES.items():
            if file:
                (cwd / file).write_bytes(content)
            _, _, trace = run(args, cwd, importtime=True)
            torch_loaded = any(re.search(r"\|\s+torch$", line) for line in trace.splitlines())
            error = next((line for line in trace.splitlines() if line.startswith("error:")), "?")
            times, cpus = [], []
            for _ in range(repeats):
                loads.append(os.getloadavg()[0])
                wall, cpu, _ = run(args, cwd)
                times.append(wall)
                cpus.append(cpu)
            rows.append((name, statistics.median(times), statistics.median(cpus), torch_loaded,
                         error))
            print(f"{name}: {statistics.median(times):.2f}s wall, {statistics.median(cpus):.2f}s "
                  f"CPU, torch={torch_loaded}", flush=True)
    body = [f"`python bench/bench_errors.py {repeats}`: {time.strftime('%Y-%m-%d')}, {cores()} "
            f"cores ({cpu_model()}), Python {sys.version.split()[0]}. Load average during the "
            f"measurements: {min(loads):.1f} to {max(loads):.1f} (1 min). Wall: seconds from "
            "starting `harness` to its one-line answer; CPU: user + system seconds of that "
            f"process (what a quiet machine would take, about); medians of {repeats}. On a "
            "loaded machine the wall figure measures the load as much as the harness.", "",
            "| bad input | wall s | CPU s | torch imported | answer (cut) |",
            "|---|---|---|---|---|"]
    for name, med, cpu, torch_loaded, error in rows:
        short = error[:90].replace("|", "\\|")
        body.append(f"| {name} | {med:.2f} | {cpu:.2f} | {'yes' if torch_loaded else 'no'} "
                    f"| `{short}` |")
    with_torch = [name for name, _, _, loaded, _ in rows if loaded]
    body += ["", f"{len(rows) - len(with_torch)} of {len(rows)} answers come before PyTorch "
             "is imported (the file, keys, types and ranges are checked first). Imported "
             f"torch first: {', '.join(with_torch) or 'none'} (registry names: the "
             "registries import PyTorch)."]
    write_section("Time to answer a bad input", "\n".join(body))


if __name__ == "__main__":
    main()
