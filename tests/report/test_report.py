"""Report: numbers recomputed independently from the run files, self-contained HTML,
diagnosis rules on constructed curves, and the end-of-run analysis metrics."""

from __future__ import annotations

import json
import math
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from scipy import stats as sps

from harness.config import RunConfig, build_run_config
from harness.regularizers.base import REGULARIZERS
from harness.report import build_index, build_report
from harness.report import diagnosis as dg
from harness.report.vocabulary import Effect, judge
from harness.stats.compare import compare, mean_ci, pairwise_disagreement
from harness.train import build
from harness.train.analysis import (
    expected_calibration_error,
    final_analysis,
    load_predictions,
    loss_threshold_auc,
    save_predictions,
    summary_entries,
)
from harness.train.loop import train_run

SEEDS = (0, 1)
EPOCHS = 4


def _raw(variant: str, seed: int, extra: dict) -> dict:
    raw = {"study": "t", "variant": variant, "seed": seed,
           "data": {"name": "mnist1d", "num_samples": 600},
           "model": {"name": "mlp", "width": 16},
           "optim": {"lr": 0.01},
           "train": {"epochs": EPOCHS, "threads": 1, "batch_size": 64},
           "tracking": {"wandb": "disabled"}}
    for k, v in extra.items():
        section, key = k.split(".", 1)
        if section == "regularizers":
            name, param = key.split(".")
            raw.setdefault("regularizers", {}).setdefault(name, {})[param] = v
        else:
            raw.setdefault(section, {})[key] = v
    return raw


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    results = tmp_path_factory.mktemp("results")
    other = ({"regularizers.dropout.p": 0.5} if "dropout" in REGULARIZERS
             else {"model.width": 32})
    variants = {"baseline": {}, "dropout": other}
    for name, extra in variants.items():
        for seed in SEEDS:
            cfg = build_run_config(_raw(name, seed, extra))
            res = train_run(cfg, results_dir=results)
            if "final_ece" not in res.summary:  # loop not wired yet: do what it will do
                data = build.build_data(cfg, None, torch.device("cpu"))
                scalars, preds = final_analysis(res.model, data, cfg)
                save_predictions(res.run_dir.path, preds)
                res.run_dir.write_summary({**res.summary, **summary_entries(scalars)})
    sdir = results / "t"
    base_cfg = json.loads(next((sdir / "runs").glob("baseline-s0-*/config.json")).read_text())
    (sdir / "study.json").write_text(json.dumps({
        "name": "t", "description": "Does dropout help a tiny MLP on MNIST-1D?",
        "design": {"kind": "one_at_a_time"}, "base": base_cfg, "seeds": list(SEEDS),
        "baseline": "baseline",
        "variants": [{"name": "baseline", "overrides": {}, "swept": {}, "is_baseline": True},
                     {"name": "dropout", "overrides": other, "swept": {}, "is_baseline": False}],
        "harness_version": "test", "created_at": "2024-01-01T00:00:00"}))
    # A diverged, a failed and an unfinished run: listed, counted, never in the means.
    # Each is a genuine run folder: its config hashes to its id, its metrics match its summary.
    src = next((sdir / "runs").glob("dropout-s0-*"))
    for seed, summary, n_rows in (
            (7, {"status": "diverged", "diverged_epoch": 3, "epochs_run": 2, "wall_time": 1.0}, 2),
            (8, {"status": "failed", "epochs_run": 1, "wall_time": 0.5,
                 "error": "RuntimeError: boom at step 9"}, 1),
            (9, None, EPOCHS)):
        cfg = json.loads((src / "config.json").read_text())
        cfg["seed"] = seed
        cfg["run_id"] = RunConfig.model_validate(
            {k: v for k, v in cfg.items() if k != "run_id"}).run_id()
        d = sdir / "runs" / f"dropout-s{seed}-{cfg['run_id']}"
        d.mkdir()
        (d / "config.json").write_text(json.dumps(cfg))
        pd.read_csv(src / "metrics.csv").head(n_rows).to_csv(d / "metrics.csv", index=False)
        if summary is not None:
            (d / "summary.json").write_text(json.dumps({**summary, "run_id": cfg["run_id"]}))
    paths = build_report(sdir)
    return sdir, paths


