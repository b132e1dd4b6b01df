"""Optimization-side plug-ins, each against an independent computation: weight decay,
penalties, gradient clipping, label smoothing, early stopping, EMA/SWA, distillation."""

from __future__ import annotations

import copy
import json
import math
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F
from conftest import tiny_raw
from torch import nn

from harness.config import build_run_config
from harness.errors import ConfigError
from harness.regularizers import REGULARIZERS, Batch, RunContext, TrainState
from harness.regularizers.averaging import EMA, SWA
from harness.regularizers.distillation import Distillation, distillation_loss
from harness.regularizers.early_stopping import EarlyStopping
from harness.regularizers.grad_clip import GradClip
from harness.regularizers.label_smoothing import LabelSmoothing
from harness.regularizers.weight_decay import WeightDecay
from harness.train.loop import train_run
from harness.train.metrics import cross_entropy
from harness.train.optim import default_param_groups


def make(cls, ctx: RunContext | None = None, **params):
    return cls(cls.Params.model_validate(params), ctx or context())


def context(**kw) -> RunContext:
    base = dict(config=SimpleNamespace(train=SimpleNamespace(batch_size=10)), data=None,
                device=torch.device("cpu"), epochs=4, steps_per_epoch=3, num_classes=5)
    base.update(kw)
    return RunContext(**base)


def at(model: nn.Module | None = None, optimizer=None, ctx: RunContext | None = None,
       **fields) -> TrainState:
    """The TrainState a hook gets (epoch, step, metrics, evaluated as keywords)."""
    return TrainState(run=ctx or context(), model=model, optimizer=optimizer, **fields)


class Tiny(nn.Module):
    """body Linear -> LayerNorm -> head Linear: weights (2-D) and bias/norm params (1-D)."""

    def __init__(self, bn: bool = False) -> None:
        super().__init__()
        self.body = nn.Linear(6, 4)
        self.norm = nn.BatchNorm1d(4) if bn else nn.LayerNorm(4)
        self.head = nn.Linear(4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.relu(self.norm(self.body(x))))


def tiny(seed: int = 0, bn: bool = False) -> Tiny:
    torch.manual_seed(seed)
    model = Tiny(bn)
    with torch.no_grad():  # non-trivial norm params so decay is visible on them
        model.norm.weight.uniform_(0.5, 1.5)
        model.norm.bias.uniform_(-0.5, 0.5)
    return model


def set_grads(model: nn.Module, seed: int, zero: bool = False) -> None:
    g = torch.Generator().manual_seed(seed)
    for p in model.parameters():
        p.grad = torch.zeros_like(p) if zero else torch.randn(p.shape, generator=g)


def params_of(model: nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in model.parameters()]


# ------------------------------------------------------------------------ weight decay

LR, LAM, EPS = 0.01, 0.1, 1e-8


def plugin_adam_step(model: nn.Module, steps: int, **wd) -> None:
    opt = torch.optim.Adam(default_param_groups(model), lr=LR, eps=EPS, weight_decay=0.0)
    reg = make(WeightDecay, value=LAM, **wd)
    for s in range(steps):
        set_grads(model, s)
        reg.before_step(at(model, opt))
        opt.step()


def torch_step(model: nn.Module, opt_cls, steps: int) -> None:
    opt = opt_cls(model.parameters(), lr=LR, eps=EPS, weight_decay=LAM)
    for s in range(steps):
        set_grads(model, s)
        opt.step()


@pytest.mark.parametrize("mode,opt_cls", [("decoupled", torch.optim.AdamW),
                                          ("l2", torch.optim.Adam)])
def test_weight_decay_matches_torch(mode, opt_cls):
    a, b = tiny(), tiny()
    plugin_adam_step(a, 3, mode=mode, exclude_bias_and_norm=False)
    torch_step(b, opt_cls, 3)
    for p, q in zip(a.parameters(), b.parameters(), strict=True):
        torch.testing.assert_close(p, q, rtol=1e-6, atol=1e-7)


