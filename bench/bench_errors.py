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
LIMIT_S = 2.0  # the promise: every bad input answered within this, on a quiet machine
BASE = "name: {name}\nseeds: 2\nbase: {{model: {{name: mlp}}, {base}}}\ndesign: {design}\n"
SWEEP = "{kind: sweep, parameter: model.width, values: [8]}"


def study(name: str, base: str = "train: {epochs: 3}", design: str = SWEEP) -> str:
    return BASE.format(name=name, base=base, design=design)


def run_config(name: str, text: str) -> tuple[str, bytes, list[str]]:
    return (f"{name}.yaml", text.encode(), ["run", "--config", f"{name}.yaml"])


def study_case(name: str, text: str, *extra: str) -> tuple[str, bytes, list[str]]:
    return (f"{name}.yaml", text.encode(), ["ablation", f"{name}.yaml", *extra])


CASES: dict[str, tuple[str, bytes, list[str]]] = {
    # name: (file, content, arguments after `harness`)
    "misspelt study name": ("", b"", ["ablation", "dropuot"]),
    "run: unknown dataset": run_config("r1", "data: {name: mnist3d}\n"),
    "run: unknown model": run_config("r2", "model: {name: cnnn}\n"),
    "run: unknown regularizer": run_config("r3", "regularizers: {dropuot: {p: 0.1}}\n"),
    "run: dropout p out of range": run_config("r4", "regularizers: {dropout: {p: 1.5}}\n"),
    "run: lr out of range": run_config("r5", "optim: {lr: -0.1}\n"),
    "run: epochs out of range": run_config("r6", "train: {epochs: 0}\n"),
    "run: batch size out of range": run_config("r7", "train: {batch_size: -4}\n"),
    "run: width out of range": run_config("r8", "model: {width: 0}\n"),
    "run: unknown key": run_config("r9", "train: {epocs: 3}\n"),
    "run: unknown data.kwargs key": run_config("r10", "data: {name: cifar100, kwargs: "
                                                      "{lables: coarse}}\n"),
    "study: unknown dataset": study_case("s1", study("s1", "data: {name: mnist3d}")),
    "study: unknown model": study_case("s2", study("s2").replace("mlp", "cnnn")),
    "study: unknown regularizer": study_case("s3", study(
        "s3", "regularizers: {dropuot: {p: 0.1}}")),
    "study: dropout p out of range (sweep)": study_case("s4", study(
        "s4", design="{kind: sweep, parameter: regularizers.dropout.p, values: [0.1, 1.5]}")),
    "study: lr out of range (sweep)": study_case("s5", study(
        "s5", design="{kind: sweep, parameter: optim.lr, values: [0.01, -1]}")),
    "study: epochs out of range (--set)": study_case("s6", study("s6"), "--set",
                                                     "base.train.epochs=0"),
    "study: batch size out of range": study_case("s7", study("s7", "train: {batch_size: 0}")),
    "study: width out of range (grid)": study_case("s8", study(
        "s8", design="{kind: grid, parameters: {model.width: [8, 0], optim.lr: [0.01]}}")),
    "study: key typo inside design": study_case("s9", study(
        "s9", design="{kind: sweep, paramter: model.width, values: [8]}")),
    "study: design kind typo": study_case("s10", study(
        "s10", design="{kind: swep, parameter: model.width, values: [8]}")),
    "study: empty grid axis": study_case("s11", study(
        "s11", design="{kind: grid, parameters: {model.width: []}}")),
    "study: unknown key in base": study_case("s12", study("s12", "train: {epocs: 3}")),
    "study: negative seed": study_case("s13", study("s13").replace("seeds: 2",
                                                                   "seeds: [0, -1]")),
    "duplicate key": ("dup.yaml", b"name: d\nbase: {}\nbase: {}\n", ["ablation", "dup.yaml"]),
    "binary file": ("bin.yaml", b"\x7fELF\x02\x01\x00\x00", ["ablation", "bin.yaml"]),
    "20,000-deep list": ("deep.yaml", b"a: " + b"[" * 20000 + b"]" * 20000,
                         ["ablation", "deep.yaml"]),
    "alias bomb": ("bomb.yaml", b"a: &a [x, x, x, x, x, x, x, x, x, x]\n" + b"".join(
        f"{c}: &{c} [{', '.join(['*' + p] * 10)}]\n".encode()
        for p, c in zip("abcdefgh", "bcdefghi", strict=True)), ["ablation", "bomb.yaml"]),
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
            rows.append((name, statistics.median(times), max(times), statistics.median(cpus),
                         torch_loaded, error))
            print(f"{name}: {statistics.median(times):.2f}s wall (max {max(times):.2f}), "
                  f"{statistics.median(cpus):.2f}s CPU, torch={torch_loaded}", flush=True)
    slowest = max(rows, key=lambda r: r[2])
    within = sum(r[2] < LIMIT_S for r in rows)
    answered = sum(r[5] != "?" for r in rows)
    body = [f"`python bench/bench_errors.py {repeats}`: {time.strftime('%Y-%m-%d %H:%M')}, "
            f"{cores()} cores ({cpu_model()}), Python {sys.version.split()[0]}. Load average "
            f"during the measurements: {min(loads):.1f} to {max(loads):.1f} (1 min). Wall: "
            "seconds from starting `harness` (a fresh `python -m harness.cli`) to its exit "
            "after the one-line answer; CPU: user + system seconds of that process; median "
            f"and slowest of {repeats}. On a loaded machine the wall figure measures the load "
            "as much as the harness.", "",
            "| bad input | wall s (median) | wall s (slowest) | CPU s | torch imported "
            "| answer (cut) |", "|---|---|---|---|---|---|"]
    for name, med, worst, cpu, torch_loaded, error in rows:
        short = error[:90].replace("|", "\\|")
        body.append(f"| {name} | {med:.2f} | {worst:.2f} | {cpu:.2f} | "
                    f"{'yes' if torch_loaded else 'no'} | `{short}` |")
    with_torch = [name for name, _, _, _, loaded, _ in rows if loaded]
    body += ["", f"{answered} of {len(rows)} inputs answered with one `error:` line; "
             f"{within} of {len(rows)} within {LIMIT_S:.0f} s of wall time at every repeat "
             f"(slowest: {slowest[0]}, {slowest[2]:.2f} s); {len(rows) - len(with_torch)} of "
             f"{len(rows)} answered before PyTorch is imported (names and option ranges come "
             "from harness/builtin_names.py). Imported torch first: "
             f"{', '.join(with_torch) or 'none'}."]
    print(body[-1])
    write_section("Time to answer a bad input", "\n".join(body))


if __name__ == "__main__":
    main()
