"""Tables render the same cell text in Markdown and HTML, and that text stands for the values."""

from __future__ import annotations

import math
from html.parser import HTMLParser

import numpy as np
import pytest

from notsure.errors import ConfigError
from notsure.reports import fmt
from notsure.reports.tables import render_table_html, render_table_markdown

ROWS = [
    {"class": "0", "n": 980, "fpr": 0.00012, "note": "a|b"},
    {"class": "1", "n": np.int64(11350), "fpr": float("nan")},
    {"class": "2", "n": 1032, "fpr": np.float32(0.25), "note": None},
]


def _markdown_cells(text: str) -> list[list[str]]:
    lines = text.strip().splitlines()
    split = [[c.strip().replace("\\|", "|") for c in
              line.strip().strip("|").replace("\\|", "\x00").split("|")] for line in lines]
    return [[c.replace("\x00", "|") for c in row] for row in split]


class _Cells(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.rows: list[list[str]] = []
        self._in = False

    def handle_starttag(self, tag, attrs):
        if tag == "tr":
            self.rows.append([])
        if tag in ("td", "th"):
            self._in = True
            self.rows[-1].append("")

    def handle_endtag(self, tag):
        if tag in ("td", "th"):
            self._in = False

    def handle_data(self, data):
        if self._in:
            self.rows[-1][-1] += data


def test_markdown_and_html_hold_the_same_cells_standing_for_the_values() -> None:
    md = _markdown_cells(render_table_markdown(ROWS))
    parser = _Cells()
    parser.feed(render_table_html(ROWS))
    header, rule, *body = md
    assert header == ["class", "n", "fpr", "note"]
    assert set("".join(rule)) <= {"-", ":"}
    assert [header, *body] == parser.rows
    for row, cells in zip(ROWS, body, strict=True):
        assert int(cells[1].replace(",", "")) == int(row["n"])
        if math.isnan(row["fpr"]):
            assert cells[2] == fmt.MISSING
        else:
            assert math.isclose(float(cells[2]), float(row["fpr"]), rel_tol=5e-4)
    assert body[0][3] == "a|b"
    assert body[1][3] == body[2][3] == fmt.MISSING


def test_numeric_columns_are_right_aligned() -> None:
    rule = render_table_markdown(ROWS).splitlines()[1].strip("|").split("|")
    assert [c.strip().endswith(":") for c in rule] == [False, True, True, False]
    assert '<td class="num">11,350</td>' in render_table_html(ROWS)


def test_column_formats_and_order() -> None:
    md = render_table_markdown(ROWS, ["fpr", "class"], formats={"fpr": fmt.pct})
    cells = _markdown_cells(md)
    assert cells[0] == ["fpr", "class"]
    assert cells[2] == [fmt.pct(0.00012), "0"]
    with pytest.raises(ConfigError, match="unknown columns"):
        render_table_markdown(ROWS, ["class"], formats={"fpr": fmt.pct})


def test_html_escapes_cells_headers_and_caption() -> None:
    rows = [{"<th>": "<script>alert(1)</script>"}]
    out = render_table_html(rows, caption="<b>x</b>")
    assert "<script>" not in out and "<b>" not in out
    assert "&lt;script&gt;" in out and "&lt;th&gt;" in out


def test_empty_inputs() -> None:
    assert render_table_markdown([]) == ""
    assert _markdown_cells(render_table_markdown([], ["a"]))[0] == ["a"]
