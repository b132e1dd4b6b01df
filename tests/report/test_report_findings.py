"""Regression tests for the findings of issue 31 (report v3), one or more per finding, each on
a constructed study whose numbers reproduce what the finding saw (tests/constructed.py)."""

from __future__ import annotations

import html
import json
import re
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import REPO
from constructed import BASE as BASE_CFG
from constructed import quick_figures, run, write_study
from scipy import stats as sps

from harness.report import build_report

BASE_ACC = [0.38, 0.42, 0.457]
# Per-seed gains over the baseline: p=0.3 survives Holm (p 0.0026 -> 0.0077), p=0.5 is the
# largest gain but only before the adjustment (0.034 -> 0.069), p=0.1 is undecided (0.18).
GAINS = {0.1: [0.005, 0.045, 0.02], 0.3: [0.040, 0.045, 0.038], 0.5: [0.04, 0.08, 0.063]}
VAL = {0.0: 0.43, 0.1: 0.44, 0.3: 0.45, 0.5: 0.48}  # validation picks p = 0.5
CLAIM = {"metric": "test_acc", "direction": "up", "source": "Srivastava et al. 2014",
         "statement": "dropout at its best p improves test accuracy"}
# The text is what these tests read: figures are drawn, not rendered (constructed.py).
pytestmark = pytest.mark.usefixtures("quick_figures")
assert quick_figures  # imported for pytest to find


def sweep(sdir: Path, values: dict[float, list[float]], val: dict[float, float],
          claims: list[dict] | None, key: str = "dropout", param: str = "p",
          baseline_acc: list[float] = BASE_ACC, **run_kw) -> Path:
    runs = {"baseline": {s: run(a, val=val[0.0], **run_kw) for s, a in enumerate(baseline_acc)}}
    overrides, swept = {}, {}
    for v, gains in values.items():
        name = f"{key}.{param}={v}"
        runs[name] = {s: run(a + g, val=val[v], **run_kw)
                      for s, (a, g) in enumerate(zip(baseline_acc, gains, strict=True))}
        overrides[name] = {"regularizers": {key: {param: v}}}
        swept[name] = {f"regularizers.{key}.{param}": v}
    return write_study(sdir, runs, overrides=overrides, swept=swept, claims=claims,
                       design={"kind": "sweep", "parameter": f"regularizers.{key}.{param}",
                               "values": list(values), "baseline_value": 0.0})


@pytest.fixture(scope="module")
def dropout(tmp_path_factory: pytest.TempPathFactory, quick_figures):
    sdir = sweep(tmp_path_factory.mktemp("results") / "dropout", GAINS, VAL, [CLAIM])
    return sdir, build_report(sdir)


class Sections(HTMLParser):
    """The text of report.html's answer, claim box and compact-table rows."""

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = []
        self.text: dict[str, str] = {"answer": "", "claim": ""}
        self.rows: list[tuple[str, str]] = []  # (class, text) of the compact table's rows
        self.in_compact = False

    def handle_starttag(self, tag: str, attrs: list) -> None:
        a = dict(attrs)
        if a.get("id") in self.text:
            self.stack.append(a["id"])
        elif tag == "section" and self.stack:
            self.stack.append(self.stack[-1])
        if a.get("id") == "compact":
            self.in_compact = True
        if self.in_compact and tag == "tr":
            self.rows.append((a.get("class") or "", ""))

    def handle_endtag(self, tag: str) -> None:
        if tag == "section" and self.stack:
            self.stack.pop()
        if tag == "table":
            self.in_compact = False

    def handle_data(self, data: str) -> None:
        if self.stack:
            self.text[self.stack[-1]] += data
        if self.in_compact and self.rows:
            cls, text = self.rows[-1]
            self.rows[-1] = (cls, text + data)


def sections(html: Path) -> Sections:
    p = Sections()
    p.feed(html.read_text())
    return p


# ----------------------------------------------------------------------------- finding 1


