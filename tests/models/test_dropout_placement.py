"""Where dropout sits in a transformer (the `dropout` regularizer's p + sites, attn_p, head_p,
embed_p), each placement checked against an independent computation: a transformer forward
written out by hand from the model's weights, with F.dropout at the named sites and nowhere
else, drawn in the same order from the same seed. Train-mode outputs match it (so training
differs from eval only through those sites), eval mode is the identity, and the expected
output over many masks is the eval output where the site feeds a linear map."""

from __future__ import annotations

import math
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from harness.config import build_run_config
from harness.errors import ConfigError
from harness.models import create_model
from harness.models.transformer import SelfAttention
from harness.regularizers import REGULARIZERS, ModelSpec, RegularizerStack

SHAPE = {"vit": (1, 8, 8), "transformer1d": (2, 12), "gpt": (16,)}
VOCAB = 11
PLACEMENTS = {  # the regularizer's params -> the rates the reference applies at each site
    "residual": {"p": 0.3},
    "after_attention_only": {"p": 0.3, "sites": ["attn"]},
    "after_ffn_only": {"p": 0.3, "sites": ["ffn"]},
    "attention_probabilities": {"p": 0.0, "attn_p": 0.3},
    "before_head": {"p": 0.0, "head_p": 0.3},
    "embeddings": {"p": 0.0, "embed_p": 0.3},
    "all": {"p": 0.2, "attn_p": 0.3, "head_p": 0.4, "embed_p": 0.1},
}


def build(name: str, params: dict[str, Any] | None) -> nn.Module:
    """The loop's path: the regularizer's configure_model, then create_model; weights
    redrawn large (the default init keeps a small model near its input) so every site's
    effect is far above float error."""
    items = []
    if params is not None:
        cls = REGULARIZERS.get("dropout")
        items.append(cls(cls.Params.model_validate(params), None))  # type: ignore[arg-type]
    spec = RegularizerStack(items).configure_model(ModelSpec(name, {"width": 16, "depth": 2}))
    classes = VOCAB if name == "gpt" else 10
    model = create_model(name, input_shape=SHAPE[name], num_classes=classes, **spec.kwargs)
    with torch.no_grad():
        for weight in model.parameters():
            weight.normal_(0.0, 0.5)
    return model


def inputs(name: str, n: int = 6) -> Tensor:
    torch.manual_seed(123)
    if name == "gpt":
        return torch.randint(0, VOCAB, (n, *SHAPE[name]))
    return torch.randn(n, *SHAPE[name])


def drop(x: Tensor, rate: float) -> Tensor:
    return F.dropout(x, rate, training=True) if rate > 0 else x


