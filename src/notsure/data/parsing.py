"""Checks and helpers every data reader shares: label encoding, pixel and finiteness checks,
images versus vectors, dataset assembly, and finding the labels file of an images file."""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np

from notsure.data.dataset import Dataset, Kind
from notsure.data.limits import check_count
from notsure.errors import DataError

GZIP_MAGIC = b"\x1f\x8b"
ZIP_MAGIC = b"PK\x03\x04"


def read_head(path: Path, n: int) -> bytes:
    """The first ``n`` bytes of ``path``; an empty file is an error."""
    with open(path, "rb") as fh:
        head = fh.read(n)
    if not head:
        raise DataError(f"{path}: file is empty (0 bytes)")
    return head


#: Name parts swapped to find the labels file of an images file: images -> labels, x -> y.
_PARTNER_TOKENS = {"images": "labels", "Images": "Labels", "IMAGES": "LABELS",
                   "x": "y", "X": "y", "idx3": "idx1"}


def labels_partner(path: Path) -> Path | None:
    """The labels file beside ``path`` named like it (``x.csv`` -> ``y.csv``), if it exists."""
    parts = re.split(r"([-_.])", path.name)
    swapped = [_PARTNER_TOKENS.get(p, p) for p in parts]
    if swapped == parts:
        return None
    candidate = path.with_name("".join(swapped))
    return candidate if candidate.is_file() else None


def require_labels_path(path: Path, labels_path: Path | None) -> Path:
    """``labels_path`` if given, else the partner found by name; an error says how to give it."""
    found = labels_path or labels_partner(path)
    if found is None:
        raise DataError(
            f"{path}: no labels file found beside it (looked for the name with images->labels, "
            f"x->y, idx3->idx1); pass labels_path= (CLI: --labels FILE)"
        )
    if not found.is_file():
        raise DataError(f"{found}: labels file does not exist")
    return found


def encode_labels(labels: np.ndarray, source: str) -> tuple[np.ndarray, tuple[str, ...]]:
    """Map label values to indices into the sorted distinct values, returned as strings.

    Integer labels sort numerically (``"2"`` before ``"10"``), text labels alphabetically. Float
    labels must hold whole numbers.
    """
    labels = np.asarray(labels)
    if labels.ndim != 1:
        raise DataError(f"{source}: labels must be one value per sample, got shape {labels.shape}")
    if labels.dtype.kind == "b":
        labels = labels.astype(np.int64)
    elif labels.dtype.kind == "f":
        bad = np.flatnonzero(~np.isfinite(labels) | (labels != np.round(labels)))
        if bad.size:
            raise DataError(f"{source}: label at index {bad[0]} is {labels[bad[0]].item()!r}, "
                            "expected an integer class label")
        labels = labels.astype(np.int64)
    elif labels.dtype.kind not in "iuU":
        labels = labels.astype(str)
    values, y = np.unique(labels, return_inverse=True)
    return y.astype(np.int64).reshape(-1), tuple(str(v) for v in values)


def check_same_length(n_samples: int, n_labels: int, samples: str, labels: str) -> None:
    """Images (or vectors) and labels must pair up one to one."""
    if n_samples != n_labels:
        raise DataError(
            f"{samples} has {n_samples} samples but {labels} has {n_labels} labels; "
            "they must have one label per sample, in the same order"
        )


def first_bad(mask: np.ndarray) -> tuple[int, ...] | None:
    """Position of the first True in ``mask`` (C order), or ``None``."""
    flat = np.flatnonzero(mask)
    return None if flat.size == 0 else tuple(int(i) for i in np.unravel_index(flat[0], mask.shape))


def check_finite(x: np.ndarray, source: str) -> None:
    """No NaN or infinity anywhere; the error names the sample and position."""
    if x.dtype.kind in "fc" and not np.isfinite(x).all():
        where = first_bad(~np.isfinite(x))
        raise DataError(f"{source}: value {x[where]} at sample {where[0]}, position "
                        f"{where[1:]} is not a finite number; NaN and inf are not allowed")


def to_pixels(x: np.ndarray, source: str) -> np.ndarray:
    """``x`` as uint8 pixels; any value that is not a whole number 0..255 is an error."""
    if x.dtype == np.uint8:
        return x
    if x.dtype.kind not in "iufb":
        raise DataError(f"{source}: pixels must be numbers, got dtype {x.dtype}")
    check_finite(x, source)
    bad = (x < 0) | (x > 255)
    if x.dtype.kind == "f":
        bad |= x != np.round(x)
    where = first_bad(bad)
    if where is not None:
        raise DataError(f"{source}: pixel value {x[where]} at sample {where[0]}, row {where[1]}, "
                        f"column {where[2]}; expected a whole number 0..255")
    return x.astype(np.uint8)


def looks_like_pixels(x: np.ndarray) -> bool:
    """True for 2-D data whose columns form a square image and whose values are whole 0..255."""
    side = math.isqrt(x.shape[1]) if x.ndim == 2 else 0
    if x.ndim != 2 or side < 2 or side * side != x.shape[1] or x.dtype.kind not in "iufb":
        return False
    if x.size == 0:
        return True
    if x.dtype.kind == "f" and not (np.isfinite(x).all() and (x == np.round(x)).all()):
        return False
    return bool(x.min() >= 0 and x.max() <= 255)


def samples_and_kind(x: np.ndarray, source: str) -> tuple[np.ndarray, Kind]:
    """Images ``(N, H, W)`` uint8 or vectors ``(N, D)`` float32 from a reader's array.

    3-D arrays are images. 2-D arrays are flattened square images when they look like pixels
    (see :func:`looks_like_pixels`), otherwise feature vectors.
    """
    x = np.asarray(x)
    if x.ndim == 3:
        return to_pixels(x, source), "images"
    if x.ndim != 2:
        raise DataError(f"{source}: samples must be images (N, H, W) or vectors (N, D), "
                        f"got shape {x.shape}")
    if looks_like_pixels(x):
        side = math.isqrt(x.shape[1])
        return x.astype(np.uint8).reshape(len(x), side, side), "images"
    if x.dtype.kind not in "iufb":
        raise DataError(f"{source}: vectors must be numbers, got dtype {x.dtype}")
    check_finite(x, source)
    return x.astype(np.float32), "vectors"


def numbered_ids(prefix: str, n: int) -> np.ndarray:
    """``"<prefix>/0" .. "<prefix>/<n-1>"``: ids that give a sample's position in its file."""
    return np.char.add(f"{prefix}/", np.arange(n).astype(str))


def make_dataset(
    x: np.ndarray,
    labels: np.ndarray,
    ids: np.ndarray,
    *,
    source: str,
    format: str,
    groups: np.ndarray | None = None,
    kind: Kind | None = None,
) -> Dataset:
    """A :class:`Dataset` from a reader's samples and raw label values (encoded here)."""
    check_same_length(len(x), len(labels), source, source)
    check_count(source, len(x))
    if len(x) == 0:
        raise DataError(f"{source}: holds no samples")
    if kind is None:
        x, kind = samples_and_kind(x, source)
    y, class_names = encode_labels(labels, source)
    return Dataset(x=x, y=y, class_names=class_names, ids=np.asarray(ids, dtype=str), kind=kind,
                   source=source, format=format,
                   groups=None if groups is None else np.asarray(groups, dtype=str))
