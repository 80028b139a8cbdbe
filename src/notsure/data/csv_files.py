"""CSV files: the customer CSV (a label then the pixels of one image per row) and CSV pairs.

Parsing takes a fast path (``np.loadtxt``, C code) and a vectorized check. Only when either fails
does a row-by-row scan run, to name the line and column at fault in the error.
"""

from __future__ import annotations

import itertools
import math
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import NamedTuple, TextIO

import numpy as np

from notsure.data.dataset import Dataset
from notsure.data.limits import check_bytes, check_count
from notsure.data.parsing import (
    check_same_length,
    make_dataset,
    numbered_ids,
    read_head,
    require_labels_path,
)
from notsure.errors import DataError

ENCODING = "utf-8-sig"  # tolerates the byte-order mark spreadsheet programs write
LABEL_COLUMN = "label"


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def read_header(path: Path) -> list[str] | None:
    """The column names of ``path`` if its first line is a header (first cell not a number)."""
    read_head(path, 1)
    check_bytes(str(path), path.stat().st_size, "the CSV")
    with open(path, encoding=ENCODING) as fh:
        first = next(_lines(fh, path)).rstrip("\r\n")
    cells = [c.strip() for c in first.split(",")]
    return None if _is_number(cells[0]) else cells


# --- what each column must hold ----------------------------------------------------------------

CellParser = Callable[[str, str], float]  # (cell text, "FILE: line L, column C") -> value


def _number(text: str, where: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise DataError(f"{where}: {text!r} is not a number") from None
    if not math.isfinite(value):
        raise DataError(f"{where}: {text!r} is NaN or infinite; expected a finite number")
    return value


def _whole(text: str, what: str, expected: str, where: str) -> int:
    try:
        return int(text)
    except ValueError:
        value = float(text) if _is_number(text) else math.nan
    if not math.isfinite(value) or value != int(value):
        if what == "pixel":
            _number(text, where)  # says "not a number" / "NaN or infinite" when it is that
        raise DataError(f"{where}: {what} {text!r} is not {expected}")
    return int(value)


def _label(text: str, where: str) -> int:
    return _whole(text, "label", "an integer class label", where)


def _pixel(text: str, where: str) -> int:
    value = _whole(text, "pixel", "a whole number 0..255", where)
    if not 0 <= value <= 255:
        raise DataError(f"{where}: pixel value {value} is outside 0..255")
    return value


class Rules(NamedTuple):
    """Per-column rules: cell parsers (the reference, they word the errors) and the same rules
    as arrays for a quick vectorized check of whole rows or tables."""

    parsers: list[CellParser]
    low: np.ndarray
    high: np.ndarray
    whole: np.ndarray  # bool: the column must hold whole numbers


def pixel_rules(n_columns: int, label_at: int) -> Rules:
    """A label column (any integer) and pixel columns (whole numbers 0..255)."""
    low, high = np.zeros(n_columns), np.full(n_columns, 255.0)
    low[label_at], high[label_at] = -np.inf, np.inf
    parsers = [_label if j == label_at else _pixel for j in range(n_columns)]
    return Rules(parsers, low, high, np.ones(n_columns, dtype=bool))


def number_rules(n_columns: int) -> Rules:
    """Any finite numbers."""
    return Rules([_number] * n_columns, np.full(n_columns, -np.inf), np.full(n_columns, np.inf),
                 np.zeros(n_columns, dtype=bool))


def label_rules() -> Rules:
    """One column of integer class labels."""
    return Rules([_label], np.array([-np.inf]), np.array([np.inf]), np.ones(1, dtype=bool))


def meets(values: np.ndarray, rules: Rules) -> bool:
    """True when every row of ``values`` (a row or a table) satisfies ``rules``."""
    if values.dtype.kind == "f":
        if not np.isfinite(values).all():
            return False
        whole = values[..., rules.whole]
        if not (whole == np.round(whole)).all():
            return False
    return bool((values >= rules.low).all() and (values <= rules.high).all())


# --- reading: fast whole-file parse, else a row-by-row scan that names the first problem -------

def _fast_table(path: Path, names: list[str] | None, dtype: type) -> np.ndarray | None:
    """``np.loadtxt`` of the whole file (C parser), or ``None`` when it cannot parse it."""
    try:
        with warnings.catch_warnings():  # "input contained no data": reported by _table
            warnings.simplefilter("ignore", UserWarning)
            return np.loadtxt(path, delimiter=",", dtype=dtype, skiprows=int(names is not None),
                              ndmin=2, encoding=ENCODING, comments=None)
    except (ValueError, OverflowError):
        return None


def _quick_row(line: str, n_columns: int, rules: Rules) -> np.ndarray | None:
    """The row's values when it has the right columns and meets ``rules``, else ``None``."""
    if line.count(",") != n_columns - 1:
        return None
    try:
        values = np.fromstring(line, dtype=np.float64, sep=",")
    except ValueError:  # unparsable cell (a DeprecationWarning turned into an error)
        return None
    return values if len(values) == n_columns and meets(values, rules) else None


def _checked_row(path: Path, lineno: int, line: str, names: list[str] | None,
                 rules: Rules) -> list[float]:
    """Parse one line cell by cell; the first cell that breaks its rule is the error."""
    cells = line.rstrip("\r\n").split(",")
    if len(cells) != len(rules.parsers):
        raise DataError(f"{path}: line {lineno}: expected {len(rules.parsers)} columns, "
                        f"got {len(cells)}")
    values = []
    for j, (parse, cell) in enumerate(zip(rules.parsers, cells, strict=True)):
        name = f" ({names[j]!r})" if names is not None else ""
        values.append(parse(cell.strip(), f"{path}: line {lineno}, column {j + 1}{name}"))
    return values


def _lines(fh: TextIO, path: Path) -> Iterator[str]:
    """The lines of ``fh``; bytes that are not UTF-8 raise an error saying where."""
    lineno = 0
    try:
        for lineno, line in enumerate(fh, start=1):  # noqa: B007 (used after the loop)
            yield line
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: the text after line {lineno} is not UTF-8 ({exc.reason}); "
                        "save the CSV as UTF-8") from None


