"""``load(path)``: detect a data file's format and read it into a :class:`Dataset`.

The checks every reader shares live in :mod:`notsure.data.parsing`.
"""

from __future__ import annotations

import os
import struct
import zlib
from pathlib import Path

from notsure.data import csv_files, idx, mnist, npz_files, pickles, png_folder
from notsure.data.dataset import Dataset
from notsure.data.parsing import GZIP_MAGIC, ZIP_MAGIC, labels_partner, read_head
from notsure.errors import DataError, NotsureError

#: Every format ``load`` reads; pass one as ``format=`` to skip detection.
FORMATS: tuple[str, ...] = (
    "idx", "mnist", "csv", "csv-pair", "npz", "pickle", "embeddings", "png-folder",
)
#: Formats stored as a folder rather than one file.
FOLDER_FORMATS: tuple[str, ...] = ("mnist", "png-folder")

#: What a reader may raise on a malformed file it did not foresee; ``load`` names the file.
READ_ERRORS = (ValueError, OSError, EOFError, struct.error, zlib.error, OverflowError,
               RecursionError)

PICKLE_SUFFIXES = (".p", ".pkl", ".pickle")


def load(
    path: str | os.PathLike[str],
    format: str | None = None,
    *,
    labels_path: str | os.PathLike[str] | None = None,
) -> Dataset:
    """Read ``path`` as ``format`` (detected from its content and name when ``None``).

    ``labels_path`` names the labels file of an IDX images file or of a headerless CSV; without
    it the partner is found by name: ``x.csv`` -> ``y.csv``, ``images.csv`` -> ``labels.csv``,
    ``*-images-idx3-ubyte`` -> ``*-labels-idx1-ubyte``.
    """
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: no such file or folder")
    try:
        return _load(path, format, labels_path)
    except NotsureError:
        raise
    except MemoryError:
        raise DataError(f"{path}: ran out of memory reading it; lower the limits (--max-bytes, "
                        "NOTSURE_MAX_BYTES) or read a smaller file") from None
    except READ_ERRORS as exc:  # the readers name most problems; this names any other
        raise DataError(f"{path}: could not be read ({type(exc).__name__}: {exc})") from exc


def _load(path: Path, format: str | None, labels_path: str | os.PathLike[str] | None
          ) -> Dataset:
    given = format
    if format is None:
        format = detect_format(path, labels_path=labels_path)
    elif format not in FORMATS:
        raise DataError(f"unknown format {format!r}; use one of {', '.join(FORMATS)}")
    if (format in FOLDER_FORMATS) != path.is_dir():
        wanted = "a folder" if format in FOLDER_FORMATS else "a file"
        raise DataError(f"{path}: format {format!r} reads {wanted}")
    labels = None if labels_path is None else Path(labels_path)
    if format == "idx":
        return idx.load_idx(path, labels)
    if format == "mnist":
        return idx.load_mnist_folder(path)
    if format == "csv":
        return csv_files.load_csv(path)
    if format == "csv-pair":
        return csv_files.load_csv_pair(path, labels)
    if format == "npz":
        return npz_files.load_npz(path)
    if format in ("pickle", "embeddings"):
        return pickles.load_pickle(path, given)  # None: pickle or embeddings by content
    return png_folder.load_png_folder(path)


def detect_format(path: Path, *, labels_path: str | os.PathLike[str] | None = None) -> str:
    """The format name of ``path``, from folder content, magic bytes and file name.

    Pickles are reported as ``"pickle"``; :func:`notsure.data.pickles.load_pickle` tells plain
    ``(X, y)`` pickles from hierarchical embeddings by their content.
    """
    tried = "mnist (the four IDX files), png-folder (one sub-folder of PNGs per class)"
    if path.is_dir():
        if any(idx.find_idx_file(path, name) for name in mnist.RAW_NAMES):
            return "mnist"
        if png_folder.class_folders(path):
            return "png-folder"
    else:
        tried = "idx (magic number), npz, pickle, csv (by .csv name)"
        head = read_head(path, 4)
        if head[:2] == GZIP_MAGIC:
            head = idx.gunzip_head(path, 4)
        if idx.looks_like_idx(head):
            return "idx"
        suffix = path.suffix.lower()
        if head == ZIP_MAGIC and suffix == ".npz":
            return "npz"
        if head[:1] == b"\x80" or suffix in PICKLE_SUFFIXES:
            return "pickle"
        if suffix == ".csv":
            if labels_path is not None or labels_partner(path) is not None:
                return "csv-pair"
            return "csv"
    raise DataError(
        f"{path}: could not detect the data format (tried {tried}); name it with --format "
        f"(Python: format=), one of {', '.join(FORMATS)}"
    )
