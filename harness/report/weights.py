"""Which weights a metric describes, and what early stopping restored.

A run is measured three ways (harness/train/loop.py): every epoch's weights (metrics.csv;
`last_*` is the last epoch), the best-val checkpoint (`best_*`: the epoch `train.select`
picks, looked up after the fact) and the final model (`final_*`: what training hands back,
i.e. the restored weights with early stopping, the averaged ones with EMA / SWA, else the
last epoch's). A report that mixes them must say which is which.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from harness.record import RunRecord, StudyRecord
from harness.record.numbers import finite, number_or_nan

SAME_TOL = 1e-9  # two runs' metrics equal to this: the same weights


def select_phrase(select: str) -> str:
    return "lowest val loss" if select == "val_loss" else "highest val accuracy"


def metric_weights(metric: str, select: str = "val_acc") -> str:
    """'at the best-val checkpoint (highest val accuracy)', 'at the last epoch', ..."""
    if metric.startswith("best_"):
        return f"at the best-val checkpoint ({select_phrase(select)})"
    if metric.startswith("last_"):
        return "at the last epoch"
    if metric.startswith("final_"):
        return "of the final model"
    return ""


def regularizers_of(study: StudyRecord, variant: str) -> dict[str, Any]:
    runs = study.runs_of(variant, included_only=False)
    regs = (runs[0].config.get("regularizers") if runs else None) or {}
    return regs if isinstance(regs, dict) else {}


def restores(regs: dict[str, Any]) -> dict[str, Any] | None:
    """The early-stopping settings when it restores the best weights at the end."""
    es = regs.get("early_stopping")
    if isinstance(es, dict) and es.get("restore_best", True):
        return es
    return None


def final_model(regs: dict[str, Any]) -> str:
    """What `final_*` metrics of a run with these regularizers describe."""
    es = restores(regs)
    if es is not None:
        watched = "lowest val loss" if es.get("monitor", "val_loss") == "val_loss" else \
            "highest val accuracy"
        return f"the weights restored by early stopping (epoch of {watched})"
    for name in ("swa", "ema"):
        if name in regs:
            return f"the {name.upper()} average of the weights"
    return "the last epoch's weights"


def epochs_text(values: list[float]) -> str:
    """'8 (7–9)': median (min–max) over seeds, or one number."""
    v = np.asarray([x for x in values if finite(x)], dtype=float)
    if not len(v):
        return "n/a"
    text = f"{np.median(v):.0f}"
    return text + (f" ({v.min():.0f}–{v.max():.0f})" if v.min() != v.max() else "")


def restored_epochs(runs: list[RunRecord]) -> list[float]:
    return [e for r in runs if finite(e := number_or_nan((r.summary or {}).get("es_best_epoch")))]


def _final(r: RunRecord) -> tuple[float, ...]:
    s = r.summary or {}
    return tuple(float(s.get(k, np.nan)) for k in ("final_test_acc", "final_test_loss",
                                                   "final_val_loss"))


def _same(a: tuple[float, ...], b: tuple[float, ...]) -> bool:
    return all(finite(x) and finite(y) and abs(x - y) <= SAME_TOL for x, y in zip(a, b,
                                                                                  strict=True))


def _by_seed(runs: list[RunRecord]) -> dict[int, RunRecord]:
    return {r.seed: r for r in runs}


def identical_groups(study: StudyRecord, names: list[str]) -> list[list[str]]:
    """Variants whose final models measure the same on every shared seed (test accuracy, test
    loss, val loss): the same weights, restored from the same epoch."""
    groups: list[list[str]] = []
    for name in names:
        mine = _by_seed(study.runs_of(name))
        for g in groups:
            other = _by_seed(study.runs_of(g[0]))
            shared = set(mine) & set(other)
            if shared and all(_same(_final(mine[s]), _final(other[s])) for s in shared):
                g.append(name)
                break
        else:
            groups.append([name])
    return [g for g in groups if len(g) > 1]


def baseline_checkpoint_matches(study: StudyRecord, name: str) -> tuple[int, int]:
    """(seeds where the variant's restored model measures like the baseline's own epoch of
    the same number, seeds compared)."""
    base = _by_seed(study.runs_of(study.baseline)) if study.baseline else {}
    same = n = 0
    for r in study.runs_of(name):
        epoch = number_or_nan((r.summary or {}).get("es_best_epoch"))
        b = base.get(r.seed)
        if b is None or not finite(epoch) or not len(b.metrics):
            continue
        row = b.metrics[b.metrics["epoch"] == int(epoch)]
        if row.empty:
            continue
        n += 1
        mine = (r.summary or {})
        theirs = row.iloc[0]
        same += all(abs(float(mine.get(f"final_{k}", np.nan)) - float(theirs.get(k, np.nan)))
                    <= SAME_TOL for k in ("test_acc", "val_loss"))
    return same, n


def why_from_curves(runs: list[RunRecord]) -> tuple[list[float], list[float]]:
    """Per full-budget run: the epoch of lowest val loss and the epoch of highest val
    accuracy (the first of equal ones)."""
    lows, highs = [], []
    for r in runs:
        m = r.metrics
        if not len(m) or "val_loss" not in m or "val_acc" not in m:
            continue
        lows.append(float(m.loc[m["val_loss"].idxmin(), "epoch"]))
        highs.append(float(m.loc[m["val_acc"].idxmax(), "epoch"]))
    return lows, highs


def early_stopping_facts(study: StudyRecord, label: Callable[[str], str],
                         noise: float) -> list[str]:
    """What each early-stopping variant restored, which of them restored the same weights,
    whether those are the baseline's own checkpoint, and why (from the baseline's curves)."""
    es = [v.name for v in study.variants if restores(regularizers_of(study, v.name))]
    es = [n for n in es if study.runs_of(n)]
    if not es:
        return []
    lines = []
    for name in es:
        runs = study.runs_of(name)
        stops = [s for r in runs if finite(s := number_or_nan((r.summary or {}).get("stop_epoch")))]
        ran = (f"stopped at epoch {epochs_text(stops)}" if len(stops) == len(runs) else
               "ran the full budget on every seed" if not stops else
               f"stopped on {len(stops)} of {len(runs)} seeds, at epoch {epochs_text(stops)}")
        lines.append(f"{label(name)} restored the weights of epoch "
                     f"{epochs_text(restored_epochs(runs))} ({ran}); its final-model metrics "
                     f"describe those weights.")
    for group in identical_groups(study, es):
        n = len(study.runs_of(group[0]))
        lines.append(f"{' and '.join(label(g) for g in group)} restored identical weights: "
                     "their final models have the same test accuracy, test loss and val loss "
                     f"on every seed ({n} of {n}), so they differ by 0.0 points.")
    for name in es:
        same, n = baseline_checkpoint_matches(study, name)
        if n and same == n:
            lines.append(f"{label(name)}'s restored model measures exactly as the baseline's "
                         f"own checkpoint of the same epoch on all {n} seeds: training the "
                         "full budget and keeping that checkpoint gives the same model.")
    lows, highs = why_from_curves(study.runs_of(study.baseline) if study.baseline else [])
    on_loss = any((restores(regularizers_of(study, n)) or {}).get("monitor", "val_loss")
                  == "val_loss" for n in es)
    if lows:
        where = f" with {noise:.0%} label noise" if noise else ""
        so = (", so a stop that watches val loss keeps the early weights" if on_loss and
              np.median(lows) < np.median(highs) else "")
        lines.append(f"Why{where}: over the full budget the baseline's val loss bottoms out "
                     f"at epoch {epochs_text(lows)} and its val accuracy peaks at epoch "
                     f"{epochs_text(highs)} (median (min–max) over seeds){so}.")
    return lines


def final_tag(regs: dict[str, Any]) -> str:
    """A short name for the final model: 'restored model', 'EMA-averaged weights', 'last
    epoch'."""
    if restores(regs) is not None:
        return "restored model"
    for name in ("swa", "ema"):
        if name in regs:
            return f"{name.upper()}-averaged weights"
    return "last epoch"


def compared_phrase(metric: str, reference: str, select: str, tag: str) -> str:
    """'test accuracy at the best-val checkpoint (highest val accuracy)', or for a study that
    compares different weights on each side, 'test accuracy of the final model (restored
    model) vs the baseline's at the last epoch'."""
    mine = metric_weights(metric, select)
    if metric.startswith("final_"):
        mine = f"of the final model ({tag})"
    if metric == reference:
        return f"test accuracy {mine}"
    return f"test accuracy {mine} vs the baseline's {metric_weights(reference, select)}"