def test_finding1_one_answer_the_validation_choice_is_best_everywhere(dropout) -> None:
    """The headline, the table's tag, the Markdown and claims.json all name the variant the
    claim chose on validation (p = 0.5), although p = 0.3 is the one better after Holm."""
    sdir, paths = dropout
    page = sections(paths.html)
    assert paths.headline.startswith("dropout p = 0.5, chosen on validation by the study's "
                                     "claim,"), paths.headline
    assert "largest gain" not in paths.html.read_text()
    tagged = [text for cls, text in page.rows if "best" in cls.split()]
    assert len(tagged) == 1 and tagged[0].strip().startswith("dropout p = 0.5 best"), page.rows
    md = paths.markdown.read_text()
    assert md.count("(best)") == 2 and "**dropout p = 0.5** (best)" in md  # table + variant
    assert json.loads((sdir / "claims.json").read_text())["chosen"] == "dropout.p=0.5"
    # the others are described relative to it: p = 0.3 is 2.0 points below on test
    others = page.text["answer"]
    gap = (np.mean(GAINS[0.5]) - np.mean(GAINS[0.3])) * 100
    assert f"dropout p = 0.3 +4.1 pts, better ({gap:.1f} points below the chosen variant)" \
        in others, others


# ----------------------------------------------------------------------------- finding 2


def test_finding2_an_effect_detected_before_adjustment_is_said_so(dropout) -> None:
    sdir, paths = dropout
    summary = pd.read_csv(sdir / "summary.csv").set_index("variant")
    base = np.array(BASE_ACC)
    raw = sps.ttest_rel(base + GAINS[0.5], base).pvalue
    row = summary.loc["dropout.p=0.5"]
    assert row["p_value"] == pytest.approx(raw) and raw < 0.05 <= row["p_holm"]
    assert row["verdict"] == "detected before adjustment only"
    assert summary.loc["dropout.p=0.3", "verdict"] == "better"
    assert summary.loc["dropout.p=0.1", "verdict"] == "undecided"
    for text in (paths.html.read_text(), paths.markdown.read_text()):
        assert "no detectable effect" not in text
        assert "inside the seed-to-seed noise" not in text
    html = paths.html.read_text()
    block = html[html.index("<h3>dropout p = 0.5"):]
    block = block[:block.index("</section>")]
    assert "detected before adjustment only" in block and "excludes 0" in block
    # the claim box uses the same word: chosen from 3 candidates, Bonferroni x3 after
    claim = sections(paths.html).text["claim"]
    assert "detected before adjustment only" in claim and "3 candidates" in claim
    assert "pairs:" not in claim and "from 3 pairs" not in claim


# ----------------------------------------------------------------------------- finding 6


def test_finding6_a_chosen_setting_at_the_edge_of_its_range_is_said_so(tmp_path: Path) -> None:
    """label_smoothing's case: validation picks the largest epsilon tried (0.3 of 0.05-0.3)
    and the study has no claim that would have said so."""
    gains = {0.05: [0.0, 0.01, 0.005], 0.1: [0.01, 0.0, 0.012], 0.2: [0.02, 0.01, 0.015],
             0.3: [0.03, 0.02, 0.025]}
    val = {0.0: 0.60, 0.05: 0.61, 0.1: 0.62, 0.2: 0.63, 0.3: 0.64}
    sdir = sweep(tmp_path / "ls", gains, val, None, key="label_smoothing", param="epsilon",
                 baseline_acc=[0.6, 0.62, 0.61])
    paths = build_report(sdir)
    answer = sections(paths.html).text["answer"]
    assert "label_smoothing epsilon = 0.3, chosen on validation" in answer
    assert "is at the edge of the range: regularizers.label_smoothing.epsilon = 0.3 is the " \
           "largest value tried (0.05 to 0.3)" in answer, answer


# ----------------------------------------------------------------------------- finding 3


def early_stopping_study(sdir: Path) -> Path:
    """A baseline trained 20 epochs whose val loss bottoms out at epoch 8 while its val
    accuracy rises to epoch 18, and two early-stopping variants (patience 3 and 10) that
    stop at 11 and 18 and both restore epoch 8: the baseline's own checkpoint."""
    from constructed import Run

    runs: dict[str, dict[int, Run]] = {"baseline": {}, "patience_3": {}, "patience_10": {}}
    for seed, test in enumerate((0.37, 0.36, 0.38)):
        full = run(test, epochs=20, val=test + 0.02, val_loss_min=8, val_acc_peak=18)
        runs["baseline"][seed] = full
        restored = full.metrics.iloc[7]  # epoch 8
        final = {f"final_{k}": float(restored[k]) for k in restored.index if k != "epoch"}
        for name, stop in (("patience_3", 11), ("patience_10", 18)):
            runs[name][seed] = Run(full.metrics.iloc[:stop].copy(),
                                   {**final, "stop_epoch": stop, "es_best_epoch": 8,
                                    "es_best_val_loss": float(restored["val_loss"])})
    es = {"monitor": "val_loss"}
    return write_study(
        sdir, runs, base={**BASE_CFG, "data": {**BASE_CFG["data"], "label_noise": 0.2},
                          "train": {"epochs": 20}},
        overrides={"patience_3": {"regularizers": {"early_stopping": {**es, "patience": 3}}},
                   "patience_10": {"regularizers": {"early_stopping": {**es, "patience": 10}}}},
        claims=[{"metric": "final_test_acc", "direction": "up", "source": "Prechelt 1998",
                 "statement": "the restored weights beat the full budget's"}],
        compare={"metric": "final_test_acc", "reference": "last_test_acc",
                 "also_against": ["best_test_acc"]})