def _independent(sdir: Path) -> pd.DataFrame:
    rows = []
    for d in sorted((sdir / "runs").iterdir()):
        cfg = json.loads((d / "config.json").read_text())
        if not (d / "summary.json").is_file():
            continue
        s = json.loads((d / "summary.json").read_text())
        if s["status"] != "completed":
            continue
        m = pd.read_csv(d / "metrics.csv")
        last = m.iloc[-1]
        rows.append({"variant": cfg["variant"], "seed": cfg["seed"],
                     "best_test_acc": s["best_test_acc"], "best_test_loss": s["best_test_loss"],
                     "last_test_acc": m["test_acc"].iloc[-1],
                     "last_test_loss": m["test_loss"].iloc[-1],
                     "gap_loss": last["val_loss"] - last["train_eval_loss"],
                     "gap_acc": last["train_eval_acc"] - last["val_acc"],
                     "best_epoch": s["best_epoch"], "ece": s["final_ece"],
                     "mia_advantage": s["final_mia_advantage"],
                     "shift_acc": s["final_shift_acc"], "params": s["params"],
                     "flops": s["flops"], "wall_time": s["wall_time"]})
    return pd.DataFrame(rows)


def test_summary_csv_equals_independent_recomputation(study):
    sdir, _ = study
    summary = pd.read_csv(sdir / "summary.csv").set_index("variant")
    runs = _independent(sdir)
    assert set(summary.index) == {"baseline", "dropout"}
    for variant, g in runs.groupby("variant"):
        row = summary.loc[variant]
        n = len(g)
        assert n == len(SEEDS) == row["n_included"]
        for metric in ("best_test_acc", "best_test_loss", "last_test_acc", "last_test_loss",
                       "gap_loss", "gap_acc", "best_epoch", "ece", "mia_advantage",
                       "shift_acc", "params", "flops", "wall_time"):
            x = g[metric].astype(float)
            half = sps.t.ppf(0.975, n - 1) * x.std(ddof=1) / math.sqrt(n)
            assert row[f"{metric}_mean"] == pytest.approx(x.mean(), rel=1e-9, abs=1e-12), metric
            assert row[f"{metric}_ci95"] == pytest.approx(half, rel=1e-9, abs=1e-12), metric
            assert row[f"{metric}_n"] == n
    assert summary.loc["dropout", "n_runs"] == 5
    assert summary.loc["dropout", "n_diverged"] == 1
    assert summary.loc["dropout", "n_failed"] == 1
    assert summary.loc["dropout", "n_incomplete"] == 1
    # Paired t-test against the baseline, matched by seed.
    a = runs[runs.variant == "dropout"].sort_values("seed")["best_test_acc"].to_numpy()
    b = runs[runs.variant == "baseline"].sort_values("seed")["best_test_acc"].to_numpy()
    assert summary.loc["dropout", "delta"] == pytest.approx((a - b).mean())
    if not np.allclose(a - b, (a - b)[0]):
        assert summary.loc["dropout", "p_value"] == pytest.approx(sps.ttest_rel(a, b).pvalue)
        assert summary.loc["dropout", "test"] == "paired t"
    # Sorted by best-val test accuracy, best first.
    means = summary["best_test_acc_mean"].to_numpy()
    assert list(means) == sorted(means, reverse=True)
    # Disagreement between the two seeds, counted by hand from the saved predictions.
    for variant in ("baseline", "dropout"):
        p0, p1 = (load_predictions(next((sdir / "runs").glob(f"{variant}-s{s}-*")))
                  for s in SEEDS)
        assert summary.loc[variant, "disagreement"] == pytest.approx(
            (p0 != p1).sum().item() / p0.numel())


def test_runs_csv_has_one_row_per_run(study):
    sdir, _ = study
    runs = pd.read_csv(sdir / "runs.csv")
    assert len(runs) == len(list((sdir / "runs").iterdir())) == 7
    assert set(runs["status"]) == {"completed", "diverged", "failed", "incomplete"}


def test_html_is_self_contained(study):
    sdir, paths = study
    html = paths.html.read_text()
    assert 'id="compact"' in html and "baseline" in html and "dropout" in html
    assert len(paths.figures) >= 4  # loss, accuracy, gap, reliability
    png = [f for f in paths.figures if f.suffix == ".png"]
    svg = [f for f in paths.figures if f.suffix == ".svg"]
    assert len(png) + len(svg) == len(paths.figures) and svg  # reliability diagrams inline
    assert html.count("data:image/png;base64,") == len(png)
    assert len(re.findall(r"<img ", html)) == len(png)
    assert html.count('<svg xmlns="http://www.w3.org/2000/svg" class="reliability"') == len(svg)
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", html)
    assert "@import" not in html and "url(http" not in html and "<script" not in html
    assert "@media print" in html
    assert "Does dropout help" in html
    assert paths.headline in html


