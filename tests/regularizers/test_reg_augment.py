"""augment and mix (mixup / CutMix) plug-ins, checked against independent computations
(torchvision, timm)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F

from harness.config import build_run_config
from harness.errors import ConfigError
from harness.regularizers import REGULARIZERS, Batch, RegularizerStack, RunContext
from harness.regularizers.augment import (
    apply_policy,
    color_jitter,
    gaussian_noise,
    policy_transform,
    random_crop,
    random_erasing,
    random_hflip,
    random_scale,
    random_shift,
    token_mask,
)
from harness.regularizers.mixing import (
    MixParams,
    cutmix_batch,
    cutmix_box,
    mix_decision,
    mixup_batch,
)

pytestmark = pytest.mark.usefixtures("seed_and_one_thread")


def make_stack(regularizers: dict, kind: str = "image", dataset: str = "mnist",
               num_classes: int = 10, mean: tuple[float, ...] = ()) -> RegularizerStack:
    model = {"text": "gpt", "signal": "cnn", "image": "cnn"}[kind]
    config = build_run_config({"data": {"name": dataset}, "model": {"name": model},
                               "regularizers": regularizers})
    data = SimpleNamespace(name=dataset, kind=kind, mean=mean)
    ctx = RunContext(config=config, data=data, device=torch.device("cpu"), epochs=1,
                     steps_per_epoch=1, num_classes=num_classes)
    return RegularizerStack.from_config(config, ctx)


def hard_batch(x: torch.Tensor, num_classes: int = 10) -> Batch:
    y = torch.arange(len(x)) % num_classes
    return Batch(x=x, y=y, targets=y)


# ------------------------------------------------------------------------------ images


def test_crop_is_a_window_of_the_zero_padded_image():
    pad, x = 3, torch.rand(24, 2, 10, 9) + 0.1
    out = random_crop(x, pad)
    assert out.shape == x.shape
    padded = torch.zeros(24, 2, 16, 15)
    padded[:, :, pad:pad + 10, pad:pad + 9] = x
    offsets = []
    for i in range(len(x)):
        found = [(dy, dx) for dy in range(2 * pad + 1) for dx in range(2 * pad + 1)
                 if torch.equal(out[i], padded[i, :, dy:dy + 10, dx:dx + 9])]
        assert len(found) == 1, f"sample {i}: no window matches"
        offsets.append(found[0])
    assert len(set(offsets)) > 5  # per-sample offsets


def test_hflip_flips_about_half_exactly():
    x = torch.rand(2000, 1, 5, 6)
    out = random_hflip(x)
    same = (out == x).flatten(1).all(1)
    flipped = (out == x.flip(-1)).flatten(1).all(1)
    assert bool((same | flipped).all())
    assert 0.45 < flipped.float().mean().item() < 0.55


@pytest.mark.parametrize("channels", [1, 3])
def test_color_jitter_stays_in_range_and_changes_values(channels):
    x = torch.rand(64, channels, 8, 8)
    out = color_jitter(x, 0.5)
    assert out.shape == x.shape and out.dtype == x.dtype
    assert out.min() >= 0.0 and out.max() <= 1.0
    changed = (out - x).abs().flatten(1).amax(1) > 1e-4
    assert changed.float().mean() > 0.9
    assert torch.equal(color_jitter(x, 0.0), x)


def test_erasing_rate_and_rectangles():
    n, p = 2000, 0.5
    fill = torch.tensor([0.01, 0.02, 0.03])
    x = torch.rand(n, 3, 16, 20) * 0.8 + 0.1  # never equal to the fill
    out = random_erasing(x, p, fill=fill)
    mask = (out != x).any(1)  # (N, H, W)
    erased = mask.flatten(1).any(1)
    assert abs(erased.float().mean().item() - p) < 0.05
    for i in torch.nonzero(erased).flatten()[:200].tolist():
        m = mask[i]
        rows, cols = m.any(1), m.any(0)
        assert torch.equal(m, rows[:, None] & cols[None, :])  # a rectangle
        r, c = torch.nonzero(rows).flatten(), torch.nonzero(cols).flatten()
        assert r[-1] - r[0] + 1 == len(r) and c[-1] - c[0] + 1 == len(c)  # contiguous
        assert 0.015 <= m.float().mean().item() <= 0.36  # area in scale (0.02, 0.33) + rounding
        assert torch.equal(out[i][:, m], fill[:, None].expand(3, int(m.sum())))
    assert torch.equal(out[~erased], x[~erased])


@pytest.mark.parametrize("policy", ["randaugment", "autoaugment", "trivialaugment"])
@pytest.mark.parametrize("shape", [(1, 28, 28), (3, 32, 32)])
def test_policies_are_valid_and_random_per_sample(policy, shape):
    base = torch.rand(1, *shape)
    x = base.expand(16, *shape).contiguous()
    out = apply_policy(x, policy_transform(policy))
    assert out.shape == x.shape and out.dtype == torch.float32
    assert out.min() >= 0.0 and out.max() <= 1.0
    assert torch.allclose(out * 255, (out * 255).round(), atol=1e-3)  # uint8 levels
    distinct = {tuple(o.flatten()[:200].mul(255).round().int().tolist()) for o in out}
    assert len(distinct) >= 4  # identical inputs, different random ops


# ----------------------------------------------------------------------------- signals


def shifted(sig: torch.Tensor, k: int) -> torch.Tensor:
    """Independent reference: sig shifted right by k (left if k < 0), zero fill."""
    out = torch.zeros_like(sig)
    if k >= 0:
        out[..., k:] = sig[..., :sig.shape[-1] - k]
    else:
        out[..., :k] = sig[..., -k:]
    return out


def test_signal_shift_is_a_zero_filled_shift_per_sample():
    s, x = 4, torch.randn(64, 2, 30)
    out = random_shift(x, s)
    ks = []
    for i in range(len(x)):
        found = [k for k in range(-s, s + 1) if torch.equal(out[i], shifted(x[i], k))]
        assert len(found) == 1
        ks.append(found[0])
    assert len(set(ks)) >= 6


def test_signal_noise_std_and_scale_range():
    x = torch.randn(200, 1, 500)
    assert abs((gaussian_noise(x, 0.3) - x).std().item() - 0.3) < 0.01
    s = 0.2
    out = random_scale(x, s)
    factor = out[:, 0, 0] / x[:, 0, 0]
    assert torch.allclose(out, factor[:, None, None] * x, atol=1e-5)  # one factor per sample
    assert factor.min() >= 1 - s - 1e-6 and factor.max() <= 1 + s + 1e-6
    assert factor.std() > 0.05


def test_token_mask_rate_and_vocab():
    vocab, p = 65, 0.2
    x = torch.randint(0, vocab, (64, 256))
    out = token_mask(x, p, vocab)
    assert out.dtype == torch.int64 and out.min() >= 0 and out.max() < vocab
    changed = (out != x).float().mean().item()
    assert abs(changed - p * (1 - 1 / vocab)) < 0.015  # a random draw may equal the token


# ----------------------------------------------------------------------------- plug-in


def test_augment_plugin_transforms_images_and_keeps_labels():
    stack = make_stack({"augment": {"crop_padding": 2, "hflip": True, "erasing": 0.5}},
                       mean=(0.5,))
    x = torch.rand(32, 1, 12, 12)
    batch = hard_batch(x)
    out = stack.transform_batch(None, batch)
    assert out.x.shape == x.shape and not torch.equal(out.x, x)
    assert out.y is batch.y and out.targets is batch.targets


def test_augment_plugin_signal_and_text():
    stack = make_stack({"augment": {"shift": 3, "noise": 0.1}}, kind="signal", dataset="mnist1d")
    x = torch.randn(16, 1, 40)
    assert not torch.equal(stack.transform_batch(None, hard_batch(x)).x, x)
    stack = make_stack({"augment": {"token_mask": 0.5}}, kind="text",
                       dataset="tiny_shakespeare", num_classes=65)
    x = torch.randint(0, 65, (4, 32))
    out = stack.transform_batch(None, Batch(x=x, y=x, targets=x))
    assert out.x.dtype == torch.int64 and not torch.equal(out.x, x) and out.y is x


def test_loop_calls_transform_batch_on_training_batches_only(tmp_path, monkeypatch):
    """A spy: the number of calls equals the number of training steps, so the eval passes
    (train-eval, val, test, final) never reach the plug-in."""
    from harness.regularizers.augment import Augment
    from harness.train.loop import train_run

    calls = []
    original = Augment.transform_batch

    def spy(self, state, batch):
        calls.append(len(batch.y))
        return original(self, state, batch)

    monkeypatch.setattr(Augment, "transform_batch", spy)
    config = build_run_config({
        "data": {"name": "mnist1d", "num_samples": 400},
        "model": {"name": "mlp", "width": 16},
        "train": {"epochs": 2, "batch_size": 64, "device": "cpu", "threads": 1,
                  "checkpoint": False},
        "tracking": {"wandb": "disabled"},
        "regularizers": {"augment": {"shift": 2}},
    })

    result = train_run(config, results_dir=tmp_path)  # no tracker: the local store only
    from harness.data import load_data
    from harness.train.build import steps_per_epoch

    steps = steps_per_epoch(len(load_data(config.data).train.y), 64)
    assert result.summary["epochs_run"] == 2
    assert len(calls) == 2 * steps
    assert max(calls) <= 64


# ------------------------------------------------------------------------------ mixing


def test_mixup_batch_pure():
    x, y = torch.rand(6, 1, 4, 4), torch.tensor([0, 1, 2, 3, 4, 5])
    xm, t = mixup_batch(x, y, 0.3, 10)
    assert torch.allclose(xm, 0.3 * x + 0.7 * x.flip(0))
    onehot = F.one_hot(y, 10).float()
    assert torch.allclose(t, 0.3 * onehot + 0.7 * onehot.flip(0))
    assert torch.allclose(t.sum(1), torch.ones(6))


def recover_lam(out: torch.Tensor, x: torch.Tensor) -> float:
    xf = x.flip(0)
    return float(((out - xf) * (x - xf)).sum() / ((x - xf) ** 2).sum())


@pytest.mark.parametrize("kind,shape", [("image", (8, 3, 6, 6)), ("signal", (8, 1, 40))])
def test_mixup_plugin_targets_match_recovered_lambda(kind, shape):
    dataset = "cifar10" if kind == "image" else "mnist1d"
    stack = make_stack({"mix": {"mixup_alpha": 0.4}}, kind=kind, dataset=dataset)
    x = torch.rand(shape)
    batch = hard_batch(x)
    lams = []
    for _ in range(20):
        out = stack.transform_batch(None, batch)
        lam = recover_lam(out.x, x)
        assert torch.allclose(out.x, lam * x + (1 - lam) * x.flip(0), atol=1e-5)
        onehot = F.one_hot(batch.y, 10).float()
        assert torch.allclose(out.targets, lam * onehot + (1 - lam) * onehot.flip(0), atol=1e-5)
        assert torch.allclose(out.targets.sum(1), torch.ones(len(x)))
        assert torch.equal(out.y, batch.y)
        lams.append(lam)
    assert min(lams) >= 0 and max(lams) <= 1 and torch.tensor(lams).std() > 0.1


def test_mixup_mixes_soft_targets():
    stack = make_stack({"mix": {}})
    x = torch.rand(4, 1, 5, 5)
    soft = torch.softmax(torch.randn(4, 10), 1)
    out = stack.transform_batch(None, Batch(x=x, y=soft.argmax(1), targets=soft))
    lam = recover_lam(out.x, x)
    assert torch.allclose(out.targets, lam * soft + (1 - lam) * soft.flip(0), atol=1e-5)


def test_cutmix_box_corrects_lambda_exactly():
    for lam in [0.0, 0.1, 0.37, 0.5, 0.9, 1.0]:
        for size in [(28, 28), (32, 17), (40,)]:
            bounds, kept = cutmix_box(size, lam)
            area, total = 1, 1
            for (lo, hi), side in zip(bounds, size, strict=True):
                assert 0 <= lo <= hi <= side
                area, total = area * (hi - lo), total * side
            assert kept == 1 - area / total


def cutmix_region(out: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Positions (over the trailing dims) where the output differs from x."""
    return (out != x).flatten(0, 1).any(0)


