"""How numbers read in the report: fixed digits, n/a for missing, accuracy in % and
differences in percentage points."""

from __future__ import annotations

from typing import Any

import pandas as pd

from harness.record.numbers import finite


def fmt(x: Any, digits: int = 3) -> str:
    if not finite(x):
        return "n/a"
    x = float(x)
    if x != 0 and (abs(x) >= 1e5 or abs(x) < 10 ** -(digits + 1)):
        return f"{x:.{digits - 1}e}"
    return f"{x:.{digits}f}"


def fmt_int(x: Any) -> str:
    if not finite(x):
        return "n/a"
    x = float(x)
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(x) >= scale:
            return f"{x / scale:.3g}{unit}"
    return f"{x:.0f}"


def fmt_ci(row: pd.Series | dict, metric: str, digits: int = 3, scale: float = 1.0) -> str:
    """'mean ± half' over seeds; 'mean ± n/a' when fewer than 2 seeds give no interval."""
    mean: Any = row.get(f"{metric}_mean")  # numbers, NaN or None: finite() tells
    half: Any = row.get(f"{metric}_ci95")
    if not finite(mean):
        return "n/a"
    m = fmt(float(mean) * scale, digits)
    return f"{m} ± {fmt(float(half) * scale, digits)}" if finite(half) else f"{m} ± n/a"


def fmt_pct_ci(row: pd.Series | dict, metric: str) -> str:
    """A fraction as '47.3 ± 1.2' (percent)."""
    return fmt_ci(row, metric, 1, 100.0)


def fmt_pts(x: Any, digits: int = 1) -> str:
    """A difference of fractions in signed percentage points: '+5.5'."""
    if not finite(x):
        return "n/a"
    text = f"{float(x) * 100:+.{digits}f}"
    return text[1:] if float(text) == 0 else text  # no "-0.0"


def fmt_interval(lo: Any, hi: Any, scale: float = 100.0, digits: int = 1) -> str:
    if not (finite(lo) and finite(hi)):
        return "n/a"
    return f"[{float(lo) * scale:.{digits}f}, {float(hi) * scale:.{digits}f}]"


def fmt_seconds(s: Any) -> str:
    if not finite(s):
        return "n/a"
    s = float(s)
    if s < 120:
        return f"{s:.1f} s"
    if s < 7200:
        return f"{s / 60:.1f} min"
    return f"{s / 3600:.2f} h"


def fmt_p(p: Any) -> str:
    return "n/a" if not finite(p) else (f"{p:.2g}" if p >= 0.001 else "<0.001")
