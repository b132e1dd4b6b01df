"""The two ways to train a population, measured on the dropout study's case before choosing
one: 12 MLPs 40-256-256-10 (dropout 0, .1, .3, .5 x 3 seeds), batch 128 from 1000
samples, Adam 3e-3, 480 steps each (60 epochs), training steps only.

- one by one: 12 `nn.Sequential` models trained one after another (the hand loop's step);
- batched layers, each member's masks (the harness's choice, harness/models/population.py):
  weights (K, out, in), one `torch.baddbmm` per layer, each member's dropout mask drawn
  with `bernoulli_` from its own generator (the masks its run draws alone);
- batched layers, one mask draw: the same with one `torch.rand(...) < keep` for all members
  (independent masks, not those of the runs alone);
- torch.func: `stack_module_state` + `vmap(randomness="different")` over the model's
  layers called functionally (`F.linear` on each member's weights; `functional_call` cannot
  give each member its own dropout rate, a float of the module), the dropout rate a
  per-member input (masks from vmap's random stream: independent, not those of the runs
  alone).

Each variant runs in its own process, in rounds (one by one, batched, batched one draw,
torch.func, again), at 1 and 2 threads. Writes the "Population: batched layers or
torch.func" section of bench/RESULTS.md.

    python bench/bench_population_paths.py [--rounds 2] [--steps 480]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from results_md import machine, write_section  # noqa: E402

RATES = (0.0, 0.1, 0.3, 0.5)
K, N, BATCH, STEPS_PER_EPOCH = 12, 1000, 128, 8


def setup(threads: int) -> tuple:
    import torch

    torch.set_num_threads(threads)
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(N, 40, generator=gen)
    y = torch.randint(0, 10, (N,), generator=gen)
    return x, y


def member(p: float, seed: int):
    import torch
    from torch import nn

    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(40, 256), nn.ReLU(), nn.Dropout(p), nn.Linear(256, 256),
                         nn.ReLU(), nn.Dropout(p), nn.Linear(256, 10))


def members() -> list:
    return [member(p, s) for p in RATES for s in range(K // len(RATES))]


def orders(gens: list, n: int):
    import torch

    return torch.stack([torch.randperm(n, generator=g) for g in gens])


def one_by_one(x, y, steps: int) -> None:
    import torch
    import torch.nn.functional as F

    for k, m in enumerate(members()):
        opt = torch.optim.Adam(m.parameters(), lr=3e-3)
        order = torch.Generator().manual_seed(k)
        for s in range(steps):
            if s % STEPS_PER_EPOCH == 0:
                perm = torch.randperm(N, generator=order)
            idx = perm[(s % STEPS_PER_EPOCH) * BATCH:(s % STEPS_PER_EPOCH + 1) * BATCH]
            loss = F.cross_entropy(m(x[idx]), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()


def batched(x, y, steps: int, own_masks: bool) -> None:
    import torch
    import torch.nn.functional as F

    from harness.models.population import stack_members

    gens = [torch.Generator().manual_seed(k) for k in range(K)]
    population = stack_members([wrap(m) for m in members()], gens)
    if not own_masks:
        keep = torch.tensor([1 - p for p in RATES for _ in range(K // len(RATES))])
        for module in population.modules():
            if type(module).__name__ == "MemberDropout":
                module.forward = one_draw(keep)  # type: ignore[method-assign]
    opt = torch.optim.Adam(population.parameters(), lr=3e-3)
    order = [torch.Generator().manual_seed(k) for k in range(K)]
    for s in range(steps):
        if s % STEPS_PER_EPOCH == 0:
            perms = orders(order, N)
        idx = perms[:, (s % STEPS_PER_EPOCH) * BATCH:(s % STEPS_PER_EPOCH + 1) * BATCH]
        logits = population(x[idx.reshape(-1)])
        losses = torch.stack([F.cross_entropy(part, t) for part, t in
                              zip(logits.chunk(K), y[idx.reshape(-1)].chunk(K), strict=True)])
        opt.zero_grad(set_to_none=True)
        losses.sum().backward()
        opt.step()


def wrap(sequential):
    """The stacker takes models that declare population support: an MLP-shaped wrapper."""
    from typing import ClassVar

    from torch import nn

    from harness.models.base import ModelInfo

    class Member(nn.Module):
        info: ClassVar[ModelInfo] = ModelInfo(population=True)

        def __init__(self) -> None:
            super().__init__()
            self.body = sequential

        def forward(self, x):
            return self.body(x)

    return Member()


def one_draw(keep):
    import torch

    def forward(x):
        folded = x.reshape(len(keep), -1)
        mask = torch.rand(folded.shape) < keep[:, None]
        return (folded * mask / keep[:, None]).reshape(x.shape)

    return forward


def func(x, y, steps: int) -> None:
    import copy

    import torch
    import torch.nn.functional as F
    from torch.func import stack_module_state, vmap

    models = members()
    params, buffers = stack_module_state(models)
    base = copy.deepcopy(models[0]).to("meta")
    keep = torch.tensor([1 - p for p in RATES for _ in range(K // len(RATES))])

    def one(p, b, xx, kp):
        h = xx
        for i, layer in enumerate(base):
            if isinstance(layer, torch.nn.Dropout):
                h = h * (torch.rand_like(h) < kp) / kp
            elif isinstance(layer, torch.nn.Linear):
                h = F.linear(h, p[f"{i}.weight"], p[f"{i}.bias"])
            else:
                h = torch.relu(h)
        return h

    forward = vmap(one, randomness="different")
    opt = torch.optim.Adam(list(params.values()), lr=3e-3)
    order = [torch.Generator().manual_seed(k) for k in range(K)]
    for s in range(steps):
        if s % STEPS_PER_EPOCH == 0:
            perms = orders(order, N)
        idx = perms[:, (s % STEPS_PER_EPOCH) * BATCH:(s % STEPS_PER_EPOCH + 1) * BATCH]
        logits = forward(params, buffers, x[idx], keep)
        loss = F.cross_entropy(logits.reshape(-1, 10), y[idx].reshape(-1),
                               reduction="none").reshape(K, -1).mean(1).sum()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()


VARIANTS = {
    "one by one": lambda x, y, s: one_by_one(x, y, s),
    "batched layers, each member's masks (harness)": lambda x, y, s: batched(x, y, s, True),
    "batched layers, one mask draw": lambda x, y, s: batched(x, y, s, False),
    "torch.func (vmap, randomness=different)": lambda x, y, s: func(x, y, s),
}


def child(name: str, threads: int, steps: int) -> None:
    x, y = setup(threads)
    VARIANTS[name](x, y, 16)  # warm-up: first kernels, allocator
    t0 = time.perf_counter()
    VARIANTS[name](x, y, steps)
    print(f"{time.perf_counter() - t0:.4f}")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--steps", type=int, default=480)
    ap.add_argument("--child", nargs=3)
    args = ap.parse_args()
    if args.child:
        child(args.child[0], int(args.child[1]), int(args.child[2]))
        return 0
    load = lambda: " / ".join(f"{v:.2f}" for v in os.getloadavg())  # noqa: E731
    before, started = load(), time.perf_counter()
    times: dict[tuple[str, int], list[float]] = {}
    for threads in (1, 2):
        for _ in range(args.rounds):
            for name in VARIANTS:
                out = subprocess.run([sys.executable, __file__, "--child", name, str(threads),
                                      str(args.steps)], capture_output=True, text=True,
                                     check=True)
                times.setdefault((name, threads), []).append(float(out.stdout.split()[-1]))
    table = ["| variant | 1 thread (s) | vs one by one | 2 threads (s) | vs one by one |",
             "|---|---|---|---|---|"]
    for name in VARIANTS:
        cells = []
        for threads in (1, 2):
            t = statistics.median(times[(name, threads)])
            base = statistics.median(times[("one by one", threads)])
            cells += [" / ".join(f"{v:.2f}" for v in times[(name, threads)]),
                      f"**{base / t:.2f}x**"]
        table.append(f"| {name} | " + " | ".join(cells) + " |")
    body = "\n".join([
        f"Measured {time.strftime('%Y-%m-%dT%H:%M:%S%z')} by `bench/bench_population_paths.py "
        f"--rounds {args.rounds} --steps {args.steps}` ({machine()}); load average (1/5/15 "
        f"min) before {before}, after {load()}; took {time.perf_counter() - started:.0f} s. "
        f"12 MLPs 40-256-256-10 (dropout 0, .1, .3, .5 x 3 seeds), batch 128, Adam, "
        f"{args.steps} training steps each, one process per measurement; speed-ups are "
        "medians over rounds against the one-by-one loop at the same thread count.",
        "", *table])
    print(body)
    write_section("Population: batched layers or torch.func", body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