@pytest.mark.parametrize("kind,shape", [("image", (8, 3, 16, 12)), ("signal", (8, 1, 40))])
def test_cutmix_pastes_partner_box_with_exact_lambda(kind, shape):
    dataset = "cifar10" if kind == "image" else "mnist1d"
    stack = make_stack({"mix": {"mixup_alpha": 0.0, "cutmix_alpha": 1.0}}, kind=kind,
                       dataset=dataset)
    x = torch.rand(shape)
    batch = hard_batch(x)
    seen_box = False
    for _ in range(20):
        out = stack.transform_batch(None, batch)
        region = cutmix_region(out.x, x)
        xf = x.flip(0)
        assert torch.equal(out.x[..., region], xf[..., region])  # pasted from the partner
        assert torch.equal(out.x[..., ~region], x[..., ~region])
        if region.dim() == 2:  # a rectangle
            assert torch.equal(region, region.any(1)[:, None] & region.any(0)[None, :])
        else:  # a segment
            idx = torch.nonzero(region).flatten()
            assert len(idx) == 0 or idx[-1] - idx[0] + 1 == len(idx)
        lam = 1 - region.float().mean().item()
        onehot = F.one_hot(batch.y, 10).float()
        assert torch.allclose(out.targets, lam * onehot + (1 - lam) * onehot.flip(0), atol=1e-6)
        seen_box = seen_box or bool(region.any())
    assert seen_box