def test_weight_decay_hand_computed_first_step():
    w0 = params_of(tiny())
    g_model = tiny()
    set_grads(g_model, 0)
    grads = [p.grad.clone() for p in g_model.parameters()]
    # first Adam step: bias-corrected m = g, v = g^2
    decoupled = [w * (1 - LR * LAM) - LR * g / (g.abs() + EPS) for w, g in zip(w0, grads,
                                                                               strict=True)]
    coupled = [w - LR * (g + LAM * w) / ((g + LAM * w).abs() + EPS)
               for w, g in zip(w0, grads, strict=True)]
    a, b = tiny(), tiny()
    plugin_adam_step(a, 1, mode="decoupled", exclude_bias_and_norm=False)
    plugin_adam_step(b, 1, mode="l2", exclude_bias_and_norm=False)
    for p, d, q, c in zip(a.parameters(), decoupled, b.parameters(), coupled, strict=True):
        torch.testing.assert_close(p.detach(), d, rtol=1e-6, atol=1e-7)
        torch.testing.assert_close(q.detach(), c, rtol=1e-6, atol=1e-7)
    assert not torch.allclose(a.body.weight, b.body.weight)  # the two forms differ


@pytest.mark.parametrize("exclude", [True, False])
def test_weight_decay_skips_bias_and_norm(exclude):
    model = tiny()
    w0 = dict(model.named_parameters())
    w0 = {k: v.detach().clone() for k, v in w0.items()}
    opt = torch.optim.Adam(default_param_groups(model), lr=LR, weight_decay=0.0)
    reg = make(WeightDecay, value=LAM, exclude_bias_and_norm=exclude)
    set_grads(model, 0, zero=True)  # Adam's own update is 0: only the decay moves weights
    reg.before_step(at(model, opt))
    opt.step()
    for name, p in model.named_parameters():
        decayed = p.ndim > 1 or not exclude
        expect = w0[name] * (1 - LR * LAM) if decayed else w0[name]
        torch.testing.assert_close(p.detach(), expect, rtol=0, atol=1e-7)
        assert decayed == (not torch.equal(p.detach(), w0[name])), name


def test_weight_decay_uses_group_lr_and_skips_params_without_grad():
    model = tiny()
    groups = [{"params": [model.body.weight], "lr": 0.1}, {"params": [model.head.weight]}]
    opt = torch.optim.SGD(groups, lr=0.01)
    w_body, w_head = model.body.weight.detach().clone(), model.head.weight.detach().clone()
    model.body.weight.grad = torch.zeros_like(w_body)
    make(WeightDecay, value=0.5).before_step(at(model, opt))
    torch.testing.assert_close(model.body.weight.detach(), w_body * (1 - 0.1 * 0.5))
    assert torch.equal(model.head.weight.detach(), w_head)  # grad None: skipped, as in torch


# ---------------------------------------------------------------------------- penalties


@pytest.mark.parametrize("include", [False, True])
def test_penalties_equal_formulas(include):
    model = tiny()
    ps = [p for p in model.parameters() if include or p.ndim > 1]
    l1 = sum(float(p.detach().abs().sum()) for p in ps)
    l2sq = sum(float((p.detach() ** 2).sum()) for p in ps)
    zero = torch.zeros(())
    batch = Batch(torch.zeros(1), torch.zeros(1), torch.zeros(1))
    cases = {
        "l1": ({"value": 0.3}, 0.3 * l1),
        "l2": ({"value": 0.3}, 0.3 / 2 * l2sq),
        "elastic_net": ({"value": 0.3, "l1_ratio": 0.25},
                        0.3 * (0.25 * l1 + (1 - 0.25) / 2 * l2sq)),
    }
    for name, (params, expect) in cases.items():
        reg = make(registered(name), **params, include_bias_and_norm=include)
        got = reg.loss(at(model), zero, batch, torch.zeros(1))
        assert got.item() == pytest.approx(expect, rel=1e-5), name
    # gradient of the L2 penalty is value * w (coupled decay)
    reg = make(registered("l2"), value=0.3)
    reg.loss(at(model), zero, batch, torch.zeros(1)).backward()
    torch.testing.assert_close(model.body.weight.grad, 0.3 * model.body.weight.detach())
    assert model.body.bias.grad is None


def registered(name):
    return REGULARIZERS.get(name)


# ------------------------------------------------------------------------ grad clipping


