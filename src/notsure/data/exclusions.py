"""Exclusion files: samples whose labels look wrong, to drop from training or relabel.

A UTF-8 CSV with the header ``id,given_label,suggested_label``: one row per sample, ``id`` as in
:class:`~notsure.data.dataset.Dataset` (e.g. ``t10k/4176``), labels as class names. ``notsure
ambiguous --write-exclusions FILE`` writes one; :func:`apply_exclusions` uses it.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from notsure.data.dataset import Dataset
from notsure.errors import ConfigError, DataError
from notsure.io.atomic import atomic_write_text

COLUMNS = ("id", "given_label", "suggested_label")
Mode = Literal["drop", "relabel"]


@dataclass(frozen=True, eq=False)
class ExclusionTable:
    """The rows of an exclusion file, as equal-length string arrays."""

    ids: np.ndarray
    given_label: np.ndarray
    suggested_label: np.ndarray
    source: str = "<memory>"

    def __len__(self) -> int:
        return len(self.ids)


def write_exclusions(path: str | os.PathLike[str], ids: Sequence[str],
                     given_label: Sequence[str], suggested_label: Sequence[str]) -> Path:
    """Write an exclusion file atomically; returns its path."""
    if not len(ids) == len(given_label) == len(suggested_label):
        raise ConfigError("exclusions need one given and one suggested label per id")
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(COLUMNS)
    writer.writerows(zip(ids, given_label, suggested_label, strict=True))
    return atomic_write_text(path, buf.getvalue())


def read_exclusions(path: str | os.PathLike[str]) -> ExclusionTable:
    """Read and check an exclusion file: the header, three cells per row, unique ids."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DataError(f"{path}: exclusion file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: not a readable UTF-8 text file ({exc})") from None
    rows = list(csv.reader(io.StringIO(text)))
    if not rows or tuple(c.strip() for c in rows[0]) != COLUMNS:
        raise DataError(f"{path}: line 1 must be the header {','.join(COLUMNS)}")
    body = []
    for line, row in enumerate(rows[1:], start=2):
        if not row:
            continue
        cells = [c.strip() for c in row]
        if len(cells) != len(COLUMNS) or not all(cells):
            raise DataError(f"{path}: line {line} must have 3 non-empty cells "
                            f"({','.join(COLUMNS)}), got {row!r}")
        body.append(cells)
    table = np.array(body, dtype=str).reshape(-1, len(COLUMNS))
    ids, first = np.unique(table[:, 0], return_index=True)
    if len(ids) != len(table):
        dup = np.setdiff1d(np.arange(len(table)), first)[0]
        raise DataError(f"{path}: line {dup + 2}: id {str(table[dup, 0])!r} is listed twice")
    return ExclusionTable(ids=table[:, 0], given_label=table[:, 1],
                          suggested_label=table[:, 2], source=str(path))


def locate(ds: Dataset, table: ExclusionTable) -> np.ndarray:
    """Positions in ``ds`` of the table's ids, checking each given label matches the data's."""
    order = np.argsort(ds.ids)
    at = np.searchsorted(ds.ids, table.ids, sorter=order)
    at = order[np.minimum(at, len(order) - 1)]
    missing = np.flatnonzero(ds.ids[at] != table.ids)
    if missing.size:
        i = missing[0]
        raise DataError(f"{table.source}: line {i + 2}: id {str(table.ids[i])!r} is not in "
                        f"{ds.source} ({missing.size} ids missing); was the file made for "
                        "another dataset?")
    names = np.asarray(ds.class_names, dtype=str)
    differs = np.flatnonzero(names[ds.y[at]] != table.given_label)
    if differs.size:
        i = differs[0]
        have, said = str(names[ds.y[at[i]]]), str(table.given_label[i])
        raise DataError(f"{table.source}: line {i + 2}: id {table.ids[i]} has label "
                        f"{have!r} in {ds.source}, not {said!r}")
    return at


def apply_exclusions(ds: Dataset, table: ExclusionTable, mode: Mode = "drop") -> Dataset:
    """``ds`` without the listed samples (``"drop"``) or with their suggested labels
    (``"relabel"``); the result has a new fingerprint."""
    if mode not in ("drop", "relabel"):
        raise ConfigError(f"mode={mode!r}: expected 'drop' or 'relabel'")
    at = locate(ds, table)
    if mode == "drop":
        return ds.subset(np.setdiff1d(np.arange(len(ds)), at))
    index = {name: k for k, name in enumerate(ds.class_names)}
    unknown = [i for i, s in enumerate(table.suggested_label) if s not in index]
    if unknown:
        i = unknown[0]
        raise DataError(f"{table.source}: line {i + 2}: suggested label "
                        f"{str(table.suggested_label[i])!r} is not a class of {ds.source} "
                        f"(classes: {', '.join(ds.class_names)})")
    y = ds.y.copy()
    y[at] = [index[s] for s in table.suggested_label]
    return dataclasses.replace(ds, y=y, fingerprint="")
