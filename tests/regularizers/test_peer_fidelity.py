"""Fidelity to peers where the harness follows one (issue 32, item 19): each behaviour is
checked against the peer's own code (timm is installed in the dev environment)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from torch import nn

from harness.regularizers import RunContext, TrainState
from harness.regularizers.averaging import EMA

timm = pytest.importorskip("timm")


class BNNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Linear(6, 4)
        self.norm = nn.BatchNorm1d(4)
        self.head = nn.Linear(4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.relu(self.norm(self.body(x))))


def context() -> RunContext:
    return RunContext(config=SimpleNamespace(train=SimpleNamespace(batch_size=10)), data=None,
                      device=torch.device("cpu"), epochs=4, steps_per_epoch=3, num_classes=3)


def ema_plugin(**params) -> EMA:
    return EMA(EMA.Params.model_validate(params), context())


def train_step(model: nn.Module, gen: torch.Generator) -> None:
    """A forward pass in train mode (BatchNorm statistics and counter move) and a weight move."""
    model.train()
    model(torch.randn(8, 6, generator=gen))
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.1 * torch.randn(p.shape, generator=gen))


@pytest.mark.parametrize("use_buffers", [True, False])
def test_ema_state_equals_timm_model_ema_v3(use_buffers):
    """Every entry of the EMA copy, BatchNorm's num_batches_tracked included, as timm's
    ModelEmaV3 holds it (exclude_buffers = not use_buffers). timm starts its average at
    construction; torch's AveragedModel copies at the first update: timm is built there."""
    from timm.utils.model_ema import ModelEmaV3

    torch.manual_seed(0)
    model, gen, decay = BNNet(), torch.Generator().manual_seed(1), 0.9
    reg, peer = ema_plugin(decay=decay, use_buffers=use_buffers), None
    for step in range(6):
        train_step(model, gen)
        reg.after_step(TrainState(run=context(), model=model, step=step))
        if peer is None:
            peer = ModelEmaV3(model, decay=decay, exclude_buffers=not use_buffers)
        else:
            peer.update(model)
    ours = reg.eval_model(model).state_dict()
    theirs = peer.module.state_dict()
    assert ours.keys() == theirs.keys()
    for key in theirs:
        torch.testing.assert_close(ours[key], theirs[key], rtol=1e-6, atol=1e-6, msg=key)
    assert int(ours["norm.num_batches_tracked"]) == 6  # the live model's count, not blended


# ------------------------------------------------------------- weight decay of a ViT


def test_vit_leaves_pos_emb_and_cls_token_undecayed_as_timm():
    """The parameters of 2+ dimensions that weight decay leaves alone are, in the harness's
    ViT, the ones timm leaves alone in its VisionTransformer (param_groups_weight_decay with
    the model's no_weight_decay()): the position embedding and the cls token."""
    from timm.models.vision_transformer import VisionTransformer
    from timm.optim import param_groups_weight_decay

    from harness.models import create_model
    from harness.regularizers.weight_decay import WeightDecay

    peer = VisionTransformer(img_size=8, patch_size=2, in_chans=1, num_classes=3,
                             embed_dim=16, depth=1, num_heads=2)
    groups = param_groups_weight_decay(peer, 0.1, no_weight_decay_list=peer.no_weight_decay())
    by_id = {id(p): n for n, p in peer.named_parameters()}
    peer_kept = {by_id[id(p)] for g in groups if g["weight_decay"] == 0.0 for p in g["params"]
                 if p.ndim >= 2}
    assert peer_kept == {"pos_embed", "cls_token"}

    model = create_model("vit", input_shape=(1, 8, 8), num_classes=3, width=16, depth=1,
                         heads=2)
    reg = WeightDecay(WeightDecay.Params.model_validate({"value": 0.1}), None)  # type: ignore
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    for p in model.parameters():
        p.grad = torch.zeros_like(p)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    reg.before_step(TrainState(run=context(), model=model, optimizer=optimizer))
    kept = {n for n, p in model.named_parameters()
            if p.ndim >= 2 and torch.equal(p.detach(), before[n])}
    names = {"pos_embed": "pos_emb", "cls_token": "cls_token"}  # timm's name -> ours
    assert kept == {names[n] for n in peer_kept}
    decayed = model.patch_embed.weight.detach()
    torch.testing.assert_close(decayed, before["patch_embed.weight"] * (1 - 0.5 * 0.1))


# ------------------------------------------------------- where a model option is set


def options_passed(raw: dict) -> dict:
    """The options a validated config passes its model: the model section's and each
    regularizer's (what configure_model sets)."""
    from harness.config import build_run_config
    from harness.regularizers import REGULARIZERS
    from harness.regularizers.validate import probe_model_spec
    from harness.train.build import model_options

    config = build_run_config(raw, "test")
    passed = dict(model_options(config))
    for name, params in config.regularizers.items():
        cls = REGULARIZERS.get(name)
        passed.update(probe_model_spec(cls, cls.Params.model_validate(params or {}),
                                       config.model.name).kwargs)
    return passed


