"""The comparison report, checked against independent recomputations from the store."""

from __future__ import annotations

import itertools
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import SHARED_STUDY, tiny_study
from scipy import stats as sps
from sklearn.metrics import roc_auc_score

from harness.record.run_dir import list_run_dirs
from harness.report import diagnosis
from harness.report.build import build_report
from harness.study.execute import run_study
from harness.train.analysis import (
    average_ranks,
    expected_calibration_error,
    load_predictions,
    loss_threshold_auc,
)


def per_run(study_dir: Path) -> pd.DataFrame:
    """Independent recomputation: straight from summary.json and metrics.csv."""
    rows = []
    for r in list_run_dirs(study_dir):
        s, m = r.summary, pd.read_csv(r.path / "metrics.csv")
        last = m.iloc[-1]
        best = m.loc[m["epoch"] == s["best_epoch"]].iloc[0]
        rows.append({"variant": r.config["variant"], "seed": r.config["seed"],
                     "best_test_acc": best["test_acc"], "last_test_acc": last["test_acc"],
                     "best_test_loss": best["test_loss"],
                     "gap_loss": last["val_loss"] - last["train_eval_loss"],
                     "gap_acc": last["train_eval_acc"] - last["val_acc"],
                     "path": r.path})
    return pd.DataFrame(rows)


@pytest.mark.slow
def test_summary_csv_equals_an_independent_recomputation(trained_study: Path) -> None:
    summary = pd.read_csv(trained_study / "summary.csv").set_index("variant")
    runs = per_run(trained_study)
    assert len(pd.read_csv(trained_study / "runs.csv")) == len(runs) == 6  # 3 variants x 2 seeds
    for variant, g in runs.groupby("variant"):
        for metric in ("best_test_acc", "last_test_acc", "best_test_loss", "gap_loss",
                       "gap_acc"):
            values = g[metric].to_numpy(float)
            n = len(values)
            half = sps.t.ppf(0.975, n - 1) * values.std(ddof=1) / np.sqrt(n)
            assert summary.loc[variant, f"{metric}_mean"] == pytest.approx(values.mean(),
                                                                          abs=1e-6)
            assert summary.loc[variant, f"{metric}_ci95"] == pytest.approx(half, abs=1e-6)
    base = runs[runs.variant == "baseline"].set_index("seed")["best_test_acc"]
    var = runs[runs.variant == "dropout.p=0.5"].set_index("seed")["best_test_acc"]
    diff = (var - base).mean()
    p = sps.ttest_rel(var.sort_index(), base.sort_index()).pvalue
    row = summary.loc["dropout.p=0.5"]
    assert row["delta"] == pytest.approx(diff, abs=1e-6)
    assert row["p_value"] == pytest.approx(p, rel=1e-6)
    # disagreement between seeds, counted by hand from the saved predictions
    preds = [load_predictions(p) for p in runs[runs.variant == "baseline"]["path"]]
    pairs = [(a != b).float().mean().item() for a, b in itertools.combinations(preds, 2)]
    assert summary.loc["baseline", "disagreement"] == pytest.approx(np.mean(pairs), abs=1e-6)


@pytest.mark.slow
def test_html_is_self_contained_with_table_and_every_figure(trained_study: Path) -> None:
    html = (trained_study / "report.html").read_text()
    md = (trained_study / "report.md").read_text()
    figures = sorted((trained_study / "figures").glob("*.png"))
    assert len(figures) >= 4
    assert html.count("data:image/png;base64,") == len(figures)
    assert "<table" in html and "dropout.p=0.5" in html and "baseline" in html
    assert not re.search(r"""(src|href)=["']https?://""", html), "no external resources"
    for fig in figures:
        assert f"figures/{fig.name}" in md
    assert (trained_study.parent / "index.html").is_file()
    assert SHARED_STUDY in (trained_study.parent / "index.html").read_text()


def curve(train: list[float], val: list[float], acc: list[float] | None = None) -> pd.DataFrame:
    n = len(train)
    return pd.DataFrame({"epoch": range(1, n + 1), "train_loss": train, "val_loss": val,
                         "train_acc": acc or [0.9] * n, "val_acc": [0.8] * n})


def test_verdicts_follow_from_the_curves() -> None:
    over = diagnosis.diagnose(curve([1.0, 0.6, 0.3, 0.1, 0.05], [1.0, 0.7, 0.6, 0.8, 1.1]))
    assert over[0].kind == "overfitting" and "epoch 3" in over[0].message
    under = diagnosis.diagnose(curve([2.3, 2.25, 2.2, 2.2, 2.19], [2.3, 2.3, 2.3, 2.3, 2.3],
                                     [0.1] * 5))
    assert [f.kind for f in under] == ["underfitting"]
    spiky = diagnosis.diagnose(curve([1.0, 0.5, 0.4, 2.0, 0.3], [1.0, 0.6, 0.5, 0.5, 0.45]))
    assert spiky[0].kind == "instability" and "epoch 4" in spiky[0].message
    from harness.report import vocabulary
    from harness.stats.compare import compare

    c = compare({0: 0.80, 1: 0.82, 2: 0.79}, {0: 0.81, 1: 0.80, 2: 0.80})
    words = vocabulary.judge(vocabulary.Effect(c.diff, c.ci_lo, c.ci_hi, c.p, c.p, c.n_pairs,
                                               margin=0.05))
    flat = diagnosis.diagnose(curve([1.0, 0.5, 0.3], [1.0, 0.6, 0.5]), judgement=words)
    assert words.word == vocabulary.NO_EFFECT and any(f.kind == "no_effect" for f in flat)
    healthy = diagnosis.diagnose(curve([1.0, 0.5, 0.3], [1.0, 0.6, 0.5]))
    assert [f.kind for f in healthy] == ["healthy"]


