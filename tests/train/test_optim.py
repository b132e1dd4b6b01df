"""A run never imports torch._dynamo (about 2 s per process; torch imports it for
torch.compile's marks): the harness's optimizers are torch's Adam and SGD without those
marks (the same parameters bit for bit, the same step hooks and state), its FLOP count is
torch's FlopCounterMode without them (the same counts), and env.json reads torchvision's
version without importing it (torchvision imports torch._dynamo)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from conftest import REPO

SCRIPT = r"""
import json, sys, tempfile
sys.path.insert(0, "tests")
import torch
from conftest import tiny_raw
from harness.api import run
from harness.config import OptimConfig
from harness.train.analysis import forward_flops
from harness.train.env import environment
from harness.train.optim import build_optimizer

for model in ({"name": "mlp", "width": 16}, {"name": "cnn", "width": 8}):
    run(tiny_raw(model=model), results_dir=tempfile.mkdtemp())
run_imported = {m: m in sys.modules for m in ("torch._dynamo", "torchvision")}

def trajectory(make_optimizer):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(5, 7), torch.nn.ReLU(), torch.nn.Linear(7, 3))
    opt = make_optimizer(list(model.parameters()))
    calls = []
    opt.register_step_pre_hook(lambda o, a, k: calls.append("pre"))
    opt.register_step_post_hook(lambda o, a, k: calls.append("post"))
    for step in range(6):
        x = torch.randn(8, 5)
        loss = torch.nn.functional.cross_entropy(model(x), torch.arange(8) % 3)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step == 2:  # a resume in the middle: state out and back in
            opt.load_state_dict(opt.state_dict())
    return [p.detach().clone() for p in model.parameters()], calls, opt.state_dict()

configs = {"adam": OptimConfig(name="adam", lr=0.01, betas=(0.8, 0.95), eps=1e-6),
           "sgd": OptimConfig(name="sgd", lr=0.1, momentum=0.9, nesterov=True)}
ours = {name: trajectory(lambda ps, c=c: build_optimizer(c, [{"params": ps}]))
        for name, c in configs.items()}
env = environment(torch.device("cpu"), 0)
class Attention(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.qkv = torch.nn.Linear(16, 48)

    def forward(self, x):
        q, k, v = self.qkv(x).chunk(3, dim=-1)
        return torch.nn.functional.scaled_dot_product_attention(q, k, v)

models = [torch.nn.Sequential(torch.nn.Conv1d(1, 4, 3), torch.nn.ReLU(), torch.nn.Flatten(),
                               torch.nn.Linear(4 * 38, 10)), Attention()]
samples = [torch.randn(1, 1, 40), torch.randn(1, 5, 16)]
ours_flops = [forward_flops(m, x) for m, x in zip(models, samples)]
out = {"dynamo_imported": "torch._dynamo" in sys.modules, "run_imported": run_imported,
       "torchvision_imported": "torchvision" in sys.modules,
       "env_torchvision": env["torchvision"]}
from torch.utils.flop_counter import FlopCounterMode
stock_flops = []
for m, x in zip(models, samples):
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        m.eval()(x)
    stock_flops.append(counter.get_total_flops())
out["flops"] = [ours_flops, stock_flops]
stock = {"adam": lambda ps: torch.optim.Adam(ps, lr=0.01, betas=(0.8, 0.95), eps=1e-6),
         "sgd": lambda ps: torch.optim.SGD(ps, lr=0.1, momentum=0.9, nesterov=True)}
unmoved = trajectory(lambda ps: torch.optim.SGD(ps, lr=0.0))[0][0]
for name, make in stock.items():
    params, calls, state = trajectory(make)
    mine_params, mine_calls, mine_state = ours[name]
    out[name] = {
        "identical": all(torch.equal(a, b) for a, b in zip(params, mine_params)),
        "moved": not torch.equal(mine_params[0], unmoved),
        "calls": mine_calls == calls == ["pre", "post"] * 6,
        "state_keys": sorted(mine_state["state"][0]) == sorted(state["state"][0]),
    }
import torchvision
out["torchvision"] = torchvision.__version__
print(json.dumps(out))
"""


@pytest.mark.slow  # a fresh interpreter: torch, then torch._dynamo for the stock classes
def test_a_run_imports_no_dynamo_and_its_pieces_match_torch() -> None:
    done = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True,
                          timeout=120, cwd=REPO)
    assert done.returncode == 0, done.stderr[-2000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["run_imported"] == {"torch._dynamo": False, "torchvision": False}
    assert out["dynamo_imported"] is False
    assert out["torchvision_imported"] is False  # env.json reads its version from the file
    ours, stock = out["flops"]
    assert ours == stock and all(f > 0 for f in stock)
    assert out["env_torchvision"] == out["torchvision"]
    for name in ("adam", "sgd"):
        assert out[name] == {"identical": True, "moved": True, "calls": True,
                             "state_keys": True}, name


def test_any_other_wrapping_of_torch_optimizers_means_the_stock_classes(monkeypatch) -> None:
    """The unmarked classes rely on how torch wraps its optimizers today; with another
    layer (another torch release, another library's patch) the stock classes are used."""
    import functools

    import torch

    from harness.train.optim import torch_wraps_as_expected

    assert torch_wraps_as_expected()  # this torch: the unmarked classes are the ones used

    def patched(step):
        @functools.wraps(step)
        def logged(*args, **kwargs):
            return step(*args, **kwargs)
        return logged

    monkeypatch.setattr(torch.optim.Adam, "step", patched(torch.optim.Adam.step))
    assert not torch_wraps_as_expected()

