"""Regression tests for the trust issue's smaller items: each failed before its fix."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import stats as sps

from harness.config import build_run_config
from harness.stats.compare import compare
from harness.train.loop import train_run


def _tiny(regs: dict, **train) -> dict:
    return {"study": "sn", "data": {"name": "mnist1d", "num_samples": 600},
            "model": {"name": "mlp", "width": 32}, "regularizers": regs,
            "train": {"epochs": 3, "threads": 1, "batch_size": 64, **train},
            "tracking": {"wandb": "disabled"}}


@pytest.mark.slow
@pytest.mark.parametrize("averaging", [{"ema": {"decay": 0.9}}, {"swa": {"start_epoch": 1}}])
def test_averaged_model_keeps_spectral_norm(tmp_path, averaging):
    cfg = build_run_config(_tiny({"spectral_norm": {}, **averaging}))
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


def test_constant_nonzero_paired_difference_has_p_zero():
    a = {0: 0.5, 1: 0.6, 2: 0.7}
    b = {0: 0.4, 1: 0.5, 2: 0.6}
    c = compare(a, b)
    expected = sps.ttest_rel(np.array([0.5, 0.6, 0.7]), np.array([0.4, 0.5, 0.6])).pvalue
    assert c.diff == pytest.approx(0.1)
    assert c.p == expected == 0.0
    assert c.significant is True
    assert compare({0: 0.5, 1: 0.6}, {0: 0.5, 1: 0.6}).p == 1.0
    assert math.isnan(compare({0: 0.5}, {0: 0.4}).p)


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


@pytest.mark.parametrize("dtype", [torch.int8, torch.int16, torch.int32, torch.int64])
def test_smooth_targets_takes_integer_labels_of_any_width(dtype):
    from harness.regularizers.label_smoothing import smooth_targets

    y = torch.tensor([0, 2, 1], dtype=dtype)
    out = smooth_targets(y, 3, 0.3)
    expected = torch.full((3, 3), 0.1)
    expected[torch.arange(3), y.long()] = 0.8
    assert torch.allclose(out, expected)


def test_drop_path_refused_where_no_block_can_be_dropped():
    from harness.errors import ConfigError

    raw = {"model": {"name": "transformer1d", "depth": 1},
           "regularizers": {"drop_path": {"rate": 0.3}}}
    with pytest.raises(ConfigError, match="drop_path would do nothing"):
        build_run_config(raw)
    raw["model"]["depth"] = 2
    build_run_config(raw)


def test_model_info_default_depth_matches_the_constructor():
    import inspect

    from harness.models import MODELS

    for name, cls in MODELS.items():
        default = inspect.signature(cls.__init__).parameters.get("depth")
        if cls.info.residual and default is not None:
            assert cls.info.default_depth == default.default, name


@pytest.mark.slow
def test_a_study_keeps_its_own_thread_count(tmp_path, monkeypatch):
    """The worker's thread count fills in only when the run config leaves threads unset."""
    from harness.study import worker

    seen = []
    monkeypatch.setattr(worker, "train_run",
                        lambda cfg, **kw: seen.append(cfg.train.threads) or (_ for _ in ()).throw(
                            RuntimeError("stop")))
    monkeypatch.setattr(worker, "job_trackers", lambda *a, **k: (lambda cfg: None))

    class Q:
        def heartbeat(self, job):
            import contextlib
            return contextlib.nullcontext()

        def fail(self, *a, **k):
            pass

    class Reporter:
        def end(self, summary):
            pass

    from harness.study.plan import RunSpec

    for threads, expected in ((1, 1), (None, 2)):
        cfg = build_run_config({"study": "th", "train": {"threads": threads}})
        job = worker.Job(trial=None, spec=RunSpec("v", 0, cfg, cfg.run_id(), {}, True))
        assert worker.run_job(job, Q(), tmp_path, None, 2, Reporter()) == "failed"
        assert seen[-1] == expected
