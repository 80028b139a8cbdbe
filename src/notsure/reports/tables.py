"""Tables of rows (dicts) as Markdown and HTML, with the same cell text in both.

Jobs keep results as ``list[dict]``; these functions turn them into text for the terminal, ``.md``
files and the HTML report. Cells are formatted once, by :func:`notsure.reports.fmt.cell`.
"""

from __future__ import annotations

import html
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from notsure.constants import NOT_SURE_NAME
from notsure.errors import ConfigError
from notsure.reports import fmt

Row = Mapping[str, Any]
#: Per-column formatters, applied to every non-missing value of that column.
Formats = Mapping[str, Callable[[Any], str]]


def table_columns(rows: Sequence[Row], columns: Sequence[str] | None = None) -> list[str]:
    """The columns to show: ``columns`` if given, else every key in order of first appearance."""
    if columns is not None:
        return list(columns)
    seen: dict[str, None] = {}
    for row in rows:
        seen.update(dict.fromkeys(row))
    return list(seen)


def format_rows(
    rows: Sequence[Row],
    columns: Sequence[str],
    *,
    float_format: fmt.FloatFormat = fmt.num,
    formats: Formats | None = None,
) -> list[list[str]]:
    """Each row's cells as text; a column in ``formats`` uses its own formatter."""
    formats = formats or {}
    unknown = sorted(set(formats) - set(columns))
    if unknown:
        raise ConfigError(f"table formats name unknown columns {unknown}; columns are {columns}")
    out = []
    for row in rows:
        cells = []
        for col in columns:
            value = row.get(col)
            if col in formats and not fmt.is_missing(value):
                cells.append(formats[col](value))
            else:
                cells.append(fmt.cell(value, float_format))
        out.append(cells)
    return out


def numeric_columns(rows: Sequence[Row], columns: Sequence[str]) -> list[bool]:
    """Whether each column holds only numbers (or missing values): those are right-aligned."""
    def is_number(v: Any) -> bool:
        return isinstance(v, (int, float, np.number)) and not isinstance(v, (bool, np.bool_))

    return [
        any(is_number(r.get(c)) for r in rows)
        and all(is_number(r.get(c)) or fmt.is_missing(r.get(c)) for r in rows)
        for c in columns
    ]


def markdown_cell(text: str) -> str:
    """Text safe inside a Markdown table cell: pipes escaped, newlines as spaces."""
    return text.replace("|", "\\|").replace("\n", " ")


def render_table_markdown(
    rows: Sequence[Row],
    columns: Sequence[str] | None = None,
    *,
    float_format: fmt.FloatFormat = fmt.num,
    formats: Formats | None = None,
) -> str:
    """A GitHub-flavoured Markdown table, padded so it also reads well in a terminal."""
    columns = table_columns(rows, columns)
    if not columns:
        return ""
    header = [markdown_cell(str(c)) for c in columns]
    body = [[markdown_cell(c) for c in r]
            for r in format_rows(rows, columns, float_format=float_format, formats=formats)]
    widths = [max(3, len(h), *(len(r[i]) for r in body)) for i, h in enumerate(header)]
    right = numeric_columns(rows, columns)

    def line(cells: Sequence[str]) -> str:
        padded = [c.rjust(w) if r else c.ljust(w)
                  for c, w, r in zip(cells, widths, right, strict=True)]
        return "| " + " | ".join(padded) + " |"

    rule = "| " + " | ".join("-" * (w - 1) + ":" if r else "-" * w
                             for w, r in zip(widths, right, strict=True)) + " |"
    return "\n".join([line(header), rule, *(line(r) for r in body)]) + "\n"


def render_table_html(
    rows: Sequence[Row],
    columns: Sequence[str] | None = None,
    *,
    caption: str | None = None,
    float_format: fmt.FloatFormat = fmt.num,
    formats: Formats | None = None,
) -> str:
    """An HTML ``<table>`` with escaped text; numeric columns carry ``class="num"``."""
    columns = table_columns(rows, columns)
    body = format_rows(rows, columns, float_format=float_format, formats=formats)
    right = numeric_columns(rows, columns)

    def cls(r: bool) -> str:
        return ' class="num"' if r else ""

    parts = ["<table>"]
    if caption:
        parts.append(f"<caption>{html.escape(caption)}</caption>")
    head = "".join(f"<th{cls(r)}>{html.escape(str(c))}</th>"
                   for c, r in zip(columns, right, strict=True))
    parts.append(f"<thead><tr>{head}</tr></thead>")
    parts.append("<tbody>")
    for cells in body:
        tds = "".join(f"<td{cls(r)}>{html.escape(c)}</td>"
                      for c, r in zip(cells, right, strict=True))
        parts.append(f"<tr>{tds}</tr>")
    parts.append("</tbody></table>")
    return "\n".join(parts)


def rates_rows(m: dict, class_names: tuple[str, ...], target: float | None = None) -> list[dict]:
    """One row per class: counts, FPR and TPR with their 95% Clopper-Pearson intervals."""
    rows = []
    for c, name in enumerate(class_names):
        row = {
            "class": name, "support": m["support"][c], "tp": m["tp"][c], "fp": m["fp"][c],
            "fn": m["fn"][c], "tn": m["tn"][c],
            "fpr": m["fpr"][c], "fpr_lo": m["fpr_ci"][c, 0], "fpr_hi": m["fpr_ci"][c, 1],
            "tpr": m["tpr"][c], "tpr_lo": m["tpr_ci"][c, 0], "tpr_hi": m["tpr_ci"][c, 1],
        }
        if target is not None:
            row["fpr_at_most_target"] = "yes" if m["fpr"][c] <= target else "NO"
        rows.append(row)
    return rows


def cm_rows(cm: np.ndarray, class_names: tuple[str, ...]) -> list[dict]:
    """One row per true class of a confusion matrix, plus a not-sure column when it has one."""
    columns = list(class_names) + ([NOT_SURE_NAME] if cm.shape[1] > len(class_names) else [])
    return [{"true": name, **{col: int(v) for col, v in zip(columns, cm[i], strict=True)}}
            for i, name in enumerate(class_names)]