def test_grad_clip_norm():
    model = tiny()
    set_grads(model, 1)
    total = torch.linalg.vector_norm(torch.cat([p.grad.flatten() for p in model.parameters()]))
    for p in model.parameters():
        p.grad.mul_(10.0 / total)  # global norm 10
    reg = make(GradClip, mode="norm", threshold=2.0)
    reg.after_backward(at(model))
    after = torch.linalg.vector_norm(torch.cat([p.grad.flatten() for p in model.parameters()]))
    assert after.item() == pytest.approx(2.0, rel=1e-5)
    before = [p.grad.clone() for p in model.parameters()]  # now below the threshold: unchanged
    reg.after_backward(at(model))
    for p, g in zip(model.parameters(), before, strict=True):
        torch.testing.assert_close(p.grad, g)
    assert reg.summary()["grad_clip_step_frac"] == pytest.approx(0.5)


def test_grad_clip_value():
    model = tiny()
    set_grads(model, 2)
    before = [p.grad.clone() for p in model.parameters()]
    make(GradClip, mode="value", threshold=0.5).after_backward(at(model))
    for p, g in zip(model.parameters(), before, strict=True):
        assert p.grad.abs().max() <= 0.5
        torch.testing.assert_close(p.grad, g.clamp(-0.5, 0.5))


def test_grad_clip_agc_clips_exactly_units_over_the_ratio():
    lam, eps = 0.01, 1e-3
    model = nn.Module()
    model.conv = nn.Conv2d(2, 4, 3)  # units: 4 output channels
    model.head = nn.Linear(3, 2)
    w_norms = torch.tensor([1.0, 2.0, 0.5, 0.0])  # the last one: below eps
    ratios = torch.tensor([0.005, 0.02, 0.5, 0.0])  # ||G_i|| / max(||W_i||, eps)
    ratios[3] = 5 * lam  # unit 3: ||G|| = 5 * lam * eps -> clipped to lam * eps
    torch.manual_seed(0)
    with torch.no_grad():
        w = torch.randn(4, 2, 3, 3)
        w = w / w.flatten(1).norm(dim=1).view(-1, 1, 1, 1) * w_norms.view(-1, 1, 1, 1)
        model.conv.weight.copy_(w)
        model.conv.bias.copy_(torch.tensor([3.0, 4.0, 0.0, 0.0]))  # norm 5
    g = torch.randn(4, 2, 3, 3)
    g_norms = ratios * w_norms.clamp(min=eps)
    g = g / g.flatten(1).norm(dim=1).view(-1, 1, 1, 1) * g_norms.view(-1, 1, 1, 1)
    model.conv.weight.grad = g.clone()
    model.conv.bias.grad = torch.tensor([0.0, 0.0, 0.6, 0.8])  # norm 1 > lam * 5: clipped
    head_grad = torch.full((2, 3), 100.0)
    model.head.weight.grad = head_grad.clone()
    model.head.bias.grad = torch.full((2,), 100.0)

    reg = make(GradClip, mode="agc", threshold=lam, eps=eps)
    reg.after_backward(at(model))
    out = model.conv.weight.grad
    out_norms = out.flatten(1).norm(dim=1)
    for i in range(4):
        over = ratios[i] > lam
        if over:  # scaled down to exactly the max norm, direction kept
            expect = lam * max(w_norms[i].item(), eps)
            assert out_norms[i].item() == pytest.approx(expect, rel=1e-5)
            torch.testing.assert_close(out[i], g[i] * (expect / g_norms[i]))
        else:
            assert torch.equal(out[i], g[i])
    torch.testing.assert_close(model.conv.bias.grad, torch.tensor([0.0, 0.0, 0.6, 0.8]) * 0.05)
    assert torch.equal(model.head.weight.grad, head_grad)  # the final layer is excluded
    assert torch.equal(model.head.bias.grad, torch.full((2,), 100.0))
    # 3 of the 4 channel units and the bias unit were clipped
    assert reg.summary()["grad_clip_unit_frac"] == pytest.approx(4 / 5)


def test_grad_clip_default_threshold_per_mode():
    assert make(GradClip, mode="norm").threshold == 1.0
    assert make(GradClip, mode="agc").threshold == 0.01


# ---------------------------------------------------------------------- label smoothing