def test_markdown_references_existing_pngs(study):
    sdir, paths = study
    md = paths.markdown.read_text()
    refs = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", md)
    assert len(refs) == len(paths.figures)
    for ref in refs:
        assert ref.endswith((".png", ".svg")) and (sdir / ref).is_file()
    assert "| baseline" in md or "**baseline**" in md


def test_failed_and_diverged_runs_are_listed(study):
    _, paths = study
    for text in (paths.html.read_text(), paths.markdown.read_text()):
        assert "diverged" in text and "RuntimeError: boom at step 9" in text
        assert "incomplete" in text
        assert "seed 7 diverged at epoch 3" in text  # cited by the instability diagnosis


def test_index_lists_the_study(study):
    sdir, paths = study
    index = (sdir.parent / "index.html").read_text()
    assert 'href="t/report.html"' in index
    assert paths.headline.split(",")[0] in index


def test_robust_to_one_seed_no_baseline_and_missing_files(study, tmp_path):
    sdir, _ = study
    solo = tmp_path / "solo"
    src = next((sdir / "runs").glob("dropout-s0-*"))
    shutil.copytree(src, solo / "runs" / src.name)
    (solo / "runs" / src.name / "test_predictions.pt").unlink(missing_ok=True)
    half = solo / "runs" / "other-s0-abc"
    half.mkdir()
    (half / "config.json").write_text(json.dumps({"variant": "other", "seed": 0}))
    paths = build_report(solo)
    summary = pd.read_csv(paths.summary_csv)
    assert set(summary["variant"]) == {"dropout"}  # a folder with no run id is not trusted
    runs = pd.read_csv(paths.runs_csv).set_index("variant")
    assert runs.loc["other", "reason"] == "config.json has no run id"
    assert "config.json has no run id" in paths.html.read_text()
    assert "no baseline" in paths.headline
    assert "n/a" in paths.html.read_text()
    empty = tmp_path / "empty"
    (empty / "runs").mkdir(parents=True)
    assert "No completed runs" in build_report(empty).headline
    assert build_index(tmp_path).is_file()


# ----------------------------------------------------------------------------- diagnosis


def _curve(train, val, acc=None):
    n = len(train)
    return pd.DataFrame({"epoch": range(1, n + 1), "train_loss": train, "val_loss": val,
                         "train_acc": acc if acc is not None else [0.9] * n,
                         "val_acc": [0.8] * n})


def test_diagnosis_overfitting_cites_epoch():
    train = [1.0, 0.6, 0.4, 0.2, 0.1, 0.05, 0.02]
    val = [1.0, 0.5, 0.31, 0.35, 0.42, 0.48, 0.52]
    kinds = {f.kind: f for f in dg.diagnose(_curve(train, val))}
    assert "overfitting" in kinds
    msg = kinds["overfitting"].message
    assert "0.31 at epoch 3" in msg and "0.52 at epoch 7" in msg and "0.4 -> 0.02" in msg
    assert "more regularization" in kinds["overfitting"].advice


def test_diagnosis_underfitting_on_flat_train_loss():
    flat = [2.3, 2.29, 2.28, 2.28, 2.27]
    kinds = {f.kind for f in dg.diagnose(_curve(flat, flat, acc=[0.1] * 5))}
    assert "underfitting" in kinds and "overfitting" not in kinds


def test_diagnosis_instability_spike_and_nan():
    spiky = _curve([1.0, 0.8, 0.6, 1.5, 0.5], [1.0, 0.8, 0.6, 1.2, 0.5])
    f = dg.instability([("seed 0", spiky)])
    assert f is not None and "epoch 4" in f.message and "0.6 -> 1.5" in f.message
    nan = _curve([1.0, 0.8, float("nan")], [1.0, 0.9, float("nan")])
    assert "non-finite" in dg.instability([("seed 1", nan)]).message
    kinds = {x.kind for x in dg.diagnose(_curve([1.0, 0.5, 0.3], [1.0, 0.6, 0.4]),
                                         failures=["seed 2 diverged at epoch 3"])}
    assert "instability" in kinds and "healthy" not in kinds
    # An early-epoch jump (epoch <= SPIKE_AFTER_EPOCH) is not a spike.
    assert dg.instability([("s", _curve([1.0, 1.6, 0.5], [1, 1, 1]))]) is None


