"""What a study claims and how its claims are confirmed: the `claim:` and `confirm:` keys of a
study file (harness/study/spec.py reads the rest). The statistics that use them are in
harness/study/confirm.py and sequential.py."""

from __future__ import annotations

import math
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from harness.config import Strict


class ConfirmConfig(Strict):
    """`confirm:` how a claim's variant, once chosen on the screening seeds, is tested on
    fresh confirmation seeds that are added look by look until the claim is decided or the
    budget is spent (harness/stats/sequential.py decides; harness/study/confirm.py runs the
    rounds). Every ablation study with a claim confirms by default; `confirm: false` keeps
    the fixed seeds (the choice is then paid for with a Bonferroni adjustment)."""

    min: int = Field(5, ge=2)  # confirmation seeds at the first look
    max: int = Field(20, ge=2, le=1000)  # the budget in seeds (the last look)
    step: int = Field(5, ge=1)  # seeds added between looks
    minutes: float = Field(60.0, gt=0)  # the budget in wall minutes of this command
    alpha: float = Field(0.05, gt=0.0, lt=1.0)  # two-sided, over all looks of a claim
    spending: Literal["obrien_fleming", "pocock"] = "pocock"  # spends about evenly per look

    @model_validator(mode="after")
    def _min_below_max(self) -> ConfirmConfig:
        if self.min > self.max:
            raise ValueError(f"min ({self.min}) must be at most max ({self.max})")
        return self

    def plan(self, margin: float):  # -> harness.stats.sequential.SequentialPlan (scipy: lazily)
        from harness.stats.sequential import SequentialPlan

        return SequentialPlan(self.min, self.max, self.step, self.alpha, margin, self.spending)


# What a claim may be about: a metric of the runs table (report/tables.py) and its short name.
# Accuracy metrics are fractions, shown in points (x 100); their margin defaults to 1 point.
ACCURACY_METRICS = ("test_acc", "last_test_acc", "final_test_acc", "gap_acc", "shift_acc")
DEFAULT_ACCURACY_MARGIN = 0.01
# Claim metrics where a lower value is the better one (the rest: higher is better).
LOWER_IS_BETTER = ("test_loss", "ece", "ece_ts", "nll", "nll_ts", "gap_acc", "gap_loss",
                   "mia_advantage")


def higher_is_better(metric: str, direction: str = "up") -> bool:
    if metric == "overconfidence":  # neither way is better: follow the claim
        return direction == "up"
    return metric not in LOWER_IS_BETTER


def verdict_word(reason: str, diff: float, metric: str, direction: str) -> str:
    """The word every output gives a claim's verdict: the sequential test's reasons "better"
    and "worse" mean with or against the claim, the word follows the metric's good direction
    (a claim that expects accuracy to fall and holds reads "held (worse)"); other reasons
    are already words."""
    if reason in ("better", "worse") and math.isfinite(diff):
        return "better" if (diff > 0) == higher_is_better(metric, direction) else "worse"
    return reason


CLAIM_METRICS = ("test_acc", "test_loss", "last_test_acc", "final_test_acc", "ece", "ece_ts",
                 "nll", "nll_ts", "overconfidence", "gap_acc", "gap_loss", "shift_acc",
                 "mia_advantage")


class ClaimConfig(Strict):
    """What a study expects to show, checked in its report (harness/report/claims.py).

    The best of `variants` (chosen on the validation split by `select`) is compared over
    matched seeds with the best of `versus`; `direction` says which way `metric` should move.
    """

    # Literal[...] of a runtime tuple: pydantic validates against it; mypy wants literals.
    metric: Literal[CLAIM_METRICS]  # type: ignore[valid-type]  # see above
    direction: Literal["up", "down"]
    source: str = Field(min_length=1)  # the paper (or reason) the expectation comes from
    statement: str = ""  # the claim in words; default: built from the fields
    variants: list[str] | None = None  # names or glob patterns; default: every non-baseline
    versus: list[str] = Field(default_factory=lambda: ["baseline"])  # names or glob patterns
    select: Literal["val_acc", "val_loss"] = "val_acc"  # how the best of a group is chosen
    # The smallest effect of interest, in the metric's units (accuracy: a fraction, so 0.01
    # is 1 point, the default); an effect inside +-margin counts as no effect.
    margin: float | None = Field(None, gt=0)

    @model_validator(mode="before")
    @classmethod
    def _renamed(cls, raw: Any) -> Any:
        if isinstance(raw, dict) and "min_effect" in raw:
            raise ValueError("min_effect: renamed; write margin (the smallest effect of "
                             "interest, in the metric's units)")
        return raw

    @field_validator("variants", "versus", mode="before")
    @classmethod
    def _one_or_many(cls, v: Any) -> Any:
        return [v] if isinstance(v, str) else v

    @model_validator(mode="after")
    def _margin_in_units(self) -> ClaimConfig:
        if self.margin is None:
            if self.metric not in ACCURACY_METRICS:
                raise ValueError(f"margin: required for metric {self.metric!r} (the smallest "
                                 "effect of interest in its units; accuracy metrics default "
                                 f"to {DEFAULT_ACCURACY_MARGIN:g}, 1 point)")
            self.margin = DEFAULT_ACCURACY_MARGIN
        return self

    @property
    def effect_margin(self) -> float:
        assert self.margin is not None  # set by _margin_in_units
        return self.margin
