"""Where the time of one population run goes: the dropout study's screening runs (studies/
dropout.yaml: every variant x 3 seeds, 60 epochs) trained as one population in one
process (`train_runs`, W&B disabled), sampled by py-spy, each sample counted under the
first step of the run it falls in (setup, training step parts, per-epoch evaluation, each
member's finish). Writes the "Population profile" section of bench/RESULTS.md.

    python bench/profile_population.py [--threads 1] [--epochs 60] [--device cpu|cuda]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from results_md import machine, write_section  # noqa: E402

TRAIN = '''
import sys, time
from harness.study.plan import expand
from harness.study.spec import find_study_file, load_study
from harness.train.loop import RunRequest, train_run, train_runs
study = load_study(find_study_file("dropout"))
configs = [s.config for s in expand(study)]
for c in configs:
    c.tracking.wandb = "disabled"
    c.train.threads = int(sys.argv[1])
    c.train.epochs = int(sys.argv[2])
    c.train.device = sys.argv[3]
t0 = time.perf_counter()
if sys.argv[5] == "population":
    train_runs([RunRequest(c) for c in configs], results_dir=sys.argv[4])
    print(f"{len(configs)} runs as one population: {time.perf_counter() - t0:.1f} s")
else:
    for c in configs:
        train_run(c, results_dir=sys.argv[4])
    print(f"{len(configs)} runs one by one: {time.perf_counter() - t0:.1f} s")
'''

# A sample's phase is the innermost of these frames on its stack (py-spy names frames
# Class.function (file:first line)); inside a training step, the innermost step part.
PHASES = [
    ("train_together", "setup: data, models, stacking, trackers"),
    ("train_one_epoch", "training step"),
    ("Training.end_epoch", "end of epoch: rows, tracking, checkpoints"),
    ("Population.evaluations", "per-epoch evaluation (each member on its own module)"),
    ("Training.finish", "member finish: final evaluation, analysis, model.pt"),
]
STEP_PARTS = [
    ("MemberDropout.forward", "dropout masks (each member's own generator)"),
    ("StackedLinear.forward", "forward: stacked Linear (baddbmm)"),
    ("MLP.forward", "forward: activations, flatten"),
    ("Tensor.backward", "backward"),
    ("torch/optim/", "optimizer step (Adam over the stacked tensors)"),
    ("Population.loss", "each member's loss"),
]
BEFORE = "interpreter start, imports, study planning"


def categorize(stack: str) -> str:
    frames = stack.split(";")
    phase, part = BEFORE, None
    for frame in frames:
        for marker, name in PHASES:
            if marker in frame:
                phase, part = name, None
        for marker, name in STEP_PARTS:
            if marker in frame and phase == "training step":
                part = name
    if phase == "training step":
        return f"training step: {part or 'the rest (batch indexing, stats, lr, hooks)'}"
    return phase


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--epochs", type=int, default=60)
    ap.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    args = ap.parse_args()
    if args.device == "cuda":
        import torch

        if not torch.cuda.is_available():
            print("--device cuda: not measured (torch sees no CUDA device here)")
            return 0
    work = Path(tempfile.mkdtemp(prefix="profile-population-"))
    script, raw = work / "train.py", work / "samples.txt"
    script.write_text(TRAIN)
    load_before = " / ".join(f"{x:.2f}" for x in os.getloadavg())
    t0 = time.perf_counter()
    spy = [str(Path(sys.executable).parent / "py-spy"), "record", "--format", "raw",
           "--function", "--rate", "200", "-o", str(raw), "--"]
    train = [sys.executable, str(script), str(args.threads), str(args.epochs), args.device]
    done = subprocess.run([*spy, *train, str(work / "profiled"), "population"],
                          capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if done.returncode:
        print(done.stdout, done.stderr, file=sys.stderr)
        return done.returncode
    # the same work without the sampler, as one population and one by one, in turn
    timed = {}
    for way in ("population", "one by one", "population again"):
        t1 = time.perf_counter()
        subprocess.run([*train, str(work / way.replace(" ", "_")), way.split()[0]],
                       check=True, capture_output=True)
        timed[way] = time.perf_counter() - t1
    population = (timed["population"] + timed["population again"]) / 2
    load_after = " / ".join(f"{x:.2f}" for x in os.getloadavg())
    counts: Counter[str] = Counter()
    for line in raw.read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        if stack and n.isdigit():
            counts[categorize(stack)] += int(n)
    total = sum(counts.values()) or 1
    said = next((ln for ln in done.stdout.splitlines() if "population" in ln), "")
    runs = said.split(" runs", 1)[0]
    table = ["| where | share of samples |", "|---|---|"]
    table += [f"| {name} | {100 * n / total:.1f}% |" for name, n in counts.most_common()]
    body = "\n".join([
        f"Measured {time.strftime('%Y-%m-%dT%H:%M:%S%z')} by `bench/profile_population.py "
        f"--threads {args.threads} --epochs {args.epochs}` ({machine()}); load average "
        f"(1/5/15 min) before {load_before}, after {load_after}. py-spy at 200 Hz over the "
        f"whole process ({wall:.1f} s under the sampler; {said}).",
        "", *table, "",
        f"The same {runs} runs without the sampler, whole processes, {args.threads} thread(s): "
        f"as one population {timed['population']:.1f} s and {timed['population again']:.1f} "
        f"s, one by one (a `train_run` each) {timed['one by one']:.1f} s: "
        f"**{timed['one by one'] / population:.2f}x** the throughput."])
    print(body)
    write_section("Population profile", body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