def test_diagnosis_no_significant_effect_and_healthy():
    good = _curve([1.0, 0.5, 0.3, 0.2], [1.0, 0.6, 0.45, 0.4])
    c = compare({0: 0.80, 1: 0.82, 2: 0.79}, {0: 0.81, 1: 0.80, 2: 0.80})
    assert c.p >= 0.05
    undecided = judge(Effect(c.diff, c.ci_lo, c.ci_hi, c.p, c.p, c.n_pairs, margin=0.01))
    kinds = [f.kind for f in dg.diagnose(good, judgement=undecided)]
    assert undecided.word == "undecided" and kinds == ["healthy", "undecided"]
    assert [f.kind for f in dg.diagnose(good)] == ["healthy"]
    sig = judge(Effect(0.05, 0.03, 0.07, 0.001, 0.001, 3))
    assert [f.kind for f in dg.diagnose(good, judgement=sig)] == ["healthy", "effect"]


# ----------------------------------------------------------------------------- statistics


def test_mean_ci_and_compare():
    ci = mean_ci([0.8, 0.82, 0.9])
    x = np.array([0.8, 0.82, 0.9])
    assert ci.half == pytest.approx(sps.t.ppf(0.975, 2) * x.std(ddof=1) / math.sqrt(3))
    one = mean_ci([0.5, None, float("nan")])
    assert one.n == 1 and math.isnan(one.half)
    c = compare({0: 0.9, 1: 0.8}, {5: 0.7, 6: 0.75})  # no shared seeds: Welch
    assert c.test == "welch t"
    assert compare({0: 0.9}, {0: 0.8}).test == "n/a"


def test_ece_matches_hand_computation():
    probs = torch.tensor([[0.9, 0.05, 0.05], [0.9, 0.05, 0.05], [0.58, 0.32, 0.1],
                          [0.55, 0.45, 0.0]])
    labels = torch.tensor([0, 1, 0, 2])
    # Bins of width 1/15: 0.9 -> (13/15, 14/15]; 0.58 and 0.55 -> (8/15, 9/15].
    hand = 2 / 4 * abs(0.5 - 0.9) + 2 / 4 * abs(0.5 - (0.58 + 0.55) / 2)
    ece, bins = expected_calibration_error(probs, labels)
    assert ece == pytest.approx(hand)
    assert bins["count"][13] == 2 and bins["count"][8] == 2 and sum(bins["count"]) == 4


def test_mia_auc_matches_sklearn():
    from sklearn.metrics import roc_auc_score

    gen = torch.Generator().manual_seed(0)
    members = torch.rand(50, generator=gen).round(decimals=1)  # ties on purpose
    non = (torch.rand(40, generator=gen) + 0.2).round(decimals=1)
    labels = [1] * 50 + [0] * 40
    expected = roc_auc_score(labels, -torch.cat([members, non]).numpy())
    assert loss_threshold_auc(members, non) == pytest.approx(expected)


def test_disagreement_matches_hand_count():
    a, b, c = torch.tensor([0, 1, 2, 3]), torch.tensor([0, 1, 2, 0]), torch.tensor([1, 1, 0, 0])
    # a-b: 1/4, a-c: 3/4, b-c: 2/4 -> mean 0.5
    assert pairwise_disagreement([a, b, c]) == pytest.approx(0.5)
    assert math.isnan(pairwise_disagreement([a]))


def test_final_analysis_on_a_real_model(study, tmp_path):
    sdir, _ = study
    cfg = build_run_config(_raw("baseline", 0, {}))
    data = build.build_data(cfg, None, torch.device("cpu"))
    from harness.models import create_model

    model = create_model("mlp", input_shape=data.input_shape, num_classes=data.num_classes,
                         width=16)
    scalars, preds = final_analysis(model, data, cfg)
    for k in ("ece", "mia_auc", "mia_advantage", "shift_acc", "flops"):
        assert scalars[k] is not None and math.isfinite(scalars[k]), k
    assert scalars["mia_advantage"] == pytest.approx(2 * (scalars["mia_auc"] - 0.5))
    assert scalars["flops"] == 2 * (40 * 16 + 16 * 16 + 16 * 10)  # 2 FLOPs per multiply-add
    assert preds.shape == (len(data.test.y),)
    save_predictions(tmp_path, preds)
    loaded = load_predictions(tmp_path)
    assert loaded.dtype == torch.int16 and torch.equal(loaded.long(), preds.long())
