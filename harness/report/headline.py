"""The answer at the top of a report: two to five sentences about the one variant the report
calls best (selection.py), in the report's words (vocabulary.py), with its numbers; the other
variants are described relative to it.

Every sentence states only what the tables show: a word comes with the numbers that make it
true, a change "beyond seed noise" is said only where seeds were paired, and a calibration
change says which way confidence moved.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import pandas as pd

from harness.record.numbers import finite
from harness.report import vocabulary as vocab
from harness.report.narrative import Moved, says
from harness.report.selection import Choice
from harness.stats import compare as stats

MECHANISM_LIMIT = 3  # metrics named in the mechanism sentence
OTHERS_LIMIT = 5  # other variants named one by one; the rest are counted
Labeler = Callable[[str], str]


@dataclass
class Inputs:
    summary: pd.DataFrame  # summary_table with verdict / verdict_reason
    baseline: str | None
    choice: Choice
    metric: str  # the compared column (best_test_acc, last_test_acc, final_test_acc)
    reference: str  # the baseline's column
    phrase: str  # what the metric is, with its weights (weights.compared_phrase)
    label: Labeler = str
    evidence: dict[str, list[Moved]] = field(default_factory=dict)
    underfits: dict[str, str] = field(default_factory=dict)  # variant -> train accuracy text
    n_seeds: int = 0
    margin: float = vocab.DEFAULT_MARGIN
    # The study's claim on the chosen variant against the baseline in this metric: its word
    # and difference (its own seeds and test) state the answer, so the answer and the claim
    # box never give one comparison two words.
    claim: tuple[vocab.Judgement, float] | None = None


def _pct(x: float) -> str:
    return f"{float(x) * 100:.1f}%"


def _value(row: pd.Series, column: str) -> float:
    v = row.get(f"{column}_mean")
    return float(v) if finite(v) else float("nan")


def _chosen_sentence(a: Inputs, row: pd.Series, base: pd.Series) -> str:
    name, word = a.label(row["variant"]), str(row["verdict"])
    v, b, d = _value(row, a.metric), _value(base, a.reference), float(row["delta"])
    reason = str(row["verdict_reason"])
    how = f", {a.choice.how}," if a.choice.how and len(a.choice.candidates) > 1 else ""
    change = f"({_pct(b)} → {_pct(v)})"
    if a.claim is not None:
        word, reason, d = a.claim[0].word, a.claim[0].reason, a.claim[1]
        change = f"({_pct(b)} → {_pct(v)} over all their seeds)"
    if word in (vocab.BETTER, vocab.WORSE):
        verb = "raises" if d > 0 else "lowers"
        lead = f"{name}{how} {verb} {a.phrase} by {abs(d) * 100:.1f} points {change}"
    else:
        lead = f"{name}{how} changes {a.phrase} by {vocab.POINTS.effect(d)} {change}"
    return f"{lead} compared with {a.label(str(base['variant']))}: {word} ({reason})."


def _mechanism(a: Inputs, name: str) -> str | None:
    moved = [m for m in a.evidence.get(name, []) if m.beyond_noise
             and m.metric != "last_test_acc"]
    if name in a.underfits:
        return None  # its gaps and calibration shrink by fitting less: said below the table
    good = [m for m in moved if m.improved][:MECHANISM_LIMIT]
    bad = [m for m in moved if not m.improved][:MECHANISM_LIMIT]
    if not good and not bad:
        return None
    parts = [says(m) for m in good]
    text = "Beyond seed noise it also " + _join(parts) if parts else "Beyond seed noise it " + \
        _join([says(m) for m in bad])
    if parts and bad:
        text += ", but " + _join([says(m) for m in bad])
    return text + " (paired 95% CIs exclude 0)."


def _join(parts: list[str]) -> str:
    return parts[0] if len(parts) == 1 else "; ".join(parts[:-1]) + " and " + parts[-1]


def _others(a: Inputs, comp: pd.DataFrame, chosen: pd.Series | None) -> str | None:
    rest = comp if chosen is None else comp[comp["variant"] != chosen["variant"]]
    if rest.empty:
        return None
    parts = []
    for _, r in rest.head(OTHERS_LIMIT).iterrows():
        text = f"{a.label(r['variant'])} {vocab.POINTS.effect(float(r['delta']))}, {r['verdict']}" \
            if finite(r.get("delta")) else f"{a.label(r['variant'])} n/a"
        if chosen is not None and finite(r.get(f"{a.metric}_mean")):
            rel = _value(r, a.metric) - _value(chosen, a.metric)
            if round(abs(rel) * 100, 1) == 0:
                text += " (level with the chosen variant)"
            else:
                text += f" ({abs(rel) * 100:.1f} points {'above' if rel > 0 else 'below'} the " \
                        "chosen variant" + (", which validation did not pick)" if rel > 0
                                            else ")")
        parts.append(text)
    more = len(rest) - OTHERS_LIMIT
    lead = "The other variants against the baseline: " if chosen is not None else \
        "Against the baseline: "
    return lead + "; ".join(parts) + (f"; and {more} more in the table below" if more > 0
                                      else "") + "."


def _tally(a: Inputs, comp: pd.DataFrame) -> str:
    words = vocab.tally([str(w) for w in comp["verdict"]])
    n = len(comp)
    if a.n_seeds < 2:
        how = "one seed per variant: a test needs at least 2"
    else:
        how = (f"paired t-tests over {a.n_seeds} seeds, {stats.MULTIPLE_TESTING}-adjusted across "
               f"{n} comparison{'s' * (n != 1)}; margin ±{vocab.POINTS.effect(a.margin)[1:]}")
    return f"Of {n} variant{'s' * (n != 1)} against the baseline: {words} ({how})."


def answer(a: Inputs) -> list[str]:
    """The answer's sentences (the regime is appended by the caller)."""
    s = a.summary
    key = f"{a.metric}_mean"
    ok = s[s[key].apply(finite)] if len(s) and key in s else s.iloc[0:0]
    if ok.empty:
        return ["No completed runs yet."]
    if a.baseline is None or a.baseline not in set(ok["variant"]):
        top = ok[ok["variant"] == a.choice.variant] if a.choice.variant else ok.iloc[0:0]
        if top.empty:
            return [f"{len(ok)} variant(s) with results and no baseline to compare with; "
                    "no validation split to choose one on."]
        r = top.iloc[0]
        return [f"{a.label(r['variant'])}, {a.choice.how}, reaches {_pct(r[key])} {a.phrase} "
                "(no baseline to compare with)."]
    base = ok[ok["variant"] == a.baseline].iloc[0]
    comp = ok[ok["variant"] != a.baseline]
    if comp.empty:
        return [f"Baseline only: {_pct(_value(base, a.reference))} {a.phrase}."]
    rows = comp[comp["variant"] == a.choice.variant]
    chosen = rows.iloc[0] if len(rows) else None
    out = []
    if chosen is not None:
        out.append(_chosen_sentence(a, chosen, base))
        mech = _mechanism(a, str(chosen["variant"]))
        if mech and a.n_seeds >= 2:
            out.append(mech)
    else:
        out.append(f"No variant is chosen ({a.choice.how}): each is compared with the baseline "
                   f"on {a.phrase}.")
    others = _others(a, comp, chosen)
    if others:
        out.append(others)
    out += [f"Range edge: {e}." for e in a.choice.edges]
    out.append(_tally(a, comp))
    return out
