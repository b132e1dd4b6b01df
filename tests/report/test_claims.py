"""Claim verdicts on constructed results (held, did not hold, undecided), the power analysis
against statsmodels and a simulation, and the claim in a built report and the index."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from harness.config import build_run_config
from harness.numerics import NUMERICS_VERSION
from harness.report import build_report
from harness.report.claims import (
    HELD,
    NOT_HELD,
    UNDECIDED,
    Verdict,
    evaluate_claims,
    min_detectable_effect,
    overall,
    range_edges,
    seeds_needed,
    seeds_to_decide,
)
from harness.stats.sequential import BETTER, NO_EFFECT, NO_GAIN, WORSE
from harness.study.claim_config import ClaimConfig, ConfirmConfig


def _runs(test: dict[str, list[float]], val: dict[str, float] | None = None) -> pd.DataFrame:
    """The runs table (study/runs_table.py) of constructed results: one row per variant x
    seed, validation accuracy per variant (the same on every seed unless given per seed)."""
    val = val or {}
    return pd.DataFrame([{"variant": v, "seed": s, "included": True, "best_test_acc": x,
                          "last_test_acc": x - 0.01, "best_val_acc": val.get(v, 0.7),
                          "ece": 0.1 + 0.01 * s, "wall_time": 2.0}
                         for v, xs in test.items() for s, x in enumerate(xs)])


def _claim(**kw) -> ClaimConfig:
    return ClaimConfig.model_validate({"metric": "test_acc", "direction": "up",
                                       "source": "Srivastava et al. 2014", **kw})


def evaluate(claim: ClaimConfig, runs: pd.DataFrame, screen: int | None = None,
             confirm: ConfirmConfig | None = None, settings=None, test_size=None) -> Verdict:
    """One claim judged as a report would; fixed seeds (all of them screen) by default."""
    names = list(dict.fromkeys(runs["variant"]))
    seeds = sorted(set(runs["seed"]))
    [v] = evaluate_claims([claim], runs, "baseline", seeds[:screen] if screen else seeds,
                          confirm, settings or {}, names, test_size)
    return v


BASE = [0.70, 0.72, 0.69, 0.71]


def test_held_when_the_interval_clears_zero_in_the_claimed_direction():
    up = [0.75, 0.78, 0.73, 0.76]
    v = evaluate(_claim(), _runs({"baseline": BASE, "dropout": up}))
    assert v.outcome == HELD and v.reason == BETTER
    assert (v.variant, v.reference) == ("dropout", "baseline")
    d = np.array(up) - np.array(BASE)
    assert v.diff == pytest.approx(d.mean())
    assert v.p == pytest.approx(sps.ttest_rel(up, BASE).pvalue)
    assert v.ci == pytest.approx(sps.ttest_rel(up, BASE).confidence_interval(0.95))
    assert v.level == pytest.approx(0.95) and "+5.0 pts (95% CI" in v.text
    # both checkpoints' test accuracy over the same seeds are shown beside it
    assert [a["metric"] for a in v.also] == ["best_test_acc", "last_test_acc"]
    assert v.also[1]["diff"] == pytest.approx(d.mean())


def test_did_not_hold_worse_no_effect_or_no_gain():
    down = [0.65, 0.66, 0.63, 0.66]
    v = evaluate(_claim(), _runs({"baseline": BASE, "dropout": down}))
    assert (v.outcome, v.reason) == (NOT_HELD, WORSE)
    # Inside +-1 point: no effect beyond the margin (an equivalence test).
    flat = [b + e for b, e in zip(BASE, [0.001, -0.002, 0.0015, -0.0005], strict=True)]
    v = evaluate(_claim(), _runs({"baseline": BASE, "dropout": flat}))
    assert v.p > 0.05 and -0.01 < v.ci[0] and v.ci[1] < 0.01
    assert (v.outcome, v.reason) == (NOT_HELD, NO_EFFECT) and "inside ±1.0 pts" in v.text
    # The same data with a smaller margin is undecided instead.
    v = evaluate(_claim(margin=0.0005), _runs({"baseline": BASE, "dropout": flat}))
    assert v.outcome == UNDECIDED
    # Excludes a gain of 1 point, not a loss of more than 1: no gain as large as the margin.
    lower = [b + e for b, e in zip(BASE, [-0.012, -0.001, -0.018, 0.001], strict=True)]
    v = evaluate(_claim(), _runs({"baseline": BASE, "dropout": lower}))
    assert v.ci[1] < 0.01 and v.ci[0] < -0.01 and v.ci[1] > 0
    assert (v.outcome, v.reason) == (NOT_HELD, NO_GAIN)
    assert "excludes a gain of 1.0 pts or more (a loss is not ruled out)" in v.text
    # A claim that accuracy falls, on the mirrored data: its gain is a fall, said so beside
    # the difference as measured (double_descent_width's claim read "excludes a gain" of a
    # +2.1 pts difference whose interval reached +4.3).
    higher = [2 * b - x for b, x in zip(BASE, lower, strict=True)]
    v = evaluate(_claim(direction="down"), _runs({"baseline": BASE, "dropout": higher}))
    assert (v.outcome, v.reason) == (NOT_HELD, NO_GAIN) and v.ci[0] > -0.01
    assert "excludes a fall of 1.0 pts or more, the claimed direction (a rise is not ruled " \
        "out)" in v.text


def test_undecided_says_how_many_seeds_would_decide_the_observed_effect():
    noisy = [0.74, 0.70, 0.73, 0.69]  # +4, -2, +4, -2 points
    v = evaluate(_claim(), _runs({"baseline": BASE, "dropout": noisy}))
    assert v.outcome == UNDECIDED
    d = np.array(noisy) - np.array(BASE)
    sd = float(np.std(d, ddof=1))
    need = seeds_to_decide(d.mean(), sd, 0.01)
    assert v.seeds_needed == need == seeds_needed(d.mean(), sd)  # the observed +1 pt
    assert f"about {need} confirmation seeds would decide the observed +1.0 pts" in v.text
    # the time: 2 runs per added seed at the study's own 2 s per run
    assert f"{2 * (need - 4)} more runs" in v.text
    # One seed: nothing to test.
    v = evaluate(_claim(), _runs({"baseline": BASE[:1], "dropout": noisy[:1]}))
    assert v.outcome == UNDECIDED and "at least 2" in v.text


def test_direction_down_and_a_margin_in_the_metrics_units():
    runs = _runs({"baseline": BASE, "ls": BASE})
    runs.loc[runs["variant"] == "ls", "ece"] -= [0.05, 0.06, 0.04, 0.05]
    assert evaluate(_claim(metric="ece", direction="down", margin=0.01), runs).reason == BETTER
    assert evaluate(_claim(metric="ece", direction="up", margin=0.01), runs).reason == WORSE
    with pytest.raises(ValueError, match="margin: required for metric 'ece'"):
        _claim(metric="ece", direction="down")
    with pytest.raises(ValueError, match="min_effect: renamed; write margin"):
        _claim(min_effect=0.01)


def test_each_side_is_its_best_on_validation_not_on_test():
    test = {"baseline": BASE, "l2_a": [0.80, 0.81, 0.79, 0.80], "l2_b": [0.74, 0.76, 0.73, 0.75],
            "dec_a": [0.72, 0.73, 0.71, 0.72], "dec_b": [0.77, 0.78, 0.76, 0.77]}
    val = {"baseline": 0.7, "l2_a": 0.70, "l2_b": 0.75, "dec_a": 0.80, "dec_b": 0.70}
    v = evaluate(_claim(variants=["dec_*"], versus=["l2_*"]), _runs(test, val))
    assert (v.variant, v.reference) == ("dec_a", "l2_b")  # highest val, not highest test
    assert v.diff == pytest.approx(np.mean(np.array(test["dec_a"]) - np.array(test["l2_b"])))


def test_with_fixed_seeds_a_choice_is_paid_for_with_bonferroni():
    """Three candidates, fixed seeds: the validation pick is tested at alpha/3; with one
    candidate nothing changes."""
    test = {"baseline": BASE, "a": [0.72, 0.75, 0.70, 0.72], "b": BASE, "c": BASE}
    val = {"baseline": 0.7, "a": 0.8, "b": 0.7, "c": 0.7}
    runs = _runs(test, val)
    raw = sps.ttest_rel(test["a"], BASE).pvalue
    assert 0.05 / 3 < raw < 0.05  # significant alone, not after the choice among three
    v = evaluate(_claim(), runs)
    assert v.variant == "a" and v.p == pytest.approx(3 * raw) and v.outcome == UNDECIDED
    assert v.level == pytest.approx(1 - 0.05 / 3) and "(Bonferroni)" in v.text
    alone = evaluate(_claim(variants=["a"]), runs)
    assert alone.p == pytest.approx(raw) and alone.outcome == HELD


def test_with_confirmation_the_choice_uses_screening_seeds_and_the_test_fresh_ones():
    """Seeds 0-1 screen (b looks best there on validation), seeds 2-6 confirm: the verdict
    uses only the confirmation seeds, unadjusted, and the screening seeds of the chosen
    variant never enter it."""
    rng = np.random.default_rng(1)
    rows = []
    for v, gain in (("baseline", 0.0), ("a", 0.0), ("b", 0.03)):
        for s in range(7):
            luck = rng.normal(0, 0.005)
            val = 0.7 + gain + luck + (0.05 if (v == "a" and s >= 2) else 0.0)
            rows.append({"variant": v, "seed": s, "included": True,
                         "best_test_acc": 0.7 + gain + luck + (0.2 if s < 2 else 0.0),
                         "last_test_acc": 0.7, "best_val_acc": val, "wall_time": 1.0})
    runs = pd.DataFrame(rows)
    confirm = ConfirmConfig(min=5, max=5, step=1)
    [v] = evaluate_claims([_claim()], runs, "baseline", [0, 1], confirm, {},
                          ["baseline", "a", "b"])
    assert v.variant == "b" and v.chose and v.pairs == 2 and v.screen_seeds == 2
    by = {(r["variant"], r["seed"]): r["best_test_acc"] for r in rows}
    d = np.array([by["b", s] - by["baseline", s] for s in range(2, 7)])
    assert v.n_pairs == 5 and v.diff == pytest.approx(d.mean())
    lo, hi = sps.ttest_1samp(d, 0).confidence_interval(0.95)  # one look: the 95% interval
    assert v.ci == pytest.approx((lo, hi)) and v.outcome == HELD
    assert "then tested on fresh confirmation seeds" in v.text and "Bonferroni" not in v.text


def test_a_best_setting_at_the_edge_of_its_range_is_flagged():
    settings = {f"wd{i}": {"regularizers.weight_decay.value": x, "optim.lr": 0.003}
                for i, x in enumerate([0.01, 0.1, 1.0])}
    assert range_edges("wd1", list(settings), settings) == []
    [line] = range_edges("wd2", list(settings), settings)
    assert "largest value tried (0.01 to 1)" in line
    assert "smallest value tried" in range_edges("wd0", list(settings), settings)[0]
    assert range_edges("wd0", ["wd0", "wd1"], settings) == []  # two values: no range to judge


def test_min_detectable_effect_matches_statsmodels_and_a_simulation():
    power = pytest.importorskip("statsmodels.stats.power")
    for n in (2, 3, 5, 10):
        d = power.TTestPower().solve_power(nobs=n, alpha=0.05, power=0.8)
        assert min_detectable_effect(n, 0.02) == pytest.approx(d * 0.02, rel=1e-4)
    rng = np.random.default_rng(0)
    sd, n = 0.02, 5
    mde = min_detectable_effect(n, sd)
    diffs = rng.normal(mde, sd, size=(40000, n))
    p = sps.ttest_1samp(diffs, 0, axis=1).pvalue
    assert np.mean(p < 0.05) == pytest.approx(0.8, abs=0.01)
    need = seeds_needed(0.01, sd)
    assert min_detectable_effect(need, sd) <= 0.01 < min_detectable_effect(need - 1, sd)
    assert math.isnan(min_detectable_effect(1, sd)) and seeds_needed(0.01, 0.0) is None


def test_overall_word():
    assert overall([]) == "no claim"
    runs = _runs({"baseline": BASE, "d": [0.75, 0.78, 0.73, 0.76]})
    v = evaluate(_claim(), runs)
    assert overall([v, v]) == HELD
    assert overall([v, evaluate(_claim(direction="down"), runs)]) == "mixed (held, did not hold)"


# ----------------------------------------------------------------------------- in a report


def _fake_study(sdir: Path, test: dict[str, list[float]], claims: list[dict]) -> None:
    """A study folder written by hand: study.json plus finished run folders."""
    variants = []
    for name, accs in test.items():
        variants.append({"name": name, "overrides": {}, "swept": {},
                         "is_baseline": name == "baseline"})
        for seed, acc in enumerate(accs):
            cfg = build_run_config({
                "study": sdir.name, "variant": name, "seed": seed,
                "data": {"name": "mnist1d", "train_size": 1000, "label_noise": 0.1},
                "model": {"name": "mlp", "width": 256}, "train": {"epochs": 60},
                "regularizers": {} if name == "baseline" else {"dropout": {"p": 0.3}}}, "test")
            d = sdir / "runs" / f"{name}-s{seed}-{cfg.run_id()}"
            d.mkdir(parents=True)
            (d / "config.json").write_text(json.dumps({  # stamped as the store stamps it
                "run_id": cfg.run_id(), "numerics": NUMERICS_VERSION,
                **cfg.model_dump(mode="json")}))
            (d / "metrics.csv").write_text("epoch,train_loss,train_acc,val_loss,val_acc,test_loss,"
                                           f"test_acc\n1,1.0,0.5,1.1,{acc},1.2,{acc}\n")
            (d / "summary.json").write_text(json.dumps({
                "status": "completed", "best_test_acc": acc, "best_val_acc": acc,
                "best_val_loss": 1.1, "best_test_loss": 1.2,
                "best_epoch": 1, "final_ece": 0.05, "final_ece_ts": 0.02, "final_nll": 0.9,
                "final_nll_ts": 0.85, "final_confidence": 0.6, "final_accuracy": acc,
                "final_overconfidence": 0.6 - acc, "final_temperature": 1.3,
                "wall_time": 1.0}))
    (sdir / "study.json").write_text(json.dumps({
        "name": sdir.name, "description": "constructed", "design": {"kind": "one_at_a_time"},
        "base": {"data": {"name": "mnist1d", "train_size": 1000, "label_noise": 0.1},
                 "model": {"name": "mlp", "width": 256}, "train": {"epochs": 60}},
        "seeds": [0, 1, 2, 3], "baseline": "baseline", "variants": variants,
        "claims": claims}))


@pytest.mark.slow
def test_report_states_the_verdict_first_and_the_index_lists_it(tmp_path):
    sdir = tmp_path / "results" / "constructed"
    _fake_study(sdir, {"baseline": BASE, "dropout": [0.75, 0.78, 0.73, 0.76]},
                [{"metric": "test_acc", "direction": "up", "source": "Srivastava et al. 2014",
                  "statement": "dropout improves test accuracy"}])
    paths = build_report(sdir)
    html = paths.html.read_text()
    claim_at = html.index("dropout improves test accuracy")
    assert claim_at < html.index("Study setup")
    assert "held" in html[claim_at - 300:claim_at + 600]
    assert "Srivastava et al. 2014" in html
    assert "Srivastava et al. 2014" in paths.markdown.read_text()
    saved = json.loads((sdir / "claims.json").read_text())
    assert saved["overall"] == HELD and saved["claims"][0]["variant"] == "dropout"
    index = paths.index.read_text()
    assert "<strong>Claim:</strong> held" in index
    # The regime is in the headline; the calibration columns are in summary.csv.
    assert "1000 training samples" in paths.headline and "10% label noise" in paths.headline
    assert "60 epochs" in paths.headline
    summary = pd.read_csv(paths.summary_csv)
    assert summary.loc[summary["variant"] == "dropout", "ece_ts_mean"].item() == \
        pytest.approx(0.02)
    assert "overconfidence_mean" in summary and "temperature_mean" in summary
    # The calibration section states the direction: confidence 0.6 < accuracy ~0.75.
    calib = html[html.index("<h2>Calibration</h2>"):]
    assert "under-confident" in calib[:3000] and "over-confident</td>" not in calib[:3000]


def test_regime_names_model_data_noise_and_epochs():
    from harness.report.regime import regime

    base = {"data": {"name": "mnist1d", "train_size": None, "label_noise": 0.0},
            "model": {"name": "cnn", "width": 32, "depth": None}, "train": {"epochs": 30}}
    assert regime(base, {"train": 3600, "val": 400, "test": 1000}) == (
        "Regime: cnn (width 32) on mnist1d, the full training set (3600 samples), "
        "clean labels, 30 epochs.")
    base["data"].update(train_size=1000, label_noise=0.2)
    assert "1000 training samples, 20% label noise" in regime(base)
    base["train"]["epochs"] = 1
    assert regime(base).endswith(", 1 epoch.")


# ----------------------------------------------------------------------------- study files


def test_every_shipped_ablation_study_has_a_claim_with_a_source():
    from harness.study.plan import expand
    from harness.study.spec import list_studies, load_study

    names = [n for n, _ in list_studies(kind="ablation")]
    assert len(names) >= 20
    for name in names:
        study = load_study(name)
        assert study.claim and all(c.source.strip() for c in study.claim), name
        expand(study, name)  # every claim pattern names a variant


@pytest.mark.parametrize("claim, message", [
    ("{metric: test_acx, direction: up, source: X}",
     "claim.0.metric = 'test_acx': Input should be"),
    ("{metric: ece, direction: sideways, source: X, margin: 0.01}",
     "claim.0.direction = 'sideways'"),
    ("{metric: ece, direction: up, margin: 0.01}", "claim.0.source: required"),
    ("{metric: ece, direction: up, source: X, margin: 0.01, variantz: [a]}",
     "unknown key 'claim.0.variantz' (did you mean 'variants'?)"),
    ("[{metric: ece, direction: down, source: X, margin: 0.01, variants: 'nope*'}]",
     "claim.0.variants: 'nope*' matches no variant; variants: baseline, dropout.p=0.1"),
])
def test_a_bad_claim_is_one_line_naming_the_file_and_key(tmp_path, claim, message):
    from harness.errors import ConfigError
    from harness.study.plan import expand
    from harness.study.spec import load_study

    path = tmp_path / "s.yaml"
    path.write_text("design: {kind: sweep, parameter: regularizers.dropout.p, values: [0.1]}\n"
                    f"claim: {claim}\n")
    with pytest.raises(ConfigError) as err:
        expand(load_study(path), str(path))
    text = str(err.value)
    assert text.startswith(str(path)) and message in text and "\n" not in text



@pytest.mark.parametrize("claim, message", [
    ("{metric: ece, direction: down, source: X}", "claim.0: margin: required for metric 'ece'"),
    ("{metric: test_acc, direction: up, source: X, min_effect: 0.01}",
     "claim.0: min_effect: renamed; write margin"),
])
def test_a_claim_states_its_margin_in_the_metrics_units(tmp_path, claim, message):
    test_a_bad_claim_is_one_line_naming_the_file_and_key(tmp_path, claim, message)

def test_strength_grid_picks_the_best_lambda_per_lr_on_validation(tmp_path):
    from harness.report import strength_grid

    rng = np.random.default_rng(0)
    rows, settings = [], {}
    for mode, lams in (("l2", [1e-4, 1e-3, 1e-2]), ("decoupled", [0.1, 1.0, 3.0])):
        for lr in (0.001, 0.01):
            for lam in lams:
                name = f"{mode}_{lam:g}_{lr:g}"
                settings[name] = {"optim.lr": lr, "regularizers.weight_decay.value": lam,
                                  "regularizers.weight_decay.mode": mode}
                rows.append({"variant": name, "best_val_acc_mean": rng.uniform(0.5, 0.7),
                             "best_test_acc_mean": rng.uniform(0.5, 0.7)})
    settings["baseline"] = {"optim.lr": 0.003}
    summary = pd.DataFrame(rows + [{"variant": "baseline", "best_val_acc_mean": 0.9,
                                    "best_test_acc_mean": 0.9}])
    best = strength_grid.best_per_lr(strength_grid.grid_frame(summary, settings))
    frame = pd.DataFrame(rows).assign(**{
        k: [settings[v][key] for v in (r["variant"] for r in rows)]
        for k, key in (("lr", "optim.lr"), ("lam", "regularizers.weight_decay.value"),
                       ("mode", "regularizers.weight_decay.mode"))})
    for (mode, lr), g in frame.groupby(["mode", "lr"]):
        expected = g.loc[g["best_val_acc_mean"].idxmax(), "lam"]
        got = best[(best["mode"] == mode) & (best["lr"] == lr)]
        assert got["strength"].item() == expected
        assert got["edge"].item() == ("" if expected == sorted(g["lam"])[1] else
                                      "lower" if expected == min(g["lam"]) else "upper")
    section = strength_grid.section(summary, settings, tmp_path)
    assert section["figures"][0]["path"].read_bytes()[:4] == b"\x89PNG"
    assert "| l2 | 0.001 |" in section["markdown"]


def test_the_confirmation_table_words_each_look_as_the_claim_box_does(tmp_path):
    """A held claim that accuracy falls: the test's reason is "better" (with the claim), the
    report's word "worse" (the metric fell); the look table must not say "better"."""
    from harness.report import claim_words, confirmation

    fall = [x - 0.136 + 0.002 * i for i, x in enumerate(BASE * 2)]
    claim = _claim(direction="down", variants=["no_norm"])
    v = evaluate(claim, _runs({"baseline": BASE * 2, "no_norm": fall}), screen=3,
                 confirm=ConfirmConfig(min=5, max=10, step=5))
    assert (v.outcome, v.reason, v.looks[-1]["state"]) == (HELD, BETTER, BETTER)
    assert claim_words.judgement(v, claim).word == "worse"
    md = confirmation.section(tmp_path, [v], ["down"])["markdown"]
    row = next(x for x in md.splitlines() if x.startswith(f"| {v.looks[-1]['n']} |"))
    assert row.endswith("| worse |")