def test_cutmix_pure_batch():
    x, y = torch.rand(4, 1, 6, 6), torch.arange(4)
    bounds = ((1, 4), (2, 6))
    out, t = cutmix_batch(x, y, bounds, 1 - 12 / 36, 4)
    expected = x.clone()
    expected[:, :, 1:4, 2:6] = x.flip(0)[:, :, 1:4, 2:6]
    assert torch.equal(out, expected)
    assert torch.allclose(t.diagonal(), torch.full((4,), 24 / 36))


def test_switching_between_mixup_and_cutmix():
    stack = make_stack({"mix": {"mixup_alpha": 0.8, "cutmix_alpha": 1.0, "switch_prob": 0.3}})
    x = torch.rand(6, 1, 8, 8)
    batch = hard_batch(x)
    kinds = []
    for _ in range(400):
        out = stack.transform_batch(None, batch)
        from_x_or_partner = ((out.x == x) | (out.x == x.flip(0))).all()
        kinds.append(bool(from_x_or_partner))  # cutmix copies values; mixup blends them
    assert abs(sum(kinds) / len(kinds) - 0.3) < 0.07
    assert [r.name for r in stack.items] == ["mix"]  # one plug-in does the switching


@pytest.mark.parametrize("regs", [{"mix": {"prob": 0.0}},
                                  {"mix": {"mixup_alpha": 0.0, "cutmix_alpha": 1.0, "prob": 0.0}},
                                  {"mix": {"cutmix_alpha": 1.0, "prob": 0.0}}])