def test_label_smoothing_equals_formula_and_torch():
    k, eps = 5, 0.2
    torch.manual_seed(0)
    logits = torch.randn(8, k)
    y = torch.randint(0, k, (8,))
    reg = make(LabelSmoothing, context(num_classes=k), epsilon=eps)
    batch = reg.transform_batch(at(), Batch(x=torch.zeros(8, 1), y=y, targets=y))
    assert torch.equal(batch.y, y)
    onehot = torch.zeros(8, k)
    onehot[torch.arange(8), y] = 1.0
    soft = (1 - eps) * onehot + eps / k
    torch.testing.assert_close(batch.targets, soft)
    by_hand = -(soft * torch.log_softmax(logits, -1)).sum(-1).mean()
    loss = cross_entropy(logits, batch.targets)
    torch.testing.assert_close(loss, by_hand)
    torch.testing.assert_close(loss, F.cross_entropy(logits, y, label_smoothing=eps))


def test_label_smoothing_soft_and_language_model_targets():
    k, eps = 7, 0.1
    reg = make(LabelSmoothing, context(num_classes=k), epsilon=eps)
    mixed = torch.softmax(torch.randn(4, k), -1)
    out = reg.transform_batch(at(), Batch(torch.zeros(4), torch.zeros(4), mixed)).targets
    torch.testing.assert_close(out, (1 - eps) * mixed + eps / k)
    # language model: (N, T) token ids -> (N, T, V)
    y = torch.randint(0, k, (3, 6))
    logits = torch.randn(3, 6, k)
    out = reg.transform_batch(at(), Batch(torch.zeros(3, 6), y, y)).targets
    assert out.shape == (3, 6, k)
    torch.testing.assert_close(cross_entropy(logits, out),
                               F.cross_entropy(logits.reshape(-1, k), y.reshape(-1),
                                               label_smoothing=eps))


# ----------------------------------------------------------------------- early stopping


def run_early_stopping(values, monitor="val_loss", resume_after=None, **params):
    """Drive end_epoch with scripted metrics; weights at epoch e are all filled with e."""
    model = tiny()
    reg = make(EarlyStopping, monitor=monitor, **params)
    stopped = None
    for epoch, v in enumerate(values, start=1):
        with torch.no_grad():
            for p in model.parameters():
                p.fill_(float(epoch))
        if resume_after == epoch - 1:  # a fresh plug-in resumed from the checkpoint state
            state = copy.deepcopy(reg.state_dict())
            reg = make(EarlyStopping, monitor=monitor, **params)
            reg.load_state_dict(state)
        if reg.end_epoch(at(model, epoch=epoch, metrics={monitor: v}, evaluated=model)):
            stopped = epoch
            break
    reg.end_training(at(model, evaluated=model))
    return reg, model, stopped


def test_early_stopping_stops_and_restores_best():
    losses = [1.0, 0.8, 0.85, 0.7, 0.75, 0.72, 0.71, 0.5]
    reg, model, stopped = run_early_stopping(losses, patience=3)
    assert stopped == 7 and reg.summary()["stop_epoch"] == 7
    assert reg.summary()["es_best_epoch"] == 4
    for p in model.parameters():
        assert torch.equal(p.detach(), torch.full_like(p, 4.0))
    # the same with a resume in the middle
    reg2, model2, stopped2 = run_early_stopping(losses, patience=3, resume_after=5)
    assert stopped2 == 7 and reg2.summary()["es_best_epoch"] == 4
    assert torch.equal(model2.body.weight, model.body.weight)


def test_early_stopping_min_delta_and_accuracy():
    reg, model, stopped = run_early_stopping([1.0, 0.8, 0.78, 0.77, 0.76], patience=3,
                                             min_delta=0.05)
    assert stopped == 5 and reg.summary()["es_best_epoch"] == 2
    assert torch.equal(model.head.bias, torch.full((3,), 2.0))
    reg, model, stopped = run_early_stopping([0.5, 0.6, 0.55, 0.58], monitor="val_acc",
                                             patience=2)
    assert stopped == 4 and reg.summary()["es_best_epoch"] == 2
    # ran out of budget: no stop epoch, weights of the best epoch still restored
    reg, model, stopped = run_early_stopping([0.5, 0.4, 0.45], patience=5)
    assert stopped is None and reg.summary()["stop_epoch"] is None
    assert torch.equal(model.head.bias, torch.full((3,), 2.0))
    # restore_best=False keeps the last weights
    reg, model, _ = run_early_stopping([0.5, 0.4, 0.45], patience=5, restore_best=False)
    assert torch.equal(model.head.bias, torch.full((3,), 3.0))


