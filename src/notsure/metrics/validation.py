"""Input checks shared by every metric: bad input becomes a ConfigError naming the argument.

Labels are integer class values (any integers except ``NOT_SURE``); ``y_pred`` may also hold
``NOT_SURE``. :func:`encode` maps label values to column indices ``0..C-1`` (``NOT_SURE`` to ``C``)
with a lookup table, so a million samples cost milliseconds.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from notsure.constants import NOT_SURE
from notsure.errors import ConfigError

#: Lookup tables up to this many entries (8 MiB); wider label ranges use a binary search.
_TABLE_MIN = 1 << 20


def _preview(values: np.ndarray, limit: int = 10) -> str:
    """Up to ``limit`` values as a short list, for error messages."""
    shown = ", ".join(str(v) for v in values[:limit].tolist())
    return f"[{shown}{', ...' if len(values) > limit else ''}]"


def check_label_array(y: object, name: str, *, allow_not_sure: bool) -> np.ndarray:
    """Return ``y`` as a non-empty 1-D int64 array of class labels, else raise ConfigError."""
    arr = np.asarray(y)
    if arr.ndim != 1:
        raise ConfigError(f"{name} must be 1-D (one label per sample), got shape {arr.shape}")
    if arr.size == 0:
        raise ConfigError(f"{name} is empty (shape {arr.shape}); metrics need at least one sample")
    if arr.dtype.kind not in "biu":
        raise ConfigError(
            f"{name} must hold integer class labels, got dtype {arr.dtype}; "
            "convert with .astype(int)"
        )
    arr = arr.astype(np.int64, copy=False)
    if not allow_not_sure and arr.min() <= NOT_SURE:
        where = np.flatnonzero(arr == NOT_SURE)
        if where.size:
            raise ConfigError(
                f"{name} contains NOT_SURE ({NOT_SURE}) at index {int(where[0])}; "
                "true labels must be class values"
            )
    return arr


def check_same_length(**arrays: np.ndarray) -> int:
    """Return the common length of the named arrays, else raise ConfigError naming them."""
    lengths = {name: len(a) for name, a in arrays.items()}
    if len(set(lengths.values())) > 1:
        told = ", ".join(f"{name} has {n}" for name, n in lengths.items())
        raise ConfigError(f"inputs must have one entry per sample, but {told}")
    return next(iter(lengths.values()))


def check_scores(scores: object, name: str, *, ndim: int, n_samples: int) -> np.ndarray:
    """Return ``scores`` as finite float64 of shape ``(n_samples,)`` or ``(n_samples, C)``."""
    arr = np.asarray(scores)
    want = "(n_samples,)" if ndim == 1 else "(n_samples, n_classes)"
    if arr.ndim != ndim:
        raise ConfigError(f"{name} must have shape {want}, got shape {arr.shape}")
    if arr.dtype.kind not in "biuf":
        raise ConfigError(f"{name} must be numeric, got dtype {arr.dtype}")
    if arr.shape[0] != n_samples:
        raise ConfigError(
            f"{name} must have one row per sample ({n_samples}), got shape {arr.shape}"
        )
    if ndim == 2 and arr.shape[1] == 0:
        raise ConfigError(f"{name} has no columns (shape {arr.shape}); need one per class")
    arr = arr.astype(np.float64, copy=False)
    finite = np.isfinite(arr)
    if not finite.all():
        first = np.argwhere(~finite)[0].tolist()
        raise ConfigError(
            f"{name} must be finite, got {arr[tuple(first)]} at index {tuple(first)} "
            f"(shape {arr.shape})"
        )
    return arr


def check_labels(labels: object, name: str = "labels") -> np.ndarray:
    """Return explicit ``labels`` as a non-empty 1-D int64 array of unique class values."""
    arr = np.asarray(labels)
    if arr.ndim != 1 or arr.size == 0:
        raise ConfigError(f"{name} must be a non-empty 1-D list of class values, got {arr!r}")
    if arr.dtype.kind not in "biu":
        raise ConfigError(f"{name} must hold integer class values, got dtype {arr.dtype}")
    arr = arr.astype(np.int64, copy=False)
    if (arr == NOT_SURE).any():
        raise ConfigError(f"{name} must not contain NOT_SURE ({NOT_SURE}); it is never a class")
    uniq, counts = np.unique(arr, return_counts=True)
    if len(uniq) != len(arr):
        raise ConfigError(f"{name} must be unique, got repeated {_preview(uniq[counts > 1])}")
    return arr


def unique_labels(*arrays: np.ndarray) -> np.ndarray:
    """Sorted union of the values in int64 ``arrays``, without ``NOT_SURE``."""
    parts = []
    for a in arrays:
        lo, hi = int(a.min()), int(a.max())
        if hi - lo < max(_TABLE_MIN, 2 * a.size):
            parts.append(np.flatnonzero(np.bincount(a - lo)) + lo)
        else:
            parts.append(np.unique(a))
    values = np.unique(np.concatenate(parts))
    return values[values != NOT_SURE]


def resolve_labels(labels: object | None, *arrays: np.ndarray) -> np.ndarray:
    """Checked explicit ``labels``, or by default the sorted union of the arrays' values.

    The union is never empty: ``y_true`` is non-empty and holds no ``NOT_SURE``.
    """
    if labels is not None:
        return check_labels(labels)
    return unique_labels(*arrays)


def encode(
    values: np.ndarray, labels: np.ndarray, name: str, *, allow_not_sure: bool
) -> np.ndarray:
    """Map label values to positions in ``labels`` (``NOT_SURE`` to ``len(labels)``).

    Raises ConfigError listing the values of ``name`` that are not in ``labels``.
    """
    n_labels = len(labels)
    lo = min(int(labels.min()), int(values.min()), NOT_SURE)
    hi = max(int(labels.max()), int(values.max()), NOT_SURE)
    if hi - lo < max(_TABLE_MIN, 2 * values.size):
        table = np.full(hi - lo + 1, -1, dtype=np.int64)
        table[labels - lo] = np.arange(n_labels)
        if allow_not_sure:
            table[NOT_SURE - lo] = n_labels
        idx = table[values - lo]
    else:
        order = np.argsort(labels)
        pos = np.searchsorted(labels[order], values).clip(max=n_labels - 1)
        idx = np.where(labels[order][pos] == values, order[pos], -1)
        if allow_not_sure:
            idx[values == NOT_SURE] = n_labels
    bad = idx < 0
    if bad.any():
        unknown = np.unique(values[bad])
        raise ConfigError(
            f"{name} contains values not in labels: {_preview(unknown)} (first at index "
            f"{int(np.argmax(bad))}); labels are {_preview(labels)}"
        )
    return idx


def check_choice(value: object, name: str, choices: Sequence[object]) -> None:
    """Raise ConfigError unless ``value`` is one of ``choices``."""
    if value not in choices:
        raise ConfigError(f"{name} must be one of {list(choices)}, got {value!r}")
