"""Does regularization matter more when fine-tuning than when training from scratch?

For a study whose runs start either from an upstream run (`model.init_from`) or from
scratch at the same data size, each with a set of regularizers (none, each alone, all
together): per seed, the gain of a set over no regularization in each arm, and the
difference of those gains (fine-tuned gain minus from-scratch gain), with a t CI over
seeds. Runs are classified from their recorded configs, not their variant names.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

from harness.record import StudyRecord
from harness.stats.compare import MeanCI, mean_ci

METRIC = "final_test_acc"  # the weights a run ends with: early stopping's restore counts
NONE = "none"


def arm(config: dict[str, Any]) -> str:
    return "fine-tuned" if (config.get("model") or {}).get("init_from") else "from scratch"


def regularizer_set(config: dict[str, Any]) -> str:
    return "+".join(sorted(config.get("regularizers") or {})) or NONE


def cells(record: StudyRecord, metric: str = METRIC) -> dict[tuple[str, str], dict[int, float]]:
    """(arm, regularizer set) -> seed -> metric, over the runs the record includes."""
    out: dict[tuple[str, str], dict[int, float]] = defaultdict(dict)
    for r in record.included:
        value = (r.summary or {}).get(metric)
        if value is not None:
            out[(arm(r.config), regularizer_set(r.config))][r.seed] = float(value)
    return out


def gains(table: dict[tuple[str, str], dict[int, float]], which: str,
          regs: str) -> dict[int, float]:
    """seed -> metric(regs) - metric(none) in one arm, for the seeds that have both."""
    with_, without = table.get((which, regs), {}), table.get((which, NONE), {})
    return {s: with_[s] - without[s] for s in with_ if s in without}


def difference_of_differences(table: dict[tuple[str, str], dict[int, float]],
                              regs: str) -> tuple[MeanCI, MeanCI, MeanCI]:
    """(gain when fine-tuning, gain from scratch, their difference), each a mean with a
    95% t CI over the seeds present in all four cells (paired by seed)."""
    ft, sc = gains(table, "fine-tuned", regs), gains(table, "from scratch", regs)
    seeds = sorted(set(ft) & set(sc))
    return (mean_ci(ft[s] for s in seeds), mean_ci(sc[s] for s in seeds),
            mean_ci(ft[s] - sc[s] for s in seeds))


def pts(ci: MeanCI) -> str:
    if ci.n == 0:
        return "n/a"
    if ci.n < 2:
        return f"{100 * ci.mean:+.1f}"
    return f"{100 * ci.mean:+.1f} ({100 * ci.lo:+.1f} to {100 * ci.hi:+.1f})"


def verdict(regs: str, did: MeanCI) -> str:
    if did.n < 2:
        return f"{regs}: too few seeds for a CI ({did.n})"
    if did.lo > 0:
        return f"{regs} helps more when fine-tuning than from scratch"
    if did.hi < 0:
        return f"{regs} helps less when fine-tuning than from scratch"
    return f"{regs}: no difference the seeds can resolve (the CI includes 0)"


def fine_tuning_section(study_dir: Path) -> dict[str, Any] | None:
    """The section (title, markdown), or None for a study without both arms."""
    record = StudyRecord.load(study_dir)
    table = cells(record)
    arms = {a for a, _ in table}
    if arms != {"fine-tuned", "from scratch"}:
        return None
    sets = sorted({r for _, r in table if r != NONE}, key=lambda s: (s.count("+"), s))
    lines = [f"Test accuracy of the final weights ({METRIC}), gain of each regularizer set "
             "over none in each arm and the difference of the gains (fine-tuned minus from "
             "scratch), in points: mean over seeds, paired by seed, 95% t CI.", "",
             "| regularizers | gain fine-tuned | gain from scratch | difference | seeds |",
             "|---|---|---|---|---|"]
    verdicts = []
    for regs in sets:
        ft, sc, did = difference_of_differences(table, regs)
        lines.append(f"| {regs} | {pts(ft)} | {pts(sc)} | {pts(did)} | {did.n} |")
        verdicts.append(verdict(regs, did))
    answer = "Does regularization matter more when fine-tuning? " + "; ".join(verdicts) + "."
    return {"title": "Fine-tuning vs from scratch", "markdown": answer + "\n\n" +
            "\n".join(lines), "figures": []}