def test_finding3_early_stopping_describes_the_restored_weights(tmp_path: Path) -> None:
    from harness.record import StudyRecord
    from harness.study.runs_table import runs_table

    sdir = early_stopping_study(tmp_path / "early_stopping")
    paths = build_report(sdir)
    runs = runs_table(StudyRecord.load(sdir)).set_index(["variant", "seed"])
    restored = runs.loc["patience_3", "final_test_acc"].to_numpy()
    best_val = runs.loc["patience_3", "best_test_acc"].to_numpy()
    base_last = runs.loc["baseline", "last_test_acc"].to_numpy()
    assert not np.allclose(restored, best_val)  # the two weights differ here
    row = next(t for c, t in sections(paths.html).rows if t.strip().startswith("patience_3"))
    cells = [c for c in row.split("\n") if c]
    acc = float(cells[1].split("±")[0])
    assert acc == pytest.approx(restored.mean() * 100, abs=0.05)  # the restored model
    delta = float(cells[2].split("[")[0])
    assert delta == pytest.approx((restored - base_last).mean() * 100, abs=0.05)
    base_row = next(t for c, t in sections(paths.html).rows if "baseline" in c)
    base_acc = float([c for c in base_row.split("\n") if c][1].split("±")[0])
    assert delta == pytest.approx(acc - base_acc, abs=0.11)  # the columns add up
    assert "restored epoch 8" in row
    # the loss gap the answer cites is the restored model's, not the discarded last epoch's
    gap_restored = (runs.loc["patience_10", "final_gap_loss"]).mean()
    gap_last = (runs.loc["patience_10", "gap_loss"]).mean()
    answer = sections(paths.html).text["answer"]
    assert f"{gap_last:.3f}" not in answer
    if "loss gap" in answer:
        assert f"{gap_restored:.3f}" in answer and "of the restored model" in answer
    # the curves mark the restored epoch; the best-val line says what chose it
    from harness.report.figure_set import markers

    marks = dict((label, epoch) for epoch, label in markers(
        StudyRecord.load(sdir), runs_table(StudyRecord.load(sdir)), "val_acc")["patience_3"])
    assert marks["restored epoch (early stopping)"] == 8
    assert marks["best-val checkpoint (val acc)"] == 11
    # what was restored, that both restore the same weights, the baseline's own, and why
    text = html.unescape(paths.html.read_text())
    assert "patience_3 and patience_10 restored identical weights" in text
    assert "so they differ by 0.0 points" in text
    assert "patience_3's restored model measures exactly as the baseline's own checkpoint" \
        in text
    assert ("Why with 20% label noise: over the full budget the baseline's val loss bottoms "
            "out at epoch 8 and its val accuracy peaks at epoch 18") in text


# ----------------------------------------------------------------------------- finding 4


def calibration_study(sdir: Path) -> Path:
    """Label smoothing at epsilon 0.3 makes a calibrated model under-confident (confidence
    0.30 below accuracy). The baseline's seeds miss in opposite directions (+0.1, -0.1,
    +0.02), so its pooled bins look calibrated while its per-run ECE is not."""
    base_over, ls_over = (0.10, -0.10, 0.02), (-0.29, -0.31, -0.30)
    accs = (0.75, 0.76, 0.74)
    runs = {"baseline": {s: run(a, calibration=(a, o), train=0.9)
                         for s, (a, o) in enumerate(zip(accs, base_over, strict=True))},
            "label_smoothing.epsilon=0.3": {
                s: run(a + 0.01, calibration=(a + 0.01, o), train=0.9)
                for s, (a, o) in enumerate(zip(accs, ls_over, strict=True))}}
    name = "label_smoothing.epsilon=0.3"
    return write_study(
        sdir, runs, overrides={name: {"regularizers": {"label_smoothing": {"epsilon": 0.3}}}},
        swept={name: {"regularizers.label_smoothing.epsilon": 0.3}},
        design={"kind": "sweep", "parameter": "regularizers.label_smoothing.epsilon",
                "values": [0.3], "baseline_value": 0.0},
        claims=[{"metric": "ece", "direction": "down", "source": "Müller et al. 2019",
                 "margin": 0.02, "statement": "label smoothing lowers the calibration error"}])