def scan_rows(path: Path, names: list[str] | None, rules: Rules) -> np.ndarray:
    """Parse ``path`` row by row; the first problem raises an error naming line and column.

    Rows are checked quickly with NumPy; only a row that fails is parsed cell by cell, so the
    scan stays fast. Blank lines are skipped. Returns float64, shape ``(rows, columns)``.
    """
    n_columns = len(rules.parsers)
    rows = []
    with open(path, encoding=ENCODING) as fh, warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)  # fromstring's "could not read"
        for lineno, line in enumerate(_lines(fh, path), start=1):
            if (lineno == 1 and names is not None) or not line.strip():
                continue
            row = _quick_row(line, n_columns, rules)
            rows.append(row if row is not None else _checked_row(path, lineno, line, names,
                                                                 rules))
    return _table(path, names, np.asarray(rows, dtype=np.float64).reshape(-1, n_columns))


def read_table(path: Path, names: list[str] | None, rules: Rules,
               dtypes: tuple[type, ...]) -> np.ndarray:
    """The cells of ``path`` meeting ``rules``: the first fast parse (by dtype) that passes the
    vectorized check, else the row-by-row scan, which explains the problem."""
    for dtype in dtypes:
        table = _fast_table(path, names, dtype)
        if table is not None and table.shape[1] == len(rules.parsers) and meets(table, rules):
            return _table(path, names, table)
    return scan_rows(path, names, rules)


def _table(path: Path, names: list[str] | None, table: np.ndarray) -> np.ndarray:
    if len(table) == 0:
        raise DataError(f"{path}: no data rows" + (" after the header" if names else ""))
    check_count(str(path), len(table))
    return table


def _n_columns(path: Path, names: list[str] | None) -> int:
    if names is not None:
        return len(names)
    with open(path, encoding=ENCODING) as fh:
        return len(next(_lines(fh, path)).split(","))


# --- the formats ------------------------------------------------------------------------------

def _pixel_layout(path: Path) -> tuple[list[str] | None, int, int]:
    """Header names (or None), column count and label column of a customer CSV."""
    names = read_header(path)
    n_columns = _n_columns(path, names)
    label_at = names.index(LABEL_COLUMN) if names and LABEL_COLUMN in names else 0
    if n_columns < 2:
        raise DataError(f"{path}: expected a label column and pixel columns, got {n_columns} "
                        "column(s)")
    return names, n_columns, label_at