def test_prob_zero_leaves_batches_unchanged(regs):
    stack = make_stack(regs)
    batch = hard_batch(torch.rand(8, 1, 6, 6))
    for _ in range(10):
        out = stack.transform_batch(None, batch)
        assert torch.equal(out.x, batch.x) and torch.equal(out.targets, batch.targets)


# ------------------------------------------------------------------------ config errors


@pytest.mark.parametrize("dataset,regs,message", [
    ("mnist1d", {"augment": {"hflip": True}},
     "regularizers.augment.hflip: an image augmentation; dataset mnist1d holds 1-D signals"),
    ("mnist1d", {"augment": {"policy": "randaugment"}},
     "regularizers.augment.policy: an image augmentation"),
    ("mnist", {"augment": {"shift": 2}},
     "regularizers.augment.shift: a 1-D signal augmentation; dataset mnist holds images"),
    ("cifar10", {"augment": {"token_mask": 0.1}},
     "regularizers.augment.token_mask: a text augmentation"),
    ("tiny_shakespeare", {"augment": {"noise": 0.1}}, "holds text"),
    ("mnist", {"augment": {}}, "regularizers.augment: no augmentation turned on; set one of"),
    ("mnist", {"augment": {"color_jitter": 1.5}}, "regularizers.augment.color_jitter"),
    ("mnist", {"augment": {"policy": "foo"}}, "regularizers.augment.policy"),
    ("mnist", {"augment": {"hflip": True, "randaugment_n": 3}}, "only used with policy"),
    ("tiny_shakespeare", {"mix": {}}, "regularizers.mix: defined for images and 1-D"),
    ("mnist", {"mix": {"mixup_alpha": 0}}, "both 0: set one above 0"),
    ("mnist", {"mix": {"cutmix_alpha": -1}}, "regularizers.mix.cutmix_alpha = -1"),
    ("mnist", {"mix": {"switch": 0.5}}, "unknown key 'regularizers.mix.switch'; allowed: "
                                         "mixup_alpha, cutmix_alpha, prob, switch_prob"),
    # the old keys: refused, naming the one that replaced them
    ("mnist", {"mixup": {"alpha": 0.2}}, "regularizers.mixup: now regularizers.mix: "
                                         "{mixup_alpha: ALPHA, prob: P}"),
    ("mnist", {"cutmix": {}}, "regularizers.cutmix: now regularizers.mix: {mixup_alpha: 0, "
                              "cutmix_alpha: ALPHA"),
    ("mnist", {"mix": {}, "mixup": {}}, "regularizers.mixup: now regularizers.mix"),
])
def test_config_errors(dataset, regs, message):
    with pytest.raises(ConfigError) as err:
        model = "gpt" if dataset == "tiny_shakespeare" else "cnn"
        build_run_config({"data": {"name": dataset}, "model": {"name": model},
                          "regularizers": regs})
    assert message in str(err.value)


