"""Model-building regularizers (dropout, dropconnect, drop_path, spectral_norm, norm,
weight_tying): each checked against an independent computation of what it should do."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from harness.config import build_run_config
from harness.errors import ConfigError
from harness.models import count_parameters, create_model
from harness.regularizers import REGULARIZERS, ModelSpec, RegularizerStack
from harness.regularizers.dropconnect import DropConnectLinear

MINE = ["dropout", "dropconnect", "drop_path", "spectral_norm", "norm", "weight_tying"]
SHAPE = {"mlp": (1, 40), "cnn": (1, 40), "resnet": (3, 8, 8), "vit": (1, 8, 8),
         "transformer1d": (2, 12), "gpt": (16,)}  # fmt: skip
VOCAB = 65
NORM_TYPES = (nn.BatchNorm1d, nn.BatchNorm2d, nn.LayerNorm, nn.RMSNorm, nn.GroupNorm)


def stack(regs: dict[str, dict[str, Any]]) -> RegularizerStack:
    items = []
    for name, raw in regs.items():
        cls = REGULARIZERS.get(name)
        items.append(cls(cls.Params.model_validate(raw), None))  # type: ignore[arg-type]
    return RegularizerStack(items)


def build(name: str, regs: dict[str, dict[str, Any]] | None = None, **kwargs: Any) -> nn.Module:
    """The loop's path: configure_model -> create_model -> on_model."""
    s = stack(regs or {})
    spec = s.configure_model(ModelSpec(name, dict(kwargs)))
    classes = VOCAB if name == "gpt" else 10
    model = create_model(spec.name, input_shape=SHAPE[name], num_classes=classes, **spec.kwargs)
    return s.on_model(model)


def inputs(name: str, n: int = 8) -> torch.Tensor:
    if name == "gpt":
        return torch.randint(0, VOCAB, (n, *SHAPE[name]))
    return torch.randn(n, *SHAPE[name])


def config_error(raw: dict[str, Any]) -> str:
    with pytest.raises(ConfigError) as e:
        build_run_config(raw)
    return str(e.value)


# ----------------------------------------------------------------------------- dropout


def test_dropout_zeroes_fraction_p_and_rescales_kept_activations() -> None:
    torch.manual_seed(0)
    p = 0.3
    model = build("mlp", {"dropout": {"p": p}}, width=256).train()
    seen: list[tuple[torch.Tensor, torch.Tensor]] = []
    drops = [m for m in model.modules() if isinstance(m, nn.Dropout)]
    assert len(drops) == 2
    for d in drops:
        d.register_forward_hook(lambda m, i, o: seen.append((i[0].detach(), o.detach())))
    model(torch.randn(2000, 1, 40))
    for x, y in seen:
        live = x != 0  # ReLU zeros are not dropout's
        dropped = (y == 0) & live
        assert abs(dropped.sum().item() / live.sum().item() - p) < 0.02
        kept = (y != 0) & live
        torch.testing.assert_close(y[kept], x[kept] / (1 - p))


def test_dropout_eval_is_deterministic_and_equals_model_without_dropout() -> None:
    torch.manual_seed(0)
    model = build("mlp", {"dropout": {"p": 0.5}}).eval()
    plain = build("mlp").eval()
    plain.load_state_dict(model.state_dict())
    x = torch.randn(64, 1, 40)
    torch.testing.assert_close(model(x), model(x), rtol=0, atol=0)
    torch.testing.assert_close(model(x), plain(x))
    assert not torch.equal(model.train()(x), plain(x))