def read_pixel_table(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Labels and flat pixels of a customer CSV (``label,pixel0,...``; header optional).

    The label column is the one named ``label`` in the header, else the first column.
    """
    names, n_columns, label_at = _pixel_layout(path)
    # int16 holds every pixel and typical labels in a quarter of int64's memory
    table = read_table(path, names, pixel_rules(n_columns, label_at), (np.int16,))
    return table[:, label_at].astype(np.int64), np.delete(table, label_at, axis=1).astype(np.uint8)


def _block_table(path: Path, names: list[str] | None, block: list[tuple[int, str]],
                 rules: Rules) -> np.ndarray:
    """The cells of some numbered lines: a fast parse when it passes the check, else the cell by
    cell scan that names the first problem's line and column."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            table = np.loadtxt([line for _, line in block], delimiter=",", dtype=np.int16,
                               ndmin=2, comments=None)
        if table.shape[1] == len(rules.parsers) and meets(table, rules):
            return table
    except (ValueError, OverflowError):
        pass
    n_columns = len(rules.parsers)
    rows = []
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)
        for lineno, line in block:
            if line.strip():
                row = _quick_row(line, n_columns, rules)
                rows.append(row if row is not None else _checked_row(path, lineno, line, names,
                                                                     rules))
    return np.asarray(rows, dtype=np.float64).reshape(-1, n_columns)


def iter_pixel_table(path: Path, rows: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """:func:`read_pixel_table` in blocks of ``rows`` lines, for files of any size: labels and
    flat pixels of each block, with the same checks and messages."""
    names, n_columns, label_at = _pixel_layout(path)
    rules = pixel_rules(n_columns, label_at)
    total = 0
    with open(path, encoding=ENCODING) as fh:
        lines = enumerate(_lines(fh, path), start=1)
        if names is not None:
            next(lines)
        while block := list(itertools.islice(lines, rows)):
            table = _block_table(path, names, block, rules)
            total += len(table)
            check_count(str(path), total)
            if len(table):
                yield (table[:, label_at].astype(np.int64),
                       np.delete(table, label_at, axis=1).astype(np.uint8))
    if total == 0:
        raise DataError(f"{path}: no data rows" + (" after the header" if names else ""))


def square_images(path: Path, pixels: np.ndarray) -> np.ndarray:
    """Rows of ``side * side`` pixels as ``(N, side, side)`` images; an error otherwise."""
    side = math.isqrt(pixels.shape[1])
    if side * side != pixels.shape[1]:
        raise DataError(f"{path}: {pixels.shape[1]} pixel columns do not form a square image; "
                        "expected side*side columns, e.g. 784 for 28x28")
    return pixels.reshape(len(pixels), side, side)


def load_csv(path: Path) -> Dataset:
    """The customer CSV: one image per row, ``label`` then pixels ``pixel0..`` row-major.

    Pixel ``k`` of a ``side x side`` image sits at row ``k // side``, column ``k % side``.
    Ids are ``"row/<i>"``, ``i`` counting data rows from 0.
    """
    labels, pixels = read_pixel_table(path)
    images = square_images(path, pixels)
    return make_dataset(images, labels, numbered_ids("row", len(labels)), source=str(path),
                        format="csv", kind="images")


def read_number_table(path: Path) -> np.ndarray:
    """All cells of a numeric CSV (header optional) as integers if they all are, else float64."""
    names = read_header(path)
    return read_table(path, names, number_rules(_n_columns(path, names)), (np.int16, np.float64))


def read_label_column(path: Path) -> np.ndarray:
    """Integer class labels, one per line (a header line such as ``label`` is allowed)."""
    names = read_header(path)
    n_columns = _n_columns(path, names)
    if n_columns != 1:
        raise DataError(f"{path}: a labels file needs 1 column, got {n_columns}")
    return read_table(path, names, label_rules(), (np.int64,))[:, 0].astype(np.int64)


def load_csv_pair(path: Path, labels_path: Path | None = None) -> Dataset:
    """A headerless samples CSV (one sample per row) with a labels CSV beside it.

    Rows that look like pixels of a square image become images, others float32 vectors.
    """
    labels_path = require_labels_path(path, labels_path)
    x = read_number_table(path)
    labels = read_label_column(labels_path)
    check_same_length(len(x), len(labels), str(path), str(labels_path))
    return make_dataset(x, labels, numbered_ids("row", len(labels)), source=str(path),
                        format="csv-pair")