# ------------------------------------------------------------------------------ EMA / SWA


def perturb(model: nn.Module, gen: torch.Generator) -> None:
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=gen))


def test_ema_matches_hand_rolled_average_and_resumes():
    decay = 0.9
    model = tiny()
    reg = make(EMA, decay=decay)
    assert reg.eval_model(model) is model  # nothing averaged yet
    gen = torch.Generator().manual_seed(0)
    ema = None
    for step in range(5):
        perturb(model, gen)  # "optimizer step"
        w = params_of(model)
        # AveragedModel: the first update copies, then e = decay * e + (1 - decay) * w
        ema = w if ema is None else [decay * e + (1 - decay) * x for e, x in zip(ema, w,
                                                                                 strict=True)]
        reg.after_step(at(model, step=step))
        if step == 2:  # resume from a checkpoint into a fresh plug-in
            state = copy.deepcopy(reg.state_dict())
            reg = make(EMA, decay=decay)
            reg.load_state_dict(state)
    averaged = reg.eval_model(model)
    assert averaged is not model
    for p, e in zip(averaged.parameters(), ema, strict=True):
        torch.testing.assert_close(p.detach(), e, rtol=1e-6, atol=1e-6)
    assert all(not p.requires_grad for p in averaged.parameters())


def test_swa_mean_of_epoch_snapshots_lr_and_bn():
    torch.manual_seed(0)
    x = torch.randn(40, 6)
    data = SimpleNamespace(train=SimpleNamespace(x=x), prepare=lambda t: t)
    ctx = context(data=data, epochs=4, steps_per_epoch=3)
    model = tiny(bn=True)
    reg = make(SWA, ctx, start_epoch=2, lr=0.05)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    gen = torch.Generator().manual_seed(1)
    snapshots = []
    for epoch in range(1, 5):
        for i in range(3):
            step = (epoch - 1) * 3 + i
            opt.param_groups[0]["lr"] = 0.1  # what the schedule set
            reg.before_step(at(model, opt))
            assert opt.param_groups[0]["lr"] == (0.05 if epoch >= 2 else 0.1)
            perturb(model, gen)
            reg.after_step(at(model, step=step))
        if epoch >= 2:
            snapshots.append(params_of(model))
        # the epoch's metrics are taken on the average including this epoch's snapshot
        assert (reg.eval_model(model) is model) == (epoch < 2)
        reg.end_epoch(at(model, ctx, epoch=epoch, evaluated=reg.eval_model(model)))
    reg.end_training(at(model, ctx, evaluated=reg.eval_model(model)))
    averaged = reg.eval_model(model)
    mean = [torch.stack(ws).mean(0) for ws in zip(*snapshots, strict=True)]
    for p, m in zip(averaged.parameters(), mean, strict=True):
        torch.testing.assert_close(p.detach(), m, rtol=1e-6, atol=1e-6)
    assert reg.summary()["swa_n_averaged"] == 3
    # BatchNorm statistics recomputed for the averaged weights: 4 equal batches of 10
    with torch.no_grad():
        feats = averaged.body(x)
    batches = feats.split(10)
    torch.testing.assert_close(averaged.norm.running_mean, feats.mean(0))
    torch.testing.assert_close(averaged.norm.running_var,
                               torch.stack([b.var(0) for b in batches]).mean(0))


def test_swa_anneal_and_checks():
    ctx = context(epochs=4, steps_per_epoch=2)
    reg = make(SWA, ctx, start_epoch=3, lr=0.01, anneal_epochs=1)
    model = tiny()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    lrs = []
    for step in range(8):
        opt.param_groups[0]["lr"] = 0.1
        reg.before_step(at(model, opt))
        lrs.append(opt.param_groups[0]["lr"])
        reg.next_step = step + 1
    expect = [0.1, 0.1, 0.1, 0.1, 0.5 * 0.1 + 0.5 * 0.01, 0.01, 0.01, 0.01]
    assert lrs == pytest.approx(expect)
    from harness.config import build_run_config

    with pytest.raises(ConfigError, match="start_epoch"):
        build_run_config({"train": {"epochs": 2},
                          "regularizers": {"swa": {"start_epoch": 3, "lr": 0.01}}})
    assert make(SWA, context(epochs=8)).start_epoch == 7  # default: the last 25%


# ------------------------------------------------------------------------- distillation