def test_transformer_dropout_follows_attention_and_ffn_not_inside_softmax(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    torch.manual_seed(0)
    p, depth = 0.2, 2
    model = build("vit", {"dropout": {"p": p, "embed_p": 0.1}}, depth=depth, width=32).train()
    assert model.embed_drop.p == 0.1
    calls: list[nn.Module] = []
    for m in model.modules():
        if not list(m.children()):  # leaf modules, in call order
            m.register_forward_hook(lambda mod, i, o: calls.append(mod))
    sdpa_p: list[float] = []
    real = F.scaled_dot_product_attention

    def spy(*args: Any, **kwargs: Any) -> torch.Tensor:
        sdpa_p.append(kwargs.get("dropout_p", args[4] if len(args) > 4 else 0.0))
        return real(*args, **kwargs)

    monkeypatch.setattr(F, "scaled_dot_product_attention", spy)
    model(inputs("vit"))
    assert sdpa_p == [0.0] * depth
    for block in model.blocks:  # the output projections of attention and FFN
        for proj in (block.attn.proj, block.mlp.proj):
            after = calls[calls.index(proj) + 1]
            assert isinstance(after, nn.Dropout) and after.p == p


def test_embed_dropout_needs_a_model_with_embeddings() -> None:
    msg = config_error(
        {"model": {"name": "cnn"}, "regularizers": {"dropout": {"p": 0.1, "embed_p": 0.1}}}
    )
    assert "regularizers.dropout.embed_p = 0.1: only for models with embeddings" in msg
    assert "model cnn has none" in msg
    build_run_config(
        {"data": {"name": "tiny_shakespeare"}, "model": {"name": "gpt"},
         "regularizers": {"dropout": {"embed_p": 0.1, "p": 0.0}}}
    )


# ----------------------------------------------------------------------------- dropconnect


def test_dropconnect_masks_weights_in_training(monkeypatch: pytest.MonkeyPatch) -> None:
    torch.manual_seed(0)
    p = 0.4
    plain = nn.Linear(256, 256)
    w0, b0 = plain.weight.detach().clone(), plain.bias.detach().clone()
    layer = DropConnectLinear.wrap(plain, p).train()
    assert layer.weight is plain.weight and layer.bias is plain.bias
    used: list[tuple[torch.Tensor, torch.Tensor]] = []
    real = F.linear

    def spy(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None = None) -> torch.Tensor:
        used.append((w, b))
        return real(x, w, b)

    monkeypatch.setattr(F, "linear", spy)
    x = torch.randn(32, 256)
    y = layer(x)
    w, b = used[-1]
    mask, bmask = w != 0, b != 0
    assert abs(1 - mask.float().mean().item() - p) < 0.02
    torch.testing.assert_close(w[mask], w0[mask] / (1 - p))
    torch.testing.assert_close(b[bmask], b0[bmask] / (1 - p))
    torch.testing.assert_close(y, x @ (mask * w0 / (1 - p)).T + bmask * b0 / (1 - p))
    assert not torch.equal(layer(x), y)  # a fresh mask each forward
    # gradient flows to the kept weights only, scaled like the forward
    layer.zero_grad()
    y.sum().backward()
    grad = x.sum(0).expand(256, -1) * mask / (1 - p)
    torch.testing.assert_close(plain.weight.grad, grad)
    torch.testing.assert_close(layer.eval()(x), real(x, w0, b0))


def test_dropconnect_hidden_leaves_head_and_parameters_alone() -> None:
    torch.manual_seed(0)
    model = build("mlp", {"dropconnect": {"p": 0.5}})
    ref = build("mlp")
    ref.load_state_dict(model.state_dict())  # same keys: surgery renames nothing
    hidden = [m for m in model.body if isinstance(m, nn.Linear)]
    assert hidden and all(isinstance(m, DropConnectLinear) for m in hidden)
    assert type(model.head) is nn.Linear
    assert count_parameters(model) == count_parameters(ref)
    x = torch.randn(16, 1, 40)
    torch.testing.assert_close(model.eval()(x), ref.eval()(x))
    model.train()
    model(x).sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())
    every = build("mlp", {"dropconnect": {"p": 0.5, "layers": "all"}})
    assert isinstance(every.head, DropConnectLinear)


def test_dropconnect_keeps_tied_weights_shared() -> None:
    model = build(
        "gpt", {"dropconnect": {"p": 0.1, "layers": "all"}, "weight_tying": {}}, width=32, depth=1
    )
    assert isinstance(model.head, DropConnectLinear)
    assert model.head.weight is model.tok_emb.weight