def svg_marks(html_text: str, title_start: str) -> dict:
    """The reliability SVG whose title starts with `title_start`, read as XML."""
    import xml.etree.ElementTree as ET

    for svg in re.findall(r'<svg xmlns="http://www.w3.org/2000/svg" class="reliability".*?</svg>',
                          html_text, re.S):
        root = ET.fromstring(svg)
        title = root.attrib["aria-label"]
        if html.unescape(title).startswith(title_start):
            els = list(root.iter())
            return {"title": html.unescape(title),
                    "bars": {e.attrib["data-bin"]: e for e in els
                             if e.attrib.get("class") == "acc-bar"},
                    "marks": {e.attrib["data-bin"]: e for e in els
                              if e.attrib.get("class") == "conf-mark"},
                    "legend": {c: e for e in els for c in e.attrib.get("class", "").split()
                               if c.startswith("legend-")}}
    raise AssertionError(f"no reliability diagram titled {title_start}")


def test_finding4_calibration_direction_in_words_and_a_diagram_that_shows_it(
        tmp_path: Path) -> None:
    sdir = calibration_study(tmp_path / "label_smoothing")
    paths = build_report(sdir)
    page = sections(paths.html)
    summary = pd.read_csv(sdir / "summary.csv").set_index("variant")
    over = summary.loc["label_smoothing.epsilon=0.3", "overconfidence_mean"]
    assert over == pytest.approx(-0.30)
    for part in (page.text["answer"], page.text["claim"]):
        assert "under-confident: mean confidence − accuracy −0.300" in part or \
            "is under-confident: mean confidence − accuracy −0.300" in part, part
    # The diagram: accuracy bars and confidence marks, each named by the legend, the marks
    # below the bars for an under-confident model.
    text = paths.html.read_text()
    d = svg_marks(text, "label_smoothing epsilon = 0.3")
    assert d["bars"] and set(d["bars"]) == set(d["marks"])
    for b, bar in d["bars"].items():
        mark = d["marks"][b]
        assert float(mark.attrib["data-value"]) < float(bar.attrib["data-value"])
        assert float(mark.attrib["y1"]) > float(bar.attrib["y"])  # drawn below the bar's top
    assert d["legend"]["legend-acc"].attrib["fill"] == next(iter(d["bars"].values())).attrib[
        "fill"]
    assert d["legend"]["legend-conf"].attrib["stroke"] == next(iter(d["marks"].values())) \
        .attrib["stroke"]
    assert "accuracy" in d["legend"]["legend-acc-text"].text
    assert "confidence" in d["legend"]["legend-conf-text"].text
    # One ECE everywhere: the baseline's title shows the table's mean of per-run ECEs, not
    # the ECE of its pooled bins (which cancel here).
    from harness.record import StudyRecord
    from harness.report.reliability import pooled_bins
    from harness.train.calibration import ece_from_bins

    study = StudyRecord.load(sdir)
    pooled = ece_from_bins({k: list(v) for k, v in pooled_bins(study.runs_of("baseline"))
                            .items()})
    mean = summary.loc["baseline", "ece_mean"]
    assert abs(pooled - mean) > 0.02
    assert svg_marks(text, "baseline")["title"].startswith(
        f"baseline (label_smoothing epsilon = 0): ECE {mean:.3f}")


# ----------------------------------------------------------------------------- finding 5


