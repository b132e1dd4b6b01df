"""The harness's optimizers are torch's Adam and SGD without the torch.compile marks: the
same parameters bit for bit, the same step hooks and state, and no torch._dynamo import
(about 2 s per process) before a run's first step."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

SCRIPT = r"""
import json, sys
import torch
from harness.config import OptimConfig
from harness.train.env import environment
from harness.train.optim import build_optimizer

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
out = {"dynamo_imported": "torch._dynamo" in sys.modules,
       "torchvision_imported": "torchvision" in sys.modules,
       "env_torchvision": env["torchvision"]}
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
def test_optimizers_match_torch_bit_for_bit_without_importing_dynamo() -> None:
    done = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["dynamo_imported"] is False
    assert out["torchvision_imported"] is False  # env.json reads its version from the file
    assert out["env_torchvision"] == out["torchvision"]
    for name in ("adam", "sgd"):
        assert out[name] == {"identical": True, "moved": True, "calls": True,
                             "state_keys": True}, name