SAMPLE = {"width": 16, "depth": 2, "patch_size": 2, "heads": 2, "dropout": 0.1,
          "embed_dropout": 0.1, "attn_dropout": 0.1, "head_dropout": 0.1,
          "dropout_sites": ["attn"], "norm": "layernorm", "norm_position": "post",
          "drop_path": 0.1, "tie_weights": {}}


@pytest.mark.parametrize("option", sorted(SAMPLE))
def test_model_kwargs_error_names_a_setting_that_works(option):
    """`model.kwargs.<option>` is refused with the setting to use instead; that setting is
    accepted and reaches the model as the option (model.norm, once suggested, is itself an
    unknown key: the working setting is regularizers.norm.kind)."""
    from harness.errors import ConfigError
    from harness.models.factory import OPTION_SETTINGS
    from harness.models.options import VALIDATORS

    assert set(SAMPLE) == set(VALIDATORS)  # every option is covered here
    model, data = ("gpt", "tiny_shakespeare") if option == "tie_weights" else ("vit", "mnist")
    base = {"data": {"name": data}, "model": {"name": model}}
    with pytest.raises(ConfigError) as err:
        options_passed({**base, "model": {"name": model, "kwargs": {option: SAMPLE[option]}}})
    setting = OPTION_SETTINGS[option]
    assert f"set it with {setting}," in str(err.value)
    section, *rest = setting.split(".")
    raw = {**base, "model": dict(base["model"])}
    if section == "model":
        raw["model"][rest[0]] = SAMPLE[option]
    elif len(rest) == 1:
        raw["regularizers"] = {rest[0]: SAMPLE[option]}
    else:
        raw["regularizers"] = {rest[0]: {rest[1]: SAMPLE[option]}}
        if rest[0] == "norm" and rest[1] == "position":
            raw["regularizers"]["norm"]["kind"] = "layernorm"
        if rest[0] == "dropout":
            raw["regularizers"]["dropout"].setdefault("p", 0.0)
    expected = True if option == "tie_weights" else SAMPLE[option]
    if option == "dropout_sites":
        expected = tuple(expected)
    assert options_passed(raw)[option] == expected


# ---------------------------------------------------------------------- docstrings


def test_cnn_docstring_describes_the_cnn_not_the_paper_convbase():
    """The MNIST-1D paper's ConvBase is three strided convolutions (kernel 5 then 3, stride 2,
    25 channels) without pooling; the harness's CNN is kernel-3 convolutions with max-pool and
    doubling channels. Its docstrings say what it is and do not pass it off as ConvBase."""
    import harness.models.cnn as cnn_module
    from harness.models import create_model

    model = create_model("cnn", input_shape=(1, 40), num_classes=10)
    convs = [m for m in model.modules() if isinstance(m, nn.Conv1d)]
    assert {c.kernel_size for c in convs} == {(3,)} and {c.stride for c in convs} == {(1,)}
    assert any(isinstance(m, nn.MaxPool1d) for m in model.modules())
    assert [c.out_channels for c in convs] == [32, 64, 128]
    text = " ".join(f"{cnn_module.__doc__} {cnn_module.CNN.__doc__}".split())
    for at in [i for i in range(len(text)) if text.startswith("ConvBase", i)]:
        assert "not" in text[max(0, at - 30):at], text[max(0, at - 60):at + 8]
    assert "conv3" in text and "maxpool" in text


def test_cutmix_box_is_timms_and_the_docstring_says_so(monkeypatch):
    """The box equals timm's cutmix_bbox_and_lam (rand_bbox, correct_lam) for the same
    centre, for odd and even cuts; torchvision v2's CutMix draws a box of 2 * int(r * side)
    instead, and the docstring names timm's, not torchvision's."""
    import numpy as np
    from timm.data import mixup as timm_mixup

    from harness.regularizers.mixing import cutmix_box

    for seed, (size, lam) in enumerate([((8, 8), 0.3), ((7, 9), 0.61), ((28, 28), 0.5)]):
        gen = torch.Generator().manual_seed(seed)
        bounds, kept = cutmix_box(size, lam, gen)
        replay = torch.Generator().manual_seed(seed)
        centres = [int(torch.randint(0, side, (), generator=replay)) for side in size]
        monkeypatch.setattr(np.random, "randint",
                            lambda lo, hi, size=None, c=iter(centres): next(c))
        (yl, yu, xl, xu), peer_lam = timm_mixup.cutmix_bbox_and_lam((1, *size), lam)
        assert bounds == ((yl, yu), (xl, xu))
        assert kept == pytest.approx(peer_lam, abs=1e-12)
    doc = cutmix_box.__doc__ or ""
    assert "timm" in doc and "as torchvision" not in doc