def test_dropconnect_refuses_models_without_hidden_linear_layers() -> None:
    for model in ("cnn", "resnet"):
        msg = config_error({"model": {"name": model}, "regularizers": {"dropconnect": {"p": 0.1}}})
        assert f"regularizers.dropconnect.layers = 'hidden': model {model} has no" in msg
    build_run_config(
        {"model": {"name": "cnn"}, "regularizers": {"dropconnect": {"p": 0.1, "layers": "all"}}}
    )
    with pytest.raises(ConfigError, match="no nn.Linear"):
        build("cnn", {"dropconnect": {"p": 0.1}})


# ----------------------------------------------------------------------------- drop_path


@pytest.mark.parametrize(("name", "depth", "blocks"), [("resnet", 2, 8), ("vit", 3, 3)])
def test_drop_path_rates_grow_linearly(name: str, depth: int, blocks: int) -> None:
    rate = 0.3
    model = build(name, {"drop_path": {"rate": rate}}, depth=depth)
    got = [b.drop_path.p for b in model.residual_blocks]
    assert got == pytest.approx([rate * i / (blocks - 1) for i in range(blocks)])


def test_drop_path_keeps_the_expected_block_output() -> None:
    torch.manual_seed(0)
    model = build("resnet", {"drop_path": {"rate": 0.3}}, norm="none", width=4, depth=1)
    block = model.residual_blocks[-1]
    assert block.drop_path.p == pytest.approx(0.3)
    x = torch.randn(1, block.conv1.in_channels, 2, 2)
    with torch.no_grad():
        full = block.eval()(x)
        skip = block.shortcut(F.relu(block.norm1(x))) if block.shortcut is not None else x
        branch = full - skip
        samples = block.train()(x.expand(8000, -1, -1, -1))
    dropped = (samples - skip).flatten(1).abs().amax(1) < 1e-6
    assert abs(dropped.float().mean().item() - 0.3) < 0.02
    tol = 0.06 * branch.abs().max().item()
    torch.testing.assert_close(samples.mean(0, keepdim=True), full, atol=tol, rtol=0)
    torch.testing.assert_close(block.eval()(x), full, rtol=0, atol=0)


@pytest.mark.parametrize("model", ["cnn", "mlp"])
def test_drop_path_refuses_models_without_residual_blocks(model: str) -> None:
    msg = config_error({"model": {"name": model}, "regularizers": {"drop_path": {"rate": 0.1}}})
    assert "regularizers.drop_path: needs a model with residual blocks (" in msg
    assert f"model {model} has none" in msg
    for residual in ("resnet", "vit", "transformer1d", "gpt"):
        assert residual in msg


# ----------------------------------------------------------------------------- spectral norm


@pytest.mark.parametrize(("name", "layers"), [("mlp", "all"), ("cnn", "hidden"), ("resnet", "all")])
def test_spectral_norm_sets_largest_singular_value_to_one(name: str, layers: str) -> None:
    torch.manual_seed(0)
    kw = {"width": 8, "depth": 1} if name == "resnet" else {}
    regs = {"spectral_norm": {"layers": layers, "n_power_iterations": 10}}
    model = build(name, regs, **kw).train()
    kinds = (nn.Linear, nn.Conv1d, nn.Conv2d)
    layers_all = [m for m in model.modules() if isinstance(m, kinds)]
    wrapped = [m for m in layers_all if hasattr(m, "parametrizations")]
    expected = layers_all if layers == "all" else [m for m in layers_all if m is not model.head]
    assert wrapped == expected and wrapped
    x = inputs(name)
    for _ in range(20):  # power iteration advances on each training forward
        model(x)
    for m in wrapped:
        w = m.weight.detach()
        sigma = torch.linalg.matrix_norm(w.reshape(w.shape[0], -1), ord=2).item()
        assert sigma == pytest.approx(1.0, abs=1e-2)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    before = [p.detach().clone() for p in model.parameters()]
    F.cross_entropy(model(x), torch.randint(0, 10, (len(x),))).backward()
    opt.step()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
    assert any(not torch.equal(b, p) for b, p in zip(before, model.parameters(), strict=True))


# ----------------------------------------------------------------------------- norm

EXPECTED_NORM = {
    "batchnorm": (nn.BatchNorm1d, nn.BatchNorm2d),
    "layernorm": (nn.LayerNorm,),
    "rmsnorm": (nn.RMSNorm,),
    "groupnorm": (nn.GroupNorm,),
    "none": (),
}


