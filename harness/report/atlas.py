"""The atlas at the top of results/index.html: one forest plot of every finished study's
claims, so a reader sees which regularizer helped where without opening each report.

Claims measure different things (points of accuracy, ECE, loss), so each is drawn in units of
its own margin (the smallest effect of interest) and turned so that right is the direction the
claim expects: inside ±1 is "no effect beyond the margin", past +1 a gain the claim cares
about. The line beside each row gives the effect in its own units.
"""

from __future__ import annotations

import base64
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.record.layout import CLAIMS_JSON
from harness.record.numbers import finite, number_or_nan
from harness.report import vocabulary as vocab
from harness.report.claim_words import level_text

ROW_INCHES = 0.36


@dataclass(frozen=True)
class Entry:
    study: str
    statement: str
    variant: str
    reference: str
    metric: str
    diff: float
    lo: float
    hi: float
    margin: float
    sign: float  # +1 when the claim expects the metric to rise
    outcome: str
    word: str
    regime: str
    level: float = 0.95  # the interval's confidence level (a sequential look's may be wider)

    def scaled(self, x: float) -> float:
        return self.sign * x / self.margin

    @property
    def line(self) -> str:
        """'dropout: dropout.p=0.5 vs baseline, +5.6 pts [−1.2, +12.4] (margin ±1.0 pts):
        undecided. Regime: ...'"""
        unit = vocab.unit_of(self.metric)
        effect = unit.num(self.diff) if finite(self.diff) else "n/a"
        ci = f" {unit.interval(self.lo, self.hi)} ({level_text(self.level)} CI)" \
            if finite(self.lo) else ""
        return (f"{self.variant} vs {self.reference}: {effect}{ci} in {self.metric} (margin "
                f"±{unit.effect(self.margin).lstrip('+')}): {self.outcome}, {self.word}. "
                f"{self.regime}")


def entries(study_name: str, record: dict[str, Any]) -> list[Entry]:
    """A claims.json record as atlas rows (claims with no chosen variant are skipped)."""
    out = []
    claims = record.get("claims") or []
    words = record.get("words") or []
    margins = record.get("margins") or []
    directions = record.get("directions") or []
    for i, c in enumerate(claims):
        if not isinstance(c, dict) or not c.get("variant") or not finite(c.get("diff")):
            continue
        ci = c.get("ci") or [None, None]
        margin = number_or_nan(margins[i]) if i < len(margins) else math.nan
        out.append(Entry(
            study_name, str(c.get("statement") or ""), str(c["variant"]),
            str(c.get("reference") or ""), str(c.get("metric") or ""), number_or_nan(c["diff"]),
            number_or_nan(ci[0]), number_or_nan(ci[1]),
            margin if finite(margin) and margin > 0 else vocab.DEFAULT_MARGIN,
            -1.0 if i < len(directions) and directions[i] == "down" else 1.0,
            str(c.get("outcome") or ""), str(words[i]) if i < len(words) else "",
            str(record.get("regime") or ""),
            number_or_nan(c.get("level")) if finite(c.get("level")) else 0.95))
    return out


def read(results_dir: Path, names: list[str]) -> list[Entry]:
    rows: list[Entry] = []
    for name in names:
        try:
            record = json.loads((results_dir / name / CLAIMS_JSON).read_text())
        except (OSError, ValueError):
            continue
        if isinstance(record, dict):
            rows += entries(name, record)
    return rows


def forest_png(rows: list[Entry]) -> str | None:
    """The atlas as a PNG data URI (None without rows)."""
    if not rows:
        return None
    from harness.report.figures import _axes, _png
    from harness.report.paper_figures import WORD_COLORS

    n = len(rows)
    fig, ax = _axes((9.0, 1.1 + ROW_INCHES * n))
    ax.axvspan(-1, 1, color="#dfe7f3", lw=0)
    ax.axvline(0, color="black", lw=0.9)
    for i, r in enumerate(rows):
        y = n - 1 - i
        color = WORD_COLORS.get(r.word, "#6b6b6b")
        if finite(r.lo) and finite(r.hi):
            ax.plot([r.scaled(r.lo), r.scaled(r.hi)], [y, y], color=color, lw=2.2)
        ax.plot([r.scaled(r.diff)], [y], "o", color=color, ms=6)
        ax.annotate(r.word or r.outcome, (1.01, y), xycoords=("axes fraction", "data"),
                    va="center", fontsize=8, color=color, annotation_clip=False)
    ax.set_yticks(range(n))
    ax.set_yticklabels([f"{r.study}: {r.variant}" for r in reversed(rows)], fontsize=8)
    ax.set_ylim(-0.7, n - 0.3)
    ax.set_title("Every study's claims: effect in units of its margin", fontsize=10)
    ax.set_xlabel("effect ÷ margin, in the direction the claim expects (→ as claimed); "
                  "band: ±1 margin", fontsize=8.5)
    fig.tight_layout()
    return "data:image/png;base64," + base64.b64encode(_png(fig)).decode("ascii")
