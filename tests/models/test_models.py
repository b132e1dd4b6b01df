"""Model families: shapes, capacity knobs, stochastic depth, option errors, tying, norms."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from harness.errors import ConfigError
from harness.models import MODELS, count_parameters, create_model, model_capabilities
from harness.models.layers import NORM_KINDS, DropPath, drop_path_rates, make_norm

VOCAB = 65
SHAPES = {"signal": [(1, 40)], "image": [(1, 28, 28), (3, 32, 32), (1, 8, 8)], "text": [(16,)]}
CASES = [
    (name, shape)
    for name in MODELS.names()
    for kind in sorted(model_capabilities(name).kinds)
    for shape in SHAPES[kind]
]
FIRST_SHAPE = {name: next(s for n, s in CASES if n == name) for name in MODELS.names()}
RESIDUAL = [n for n in MODELS.names() if model_capabilities(n).residual]
WITH_DEPTH = [n for n in MODELS.names() if "depth" in model_capabilities(n).options]
WITH_NORM = [n for n in MODELS.names() if "norm" in model_capabilities(n).options]
TRANSFORMERS = [n for n in MODELS.names() if "norm_position" in model_capabilities(n).options]


def build(name: str, shape: tuple[int, ...], **kwargs) -> nn.Module:
    num_classes = VOCAB if len(shape) == 1 else 10
    return create_model(name, input_shape=shape, num_classes=num_classes, **kwargs)


def batch(shape: tuple[int, ...], n: int = 4) -> torch.Tensor:
    if len(shape) == 1:
        return torch.randint(0, VOCAB, (n, *shape))
    return torch.randn(n, *shape)


def out_shape(shape: tuple[int, ...], n: int = 4) -> tuple[int, ...]:
    return (n, shape[0], VOCAB) if len(shape) == 1 else (n, 10)


def message(excinfo: pytest.ExceptionInfo) -> str:
    text = str(excinfo.value)
    assert "\n" not in text
    return text


@pytest.mark.parametrize(("name", "shape"), CASES, ids=[f"{n}-{s}" for n, s in CASES])
def test_forward_backward_shapes(name: str, shape: tuple[int, ...]) -> None:
    torch.manual_seed(0)
    model = build(name, shape)
    x = batch(shape)
    for train in (True, False):
        model.train(train)
        out = model(x)
        assert out.shape == out_shape(shape)
        assert torch.isfinite(out).all()
    model.train()
    model(x).float().pow(2).mean().backward()
    grads = [p.grad for p in model.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert isinstance(model.head, nn.Linear)
    assert model.head.out_features == (VOCAB if len(shape) == 1 else 10)


@pytest.mark.parametrize("name", MODELS.names())
def test_residual_blocks_listed(name: str) -> None:
    model = build(name, FIRST_SHAPE[name])
    assert bool(model.residual_blocks) == model_capabilities(name).residual
    assert all(isinstance(b.drop_path, DropPath) for b in model.residual_blocks)


@pytest.mark.parametrize("name", MODELS.names())
def test_parameters_grow_with_width(name: str) -> None:
    counts = [count_parameters(build(name, FIRST_SHAPE[name], width=w)) for w in (8, 16, 32)]
    assert counts[0] < counts[1] < counts[2]


@pytest.mark.parametrize("name", WITH_DEPTH)
def test_parameters_grow_with_depth(name: str) -> None:
    for shape in [s for n, s in CASES if n == name]:
        counts = [count_parameters(build(name, shape, width=8, depth=d)) for d in (1, 2, 3, 4)]
        assert counts == sorted(set(counts)), (shape, counts)


def test_cnn_conv_dim_follows_input() -> None:
    signal, image = build("cnn", (1, 40)), build("cnn", (1, 28, 28))
    assert any(isinstance(m, nn.Conv1d) for m in signal.modules())
    assert any(isinstance(m, nn.Conv2d) for m in image.modules())


def test_drop_path_rates_linear() -> None:
    assert drop_path_rates(0.2, 5) == pytest.approx([0.0, 0.05, 0.1, 0.15, 0.2])
    assert drop_path_rates(0.2, 1) == [0.0]  # timm linspace: a lone block is never dropped


@pytest.mark.parametrize("name", RESIDUAL)
def test_model_drop_path_rates_linear_in_depth(name: str) -> None:
    model = build(name, FIRST_SHAPE[name], width=8, depth=3, drop_path=0.3)
    rates = [b.drop_path.p for b in model.residual_blocks]
    n = len(rates)
    assert rates == pytest.approx([0.3 * i / (n - 1) for i in range(n)])
    assert rates[0] == 0.0 and rates[-1] == pytest.approx(0.3)


def test_drop_path_keeps_expectation_and_is_identity_in_eval() -> None:
    torch.manual_seed(0)
    layer = DropPath(0.3)
    x = torch.full((40000, 3), 2.0)
    y = layer(x)
    assert y.mean().item() == pytest.approx(2.0, abs=0.04)
    dropped = (y == 0).all(dim=1).float().mean().item()
    assert dropped == pytest.approx(0.3, abs=0.02)  # whole samples, not single values
    assert torch.equal(y[y[:, 0] != 0], torch.full_like(y[y[:, 0] != 0], 2.0 / 0.7))
    layer.eval()
    assert torch.equal(layer(x), x)
    assert torch.equal(DropPath(0.0).train()(x), x)


@pytest.mark.parametrize(
    ("name", "shape", "kwargs", "needle"),
    [
        ("mlp", (1, 40), {"drop_path": 0.1}, "drop_path needs a model with residual blocks"),
        ("cnn", (1, 40), {"drop_path": 0.1}, "cnn has none"),
        ("cnn", (1, 40), {"tie_weights": True}, "tie_weights is only for language models (gpt)"),
        ("resnet", (1, 40), {"tie_weights": True}, "tie_weights"),
        ("cnn", (1, 40), {"heads": 2}, "heads"),
        ("mlp", (1, 40), {"patch_size": 4}, "patch_size is only for vit"),
        ("cnn", (1, 40), {"embed_dropout": 0.1}, "embed_dropout"),
        ("resnet", (1, 40), {"norm_position": "post"}, "norm_position"),
        ("vit", (1, 40), {}, "vit takes image"),
        ("gpt", (1, 28, 28), {}, "gpt takes text"),
        ("transformer1d", (1, 28, 28), {}, "transformer1d takes signal"),
        ("vit", (1, 28, 28), {"width": 30, "heads": 4}, "divisible by heads"),
        ("gpt", (16,), {"width": 10}, "divisible by heads"),
        ("vit", (1, 28, 28), {"patch_size": 5}, "must divide"),
        ("cnn", (1, 40), {"norm": "weirdnorm"}, "norm must be one of"),
        ("cnn", (1, 40), {"width": 0}, "width must be a positive integer"),
        ("cnn", (1, 40), {"dropout": 1.5}, "dropout must be a number in [0, 1)"),
        ("gpt", (16,), {"norm_position": "middle"}, "norm_position must be one of"),
        ("cnn", (1, 40), {"wdith": 8}, "did you mean 'width'"),
        ("nope", (1, 40), {}, "unknown model"),
    ],
)
def test_bad_options_raise_config_error(name, shape, kwargs, needle) -> None:
    with pytest.raises(ConfigError) as excinfo:
        build(name, shape, **kwargs)
    assert needle in message(excinfo)


def test_neutral_values_of_unsupported_options_are_accepted() -> None:
    model = build("cnn", (1, 40), drop_path=0.0, tie_weights=False, embed_dropout=0.0, heads=None)
    assert model.residual_blocks == []


def test_tied_weights_share_storage() -> None:
    tied = build("gpt", (16,), width=32, tie_weights=True)
    untied = build("gpt", (16,), width=32)
    assert tied.head.weight is tied.tok_emb.weight
    assert tied.head.weight.data_ptr() == tied.tok_emb.weight.data_ptr()
    assert untied.head.weight is not untied.tok_emb.weight
    assert untied.head.weight.data_ptr() != untied.tok_emb.weight.data_ptr()
    assert count_parameters(untied) - count_parameters(tied) == VOCAB * 32
    tied(batch((16,))).sum().backward()
    assert tied.tok_emb.weight.grad is not None


def test_gpt_is_causal() -> None:
    torch.manual_seed(0)
    model = build("gpt", (16,), width=32, depth=2).eval()
    x = batch((16,), n=2)
    y = x.clone()
    y[:, 10:] = (y[:, 10:] + 1) % VOCAB
    assert torch.allclose(model(x)[:, :10], model(y)[:, :10], atol=1e-5)
    assert not torch.allclose(model(x)[:, 10:], model(y)[:, 10:])


@pytest.mark.parametrize("layout", ["1d", "2d", "tokens", "features"])
@pytest.mark.parametrize("kind", NORM_KINDS)
def test_make_norm_layouts(kind: str, layout: str) -> None:
    shapes = {"1d": (4, 12, 7), "2d": (4, 12, 5, 5), "tokens": (4, 7, 12), "features": (4, 12)}
    x = torch.randn(shapes[layout])
    assert make_norm(kind, 12, layout)(x).shape == x.shape


@pytest.mark.parametrize("kind", NORM_KINDS)
def test_token_norms_see_one_token_at_a_time(kind: str) -> None:
    """Changing one token leaves every other token's normalized output alone (BatchNorm
    in eval mode reads running statistics); GroupNorm per token is the mean and variance
    over each group of its own channels, computed here by hand."""
    torch.manual_seed(0)
    norm = make_norm(kind, 32, "tokens").eval()
    x = torch.randn(3, 5, 32)
    y = x.clone()
    y[:, 2] = torch.randn(3, 32) * 4 + 3
    assert torch.allclose(norm(x)[:, [0, 1, 3, 4]], norm(y)[:, [0, 1, 3, 4]], atol=1e-6)
    if kind == "groupnorm":
        g = x.reshape(3, 5, 8, 4)  # 8 groups of 4 channels per token
        expected = (g - g.mean(-1, keepdim=True)) / torch.sqrt(
            g.var(-1, unbiased=False, keepdim=True) + 1e-5)
        assert torch.allclose(norm(x), expected.reshape(3, 5, 32), atol=1e-5)


@pytest.mark.parametrize("kind", NORM_KINDS)
def test_a_mean_pooled_transformer_is_not_constant_under_any_norm(kind: str) -> None:
    """transformer1d averages positions before its head: a norm that zeroes each channel's
    mean over positions would give every input the same logits."""
    torch.manual_seed(0)
    model = build("transformer1d", (1, 40), width=32, depth=1, norm=kind).eval()
    pooled: list[torch.Tensor] = []
    model.head.register_forward_hook(lambda m, args, out: pooled.append(args[0]))
    model(torch.randn(8, 1, 40))
    features = pooled[0]  # what the head sees, one row per input
    assert features.std(dim=0).max() > 1e-3  # a pooled channel the input moves


@pytest.mark.parametrize("kind", NORM_KINDS)
@pytest.mark.parametrize("name", WITH_NORM)
def test_every_norm_builds_and_runs(name: str, kind: str) -> None:
    shape = FIRST_SHAPE[name]
    model = build(name, shape, width=16, depth=1, norm=kind).train()
    out = model(batch(shape))
    assert out.shape == out_shape(shape) and torch.isfinite(out).all()


@pytest.mark.parametrize("name", TRANSFORMERS)
def test_pre_and_post_norm_differ(name: str) -> None:
    shape = FIRST_SHAPE[name]
    x = batch(shape)
    outs = {}
    for position in ("pre", "post"):
        torch.manual_seed(0)
        model = build(name, shape, width=16, depth=2, norm_position=position).eval()
        assert all(b.pre_norm == (position == "pre") for b in model.residual_blocks)
        assert isinstance(model.norm, nn.Identity) == (position == "post")
        outs[position] = model(x)
    assert not torch.allclose(outs["pre"], outs["post"])


@pytest.mark.parametrize("name", TRANSFORMERS)
def test_no_dropout_inside_attention(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[float, bool]] = []
    sdpa = F.scaled_dot_product_attention

    def spy(*args, dropout_p: float = 0.0, is_causal: bool = False, **kwargs):
        calls.append((dropout_p, is_causal))
        return sdpa(*args, dropout_p=dropout_p, is_causal=is_causal, **kwargs)

    monkeypatch.setattr(F, "scaled_dot_product_attention", spy)
    shape = FIRST_SHAPE[name]
    model = build(name, shape, width=16, depth=2, dropout=0.5, drop_path=0.5, embed_dropout=0.5)
    x = batch(shape)
    model.train()(x)
    assert len(calls) == 2 and all(p == 0.0 for p, _ in calls)
    assert all(causal == (name == "gpt") for _, causal in calls)
    model.eval()
    assert torch.equal(model(x), model(x))  # every dropout is off in eval
    block_dropouts = {
        n.rsplit(".", 1)[-1]
        for b in model.residual_blocks
        for n, m in b.named_modules()
        if isinstance(m, nn.Dropout)
    }
    assert block_dropouts == {"resid_drop"}


@pytest.mark.parametrize("name,shape", [("gpt", (16,)), ("vit", (1, 8, 8)),
                                        ("transformer1d", (1, 40))])
def test_a_transformer_refuses_an_unknown_model_kwarg_in_one_line(name, shape):
    with pytest.raises(ConfigError, match=rf"model.kwargs: {name} takes no argument 'foo'; "
                                          r"accepted: dropout, drop_path"):
        create_model(name, input_shape=shape, num_classes=10, extra={"foo": 1})


def test_model_info_default_depth_matches_the_constructor():
    import inspect

    from harness.models import MODELS

    for name, cls in MODELS.items():
        default = inspect.signature(cls.__init__).parameters.get("depth")
        if cls.info.residual and default is not None:
            assert cls.info.default_depth == default.default, name