@pytest.mark.parametrize("name", ["cnn", "resnet", "vit"])
@pytest.mark.parametrize("kind", list(EXPECTED_NORM))
def test_norm_kind_builds_the_expected_layers(name: str, kind: str) -> None:
    model = build(name, {"norm": {"kind": kind}}, width=8, depth=1)
    found = {type(m) for m in model.modules() if isinstance(m, NORM_TYPES)}
    want = EXPECTED_NORM[kind]
    assert all(t in want for t in found)
    assert bool(found) == bool(want)
    model(inputs(name))


def test_norm_position_changes_the_block_computation() -> None:
    torch.manual_seed(0)
    pre = build("transformer1d", {"norm": {"kind": "rmsnorm"}}, width=16, depth=1).eval()
    post = build(
        "transformer1d", {"norm": {"kind": "rmsnorm", "position": "post"}}, width=16, depth=1
    ).eval()
    post.load_state_dict(pre.state_dict(), strict=False)  # post has no closing norm
    x = torch.randn(4, 12, 16)
    with torch.no_grad():
        for model, position in ((pre, "pre"), (post, "post")):
            b = model.blocks[0]
            assert isinstance(b.norm1, nn.RMSNorm)
            if position == "pre":
                h = x + b.attn(b.norm1(x))
                want = h + b.mlp(b.norm2(h))
            else:
                h = b.norm1(x + b.attn(x))
                want = b.norm2(h + b.mlp(h))
            torch.testing.assert_close(b(x), want)
        assert not torch.allclose(pre.blocks[0](x), post.blocks[0](x), atol=1e-3)
        z = inputs("transformer1d")
        assert not torch.allclose(pre(z), post(z), atol=1e-3)


@pytest.mark.parametrize("model", ["cnn", "mlp", "resnet"])
def test_norm_post_is_only_for_transformers(model: str) -> None:
    msg = config_error(
        {
            "model": {"name": model},
            "regularizers": {"norm": {"kind": "layernorm", "position": "post"}},
        }
    )
    assert "regularizers.norm.position = 'post': only for transformer models (" in msg
    assert f"model {model} is not one" in msg


# ----------------------------------------------------------------------------- weight tying


def test_weight_tying_shares_embedding_and_head() -> None:
    width = 32
    tied = build("gpt", {"weight_tying": {}}, width=width, depth=1)
    untied = build("gpt", width=width, depth=1)
    assert tied.head.weight is tied.tok_emb.weight
    assert tied.head.weight.data_ptr() == tied.tok_emb.weight.data_ptr()
    assert untied.head.weight.data_ptr() != untied.tok_emb.weight.data_ptr()
    unique = {id(p): p.numel() for m in (tied,) for p in m.parameters()}
    assert sum(unique.values()) == count_parameters(untied) - VOCAB * width
    tied(inputs("gpt")).sum().backward()
    assert tied.tok_emb.weight.grad is not None


def test_weight_tying_gradient_is_the_sum_of_its_two_uses() -> None:
    """By hand: untie the same weights into two copies; the tied gradient is the sum of the
    embedding copy's and the head copy's gradients (both nonzero: both uses learn)."""
    torch.manual_seed(0)
    tied = build("gpt", {"weight_tying": {}}, width=16, depth=1)
    untied = build("gpt", width=16, depth=1)
    untied.load_state_dict(tied.state_dict())  # head.weight: a copy of the shared tensor
    x = inputs("gpt")
    for model in (tied, untied):
        logits = model(x)
        F.cross_entropy(logits.reshape(-1, VOCAB), x.roll(-1, 1).reshape(-1)).backward()
    emb_grad, head_grad = untied.tok_emb.weight.grad, untied.head.weight.grad
    assert emb_grad is not None and head_grad is not None
    assert emb_grad.abs().sum() > 0 and head_grad.abs().sum() > 0
    torch.testing.assert_close(tied.tok_emb.weight.grad, emb_grad + head_grad)
    assert count_parameters(untied) - count_parameters(tied) == VOCAB * 16


def test_weight_tying_is_only_for_language_models() -> None:
    msg = config_error({"model": {"name": "cnn"}, "regularizers": {"weight_tying": {}}})
    assert "regularizers.weight_tying: only for language models (gpt); model cnn is not one" in msg