def test_finding5_diagnoses_do_not_contradict_themselves(tmp_path: Path) -> None:
    """spectral_norm all_layers underfits (train accuracy 48.5%) and is under-confident; the
    baseline memorizes. A healthy-looking label-smoothing variant with a wrecked calibration
    is not called healthy."""
    accs = (0.45, 0.44, 0.46)
    runs = {"baseline": {s: run(a, train=0.99, calibration=(a, 0.3 + s / 100))
                         for s, a in enumerate(accs)},
            "all_layers": {s: run(0.30 + s / 100, train=0.485, train_loss_end=1.6,
                                  gap_end=0.2, calibration=(0.3, -0.2 - s / 100))
                           for s in range(3)},
            "smooth": {s: run(a + 0.01, train=0.55, val_loss_min=8,
                              calibration=(a + 0.01, -0.3 - s / 100))
                       for s, a in enumerate(accs)}}
    sdir = write_study(tmp_path / "spectral_norm", runs, overrides={
        "all_layers": {"regularizers": {"spectral_norm": {"layers": "all"}}},
        "smooth": {"regularizers": {"label_smoothing": {"epsilon": 0.3}}}})
    paths = build_report(sdir)
    text = html.unescape(paths.html.read_text())
    block = text[text.index("<h3>all_layers"):]
    block = block[:block.index("</section>")]
    assert "underfitting" in block and "memorization" not in block
    assert "more regularization" not in block and "weaker spectral_norm" in block
    assert "under-confident" in block
    moved = re.search(r'Moved beyond seed noise:</strong></p>\s*<ul class="evidence">(.*?)</ul>',
                      block, re.S).group(1)
    for metric in ("val − train loss gap", "calibration error (ECE)"):
        item = next(x for x in re.findall(r"<li>(.*?)</li>", moved) if x.startswith(metric))
        assert "better" not in item.replace("not called better or worse", ""), item
        assert "the variant underfits (train accuracy 48.5%)" in item, item
    smooth = text[text.index("<h3>smooth"):]
    smooth = smooth[:smooth.index("</section>")]
    assert "healthy" not in smooth and "under-confident" in smooth


# ----------------------------------------------------------------------------- finding 7


NO_VAL_BASE = {"data": {"name": "mnist1d", "label_noise": 0.2, "val_fraction": 0.0},
               "model": {"name": "mlp", "width": 192, "depth": 1},
               "train": {"epochs": 10}, "tracking": {"wandb": "disabled"}}
SEED_NOISE = re.compile(r"seed noise|seed-to-seed|within seed|beyond seed", re.I)


def no_validation_study(sdir: Path, seeds: int = 1) -> Path:
    """Widths trained to interpolation without a validation split, one seed each: the wide
    ones fit every noisy label (100% train accuracy) at 45-54% test accuracy."""
    widths = {"baseline": (192, 0.50, 1.0), "mlp_w19": (19, 0.52, 0.80),
              "mlp_w48": (48, 0.455, 1.0), "mlp_w300": (300, 0.54, 1.0)}
    runs = {name: {s: run(test + s / 200, train=train, epochs=10, validation=False)
                   for s in range(seeds)} for name, (_, test, train) in widths.items()}
    return write_study(
        sdir, runs, base=NO_VAL_BASE,
        overrides={n: {"model": {"width": w}} for n, (w, _, _) in widths.items()
                   if n != "baseline"},
        claims=[{"metric": "test_acc", "direction": "down", "variants": ["mlp_w48"],
                 "versus": ["mlp_w19"], "source": "Nakkiran et al. 2019",
                 "statement": "the threshold width is worse"}])


def test_finding7_a_study_without_a_validation_split_reads_its_last_epoch(
        tmp_path: Path) -> None:
    sdir = no_validation_study(tmp_path / "double_descent")
    paths = build_report(sdir)
    summary = pd.read_csv(sdir / "summary.csv").set_index("variant")
    assert (summary["compare_metric"] == "last_test_acc").all()
    assert summary.loc["mlp_w48", "last_test_acc_mean"] == pytest.approx(0.455)
    assert "No completed runs" not in paths.headline
    page = sections(paths.html)
    for _, row in page.rows[1:]:
        float([c for c in row.split("\n") if c][1])  # every accuracy shown, no interval
    text = html.unescape(paths.html.read_text())
    wide = text[text.index("<h3>mlp_w48"):]
    wide = wide[:wide.index("</section>")]
    assert "memorization: train accuracy 100.0% vs test 45.5%" in wide and "healthy" not in wide
    for doc in (text, paths.markdown.read_text()):
        assert not SEED_NOISE.search(doc), SEED_NOISE.search(doc)
    assert "not tested" in page.text["answer"]
    assert "Claim not evaluated" in page.text["claim"] and "no validation split" in \
        page.text["claim"]
    assert "no validation split: test accuracy at the last epoch is the metric" in text


# ----------------------------------------------------------------------------- shapes


@pytest.mark.parametrize("shape", ["no_validation_3_seeds", "one_seed", "baseline_only",
                                   "one_variant_no_baseline"])