def explicit_kd(student, teacher, y, t, alpha):
    n = student.shape[0]
    p_t = torch.exp(teacher / t) / torch.exp(teacher / t).sum(-1, keepdim=True)
    log_p_s = student / t - torch.log(torch.exp(student / t).sum(-1, keepdim=True))
    kl = (p_t * (torch.log(p_t) - log_p_s)).sum() / n
    ce = -(torch.log_softmax(student, -1)[torch.arange(n), y]).mean()
    return alpha * ce + (1 - alpha) * t * t * kl


def test_distillation_loss_formula():
    torch.manual_seed(0)
    s, t, y = torch.randn(6, 5), torch.randn(6, 5) * 2, torch.randint(0, 5, (6,))
    for temp, alpha in [(4.0, 0.5), (1.0, 0.0), (2.5, 1.0)]:
        got = distillation_loss(F.cross_entropy(s, y), s, t, temp, alpha)
        torch.testing.assert_close(got, explicit_kd(s, t, y, temp, alpha))
        # and against F.kl_div on probabilities (another route)
        kl = F.kl_div(F.log_softmax(s / temp, -1), F.softmax(t / temp, -1),
                      reduction="batchmean")
        torch.testing.assert_close(got, alpha * F.cross_entropy(s, y)
                                   + (1 - alpha) * temp**2 * kl)


def test_distillation_hook_uses_teacher_on_normalized_input():
    torch.manual_seed(0)
    data = SimpleNamespace(normalize=lambda x: (x - 1.0) * 2.0)
    reg = make(Distillation, context(data=data), temperature=3.0, alpha=0.3,
               teacher={"run": "somewhere"})
    teacher = nn.Linear(4, 5)
    reg.teacher = teacher.eval()
    x, y = torch.randn(7, 4), torch.randint(0, 5, (7,))
    student = nn.Linear(4, 5)
    logits = student(data.normalize(x))
    loss = reg.loss(at(student), F.cross_entropy(logits, y), Batch(x, y, y), logits)
    with torch.no_grad():
        t_logits = teacher(data.normalize(x))
    torch.testing.assert_close(loss, explicit_kd(logits, t_logits, y, 3.0, 0.3))
    loss.backward()
    assert student.weight.grad is not None and teacher.weight.grad is None
    # language-model shapes: KL averaged over tokens
    s, t, yy = torch.randn(2, 3, 5), torch.randn(2, 3, 5), torch.randint(0, 5, (2, 3))
    got = distillation_loss(cross_entropy(s, yy), s, t, 2.0, 0.5)
    torch.testing.assert_close(got, explicit_kd(s.reshape(6, 5), t.reshape(6, 5),
                                                yy.reshape(6), 2.0, 0.5))


def test_distillation_params_need_exactly_one_teacher():
    from harness.config import build_run_config

    for teacher in ({}, {"run": "a", "config": {}}):
        with pytest.raises(ConfigError, match="exactly one"):
            build_run_config({"regularizers": {"distillation": {"teacher": teacher}}})
    # a teacher given as config is an upstream run: checked when the run is planned, before
    # anything trains (harness/study/upstream.py)
    from harness.study.upstream import Linker

    cfg = build_run_config({"regularizers": {"distillation": {
        "teacher": {"config": {"model": {"nmae": "mlp"}}}}}})
    with pytest.raises(ConfigError, match=r"regularizers.distillation.teacher.config: unknown "
                                          r"key 'model.nmae' \(did you mean 'name'\?\)"):
        Linker().link(cfg)