# ----------------------------------------------------------------------------- validation


@pytest.mark.parametrize(
    ("regs", "expected"),
    [
        ({"dropout": {"p": 1.5}}, "regularizers.dropout.p = 1.5: Input should be less than 1"),
        ({"dropout": {"p": -0.1}}, "regularizers.dropout.p = -0.1: Input should be greater"),
        ({"dropout": {"p": 0.1, "embed_p": 1}}, "regularizers.dropout.embed_p = 1: Input should"),
        (
            {"dropout": {"p": 0.1, "rate": 0.1}},
            "unknown key 'regularizers.dropout.rate'; allowed: p, embed_p",
        ),
        ({"dropout": {}}, "regularizers.dropout.p: required"),
        ({"dropconnect": {"p": 1.0}}, "regularizers.dropconnect.p = 1.0: Input should be less"),
        (
            {"dropconnect": {"p": 0.1, "layers": "some"}},
            "regularizers.dropconnect.layers = 'some': Input should be 'hidden' or 'all'",
        ),
        ({"drop_path": {"rate": 1}}, "regularizers.drop_path.rate = 1: Input should be less"),
        (
            {"spectral_norm": {"n_power_iterations": 0}},
            "regularizers.spectral_norm.n_power_iterations = 0: Input should be greater than or",
        ),
        ({"spectral_norm": {"layers": "conv"}}, "regularizers.spectral_norm.layers = 'conv'"),
        ({"norm": {"kind": "weird"}}, "regularizers.norm.kind = 'weird': Input should be 'none'"),
        ({"norm": {"kind": "layernorm", "position": "mid"}}, "regularizers.norm.position = 'mid'"),
        ({"weight_tying": {"on": True}}, "unknown key 'regularizers.weight_tying.on'"),
    ],
)
def test_bad_params_are_one_line_errors(regs: dict[str, Any], expected: str) -> None:
    msg = config_error({"data": {"name": "tiny_shakespeare"}, "model": {"name": "gpt"},
                        "regularizers": regs})
    assert msg.startswith("config: ") and "\n" not in msg
    assert expected in msg


@pytest.mark.parametrize("name", MINE)
def test_example_builds_a_valid_config_and_model(name: str) -> None:
    cls = REGULARIZERS.get(name)
    assert cls.reference and cls.applies_to
    config = build_run_config(
        {"regularizers": {name: cls.example}}, overrides=cls.example_overrides
    )
    build(config.model.name, {name: cls.example}, width=16, depth=1)


# ----------------------------------------------------------------------------- end to end


def test_training_loop_smoke(tmp_path: Path) -> None:
    from harness.train.loop import train_run

    config = build_run_config({
        "model": {"name": "mlp", "width": 32},
        "data": {"num_samples": 200},
        "train": {"epochs": 1, "batch_size": 64, "device": "cpu", "checkpoint": False,
                  "threads": 1},
        "tracking": {"wandb": "disabled"},
        "regularizers": {"dropout": {"p": 0.1}, "dropconnect": {"p": 0.1},
                         "spectral_norm": {}, "norm": {"kind": "layernorm"}},
    })  # fmt: skip
    result = train_run(config, results_dir=tmp_path)
    assert result.summary["status"] == "completed" and result.summary["epochs_run"] == 1
    assert math.isfinite(result.summary["final_val_loss"])
    modules = list(result.model.modules())  # each of the four is in the trained model
    assert isinstance(result.model.body[1], DropConnectLinear)
    assert any(isinstance(m, nn.Dropout) and m.p == 0.1 for m in modules)
    assert any(isinstance(m, nn.LayerNorm) for m in modules)
    assert any(hasattr(m, "parametrizations") for m in modules)


def test_drop_path_refused_where_no_block_can_be_dropped():
    from harness.errors import ConfigError

    raw = {"model": {"name": "transformer1d", "depth": 1},
           "regularizers": {"drop_path": {"rate": 0.3}}}
    with pytest.raises(ConfigError, match="drop_path would do nothing"):
        build_run_config(raw)
    raw["model"]["depth"] = 2
    build_run_config(raw)
