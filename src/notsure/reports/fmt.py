"""Numbers as people read them in reports: counts, percentages, intervals and table cells.

One formatter per kind of number, so a rate reads the same in a sentence, a table and the terminal.
Missing values (``None``, NaN) are written as :data:`MISSING` everywhere.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

#: How a missing or undefined value (``None``, NaN) is written for people.
MISSING = "—"

#: A float format: a format spec such as ``".4g"`` or a function from float to text.
FloatFormat = str | Callable[[float], str]


def is_missing(value: Any) -> bool:
    """True for ``None`` and NaN (NumPy or Python), the values shown as :data:`MISSING`."""
    if value is None:
        return True
    if isinstance(value, (float, np.floating)):
        return bool(np.isnan(value))
    return False


def _decimals(value: float, digits: int) -> int:
    """Decimals that show ``digits`` significant digits of ``value``, and at least ``digits``."""
    if value == 0 or not math.isfinite(value) or abs(value) >= 1:
        return digits
    return max(digits, digits - 1 - math.floor(math.log10(abs(value))))


def count(n: Any) -> str:
    """An integer count with thousands separators: ``12345 -> "12,345"``."""
    if is_missing(n):
        return MISSING
    return f"{int(n):,}"


def pct(p: Any, digits: int = 2) -> str:
    """A fraction as a percentage: ``0.0012 -> "0.12%"``.

    At least ``digits`` decimals; below 1% enough decimals to keep ``digits`` significant digits,
    so a small rate is never rounded to zero (``0.00015 -> "0.015%"``).
    """
    if is_missing(p):
        return MISSING
    v = 100.0 * float(p)
    return f"{v:.{_decimals(v, digits)}f}%"


def interval(value: Any, lo: Any, hi: Any, *, percent: bool = True, digits: int = 2) -> str:
    """An estimate with its interval, all three with the same decimals: ``"0.12% [0.05%, 0.30%]"``.

    The decimals come from the largest of the three, so the bounds line up with the estimate.
    """
    scale = 100.0 if percent else 1.0
    unit = "%" if percent else ""
    values = [None if is_missing(v) else scale * float(v) for v in (value, lo, hi)]
    present = [abs(v) for v in values if v is not None]
    decimals = _decimals(max(present), digits) if present else digits
    a, b, c = (MISSING if v is None else f"{v:.{decimals}f}{unit}" for v in values)
    return f"{a} [{b}, {c}]"


def num(x: Any, digits: int = 4) -> str:
    """A real number with ``digits`` significant digits; large values get thousands separators."""
    if is_missing(x):
        return MISSING
    x = float(x)
    if math.isfinite(x) and abs(x) >= 10**digits:
        return f"{x:,.0f}"
    return f"{x:.{digits}g}"


def share(k: Any, n: Any, digits: int = 2) -> str:
    """A part of a whole with its percentage: ``share(12, 10000) -> "12 of 10,000 (0.12%)"``."""
    if is_missing(k) or is_missing(n):
        return MISSING
    rate = MISSING if int(n) == 0 else pct(int(k) / int(n), digits)
    return f"{count(k)} of {count(n)} ({rate})"


def duration(seconds: Any) -> str:
    """Wall time for people: ``0.42 -> "0.42 s"``, ``754 -> "12 min 34 s"``, hours likewise."""
    if is_missing(seconds):
        return MISSING
    s = float(seconds)
    if s < 60:
        return f"{s:.3g} s"
    minutes, sec = divmod(round(s), 60)
    if minutes < 60:
        return f"{minutes} min {sec} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min"


def cell(value: Any, float_format: FloatFormat = num) -> str:
    """One table cell as text: missing as :data:`MISSING`, integers with separators, floats by
    ``float_format`` (a format spec like ``".3f"`` or a function such as :func:`pct`)."""
    if is_missing(value):
        return MISSING
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return count(value)
    if isinstance(value, float):
        return float_format(value) if callable(float_format) else format(value, float_format)
    return str(value)