def test_every_study_shape_gets_a_true_report(tmp_path: Path, shape: str) -> None:
    sdir = tmp_path / shape
    if shape == "no_validation_3_seeds":
        no_validation_study(sdir, seeds=3)
    elif shape == "one_seed":
        sweep(sdir, {v: g[:1] for v, g in GAINS.items()}, VAL, [CLAIM],
              baseline_acc=BASE_ACC[:1])
    elif shape == "baseline_only":
        write_study(sdir, {"baseline": {s: run(a) for s, a in enumerate(BASE_ACC)}})
    else:
        write_study(sdir, {"dropout": {s: run(a) for s, a in enumerate(BASE_ACC)}},
                    baseline=None)
    paths = build_report(sdir)
    text = html.unescape(paths.html.read_text())
    answer = sections(paths.html).text["answer"]
    assert "No completed runs" not in answer and answer.strip()
    if shape == "one_seed":
        assert not SEED_NOISE.search(text) and not SEED_NOISE.search(paths.markdown.read_text())
        assert "not tested" in answer and "dropout p = 0.5, chosen on validation" in answer
    if shape == "no_validation_3_seeds":
        assert "No variant is chosen (no validation split to choose on)" in answer
        assert "last epoch" in answer
    if shape == "baseline_only":
        assert answer.strip().startswith(f"Baseline only: {np.mean(BASE_ACC) * 100:.1f}%")
        assert "best" not in [t.strip() for t in re.findall(r'class="tag best"[^>]*>([^<]*)<',
                                                           text)]
    if shape == "one_variant_no_baseline":
        assert "no baseline to compare with" in answer


# ----------------------------------------------------------------------------- finding 8

ROOT = REPO


def test_finding8_pairs_means_one_thing(dropout) -> None:
    """'pairs' are seed pairs; the candidates validation chose among are 'candidates'."""
    _, paths = dropout
    for text in (html.unescape(paths.html.read_text()), paths.markdown.read_text()):
        assert not re.search(r"\b\d+ pairs\b", text), re.search(r".{60}\b\d+ pairs\b", text)
        assert "3 seed pairs" in text and "chosen on validation from 3 candidates" in text


def test_finding8_report_md_keeps_each_setup_line_apart(dropout) -> None:
    _, paths = dropout
    md = paths.markdown.read_text()
    setup = md[md.index("## Study setup"):md.index("<details>")]
    items = [line for line in setup.splitlines() if line.startswith("- **")]
    assert [i.split(":**")[0] for i in items] == [
        "- **Design", "- **Baseline", "- **Dataset", "- **Split sizes", "- **Seeds",
        "- **Runs", "- **Hardware", "- **Total compute", "- **Harness version",
        "- **Report generated"]
    assert not re.search(r"\S- \*\*", md)  # no item glued to the line before it


def test_finding8_sweep_figures_draw_the_paired_differences(dropout) -> None:
    """The sweep's first panel and the forest plot draw each seed pair's difference and the
    paired CI (p = 0.3's excludes 0), not each side's own CI against a baseline band."""
    from harness.record import StudyRecord
    from harness.report.paper_figures import Pairing, forest_rows, sweep_figure
    from harness.study.runs_table import runs_table

    sdir, paths = dropout
    runs = runs_table(StudyRecord.load(sdir))
    summary = pd.read_csv(sdir / "summary.csv")
    pairing = Pairing(runs, "best_test_acc", "best_test_acc", "baseline")
    rows = forest_rows(summary, pairing).set_index("variant")
    for v, gains in GAINS.items():
        assert rows.loc[f"dropout.p={v}", "seeds"] == pytest.approx([g * 100 for g in gains])
    lo = rows.loc["dropout.p=0.3", "lo"]
    t = sps.t.ppf(0.975, 2) * np.std(GAINS[0.3], ddof=1) / np.sqrt(3)
    assert lo == pytest.approx((np.mean(GAINS[0.3]) - t) * 100) and lo > 0
    fig = sweep_figure(summary, pairing, "dropout p", 0.0, 0.01, "test accuracy")
    assert [p.name for p in fig.panels] == ["sweep_paired", "sweep_seeds"]
    assert "paired difference" in fig.caption and "at its own value" in fig.caption
    assert (sdir / "figures" / "sweep_paired.png").is_file()


def test_finding8_example_readmes_name_study_files_the_code_accepts() -> None:
    from harness.study.spec import load_study

    for readme in sorted(ROOT.glob("results/example*/README.md")):
        names = re.findall(r"`([\w./-]+\.yaml)`", readme.read_text())
        assert names, readme
        for name in names:
            path = ROOT / name if (ROOT / name).is_file() else readme.parent / name
            assert path.is_file(), f"{readme}: {name} not found"
            load_study(str(path))  # raises ConfigError for a file the code refuses
