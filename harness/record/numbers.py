"""Numbers as the record holds them: a value read from a summary, a CSV cell or a config is
a measurement only when it is a finite number. One rule for every reader, so the report,
the W&B study run and the search summary agree on which values count."""

from __future__ import annotations

import math
from typing import Any


def number(x: Any) -> float | None:
    """`x` as a float when it is a finite number (or text of one); None for None, flags
    (bools), other text, nan and infinities."""
    if x is None or isinstance(x, bool):
        return None
    try:
        f = float(x)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def finite(x: Any) -> bool:
    """`x` is a finite number (see `number`)."""
    return number(x) is not None


def number_or_nan(x: Any) -> float:
    """`number(x)`, with nan for no number (a table cell pandas and numpy skip)."""
    f = number(x)
    return math.nan if f is None else f


def parse_cell(text: str | None) -> Any:
    """A CSV cell as written: '' is None, '3' an int, '3.0' or '1e-3' a float, else text."""
    if text is None or text == "":
        return None
    try:
        f = float(text)
    except ValueError:
        return text
    return int(f) if f.is_integer() and "." not in text and "e" not in text.lower() else f
