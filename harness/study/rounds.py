"""Confirmation rounds: run the screening seeds, then add confirmation seeds to each open
claim's pair, look by look, until every claim is decided or the budget is spent.

Each round is an ordinary run of the study with per-variant seeds (execute.run_study), so
finished runs are skipped and an interrupted study resumes: the rounds are replayed from the
stored runs. After each round every claim is judged from the runs table (study/confirm.py,
the same function the report uses) and the rounds, looks and stop reason go to
results/<study>/confirm.json.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Protocol, TypeVar

from harness.record.disk import atomic_write_json
from harness.record.layout import CONFIRM_JSON
from harness.record.load import StudyRecord
from harness.study.claim_config import ACCURACY_METRICS, ConfirmConfig, verdict_word
from harness.study.confirm import ClaimTest, judge_all, record_entry, round_seeds
from harness.study.plan import variants
from harness.study.runs_table import runs_table
from harness.study.spec import StudyConfig

STOP_DECIDED = "every claim is decided or at its maximum seeds"
STOP_MINUTES = "the minutes budget (confirm.minutes) would be exceeded by the next round"
STOP_FAILED = "runs of the last round did not finish: the next look cannot be taken"


class RoundOutcome(Protocol):
    @property
    def study_dir(self) -> Path: ...

    @property
    def seconds(self) -> float: ...

    @property
    def finished(self) -> int: ...

    @property
    def ran_before(self) -> int: ...


Outcome = TypeVar("Outcome", bound=RoundOutcome)


def new_runs(now: dict[str, list[int]], before: dict[str, list[int]]) -> int:
    return sum(len(set(s) - set(before.get(v, []))) for v, s in now.items())


def next_round_seconds(outcome: RoundOutcome, trained: int, coming: int) -> float:
    """The next round's wall time at the last round's pace per trained run (0 when the last
    round trained nothing: nothing measured yet)."""
    return outcome.seconds / trained * coming if trained else 0.0


def write_record(sdir: Path, confirm: ConfirmConfig, rounds: list[dict[str, int]],
                 tests: list[ClaimTest], stop: str | None, seconds: float) -> None:
    atomic_write_json(sdir / CONFIRM_JSON, {
        "confirm": confirm.model_dump(mode="json"), "rounds": rounds,
        "claims": [record_entry(t) for t in tests], "stopped": stop,
        "minutes": round(seconds / 60, 2)})


def seeds_word(n: int, kind: str = "") -> str:
    return f"{n} {kind}seed{'' if n == 1 else 's'}"


def look_line(test: ClaimTest, wanted: dict[str, list[int]], seeds: dict[str, list[int]]) -> str:
    """What the last look of a claim found, and what the study does next: the line a user
    reads between rounds (the report shows every look)."""
    look = test.final
    if test.variant is None:
        return f"claim {test.claim.statement[:60]!r}: no pair to test ({test.problem or 'none'})"
    more = len(wanted.get(test.variant, [])) - len(seeds.get(test.variant, []))
    if look is None:
        chosen = " (chosen on validation)" if test.chose else ""
        return (f"screened: {test.variant}{chosen} vs {test.reference}; "
                + (f"{seeds_word(more, 'confirmation ')} next" if more else "no look possible"))
    pts = test.claim.metric in ACCURACY_METRICS
    unit, scale, digits = (" pts", 100.0, 1) if pts else ("", 1.0, 3)

    def num(x: float) -> str:
        return f"{x * scale:+.{digits}f}"

    verdict = (test.outcome if test.outcome != "undecided" or not more
               else f"undecided, {seeds_word(more, 'more ')} for the next look")
    word = verdict_word(look.state, look.diff, test.claim.metric, test.claim.direction)
    state = f" ({word})" if test.state not in ("undecided", verdict) else ""
    plan = f" of {len(test.plan.looks)}" if test.plan is not None else ""
    return (f"look {len(test.looks)}{plan}: {test.variant} vs {test.reference} over {look.n} "
            f"confirmation seeds: {num(look.diff)}{unit} [{num(look.lo)}, {num(look.hi)}]: "
            f"{verdict}{state}")


def run_confirmed(study: StudyConfig, run_round: Callable[[StudyConfig], Outcome],
                  clock: Callable[[], float] = time.monotonic,
                  say: Callable[[str], None] | None = None) -> list[Outcome]:
    """Rounds (`run_round`: the executor's run of one planned round) until every claim is
    decided or the budget is spent; the outcome of each round, in order. `say` gets a line
    per claim after each look."""
    confirm = study.confirmation
    assert confirm is not None  # run_study sends only confirming studies here
    started = clock()
    screen = study.screen_seeds()
    names = [v.name for v in variants(study)]
    baseline = next(v.name for v in variants(study) if v.is_baseline)
    seeds = {name: list(screen) for name in names}
    rounds: list[dict[str, int]] = []
    outcomes: list[Outcome] = []
    while True:
        outcome = run_round(study.for_round(seeds))
        outcomes.append(outcome)
        rounds.append({name: len(s) for name, s in seeds.items()})
        runs = runs_table(StudyRecord.load(outcome.study_dir))
        tests = judge_all(study.claim, runs, baseline, screen, confirm, names)
        wanted = round_seeds(tests, seeds)
        coming = new_runs(wanted, seeds)
        trained = outcome.finished - outcome.ran_before
        stop = None
        if not any(t.seeds_wanted() for t in tests):
            stop = STOP_DECIDED
        elif coming == 0:  # the seeds the next look needs were planned and did not finish
            stop = STOP_FAILED
        elif (clock() - started + next_round_seconds(outcome, trained, coming)
              > confirm.minutes * 60):
            stop = STOP_MINUTES
        write_record(outcome.study_dir, confirm, rounds, tests, stop, clock() - started)
        if say is not None:
            for test in tests:
                say(look_line(test, wanted, seeds))
        if stop:
            return outcomes
        seeds = wanted
