"""A model's scores and the true labels, as files: what ``notsure calibrate``/``decide`` read.

Scores: a CSV with one column per class (a header gives the class names), a ``.npy`` array of
shape ``(n, n_classes)``, or an ``.npz`` archive with a ``scores`` array (or a single array) and
optionally the class names in ``classes``. Labels: a CSV with one label per line (an optional
``label`` header line), or a ``.npy`` array; class names when the scores have them, else column
indices 0..n_classes-1. Every problem is a DataError naming the file and the row.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from notsure.data.csv_files import ENCODING, LABEL_COLUMN, read_header, read_number_table
from notsure.data.npz_files import read_arrays
from notsure.data.parsing import check_finite, read_head
from notsure.errors import DataError

SCORE_SUFFIXES = (".csv", ".npy", ".npz")


@dataclass(frozen=True)
class ScoreTable:
    """Scores ``(n, n_classes)`` as float64, and the class names if the file names them."""

    scores: np.ndarray
    classes: tuple[str, ...] | None
    source: str


def _suffix(path: Path, allowed: tuple[str, ...]) -> str:
    suffix = path.suffix.lower()
    if suffix not in allowed:
        raise DataError(f"{path}: unknown file type {suffix or '(none)'!r}; expected one of "
                        f"{', '.join(allowed)}")
    read_head(path, 1)  # DataError if missing or empty
    return suffix


def _load_npy(path: Path) -> np.ndarray:
    try:
        return np.load(path, allow_pickle=False)
    except ValueError as exc:
        raise DataError(f"{path}: not a numeric .npy array (object arrays would need "
                        f"unpickling, which is refused): {exc}") from None


def read_scores(path: str | os.PathLike[str]) -> ScoreTable:
    """The scores in ``path`` (CSV, NPY or NPZ), checked: 2-D, at least 2 columns, finite."""
    path = Path(path)
    suffix = _suffix(path, SCORE_SUFFIXES)
    classes = None
    if suffix == ".csv":
        names = read_header(path)
        scores = read_number_table(path)
        classes = tuple(names) if names else None
    elif suffix == ".npy":
        scores = _load_npy(path)
    else:
        arrays = read_arrays(path)
        if "scores" not in arrays and len(arrays) != 1:
            raise DataError(f"{path}: holds arrays {sorted(arrays)}; name the scores 'scores' "
                            "(and the class names 'classes')")
        scores = arrays.pop("scores") if "scores" in arrays else arrays.popitem()[1]
        if "classes" in arrays:
            classes = tuple(str(c) for c in arrays["classes"].tolist())
    if scores.ndim != 2 or scores.shape[1] < 2 or scores.dtype.kind not in "iuf":
        raise DataError(f"{path}: scores must be numbers of shape (n_samples, n_classes) with at "
                        f"least 2 classes, got {scores.dtype} {scores.shape}")
    if len(scores) == 0:
        raise DataError(f"{path}: no rows of scores")
    check_finite(scores, str(path))
    if classes is not None and (len(classes) != scores.shape[1]
                                or len(set(classes)) != len(classes)):
        raise DataError(f"{path}: {len(classes)} class names for {scores.shape[1]} score columns "
                        "(names must be distinct, one per column)")
    return ScoreTable(scores.astype(np.float64), classes, str(path))


def read_labels(path: str | os.PathLike[str], n_rows: int, n_classes: int,
                classes: tuple[str, ...] | None = None) -> np.ndarray:
    """True classes as column indices: names of ``classes`` if given, else indices."""
    path = Path(path)
    suffix = _suffix(path, (".csv", ".npy"))
    if suffix == ".npy":
        values = _load_npy(path)
        if values.ndim != 1:
            raise DataError(f"{path}: labels must be one value per row, got shape {values.shape}")
        cells = [str(v) for v in values.tolist()]
    else:
        with open(path, encoding=ENCODING) as fh:
            cells = [line.strip() for line in fh.read().splitlines()]
        if cells and cells[0].lower() == LABEL_COLUMN:
            cells = cells[1:]
        while cells and not cells[-1]:
            cells.pop()
    if len(cells) != n_rows:
        raise DataError(f"{path}: {len(cells)} labels for {n_rows} rows of scores; give one "
                        "label per row, in the same order")
    if classes is not None:
        index = {name: i for i, name in enumerate(classes)}
        lookup, expected = index.get, f"one of the class names {list(classes)}"
    else:
        lookup = _column_index(n_classes)
        expected = f"a column index 0..{n_classes - 1} (the scores name no classes)"
    out = np.empty(n_rows, dtype=np.int64)
    for row, cell in enumerate(cells):
        found = lookup(cell)
        if found is None:
            raise DataError(f"{path}: label {row + 1} is {cell!r}, expected {expected}")
        out[row] = found
    return out


def _column_index(n_classes: int):
    def lookup(cell: str) -> int | None:
        try:
            value = float(cell)
        except ValueError:
            return None
        ok = value.is_integer() and 0 <= value < n_classes
        return int(value) if ok else None
    return lookup
