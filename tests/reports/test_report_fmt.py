"""Number formatting: every string parses back to the number it stands for, within its rounding."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from notsure.reports import fmt


def _decimals_shown(text: str) -> int:
    digits = re.sub(r"[^0-9.]", "", text)
    return len(digits.split(".")[1]) if "." in digits else 0


@given(st.integers(min_value=-(10**12), max_value=10**12))
def test_count_round_trips_and_groups_by_thousands(n: int) -> None:
    text = fmt.count(n)
    assert int(text.replace(",", "")) == n
    assert re.fullmatch(r"-?\d{1,3}(,\d{3})*", text)


@given(st.floats(min_value=1e-9, max_value=1.0))
def test_pct_is_within_rounding_and_never_rounds_a_positive_rate_to_zero(p: float) -> None:
    text = fmt.pct(p)
    assert text.endswith("%")
    shown = float(text[:-1])
    decimals = _decimals_shown(text)
    assert decimals >= 2
    assert abs(shown - 100 * p) <= 0.5 * 10**-decimals * (1 + 1e-9)
    assert shown > 0
    # Two significant digits: the error is within 5% of the value.
    assert abs(shown - 100 * p) <= 0.05 * 100 * p + 0.005


def test_pct_matches_the_plain_percentage_for_ordinary_rates() -> None:
    for p in (0.5, 0.1234, 0.975, 1.0, 0.0):
        assert fmt.pct(p) == f"{100 * p:.2f}%"


@given(st.floats(0, 1), st.floats(0, 1), st.floats(0, 1))
def test_interval_uses_one_decimal_count_and_round_trips(a: float, b: float, c: float) -> None:
    lo, value, hi = sorted((a, b, c))
    text = fmt.interval(value, lo, hi)
    m = re.fullmatch(r"([\d.]+)% \[([\d.]+)%, ([\d.]+)%\]", text)
    assert m, text
    parts = m.groups()
    decimals = {_decimals_shown(x) for x in parts}
    assert len(decimals) == 1
    tol = 0.5 * 10 ** -decimals.pop() * (1 + 1e-9)
    for shown, true in zip(parts, (value, lo, hi), strict=True):
        assert abs(float(shown) - 100 * true) <= tol


def test_interval_example_from_the_brief_and_plain_numbers() -> None:
    assert fmt.interval(0.0012, 0.0005, 0.003) == "0.12% [0.05%, 0.30%]"
    assert fmt.interval(0.5, 0.25, 0.75, percent=False) == "0.50 [0.25, 0.75]"


def test_missing_values_are_written_one_way_everywhere() -> None:
    for missing in (None, float("nan"), np.float32("nan"), np.nan):
        assert fmt.is_missing(missing)
        for f in (fmt.count, fmt.pct, fmt.num, fmt.duration, fmt.cell):
            assert f(missing) == fmt.MISSING
    assert fmt.interval(None, 0.1, 0.2).startswith(fmt.MISSING)
    assert fmt.share(3, None) == fmt.MISSING
    assert not fmt.is_missing(0) and not fmt.is_missing("")


def test_share_states_part_whole_and_rate() -> None:
    assert fmt.share(12, 10_000) == f"12 of 10,000 ({fmt.pct(12 / 10_000)})"
    assert fmt.share(0, 0) == f"0 of 0 ({fmt.MISSING})"


@pytest.mark.parametrize("x", [0.1234567, 12.5, 98765.4321, 1.5e-7, -3.25])
def test_num_keeps_four_significant_digits(x: float) -> None:
    shown = float(fmt.num(x).replace(",", ""))
    assert math.isclose(shown, x, rel_tol=5e-4)


def test_duration_reads_back_in_seconds() -> None:
    assert float(fmt.duration(0.42).split()[0]) == 0.42
    m = re.fullmatch(r"(\d+) min (\d+) s", fmt.duration(754))
    assert m and 60 * int(m[1]) + int(m[2]) == 754
    m = re.fullmatch(r"(\d+) h (\d+) min", fmt.duration(3 * 3600 + 7 * 60 + 5))
    assert m and (int(m[1]), int(m[2])) == (3, 7)


def test_cell_formats_by_type() -> None:
    assert fmt.cell(np.int64(1234567)) == "1,234,567"
    assert fmt.cell(np.bool_(True)) == "yes"
    assert fmt.cell(0.25, ".3f") == "0.250"
    assert fmt.cell(0.0012, fmt.pct) == fmt.pct(0.0012)
    assert fmt.cell("a<b") == "a<b"