def test_distillation_loads_teacher_from_run_folder(tmp_path):
    from harness.config import build_run_config
    from harness.regularizers import RegularizerStack
    from harness.train import build

    cfg = build_run_config({"data": {"num_samples": 600}, "model": {"name": "mlp", "width": 16},
                            "tracking": {"wandb": "disabled"}})
    data = build.build_data(cfg, None, torch.device("cpu"))
    ctx = build.run_context(cfg, data, torch.device("cpu"))
    torch.manual_seed(3)
    teacher = build.build_model(cfg, data, RegularizerStack.from_config(cfg, ctx))
    run = tmp_path / "study" / "runs" / "teacher-s0-abc"
    run.mkdir(parents=True)
    (run / "config.json").write_text(json.dumps({"run_id": cfg.run_id(),
                                                 **cfg.model_dump(mode="json")}))
    torch.save(teacher.state_dict(), run / "model.pt")

    student_cfg = build_run_config({"data": {"num_samples": 600}, "regularizers": {
        "distillation": {"teacher": {"run": str(run)}}}})
    sctx = build.run_context(student_cfg, data, torch.device("cpu"))
    regs = RegularizerStack.from_config(student_cfg, sctx)
    torch.manual_seed(0)
    build.build_model(student_cfg, data, regs)  # on_model loads the teacher
    after_with_teacher = torch.get_rng_state()
    torch.manual_seed(0)
    build.build_model(student_cfg, data, RegularizerStack([]))
    assert torch.equal(after_with_teacher, torch.get_rng_state())  # random streams untouched
    reg = regs.items[0]
    x = data.prepare(data.train.x[:5])
    torch.testing.assert_close(reg.teacher(x), teacher.eval()(x))
    assert not reg.teacher.training
    assert math.isfinite(reg.loss(at(nn.Linear(1, 1)), torch.zeros(()),
                                  Batch(data.train.x[:5], data.train.y[:5], data.train.y[:5]),
                                  torch.randn(5, 10)).item())


# --------------------------------------------------------------------------- end to end


def test_end_to_end_weight_decay_and_ema(tmp_path):
    from harness.config import build_run_config
    from harness.train.loop import train_run

    # the default CNN (EMA averages its batch-norm statistics too), 4 channels wide, on one
    # thread (the default, one per core, spins on a busy machine): under a second
    cfg = build_run_config({"data": {"num_samples": 600}, "model": {"width": 4},
                            "train": {"epochs": 2, "threads": 1},
                            "tracking": {"wandb": "disabled"},
                            "regularizers": {"weight_decay": {"value": 0.05},
                                             "ema": {"decay": 0.9}, "grad_clip": {},
                                             "label_smoothing": {"epsilon": 0.1}}})
    result = train_run(cfg, results_dir=tmp_path)
    s = result.summary
    assert s["status"] == "completed" and s["epochs_run"] == 2
    assert math.isfinite(s["final_val_loss"])
    assert 0.0 <= s["grad_clip_step_frac"] <= 1.0
    saved = torch.load(result.run_dir.path / "model.pt", weights_only=True)
    live = result.model.state_dict()
    assert saved.keys() == live.keys()
    assert any(not torch.equal(saved[k], live[k]) for k in live)  # the EMA weights were saved


@pytest.mark.slow
def test_end_to_end_swa_early_stopping_and_distillation(tmp_path):
    """A teacher given as config is an upstream run: trained first, then reused."""
    from functools import partial

    from harness.config import build_run_config
    from harness.record.run_dir import list_run_dirs
    from harness.study.upstream import train_with_upstream
    from harness.train.loop import train_run as train_alone

    train_run = partial(train_with_upstream, train=train_alone)

    base = {"data": {"num_samples": 600}, "train": {"epochs": 3},
            "tracking": {"wandb": "disabled"}, "study": "kd"}
    cfg = build_run_config({**base, "regularizers": {
        "swa": {"start_epoch": 2, "lr": 1e-3},  # the default cnn has BatchNorm
        "early_stopping": {"patience": 5},
        "distillation": {"teacher": {"config": {"model": {"name": "mlp", "width": 16},
                                                "train": {"epochs": 1}}}}}})
    result = train_run(cfg, results_dir=tmp_path)
    s = result.summary
    assert s["status"] == "completed" and s["swa_n_averaged"] == 2
    assert s["stop_epoch"] is None and s["es_best_epoch"] in (1, 2, 3)
    runs = {r.config["variant"]: r for r in list_run_dirs(tmp_path / "kd")}
    assert set(runs) == {"teacher", "default"}
    teacher = runs["teacher"]
    assert teacher.finished and teacher.config["model"]["name"] == "mlp"
    assert s["teacher_run"] == str(teacher.path)
    stamp = (teacher.path / "model.pt").stat().st_mtime_ns
    # a second student (same seed: the teacher inherits it) reuses the finished teacher
    cfg2 = build_run_config({**base, "train": {"epochs": 1}, "regularizers": {
        "distillation": {"alpha": 0.9, "teacher": {"config": {
            "model.name": "mlp", "model.width": 16, "train.epochs": 1}}}}})
    train_run(cfg2, results_dir=tmp_path)
    assert (teacher.path / "model.pt").stat().st_mtime_ns == stamp
    assert len(list_run_dirs(tmp_path / "kd")) == 3


