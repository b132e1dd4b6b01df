"""Adaptive seeds end to end: rounds of real runs, decisions, the report's section."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import tiny_raw

from harness.errors import ConfigError
from harness.record.layout import ADAPTIVE_JSON
from harness.record.load import StudyRecord
from harness.report.build import build_report
from harness.study.adaptive import paired_differences, round_seeds
from harness.study.execute import run_study
from harness.study.plan import expand
from harness.study.sequential import DIFFERS, UNDECIDED, decide
from harness.study.spec import StudyConfig, load_study


def adaptive_study(**seeds) -> StudyConfig:
    # broken_lr cannot learn (lr 1e-6): it differs from the baseline at once. other_split
    # only draws another validation split (data.seed): a small, noisy difference that 3
    # seeds cannot decide (min_effect 0.001 leaves no room to call it equivalent).
    base = tiny_raw(model={"width": 64}, train={"epochs": 10}, optim={"lr": 0.01})
    seeds = {"min": 3, "max": 4, "min_effect": 0.001, **seeds}
    return StudyConfig(name="adaptive", base=base, seeds=seeds,
                       design={"kind": "one_at_a_time", "variants": {
                           "broken_lr": {"optim": {"lr": 1e-6}},
                           "other_split": {"data": {"seed": 1}}}})


def test_a_study_file_accepts_adaptive_seeds(tmp_path: Path):
    import yaml

    path = tmp_path / "a.yaml"
    path.write_text(yaml.safe_dump({"base": tiny_raw(), "seeds": {"min": 3, "max": 10,
                                    "until": "decided"}, "design": {"kind": "grid",
                                    "parameters": {"model.width": [8]}}}))
    study = load_study(path)
    assert study.adaptive is not None and study.adaptive.plan().looks == list(range(3, 11))
    assert {s.seed for s in expand(study)} == {0, 1, 2}  # the first round: min seeds
    path.write_text(path.read_text().replace("min: 3", "min: 12"))
    with pytest.raises(ConfigError, match=r"seeds: min \(12\) must be at most max \(10\)"):
        load_study(path)
    path.write_text(path.read_text().replace("until: decided", "until: forever"))
    with pytest.raises(ConfigError, match=r"seeds: until: Input should be 'decided'"):
        load_study(path)
    path.write_text(path.read_text().replace("until: forever", "unt: decided"))
    with pytest.raises(ConfigError, match=r"seeds: unt: unknown key \(allowed: min, max"):
        load_study(path)


def test_round_seeds_keep_the_baseline_matched():
    seeds = round_seeds({"baseline": 3, "a": 5, "b": 3}, "baseline", ["a"])
    assert seeds == {"baseline": [0, 1, 2, 3, 4], "a": [0, 1, 2, 3, 4], "b": [0, 1, 2]}


@pytest.mark.slow
def test_adaptive_rounds_add_seeds_only_where_undecided(tmp_path: Path):
    study = adaptive_study()
    out = run_study(study, source="test", results_dir=tmp_path, workers=1)
    info = json.loads((out.study_dir / ADAPTIVE_JSON).read_text())
    record = StudyRecord.load(out.study_dir)
    counts = {v: len(record.runs_of(v)) for v in ("baseline", "broken_lr", "other_split")}
    decisions = info["decisions"]
    assert decisions["broken_lr"]["state"] == DIFFERS and decisions["broken_lr"]["n"] == 3
    assert counts["broken_lr"] == 3  # decided at the first look: no more seeds
    # the decisions are the sequential test applied to the stored runs
    plan = study.adaptive.plan()
    for v in ("broken_lr", "other_split"):
        n = decisions[v]["n"]
        assert counts[v] == n
        again = decide(paired_differences(record, v, "baseline", n), plan)
        assert again.state == decisions[v]["state"] and again.diff == decisions[v]["diff"]
    # other_split was undecided after round 1: a second round gave it (and the baseline)
    # the next look's seeds, and only them
    assert info["rounds"] == [{"baseline": 3, "broken_lr": 3, "other_split": 3},
                              {"baseline": 4, "broken_lr": 3, "other_split": 4}]
    assert counts == {"baseline": 4, "broken_lr": 3, "other_split": 4}
    assert decisions["other_split"]["state"] != UNDECIDED  # decided, or "undecided at max"
    assert out.total == 11 and not out.failed

    md = build_report(out.study_dir).markdown.read_text()
    assert "Adaptive seeds" in md and "O'Brien-Fleming" in md
    assert "Runs: 11 instead of 12" in md and "1 runs saved (8%)" in md