def attention_by_hand(attn: SelfAttention, x: Tensor, rate: float, causal: bool) -> Tensor:
    """softmax(QK^T / sqrt(d)) (causal: future positions masked), dropout on the
    probabilities, times V, heads merged, output projection."""
    n, t, c = x.shape
    h = attn.heads
    q, k, v = (z.reshape(n, t, h, c // h).transpose(1, 2) for z in attn.qkv(x).split(c, dim=-1))
    scores = q @ k.transpose(-1, -2) / math.sqrt(c // h)
    if causal:
        future = torch.ones(t, t, dtype=torch.bool).triu(1)
        scores = scores.masked_fill(future, float("-inf"))
    y = drop(scores.softmax(dim=-1), rate) @ v
    return attn.proj(y.transpose(1, 2).reshape(n, t, c))


def embed_by_hand(model: nn.Module, name: str, x: Tensor) -> Tensor:
    if name == "transformer1d":
        return model.embed(x.transpose(1, 2)) + model.pos_emb
    if name == "gpt":
        return model.tok_emb(x) + model.pos_emb(torch.arange(x.shape[1]))
    patches = model.patch_embed(x).flatten(2).transpose(1, 2)
    return torch.cat([model.cls_token.expand(len(x), -1, -1), patches], dim=1) + model.pos_emb


def forward_by_hand(model: nn.Module, name: str, x: Tensor, params: dict[str, Any]) -> Tensor:
    """The pre-norm transformer with dropout where the params say, in the model's order:
    embeddings, then per block attention probabilities, after attention, after the FFN,
    then the features entering the head."""
    sites = params.get("sites", ["attn", "ffn"])
    after_attn = params["p"] if "attn" in sites else 0.0
    after_ffn = params["p"] if "ffn" in sites else 0.0
    h = drop(embed_by_hand(model, name, x), params.get("embed_p", 0.0))
    for block in model.blocks:
        a = attention_by_hand(block.attn, block.norm1(h), params.get("attn_p", 0.0),
                              causal=name == "gpt")
        h = h + drop(a, after_attn)
        mlp = block.mlp
        h = h + drop(mlp.proj(F.gelu(mlp.fc(block.norm2(h)))), after_ffn)
    h = model.norm(h)
    features = {"transformer1d": h.mean(dim=1), "gpt": h, "vit": h[:, 0]}[name]
    return model.head(drop(features, params.get("head_p", 0.0)))


@pytest.mark.parametrize("placement", list(PLACEMENTS))
@pytest.mark.parametrize("name", list(SHAPE))
def test_training_output_is_the_hand_forward_with_dropout_at_the_named_sites_only(
    name: str, placement: str
) -> None:
    params = PLACEMENTS[placement]
    torch.manual_seed(0)
    model = build(name, params)
    x = inputs(name)
    with torch.no_grad():
        eval_out = model.eval()(x)
        torch.manual_seed(7)
        train_out = model.train()(x)
        torch.manual_seed(7)
        expected = forward_by_hand(model, name, x, params)
        no_dropout = forward_by_hand(model, name, x, {"p": 0.0})
    torch.testing.assert_close(train_out, expected, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(eval_out, no_dropout, rtol=1e-4, atol=1e-5)
    assert (train_out - eval_out).abs().max() > 0.05  # the site does act in training


@pytest.mark.parametrize("name", list(SHAPE))
def test_eval_mode_is_the_model_without_dropout(name: str) -> None:
    torch.manual_seed(0)
    model = build(name, PLACEMENTS["all"]).eval()
    plain = build(name, None).eval()
    plain.load_state_dict(model.state_dict())
    x = inputs(name)
    torch.testing.assert_close(model(x), plain(x), rtol=0, atol=0)
    torch.testing.assert_close(model(x), model(x), rtol=0, atol=0)


@pytest.mark.parametrize("causal", [False, True])
def test_attention_dropout_zeroes_probabilities_at_rate_p_and_rescales_the_rest(
    causal: bool,
) -> None:
    """Q = K = 0 gives known probabilities (uniform over the visible positions); V and the
    output projection the identity, so the output is the dropped probability matrix."""
    t, p = 16, 0.25
    attn = SelfAttention(t, 1, dropout=0.0, attn_dropout=p, causal=causal)
    with torch.no_grad():
        attn.qkv.weight.zero_()
        attn.qkv.weight[2 * t:].copy_(torch.eye(t))
        attn.qkv.bias.zero_()
        attn.proj.weight.copy_(torch.eye(t))
        attn.proj.bias.zero_()
    x = torch.eye(t).expand(2000, t, t)
    visible = torch.ones(t, t).tril() if causal else torch.ones(t, t)
    probs = visible / visible.sum(dim=1, keepdim=True)
    torch.manual_seed(0)
    with torch.no_grad():
        dropped = attn.train()(x)
        torch.testing.assert_close(attn.eval()(x), probs.expand_as(dropped))
    live = probs.expand_as(dropped) > 0
    zeroed = (dropped == 0) & live
    assert zeroed.sum().item() / live.sum().item() == pytest.approx(p, abs=0.01)
    kept = (dropped != 0) & live
    torch.testing.assert_close(dropped[kept], probs.expand_as(dropped)[kept] / (1 - p))
    assert torch.equal(dropped[~live], torch.zeros_like(dropped[~live]))  # masks stay masked


def mean_over_masks(model: nn.Module, x: Tensor, copies: int) -> tuple[Tensor, Tensor]:
    """Mean and standard error of the training output over `copies` independent masks."""
    torch.manual_seed(1)
    with torch.no_grad():
        outs = model.train()(x.repeat(copies, *[1] * (x.dim() - 1)))
    outs = outs.reshape(copies, *x.shape[:1], *outs.shape[1:])
    return outs.mean(dim=0), outs.std(dim=0) / math.sqrt(copies)


@pytest.mark.parametrize("placement", ["attention_probabilities", "before_head"])
def test_expected_output_over_many_masks_is_the_eval_output(placement: str) -> None:
    """Inverted dropout keeps E[mask / (1 - p)] = 1: where the site feeds a linear map
    (attention probabilities times V; the features times the head) the mean output over
    masks is the eval output, within 5 standard errors."""
    torch.manual_seed(0)
    if placement == "before_head":
        model: nn.Module = build("transformer1d", PLACEMENTS[placement])
        x = inputs("transformer1d", n=2)
    else:
        model = SelfAttention(16, 4, dropout=0.0, attn_dropout=0.3, causal=False)
        x = torch.randn(2, 10, 16)
    with torch.no_grad():
        expected = model.eval()(x)
    mean, stderr = mean_over_masks(model, x, copies=4000)
    assert ((mean - expected).abs() <= 5 * stderr + 1e-6).all()
    assert (stderr > 0).any()  # the masks did vary


# ----------------------------------------------------------------------------- config


def run_id(model: str, dropout: dict[str, Any]) -> str:
    data = {"gpt": "tiny_shakespeare", "vit": "fashion_mnist"}.get(model, "mnist1d")
    raw = {"data": {"name": data}, "model": {"name": model},
           "regularizers": {"dropout": dropout}}
    return build_run_config(raw).run_id()


@pytest.mark.parametrize("model", ["mlp", "transformer1d"])
def test_new_keys_at_their_defaults_leave_the_run_id_and_the_model_options(model: str) -> None:
    written = {"p": 0.1, "attn_p": 0.0, "head_p": 0, "sites": ["ffn", "attn"]}
    assert run_id(model, written) == run_id(model, {"p": 0.1})
    if model == "transformer1d":
        assert run_id(model, {"p": 0.1, "attn_p": 0.1}) != run_id(model, {"p": 0.1})
        assert run_id(model, {"p": 0.1, "sites": ["attn"]}) != run_id(model, {"p": 0.1})
    cls = REGULARIZERS.get("dropout")
    spec = ModelSpec(model, {})
    cls(cls.Params.model_validate(written), None).configure_model(spec)  # type: ignore[arg-type]
    assert spec.kwargs == {"dropout": 0.1}


@pytest.mark.parametrize(("model", "params", "needle"), [
    ("mlp", {"p": 0.1, "attn_p": 0.1}, "regularizers.dropout.attn_p = 0.1: only for transformer "
                                       "models (gpt, transformer1d, vit); model mlp is not one"),
    ("cnn", {"p": 0.1, "head_p": 0.2}, "regularizers.dropout.head_p = 0.2: only for transformer"),
    ("resnet", {"p": 0.1, "sites": ["attn"]}, "regularizers.dropout.sites = ['attn']: only for"),
    ("transformer1d", {"p": 0.1, "sites": []}, "regularizers.dropout.sites = []: name each of"),
    ("transformer1d", {"p": 0.1, "sites": ["ffn", "ffn"]}, "at most once"),
    ("transformer1d", {"p": 0.1, "sites": ["mlp"]}, "regularizers.dropout.sites.0 = 'mlp'"),
    ("transformer1d", {"p": 0.1, "attn_p": 1.0}, "regularizers.dropout.attn_p = 1.0"),
    ("transformer1d", {"p": 0.1, "head": 0.1}, "allowed: p, embed_p, attn_p, head_p, sites"),
])
def test_placements_are_refused_in_one_line_where_they_do_not_apply(
    model: str, params: dict[str, Any], needle: str
) -> None:
    with pytest.raises(ConfigError) as e:
        run_id(model, params)
    assert needle in str(e.value) and "\n" not in str(e.value)


@pytest.mark.parametrize(("model", "shape", "options", "needle"), [
    ("cnn", (1, 40), {"attn_dropout": 0.1}, "attn_dropout is only for transformer models"),
    ("mlp", (1, 40), {"head_dropout": 0.1}, "head_dropout is only for transformer models"),
    ("mlp", (1, 40), {"dropout_sites": ("attn",)}, "dropout_sites is only for transformer"),
    ("gpt", (16,), {"dropout_sites": ("mlp",)}, "dropout_sites must be a non-empty tuple"),
    ("gpt", (16,), {"head_dropout": 1.0}, "head_dropout must be a number in [0, 1)"),
])
def test_models_check_the_placement_options_they_are_given(
    model: str, shape: tuple[int, ...], options: dict[str, Any], needle: str
) -> None:
    with pytest.raises(ConfigError) as e:
        create_model(model, input_shape=shape, num_classes=VOCAB, **options)
    assert needle in str(e.value)
    neutral = {"attn_dropout": 0.0, "head_dropout": 0.0, "dropout_sites": ("attn", "ffn")}
    create_model("mlp", input_shape=(1, 40), num_classes=10, **neutral)  # off: accepted