def resume_matches(tmp_path, regularizers, keys):
    """Interrupt after epoch 1 and resume: the same summary and final weights as an
    uninterrupted run (each plug-in's state_dict through the weights_only checkpoint)."""
    from harness.config import build_run_config
    from harness.train.loop import train_run

    cfg = build_run_config({"data": {"num_samples": 600}, "train": {"epochs": 3},
                            "model": {"width": 8},  # the cnn: BatchNorm
                            "tracking": {"wandb": "disabled"}, "regularizers": regularizers})
    full = train_run(cfg, results_dir=tmp_path / "a")

    def interrupt(epoch, row):
        if epoch == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_run(cfg, results_dir=tmp_path / "b", on_epoch=[interrupt])
    resumed = train_run(cfg, results_dir=tmp_path / "b")
    for key in (*keys, "final_val_loss", "epochs_run"):
        assert resumed.summary[key] == full.summary[key], key
    a = torch.load(full.run_dir.path / "model.pt", weights_only=True)
    b = torch.load(resumed.run_dir.path / "model.pt", weights_only=True)
    for k in a:
        assert torch.equal(a[k], b[k]), k
    return full.summary


@pytest.mark.slow
def test_end_to_end_resume_is_exact_with_averaging_and_clipping(tmp_path):
    summary = resume_matches(tmp_path, {"swa": {"start_epoch": 2, "lr": 1e-3},
                                        "grad_clip": {"mode": "agc"},
                                        "weight_decay": {"value": 0.1, "mode": "l2"}},
                             ("swa_n_averaged", "grad_clip_unit_frac"))
    assert summary["swa_n_averaged"] == 2


@pytest.mark.slow
def test_end_to_end_resume_is_exact_with_early_stopping(tmp_path):
    # min_delta too large: no improvement after epoch 1, so it stops at epoch 2
    summary = resume_matches(tmp_path, {"early_stopping": {"patience": 1, "min_delta": 10.0}},
                             ("stop_epoch", "es_best_epoch"))
    assert summary["stop_epoch"] == 2


@pytest.mark.slow
@pytest.mark.parametrize("averaging", [{"ema": {"decay": 0.9}}, {"swa": {"start_epoch": 1}}])
def test_averaged_model_keeps_spectral_norm(tmp_path, averaging):
    cfg = build_run_config(tiny_raw(study="sn", model={"width": 32}, train={"epochs": 3},
                                     regularizers={"spectral_norm": {}, **averaging}))
    res = train_run(cfg, results_dir=tmp_path)
    model = res.model
    from harness.regularizers import RegularizerStack  # noqa: F401  (the run used the stack)

    evaluated = torch.load(res.run_dir.path / "model.pt", weights_only=True)
    # The saved (evaluated) model: sigma(W / sigma_est) must be ~1 for every normalized layer.
    names = [k[: -len(".parametrizations.weight.original")] for k in evaluated
             if k.endswith(".parametrizations.weight.original")]
    assert names, "no spectral-normalized layer in the saved model"
    for name in names:
        w = evaluated[f"{name}.parametrizations.weight.original"]
        u = evaluated[f"{name}.parametrizations.weight.0._u"]
        v = evaluated[f"{name}.parametrizations.weight.0._v"]
        mat = w.reshape(w.shape[0], -1)
        assert float(u.norm()) == pytest.approx(1.0, abs=1e-4)
        sigma_est = float(u @ mat @ v)
        true_sigma = float(torch.linalg.matrix_norm(mat, ord=2))
        assert true_sigma / sigma_est == pytest.approx(1.0, abs=0.05), name
    assert model is not None


@pytest.mark.parametrize("dtype", [torch.int8, torch.int16, torch.int32, torch.int64])
def test_smooth_targets_takes_integer_labels_of_any_width(dtype):
    from harness.regularizers.label_smoothing import smooth_targets

    y = torch.tensor([0, 2, 1], dtype=dtype)
    out = smooth_targets(y, 3, 0.3)
    expected = torch.full((3, 3), 0.1)
    expected[torch.arange(3), y.long()] = 0.8
    assert torch.allclose(out, expected)