def test_runtime_kind_check_for_datasets_unknown_to_check():
    """A dataset `check` cannot classify from its name is caught when the run is built."""
    from harness.regularizers.augment import Augment, AugmentParams

    config = build_run_config({})
    ctx = RunContext(config=config, data=SimpleNamespace(name="my_corpus", kind="text"),
                     device=torch.device("cpu"), epochs=1, steps_per_epoch=1, num_classes=5)
    with pytest.raises(ConfigError, match="augment.hflip: an image augmentation; dataset "
                                          "my_corpus holds text"):
        Augment(AugmentParams(hflip=True), ctx)
    with pytest.raises(ConfigError, match="regularizers.mix: defined for images"):
        RegularizerStack.from_config(build_run_config({"regularizers": {"mix": {}}}), ctx)


def test_valid_configs_and_registration():
    assert "augment" in REGULARIZERS and "mix" in REGULARIZERS
    assert "mixup" not in REGULARIZERS and "cutmix" not in REGULARIZERS  # old keys: refused
    build_run_config({"data": {"name": "cifar10"}, "regularizers": {
        "augment": {"crop_padding": 4, "hflip": True, "policy": "randaugment",
                    "randaugment_n": 1, "erasing": 0.25},
        "mix": {"mixup_alpha": 0.2, "cutmix_alpha": 1.0, "switch_prob": 0.5}}})
    build_run_config({"data": {"name": "mnist1d"}, "regularizers": {
        "augment": {"shift": 3, "noise": 0.05, "scale": 0.1}, "mix": {}}})


# --------------------------------------------------------------------- mix against timm


