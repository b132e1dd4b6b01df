"""Adaptive seeds: plan a round -> run it -> decide, until every comparison is decided.

`seeds: {min: 3, max: 10, until: decided}` starts every variant at `min` seeds. After each
round the group-sequential test (harness/study/sequential.py) compares each variant still
open with the baseline over matched seeds; only the undecided ones get `step` more seeds
(the baseline keeps the most any open variant has, so every comparison stays matched). The
loop stops when no comparison is open or every open one is at `max`. Each round is an
ordinary study run (execute.run_study), so finished runs are skipped and an interrupted
study resumes: the rounds are replayed from the stored runs. The rounds and decisions go
to results/<study>/adaptive.json for the report.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Protocol, TypeVar

from harness.record.disk import atomic_write_json
from harness.record.layout import ADAPTIVE_JSON
from harness.record.load import StudyRecord
from harness.study.plan import variants
from harness.study.sequential import UNDECIDED, Decision, SequentialPlan, decide
from harness.study.spec import StudyConfig

INCOMPLETE = "incomplete"  # runs of the look failed: the look cannot be taken


def paired_differences(record: StudyRecord, variant: str, baseline: str, n: int) -> list[float]:
    """variant - baseline of the study's compared metric on seeds 0..n-1 both finished."""
    compare = record.compare

    def by_seed(name: str, metric: str) -> dict[int, float]:
        return {r.seed: float(v) for r in record.runs_of(name) if r.seed < n
                and isinstance(v := (r.summary or {}).get(metric), (int, float))
                and math.isfinite(v)}

    mine, base = by_seed(variant, compare.metric), by_seed(baseline, compare.reference_metric)
    return [mine[s] - base[s] for s in sorted(set(mine) & set(base))]


def round_seeds(counts: dict[str, int], baseline: str, open_: list[str]) -> dict[str, list[int]]:
    """Seeds per variant for the next round; the baseline matches the longest open one."""
    seeds = {name: list(range(n)) for name, n in counts.items()}
    seeds[baseline] = list(range(max([counts[v] for v in open_] + [counts[baseline]])))
    return seeds


def decide_open(record: StudyRecord, plan: SequentialPlan, counts: dict[str, int],
                baseline: str, open_: list[str]) -> dict[str, Decision]:
    out = {}
    for v in open_:
        diffs = paired_differences(record, v, baseline, counts[v])
        out[v] = (decide(diffs, plan) if len(diffs) == counts[v]
                  else Decision(INCOMPLETE, len(diffs)))
    return out


def record_rounds(sdir: Path, plan: SequentialPlan, study: StudyConfig, metric: str,
                  rounds: list[dict[str, int]], decisions: dict[str, Decision]) -> None:
    atomic_write_json(sdir / ADAPTIVE_JSON, {
        "test": plan.name, "alpha": plan.alpha, "min_effect": plan.min_effect,
        "spending": plan.spending, "looks": plan.looks, "alphas": plan.alphas,
        "min_seeds": plan.min_seeds, "max_seeds": plan.max_seeds, "metric": metric,
        "variants": [v.name for v in variants(study)], "rounds": rounds,
        "decisions": {v: asdict(d) for v, d in decisions.items()}})


class RoundOutcome(Protocol):
    @property
    def study_dir(self) -> Path: ...


Outcome = TypeVar("Outcome", bound=RoundOutcome)


def run_adaptive(study: StudyConfig, run_round: Callable[[StudyConfig], Outcome]) -> list[Outcome]:
    """Rounds (`run_round`: the executor's run of one planned round) until every comparison
    with the baseline is decided; the outcome of each round, in order."""
    assert study.adaptive is not None  # run_study sends only adaptive studies here
    plan = study.adaptive.plan()
    names = [v.name for v in variants(study)]
    baseline = next(v.name for v in variants(study) if v.is_baseline)
    counts = {name: plan.min_seeds for name in names}
    open_ = [v for v in names if v != baseline]
    decisions: dict[str, Decision] = {}
    rounds: list[dict[str, int]] = []
    outcomes = []
    while True:
        seeds = round_seeds(counts, baseline, open_)
        outcomes.append(run_round(study.for_round(seeds)))
        sdir = outcomes[-1].study_dir
        rounds.append({name: len(s) for name, s in seeds.items()})
        record = StudyRecord.load(sdir)
        decisions.update(decide_open(record, plan, counts, baseline, open_))
        record_rounds(sdir, plan, study, record.compare.metric, rounds, decisions)
        open_ = [v for v in open_ if decisions[v].state == UNDECIDED]
        if not open_:
            return outcomes
        for v in open_:
            counts[v] = plan.next_look(counts[v]) or counts[v]
