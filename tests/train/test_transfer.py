"""Fine-tuning: model.init_from, model.freeze / freeze_body, optim.body_lr_scale."""

from __future__ import annotations

import json

import pytest
import torch
from conftest import tiny_raw
from torch import nn

from harness.config import build_run_config
from harness.errors import ConfigError
from harness.train import transfer
from harness.train.loop import train_run
from harness.train.optim import build_optimizer, set_lr


@pytest.fixture(scope="module")
def upstream(tmp_path_factory):
    """One finished 1-epoch MLP run on MNIST-1D: (results dir, its run folder, its weights)."""
    results = tmp_path_factory.mktemp("results")
    cfg = build_run_config(tiny_raw(study="up", train={"epochs": 1}))
    result = train_run(cfg, results_dir=results)
    weights = torch.load(result.run_dir.path / "model.pt", weights_only=True)
    return results, result.run_dir.path, weights


def relative(folder, results):
    return str(folder.relative_to(results))


def test_init_from_copies_every_weight_and_keeps_the_head_for_the_same_classes(upstream):
    results, folder, weights = upstream
    cfg = build_run_config(tiny_raw(model={"init_from": relative(folder, results)}))
    from harness.regularizers import RegularizerStack
    from harness.train import build

    data = build.build_data(cfg, None, torch.device("cpu"))
    ctx = build.run_context(cfg, data, torch.device("cpu"))
    torch.manual_seed(123)  # a different init than the upstream's
    model = build.build_model(cfg, data, RegularizerStack.from_config(cfg, ctx),
                              results_dir=results)
    for k, v in model.state_dict().items():
        assert torch.equal(v, weights[k]), k


def test_init_from_another_dataset_gets_a_fresh_head(upstream, tmp_path):
    results, folder, weights = upstream
    other = tmp_path / "other-s0-0123456789ab"
    other.mkdir()
    saved = json.loads((folder / "config.json").read_text())
    saved["data"]["name"] = "digits_like"  # another dataset: its labels mean other things
    (other / "config.json").write_text(json.dumps(saved))
    (other / "model.pt").write_bytes((folder / "model.pt").read_bytes())
    cfg = build_run_config(tiny_raw(model={"init_from": str(other)}))
    from harness.models import create_model

    torch.manual_seed(7)
    model = create_model("mlp", input_shape=(1, 40), num_classes=10, extra={}, width=16)
    fresh_head = {k: v.clone() for k, v in model.state_dict().items() if k.startswith("head.")}
    transfer.load_weights(model, cfg, tmp_path)
    for k, v in model.state_dict().items():
        assert torch.equal(v, fresh_head[k] if k.startswith("head.") else weights[k]), k


def test_init_from_mismatches_are_one_line_errors(upstream, tmp_path):
    results, folder, _ = upstream
    rel = relative(folder, results)
    from harness.models import create_model

    def load(**model):
        cfg = build_run_config(tiny_raw(model={"init_from": rel, **model}))
        net = create_model(cfg.model.name, input_shape=(1, 40), num_classes=10, extra={},
                           **({"width": cfg.model.width} if cfg.model.width else {}))
        transfer.load_weights(net, cfg, results)

    with pytest.raises(ConfigError, match=r"model.init_from = .*a run of model 'mlp'; this "
                                          r"run's model is 'cnn'"):
        load(name="cnn", width=None)
    with pytest.raises(ConfigError, match=r"do not fit this model \(body.*is \(16, 40\) there, "
                                          r"\(32, 40\) here\)"):
        load(width=32)
    with pytest.raises(ConfigError, match=r"model.init_from = 'nowhere': no such run folder"):
        cfg = build_run_config(tiny_raw(model={"init_from": "nowhere"}))
        transfer.load_weights(nn.Linear(1, 1), cfg, tmp_path)
    (tmp_path / "half").mkdir()
    with pytest.raises(ConfigError, match="not a finished run folder"):
        cfg = build_run_config(tiny_raw(model={"init_from": "half"}))
        transfer.load_weights(nn.Linear(1, 1), cfg, tmp_path)


def test_freeze_body_trains_only_the_head(upstream):
    results, folder, weights = upstream
    cfg = build_run_config(tiny_raw(model={"init_from": relative(folder, results),
                                           "freeze_body": True}, study="ft"))
    result = train_run(cfg, results_dir=results)
    after = torch.load(result.run_dir.path / "model.pt", weights_only=True)
    for k, v in after.items():
        if k.startswith("head."):
            assert not torch.equal(v, weights[k]), k  # the head learnt
        else:
            assert torch.equal(v, weights[k]), k  # the body is the upstream's, untouched


def test_freeze_prefix_and_its_errors():
    from harness.models import create_model

    net = create_model("mlp", input_shape=(1, 40), num_classes=10, extra={}, width=8)
    first = next(n for n, _ in net.named_parameters()).rsplit(".", 1)[0]
    cfg = build_run_config(tiny_raw(model={"freeze": [first]}))
    frozen = transfer.freeze(net, cfg)
    assert frozen == [n for n, _ in net.named_parameters() if n.startswith(first + ".")]
    assert all(not p.requires_grad for n, p in net.named_parameters() if n in frozen)
    with pytest.raises(ConfigError, match=r"model.freeze: 'bdy' matches no parameter of mlp; "
                                          r"prefixes start with one of: body, head"):
        transfer.freeze(net, build_run_config(tiny_raw(model={"freeze": ["bdy"]})))
    with pytest.raises(ConfigError, match="every parameter of mlp is frozen"):
        transfer.freeze(net, build_run_config(tiny_raw(model={"freeze": ["body", "head"]})))


def test_body_lr_scale_is_one_sgd_step_at_the_scaled_lr():
    """w - lr * g for the head, w - lr * scale * g for the body, computed by hand."""
    torch.manual_seed(0)
    net = nn.Sequential()
    net.add_module("body", nn.Linear(4, 3))
    net.add_module("head", nn.Linear(3, 2))
    before = {k: v.clone() for k, v in net.state_dict().items()}
    cfg = build_run_config(tiny_raw(optim={"name": "sgd", "momentum": 0.0, "lr": 0.5,
                                           "body_lr_scale": 0.1}))
    groups = transfer.param_groups(net, cfg.optim.body_lr_scale)
    assert [g["param_names"] for g in groups] == [["body.weight", "body.bias"],
                                                  ["head.weight", "head.bias"]]
    opt = build_optimizer(cfg.optim, groups)
    net(torch.randn(5, 4)).pow(2).sum().backward()
    grads = {k: p.grad.clone() for k, p in net.named_parameters()}
    set_lr(opt, 0.5)
    opt.step()
    for k, v in net.state_dict().items():
        scale = 0.1 if k.startswith("body.") else 1.0
        torch.testing.assert_close(v, before[k] - 0.5 * scale * grads[k])


def test_the_fine_tuning_keys_are_part_of_a_runs_identity():
    plain = build_run_config(tiny_raw())
    for change in ({"model": {"init_from": "x"}}, {"model": {"freeze_body": True}},
                   {"model": {"freeze": ["body"]}}, {"optim": {"body_lr_scale": 0.5}}):
        assert build_run_config(tiny_raw(**change)).run_id() != plain.run_id(), change