class Script:
    """One scripted random stream, read by timm (np.random.rand / beta) and by mix_decision
    alike, recording which Beta alphas were asked for."""

    def __init__(self, values: list[float]) -> None:
        self.values, self.alphas = list(values), []

    def rand(self) -> float:
        return self.values.pop(0)

    def beta(self, a: float, b: float | None = None) -> float:
        self.alphas.append(a)
        return self.values.pop(0)


@pytest.mark.parametrize("params", [
    {"mixup_alpha": 0.8}, {"mixup_alpha": 0.0, "cutmix_alpha": 1.0},
    {"mixup_alpha": 0.8, "cutmix_alpha": 1.0, "switch_prob": 0.3},
    {"mixup_alpha": 0.4, "cutmix_alpha": 2.0, "prob": 0.6, "switch_prob": 0.5},
])
def test_mix_decision_draws_as_timm_mixup(params, monkeypatch):
    """Same random stream in, same (lam, use_cutmix) out, and the same Beta asked for, as
    timm.data.Mixup._params_per_batch (mode "batch") with the same parameters."""
    from timm.data import mixup as mixup_module
    p = MixParams(**params)
    timm_mix = mixup_module.Mixup(mixup_alpha=p.mixup_alpha, cutmix_alpha=p.cutmix_alpha,
                                  prob=p.prob, switch_prob=p.switch_prob, mode="batch",
                                  label_smoothing=0.0, num_classes=10)
    values = torch.rand(3000, generator=torch.Generator().manual_seed(1)).tolist()
    ours, theirs = Script(values), Script(values)
    monkeypatch.setattr(mixup_module.np, "random", theirs)
    outcomes = set()
    for _ in range(500):
        expected = timm_mix._params_per_batch()
        got = mix_decision(p, rand=ours.rand, beta=lambda a: ours.beta(a))
        assert got == expected
        outcomes.add((got[0] == 1.0, got[1]))
    assert ours.alphas == theirs.alphas and ours.values == theirs.values
    both = p.mixup_alpha > 0 and p.cutmix_alpha > 0
    assert len(outcomes) == 1 + (p.prob < 1) + both  # every branch was taken


def test_mixup_branch_output_equals_timm_mixup():
    """A mixup batch: inputs and targets as timm's Mixup gives for the same lam."""
    from timm.data import mixup as mixup_module
    stack = make_stack({"mix": {"mixup_alpha": 0.4}})
    x = torch.rand(8, 3, 6, 6)
    batch = hard_batch(x)
    for _ in range(5):
        out = stack.transform_batch(None, batch)
        lam = recover_lam(out.x, x)
        timm_mix = mixup_module.Mixup(mixup_alpha=0.4, label_smoothing=0.0, num_classes=10)
        timm_mix._params_per_batch = lambda lam=lam: (lam, False)
        tx, tt = timm_mix(x.clone(), batch.y.clone())
        torch.testing.assert_close(out.x, tx, atol=1e-6, rtol=1e-6)
        torch.testing.assert_close(out.targets, tt, atol=1e-6, rtol=1e-6)


def test_cutmix_box_side_is_exactly_the_cut_when_unclipped():
    """Each side spans int(side * sqrt(1 - lam)) cells, odd cuts included (torchvision's
    v2.CutMix box); only clipping at a border may shorten it."""
    from harness.regularizers.mixing import cutmix_box

    gen = torch.Generator().manual_seed(0)
    checked = 0
    for lam in (0.1, 0.3, 0.51, 0.75, 0.9):
        for size in ((28, 28), (32, 17), (40,)):
            ratio = (1.0 - lam) ** (1.0 / len(size))
            for _ in range(30):
                bounds, _ = cutmix_box(size, lam, generator=gen)
                for (lo, hi), side in zip(bounds, size, strict=True):
                    cut = int(side * ratio)
                    if lo > 0 and hi < side:  # not clipped
                        assert hi - lo == cut, (size, lam, lo, hi, cut)
                        checked += 1
    assert checked > 100
