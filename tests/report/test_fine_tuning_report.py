"""The fine-tuning report section: difference of differences over seeds, with a t CI."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
from scipy import stats

from harness.report import fine_tuning


def run(init_from, regs, seed, acc):
    return SimpleNamespace(config={"model": {"init_from": init_from},
                                   "regularizers": {r: {} for r in regs}},
                           summary={"final_test_acc": acc}, seed=seed)


def test_difference_of_differences_matches_a_one_sample_t_interval():
    rng = np.random.default_rng(0)
    acc = {(a, r, s): float(rng.uniform(0.5, 0.9)) for a in ("x", None)
           for r in ((), ("dropout",), ("dropout", "weight_decay")) for s in range(4)}
    record = SimpleNamespace(included=[run(a, r, s, v) for (a, r, s), v in acc.items()])
    table = fine_tuning.cells(record)
    assert set(table) == {(arm, regs) for arm in ("fine-tuned", "from scratch")
                          for regs in ("none", "dropout", "dropout+weight_decay")}
    for regs in (("dropout",), ("dropout", "weight_decay")):
        ft, sc, did = fine_tuning.difference_of_differences(table, "+".join(regs))
        d = np.array([(acc["x", regs, s] - acc["x", (), s])
                      - (acc[None, regs, s] - acc[None, (), s]) for s in range(4)])
        ci = stats.ttest_1samp(d, 0.0).confidence_interval(0.95)
        assert did.n == 4
        assert did.mean == pytest.approx(d.mean())
        assert (did.lo, did.hi) == pytest.approx((ci.low, ci.high))
        assert ft.mean - sc.mean == pytest.approx(d.mean())


def test_verdict_reads_the_interval():
    table = {("fine-tuned", "none"): {0: 0.5, 1: 0.5, 2: 0.5},
             ("fine-tuned", "dropout"): {0: 0.7, 1: 0.71, 2: 0.69},
             ("from scratch", "none"): {0: 0.5, 1: 0.5, 2: 0.5},
             ("from scratch", "dropout"): {0: 0.5, 1: 0.51, 2: 0.49}}
    *_, did = fine_tuning.difference_of_differences(table, "dropout")
    assert did.lo > 0
    assert fine_tuning.verdict("dropout", did) == \
        "dropout helps more when fine-tuning than from scratch"
    # a seed missing from one cell is left out of every cell (paired by seed)
    del table[("from scratch", "none")][2]
    assert fine_tuning.difference_of_differences(table, "dropout")[2].n == 2