def test_ece_and_membership_inference_match_hand_computations() -> None:
    probs = torch.tensor([[0.9, 0.1], [0.6, 0.4], [0.3, 0.7], [0.2, 0.8]])
    labels = torch.tensor([0, 1, 1, 1])
    ece, _ = expected_calibration_error(probs, labels)
    # 15 bins: confidences 0.9 (right), 0.6 (wrong), 0.7 (right), 0.8 (right), each alone
    hand = (abs(0.9 - 1) + abs(0.6 - 0) + abs(0.7 - 1) + abs(0.8 - 1)) / 4
    assert ece == pytest.approx(hand, abs=1e-6)  # float32 probabilities
    members = torch.tensor([0.1, 0.2, 0.5, 0.05])
    others = torch.tensor([0.3, 0.9, 0.15, 1.2, 0.4])
    y = [1] * 4 + [0] * 5
    scores = (-torch.cat([members, others])).tolist()  # low loss -> member
    assert loss_threshold_auc(members, others) == pytest.approx(roc_auc_score(y, scores))
    tied_m, tied_o = torch.tensor([0.1, 0.3, 0.3, 0.5]), torch.tensor([0.3, 0.5, 0.5, 0.7])
    tied_scores = (-torch.cat([tied_m, tied_o])).tolist()
    assert loss_threshold_auc(tied_m, tied_o) == pytest.approx(roc_auc_score(y[:4] + [0] * 4,
                                                                             tied_scores))


def test_average_ranks_match_scipy() -> None:
    from scipy.stats import rankdata

    values = torch.tensor([3.0, 1.0, 3.0, 2.0, 3.0, -1.0, 2.0])
    assert average_ranks(values).tolist() == rankdata(values.numpy()).tolist()


@pytest.mark.slow
def test_diverged_and_failed_runs_are_listed(tmp_path: Path) -> None:
    study = tiny_study("bad", seeds=1, train={"epochs": 3}, design={
        "kind": "one_at_a_time", "variants": {"huge_lr": {"optim": {"name": "sgd", "lr": 1.0e6}}}})
    run_study(study, source="t", results_dir=tmp_path, workers=1)
    paths = build_report(tmp_path / "bad", index=False)
    md = paths.markdown.read_text()
    section = md.split("## Left out, and why", 1)[1]
    assert "huge_lr" in section and "diverged" in section


@pytest.mark.slow
def test_compact_table_statistics_match_scipy_and_statsmodels(trained_study: Path) -> None:
    from statsmodels.stats.multitest import multipletests

    summary = pd.read_csv(trained_study / "summary.csv").set_index("variant")
    runs = per_run(trained_study)
    base = runs[runs.variant == "baseline"].set_index("seed")["best_test_acc"].sort_index()
    var = runs[runs.variant == "dropout.p=0.5"].set_index("seed")["best_test_acc"].sort_index()
    ref = sps.ttest_rel(var, base)
    row = summary.loc["dropout.p=0.5"]
    assert (row["delta_ci_lo"], row["delta_ci_hi"]) == pytest.approx(
        tuple(ref.confidence_interval(0.95)), abs=1e-9)
    others = summary[~summary["is_baseline"]]
    assert list(others["p_holm"]) == pytest.approx(
        list(multipletests(others["p_value"], method="holm")[1]))
    html = (trained_study / "report.html").read_text()
    compact = html.split('id="compact"', 1)[1].split("</table>", 1)[0]
    # 5 column heads + one row head per variant
    assert len(re.findall(r"<th[ >]", compact)) == 5 + len(summary)
    assert f"{row['best_test_acc_mean'] * 100:.1f}" in compact  # accuracy in percent
    assert "± 0.000" not in html


@pytest.mark.slow
def test_a_study_without_description_is_not_called_ad_hoc(tmp_path: Path) -> None:
    """study.json there, `description:` not: the subtitle says what the study is (it said
    "Ad-hoc runs (no study.json)"); without study.json it says ad-hoc runs."""
    study = tiny_study("nodesc", seeds=1, train={"epochs": 1}, description="",
                       design={"kind": "sweep", "parameter": "model.width", "values": [8]})
    run_study(study, source="t", results_dir=tmp_path, workers=1)
    subtitle = build_report(tmp_path / "nodesc", index=False).markdown.read_text().split("\n")[2]
    assert subtitle == ("A sweep study of `model.width`: 2 variants (the study file has no "
                        "description).")
    (tmp_path / "nodesc" / "study.json").unlink()
    subtitle = build_report(tmp_path / "nodesc", index=False).markdown.read_text().split("\n")[2]
    assert subtitle == "Ad-hoc runs (no study.json): variants come from the runs' configs."


def test_a_figure_with_labels_too_long_for_its_panel_says_nothing() -> None:
    """matplotlib warns when tight_layout cannot fit long labels; savefig's tight bounding
    box fits them anyway, so the warning only cluttered a study's output."""
    import warnings

    import matplotlib.pyplot as plt

    from harness.report.figures import _axes, _finish

    def long_labels():
        fig, ax = _axes()
        ax.barh(["regularizers=weight_decay,width=256 " * 6, "b"], [1.0, 2.0])
        return fig, ax

    fig, ax = long_labels()
    with warnings.catch_warnings(record=True) as plain:  # what matplotlib alone says
        warnings.simplefilter("always")
        fig.tight_layout()
    plt.close(fig)
    assert any("Tight layout not applied" in str(w.message) for w in plain)
    fig, ax = long_labels()
    with warnings.catch_warnings(record=True) as ours:
        warnings.simplefilter("always")
        png = _finish(fig, ax, "t", "x", "y")
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    assert not [w for w in ours if "Tight layout" in str(w.message)]
