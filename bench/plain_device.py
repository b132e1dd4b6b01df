"""The two hand-written yardsticks of ../shared/bench with the data and the model on a device.

Same work, seeds and order of random draws as `plain_dropout_study.py` and
`plain_dd_width.py`: the data and the model are moved to `--device` once, the batch
indices are drawn on the CPU (as there) and moved per batch. On `--device cpu` each prints
what the shared script prints (tests/project/test_bench_plain.py checks it on a few epochs), so
`bench_vs_plain.py --device cuda` compares the harness on a GPU with the same hand-written
loop on the same GPU.

    python bench/plain_device.py dropout THREADS [--device cuda] [--epochs 60]
    python bench/plain_device.py dd WIDTH EVERY [--device cuda] [--epochs 500]
"""

from __future__ import annotations

import argparse
import time

T_START = time.perf_counter()

import numpy as np  # noqa: E402  (the yardsticks time their own imports)
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from mnist1d.data import get_dataset_args, make_dataset  # noqa: E402
from torch import nn  # noqa: E402


def dropout_study(threads: int, device: torch.device, epochs: int) -> None:
    torch.set_num_threads(threads)
    args = get_dataset_args()
    args.num_samples, args.train_split, args.seed = 5000, 0.8, 42
    d = make_dataset(args)
    x = torch.tensor(d["x"], dtype=torch.float32)
    y = torch.tensor(d["y"]).long()
    xt = torch.tensor(d["x_test"], dtype=torch.float32).to(device)
    yt = torch.tensor(d["y_test"]).long().to(device)
    g = torch.Generator().manual_seed(0)
    perm = torch.randperm(len(y), generator=g)
    val_idx, rest = perm[:400], perm[400:]
    tr_idx = rest[:1000]
    xv, yv, xtr, ytr = x[val_idx], y[val_idx], x[tr_idx], y[tr_idx].clone()
    noisy = torch.randperm(1000, generator=g)[:100]
    ytr[noisy] = (ytr[noisy] + torch.randint(1, 10, (100,), generator=g)) % 10
    mu, sd = xtr.mean(), xtr.std()
    xv, yv, xtr, ytr = xv.to(device), yv.to(device), xtr.to(device), ytr.to(device)
    mu, sd = mu.to(device), sd.to(device)

    def norm(a: torch.Tensor) -> torch.Tensor:
        return (a - mu) / sd

    def run(p: float, seed: int) -> float:
        torch.manual_seed(seed)
        m = nn.Sequential(nn.Linear(40, 256), nn.ReLU(), nn.Dropout(p), nn.Linear(256, 256),
                          nn.ReLU(), nn.Dropout(p), nn.Linear(256, 10)).to(device)
        opt = torch.optim.Adam(m.parameters(), lr=3e-3)
        order = torch.Generator().manual_seed(seed)
        best: tuple[float, float] = (-1.0, 0.0)
        for _ in range(epochs):
            m.train()
            idx = torch.randperm(1000, generator=order).to(device)
            for i in range(0, 1000, 128):
                b = idx[i:i + 128]
                loss = F.cross_entropy(m(norm(xtr[b])), ytr[b])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
            m.eval()
            with torch.no_grad():
                va = (m(norm(xv)).argmax(1) == yv).float().mean().item()
                (m(norm(xtr)).argmax(1) == ytr).float().mean().item()  # train-subset eval
                te = (m(norm(xt)).argmax(1) == yt).float().mean().item()
                if va > best[0]:
                    best = (va, te)
        return best[1]

    res = {p: [run(p, s) for s in range(3)] for p in (0.0, 0.1, 0.3, 0.5)}
    print({p: round(float(np.mean(v)), 3) for p, v in res.items()})
    print(f"wall {time.perf_counter() - T_START:.1f}s")


def dd_width(h: int, every: int, device: torch.device, epochs: int) -> None:
    torch.set_num_threads(1)
    a = get_dataset_args()
    a.num_samples, a.train_split, a.seed = 16000, 0.25, 42
    d = make_dataset(a)
    x = torch.tensor(d["x"], dtype=torch.float32)
    y = torch.tensor(d["y"]).long()
    xt = torch.tensor(d["x_test"], dtype=torch.float32)
    yt = torch.tensor(d["y_test"]).long()
    g = torch.Generator().manual_seed(0)
    n = len(y)
    k = int(0.15 * n)
    flip = torch.randperm(n, generator=g)[:k]
    y = y.clone()
    y[flip] = (y[flip] + torch.randint(1, 10, (k,), generator=g)) % 10
    mu, sd = x.mean(), x.std()
    x, xt = ((x - mu) / sd).to(device), ((xt - mu) / sd).to(device)
    y, yt = y.to(device), yt.to(device)
    torch.manual_seed(0)
    m = nn.Sequential(nn.Linear(40, h), nn.ReLU(), nn.Linear(h, h), nn.ReLU(),
                      nn.Linear(h, 10)).to(device)
    opt = torch.optim.SGD(m.parameters(), lr=0.01, momentum=0.9)
    te = tr = float("nan")
    for ep in range(epochs):
        m.train()
        p = torch.randperm(n).to(device)
        for i in range(0, n, 100):
            b = p[i:i + 100]
            loss = F.cross_entropy(m(x[b]), y[b])
            opt.zero_grad()
            loss.backward()
            opt.step()
        if (ep + 1) % every == 0:
            m.eval()
            with torch.no_grad():
                te = 1 - (m(xt).argmax(1) == yt).float().mean().item()
                tr = 1 - (m(x).argmax(1) == y).float().mean().item()
    print(f"h={h} test err {te:.3f} train err {tr:.3f} wall {time.perf_counter() - T_START:.1f}s")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("loop", choices=("dropout", "dd"))
    ap.add_argument("numbers", type=int, nargs="*",
                    help="dropout: THREADS (2); dd: WIDTH (48) EVERY (1)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--epochs", type=int, default=None,
                    help="default: the shared script's (60 dropout, 500 dd)")
    args = ap.parse_args()
    device = torch.device(args.device)
    if args.loop == "dropout":
        threads = args.numbers[0] if args.numbers else 2
        dropout_study(threads, device, args.epochs or 60)
    else:
        width = args.numbers[0] if args.numbers else 48
        every = args.numbers[1] if len(args.numbers) > 1 else 1
        dd_width(width, every, device, args.epochs or 500)


if __name__ == "__main__":
    main()
