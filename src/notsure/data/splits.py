"""Reproducible, leak-free splits: stratified test and calibration holdouts, (group) K-fold, and
exact-duplicate checks between the parts.

Every function is a pure function of plain arrays (labels ``y``, optional ``groups``, images or
vectors ``x``) and an integer ``seed``. Each function draws from its own random stream derived from
``(seed, function)``, so one seed may be passed to all of them without the draws being correlated.

With ``groups`` (e.g. subject ids), a group is never split: all its samples land on the same side
of a holdout and in the same K-fold validation fold. Classes too small to evaluate are never put
in a test or validation part; they stay wholly in training and are listed as ``not_evaluable``
(class label -> number of samples), so a report can say which classes were not measured.
"""

from __future__ import annotations

import json
import os
import zlib
from collections.abc import Hashable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from notsure.errors import ConfigError, DataError
from notsure.io import RunFolder

SPLIT_FORMAT = "notsure.split/1"
PARTS = ("train", "test", "calibration", "excluded")
_N_EXAMPLES = 5


def _empty() -> np.ndarray:
    return np.empty(0, dtype=np.int64)


@dataclass(frozen=True, eq=False)
class Split:
    """Sorted, disjoint int64 sample positions of each part; ``calibration`` may be empty.

    ``excluded`` holds samples deliberately used nowhere (e.g. suspected label errors dropped from
    training), so the parts still cover every position exactly once. ``not_evaluable`` maps each
    class kept wholly in training (too small to test) to its count.
    """

    train: np.ndarray
    test: np.ndarray
    calibration: np.ndarray = field(default_factory=_empty)
    excluded: np.ndarray = field(default_factory=_empty)
    not_evaluable: dict[Hashable, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in PARTS:
            index = np.asarray(getattr(self, name))
            if index.ndim != 1 or (index.size and index.dtype.kind not in "iu"):
                raise ConfigError(f"split part {name!r} must be a 1-D integer array, "
                                  f"got shape {index.shape} dtype {index.dtype}")
            index = np.sort(index.astype(np.int64))
            if index.size and (index[0] < 0 or (np.diff(index) == 0).any()):
                raise ConfigError(f"split part {name!r} must hold distinct non-negative positions")
            object.__setattr__(self, name, index)
        every = np.concatenate([getattr(self, name) for name in PARTS])
        if len(np.unique(every)) != len(every):
            raise ConfigError("split parts overlap: a sample position is in two parts")

    def __len__(self) -> int:
        return sum(len(getattr(self, name)) for name in PARTS)

    def as_dict(self) -> dict[str, list[int]]:
        """The index lists by part name, as plain Python ints."""
        return {name: getattr(self, name).tolist() for name in PARTS}


@dataclass(frozen=True, eq=False)
class KFoldPlan:
    """K-fold assignment: ``fold[i]`` is the validation fold of sample ``i``; -1 = training only.

    ``not_evaluable`` maps each class that never enters a validation fold to its sample count.
    """

    fold: np.ndarray
    n_splits: int
    not_evaluable: dict[Hashable, int] = field(default_factory=dict)

    @property
    def folds(self) -> list[tuple[np.ndarray, np.ndarray]]:
        """``(train, validation)`` sorted position arrays for each fold, like scikit-learn's."""
        return [(np.flatnonzero(self.fold != k), np.flatnonzero(self.fold == k))
                for k in range(self.n_splits)]


# -- input checks and encoding ----------------------------------------------------------------

def _rng(seed: int, stream: str) -> np.random.Generator:
    """A generator for one function's draws: ``seed`` plus a fixed tag for that function."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ConfigError(f"seed must be a non-negative integer, got {seed!r}")
    return np.random.default_rng([int(seed), zlib.crc32(stream.encode())])


def _encode(y: np.ndarray, groups: np.ndarray | None
            ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Class labels, class index of each sample, and group index of each sample (or None)."""
    y = np.asarray(y)
    if y.ndim != 1 or len(y) == 0:
        raise ConfigError(f"labels y must be a non-empty 1-D array, got shape {y.shape}")
    labels, yi = np.unique(y, return_inverse=True)
    if groups is None:
        return labels, yi.astype(np.int64), None
    groups = np.asarray(groups)
    if groups.shape != y.shape:
        raise ConfigError(f"groups must have one id per sample: shape {y.shape}, "
                          f"got {groups.shape}")
    try:
        _, gi = np.unique(groups, return_inverse=True)
    except TypeError as exc:
        raise ConfigError(f"group ids must be comparable values of one type: {exc}") from None
    return labels, yi.astype(np.int64), gi.astype(np.int64)


def _label(labels: np.ndarray, c: int) -> Hashable:
    return labels[c].item()


def _counts_of(labels: np.ndarray, yi: np.ndarray, classes: np.ndarray) -> dict[Hashable, int]:
    counts = np.bincount(yi, minlength=len(labels))
    return {_label(labels, c): int(counts[c]) for c in np.flatnonzero(classes)}


def _group_pairs(yi: np.ndarray, gi: np.ndarray, n_classes: int
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(group, class, count) for every class present in every group, sorted by group."""
    pair, count = np.unique(gi * n_classes + yi, return_counts=True)
    return pair // n_classes, pair % n_classes, count


def _whole_groups(mask: np.ndarray, gi: np.ndarray | None) -> np.ndarray:
    """Samples whose entire group lies inside ``mask``."""
    if gi is None:
        return mask
    outside = np.zeros(gi.max() + 1, dtype=bool)
    outside[gi[~mask]] = True
    return mask & ~outside[gi]


# -- holdouts ---------------------------------------------------------------------------------

def _max_holdout(yi: np.ndarray, gi: np.ndarray | None, pool: np.ndarray,
                 n_classes: int) -> np.ndarray:
    """Most samples of each class a holdout from ``pool`` can take, leaving one group in training.

    Exact when every group holds one class; an upper bound when groups mix classes.
    """
    in_pool = np.bincount(yi[pool], minlength=n_classes)
    if gi is None:
        return np.maximum(in_pool - 1, 0)
    _, c, n = _group_pairs(yi[pool], gi[pool], n_classes)
    smallest = np.full(n_classes, np.iinfo(np.int64).max)
    np.minimum.at(smallest, c, n)
    return np.where(in_pool > 0, in_pool - np.minimum(smallest, in_pool), 0)


def _holdout(yi: np.ndarray, gi: np.ndarray | None, pool: np.ndarray, want: np.ndarray,
             rng: np.random.Generator) -> np.ndarray:
    """Mask of held-out samples: ``want[c]`` random samples of each class from ``pool``.

    Callers cap ``want`` with ``_max_holdout``. Without groups the counts are exact. With groups,
    one group per class (one of its smallest) is reserved for training, then whole groups are
    taken in random order while one of their classes still falls short, so a class may end up
    with up to one group more than ``want``.
    """
    n_classes = len(want)
    if gi is None:
        index = np.flatnonzero(pool)
        order = index[np.lexsort((rng.permutation(len(index)), yi[index]))]
        cls = yi[order]
        first = np.searchsorted(cls, np.arange(n_classes))
        rank = np.arange(len(order)) - first[cls]
        held = np.zeros(len(yi), dtype=bool)
        held[order[rank < want[cls]]] = True
        return held

    g, c, n = _group_pairs(yi[pool], gi[pool], n_classes)
    by_class = np.lexsort((rng.random(len(g)), n, c))  # smallest group of each class first
    first = by_class[np.searchsorted(c[by_class], np.unique(c))]
    reserved = np.zeros(gi.max() + 1, dtype=bool)
    reserved[g[first]] = True

    starts = np.searchsorted(g, np.arange(gi.max() + 2))
    deficit = want.astype(np.int64).copy()
    taken = np.zeros(gi.max() + 1, dtype=bool)
    for group in rng.permutation(np.unique(g)):
        if (deficit <= 0).all():
            break
        if reserved[group]:
            continue
        s, e = starts[group], starts[group + 1]
        if (deficit[c[s:e]] > 0).any():
            taken[group] = True
            deficit[c[s:e]] -= n[s:e]
    return pool & taken[gi]


def _check_fraction(fraction: float, name: str) -> float:
    if isinstance(fraction, bool) or not 0.0 < float(fraction) < 1.0:
        raise ConfigError(f"{name} must be a fraction strictly between 0 and 1, got {fraction!r}")
    return float(fraction)


def _fraction_want(yi: np.ndarray, gi: np.ndarray | None, pool: np.ndarray,
                   fraction: float, n_classes: int) -> np.ndarray:
    counts = np.bincount(yi[pool], minlength=n_classes)
    want = np.floor(fraction * counts + 0.5).astype(np.int64)
    return np.minimum(want, _max_holdout(yi, gi, pool, n_classes))


def stratified_test_split(y: np.ndarray, per_class: int, seed: int, *,
                          groups: np.ndarray | None = None, allow_small: bool = False) -> Split:
    """Hold out ``per_class`` random samples of every class for test; the rest is training.

    Without ``groups`` each class gets exactly ``per_class`` test samples. With ``groups`` whole
    groups are taken until each class has at least ``per_class``, so a class may get slightly more
    (at most one group's worth). Every class keeps at least one sample (one group) in training.
    A class too small for that raises ``ConfigError`` naming it, unless ``allow_small``: then it
    stays wholly in training and is listed in ``Split.not_evaluable``.
    """
    if isinstance(per_class, bool) or not isinstance(per_class, (int, np.integer)) \
            or per_class < 1:
        raise ConfigError(f"per_class must be a positive integer, got {per_class!r}")
    labels, yi, gi = _encode(y, groups)
    rng = _rng(seed, "stratified_test_split")
    n_classes = len(labels)
    counts = np.bincount(yi, minlength=n_classes)
    small = np.zeros(n_classes, dtype=bool)
    while True:  # with mixed-class groups, setting a small class aside can shrink another class
        pool = _whole_groups(~small[yi], gi)
        most = _max_holdout(yi, gi, pool, n_classes)
        short = (most < per_class) & ~small
        if not short.any():
            break
        if not allow_small:
            detail, fits = _too_small(labels, counts, most, short, per_class, gi)
            raise TooFewForTest(detail, fits, per_class)
        small |= short
    want = np.where(small, 0, per_class)
    held = _holdout(yi, gi, pool, want, rng)
    got = np.bincount(yi[held], minlength=n_classes)
    if (got < want).any():  # only possible when groups mix classes
        c = int(np.flatnonzero(got < want)[0])
        raise TooFewForTest(
            f"class {_label(labels, c)!r}: only {got[c]} of {per_class} test samples per class "
            "could be taken without splitting a group or emptying another class's training part",
            int(got[c]), per_class)
    return Split(train=np.flatnonzero(~held), test=np.flatnonzero(held),
                 not_evaluable=_counts_of(labels, yi, small))


def _too_small(labels: np.ndarray, counts: np.ndarray, most: np.ndarray, short: np.ndarray,
               per_class: int, gi: np.ndarray | None) -> tuple[str, int]:
    """What is too small, and the largest ``per_class`` every listed class allows."""
    whole = "" if gi is None else " (whole groups only)"
    noun = np.where(counts == 1, "sample", "samples")
    parts = [f"class {_label(labels, c)!r} has {counts[c]} {noun[c]}{whole}, so at most "
             f"{most[c]} can go to test" for c in np.flatnonzero(short)]
    return (f"{per_class} test samples per class leave no training sample of: "
            + "; ".join(parts), int(most[short].min()))


class TooFewForTest(ConfigError):
    """A class is too small for the test samples asked of every class.

    ``detail`` says which and why; ``fits`` is the largest per-class count that would work
    (0: none). The message adds the Python remedy; a command line words its own with its flags.
    """

    def __init__(self, detail: str, fits: int, per_class: int) -> None:
        self.detail, self.fits = detail, fits
        lower = f"lower per_class to at most {fits}, or pass" if fits else "pass"
        super().__init__(f"per_class={per_class}: {detail}; {lower} allow_small=True to keep "
                         "such classes wholly in training (reported not evaluable)")


def stratified_fraction_split(y: np.ndarray, test_fraction: float, seed: int, *,
                              groups: np.ndarray | None = None) -> Split:
    """Hold out about ``test_fraction`` of every class for test, whole groups when ``groups``.

    Each class gets ``round(test_fraction * count)`` test samples (whole groups: at least that
    many, capped so one sample or group stays in training). Classes left with no test sample are
    listed in ``not_evaluable``.
    """
    test_fraction = _check_fraction(test_fraction, "test_fraction")
    labels, yi, gi = _encode(y, groups)
    pool = np.ones(len(yi), dtype=bool)
    want = _fraction_want(yi, gi, pool, test_fraction, len(labels))
    held = _holdout(yi, gi, pool, want, _rng(seed, "stratified_fraction_split"))
    untested = np.bincount(yi[held], minlength=len(labels)) == 0
    return Split(train=np.flatnonzero(~held), test=np.flatnonzero(held),
                 not_evaluable=_counts_of(labels, yi, untested))


def add_calibration(split: Split, y: np.ndarray, fraction: float, seed: int, *,
                    groups: np.ndarray | None = None) -> Split:
    """Carve a stratified calibration part, about ``fraction`` of each class, out of ``train``.

    Whole groups when ``groups`` is given; every class keeps at least one training sample (group);
    classes in ``split.not_evaluable`` stay wholly in training. Test is left untouched.
    """
    fraction = _check_fraction(fraction, "calibration fraction")
    if len(split.calibration):
        raise ConfigError("split already has a calibration part; start from a train/test split")
    labels, yi, gi = _encode(y, groups)
    if len(split) != len(yi):
        raise ConfigError(f"split covers {len(split)} samples but y has {len(yi)}")
    train = np.zeros(len(yi), dtype=bool)
    train[split.train] = True
    if gi is not None and np.intersect1d(gi[train], gi[~train]).size:
        raise ConfigError("groups given, but the split puts some group in both train and test; "
                          "make the test split with the same groups")
    keep = np.isin(labels, np.asarray(list(split.not_evaluable), dtype=labels.dtype))
    pool = train & ~keep[yi]
    want = _fraction_want(yi, gi, pool, fraction, len(labels))
    held = _holdout(yi, gi, pool, want, _rng(seed, "add_calibration"))
    return Split(train=np.flatnonzero(train & ~held), test=split.test,
                 calibration=np.flatnonzero(held), not_evaluable=dict(split.not_evaluable))


# -- K-fold -----------------------------------------------------------------------------------

def stratified_kfold(y: np.ndarray, n_splits: int, seed: int, *,
                     groups: np.ndarray | None = None) -> KFoldPlan:
    """Stratified K-fold; with ``groups``, stratified group K-fold (a group is in one fold only).

    Without groups, each class is shuffled and dealt round the folds, so a class's count in any two
    folds differs by at most one. With groups, groups go largest first (seeded shuffle among equal
    sizes) to the fold whose classes are furthest below their share. A class with fewer samples
    (groups) than ``n_splits`` never enters a validation fold: it stays in every training part and
    is listed in ``not_evaluable``; samples sharing a group with it stay in training too.
    """
    if isinstance(n_splits, bool) or not isinstance(n_splits, (int, np.integer)) or n_splits < 2:
        raise ConfigError(f"n_splits must be an integer >= 2, got {n_splits!r}")
    n_splits = int(n_splits)
    labels, yi, gi = _encode(y, groups)
    rng = _rng(seed, "stratified_kfold")
    n_classes = len(labels)
    if gi is None:
        units = np.bincount(yi, minlength=n_classes)
    else:
        units = np.bincount(_group_pairs(yi, gi, n_classes)[1], minlength=n_classes)
    small = units < n_splits
    pool = _whole_groups(~small[yi], gi)

    fold = np.full(len(yi), -1, dtype=np.int64)
    if gi is None:
        index = np.flatnonzero(pool)
        order = index[np.lexsort((rng.permutation(len(index)), yi[index]))]
        fold[order] = np.arange(len(order)) % n_splits
    elif pool.any():
        fold[pool] = _group_folds(yi[pool], gi[pool], n_splits, n_classes, rng)

    sizes = np.bincount(fold[fold >= 0], minlength=n_splits)
    if (sizes == 0).any():
        raise ConfigError(
            f"n_splits={n_splits} leaves an empty validation fold: only "
            f"{len(np.unique(gi[pool])) if gi is not None else pool.sum()} "
            f"{'groups' if gi is not None else 'samples'} can be validated; lower n_splits")
    return KFoldPlan(fold=fold, n_splits=n_splits, not_evaluable=_counts_of(labels, yi, small))


def _group_folds(yi: np.ndarray, gi: np.ndarray, n_splits: int, n_classes: int,
                 rng: np.random.Generator) -> np.ndarray:
    """Fold of each sample, assigning whole groups greedily to the fold most short of them."""
    g, c, n = _group_pairs(yi, gi, n_classes)
    group_ids, starts = np.unique(g, return_index=True)
    ends = np.append(starts[1:], len(g))
    size = np.add.reduceat(n, starts)
    share = np.bincount(yi, minlength=n_classes) / n_splits
    have = np.zeros((n_splits, n_classes))
    fold_size = np.zeros(n_splits)
    group_fold = np.zeros(gi.max() + 1, dtype=np.int64)
    for j in np.lexsort((rng.permutation(len(size)), -size)):
        cls, cnt = c[starts[j]:ends[j]], n[starts[j]:ends[j]]
        shortfall = ((share[cls] - have[:, cls]) / share[cls]) @ cnt
        best = int(np.lexsort((fold_size, -shortfall))[0])
        have[best, cls] += cnt
        fold_size[best] += size[j]
        group_fold[group_ids[j]] = best
    return group_fold[gi]


# -- duplicates -------------------------------------------------------------------------------

_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_CHUNK_WORDS = 1 << 17  # about 1 MB of words per step: stays in cache


def _row_bytes(x: np.ndarray) -> np.ndarray:
    """The raw bytes of each sample as a C-contiguous ``(N, B)`` uint8 array."""
    x = np.asarray(x)
    if x.ndim == 0 or x.dtype.hasobject:
        raise ConfigError(f"x must be a numeric array of samples, got shape {x.shape} "
                          f"dtype {x.dtype}")
    x = np.ascontiguousarray(x.reshape(len(x), -1))
    return x.view(np.uint8).reshape(len(x), -1)


def _row_hashes(rows: np.ndarray) -> np.ndarray:
    """A 64-bit hash of each byte row (splitmix64 of each word and its position, summed)."""
    n, width = rows.shape
    pad = -width % 8
    if pad:
        rows = np.concatenate([rows, np.zeros((n, pad), dtype=np.uint8)], axis=1)
    words = np.ascontiguousarray(rows).view(np.uint64)
    position = np.arange(1, words.shape[1] + 1, dtype=np.uint64) * _GOLDEN
    out = np.empty(n, dtype=np.uint64)
    step = max(1, _CHUNK_WORDS // max(1, words.shape[1]))
    for s in range(0, n, step):
        z = words[s:s + step] + position
        z ^= z >> np.uint64(30)
        z *= _MIX1
        z ^= z >> np.uint64(27)
        z *= _MIX2
        z ^= z >> np.uint64(31)
        out[s:s + step] = z.sum(axis=1, dtype=np.uint64)
    return out


def content_ids(x: np.ndarray) -> np.ndarray:
    """An int64 id per sample, equal exactly when two samples are byte-identical.

    Rows are hashed with vectorized 64-bit arithmetic; rows that share a hash are then compared
    byte for byte, so a hash collision can never report a false duplicate.
    """
    rows = _row_bytes(x)
    if rows.shape[1] == 0:
        return np.zeros(len(rows), dtype=np.int64)
    _, ids, counts = np.unique(_row_hashes(rows), return_inverse=True, return_counts=True)
    ids = ids.astype(np.int64)
    shared = np.flatnonzero(counts[ids] > 1)
    if shared.size:
        exact = np.ascontiguousarray(rows[shared]).view(np.dtype((np.void, rows.shape[1])))
        _, sub = np.unique(exact.ravel(), return_inverse=True)
        ids[shared] = len(counts) + sub
    return ids


def _as_positions(index: np.ndarray, n: int, name: str) -> np.ndarray:
    index = np.asarray(index)
    if index.dtype == bool:
        index = np.flatnonzero(index)
    if index.ndim != 1 or (index.size and (index.dtype.kind not in "iu"
                                           or index.min() < 0 or index.max() >= n)):
        raise ConfigError(f"{name} must be positions in 0..{n - 1}, got shape {index.shape} "
                          f"dtype {index.dtype}")
    return index.astype(np.int64)


def _duplicate_pairs(ids: np.ndarray, a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray,
                                                                              np.ndarray]:
    """All ``(i, j)``, ``i`` in ``a`` and ``j`` in ``b``, with equal ids; sorted by ``(i, j)``."""
    common = np.intersect1d(ids[a], ids[b])
    a = a[np.isin(ids[a], common)]
    b = b[np.isin(ids[b], common)]
    b = b[np.lexsort((b, ids[b]))]
    first = np.searchsorted(ids[b], ids[a], side="left")
    reps = np.searchsorted(ids[b], ids[a], side="right") - first
    left = np.repeat(a, reps)
    offset = np.arange(reps.sum()) - np.repeat(np.cumsum(reps) - reps, reps)
    right = b[np.repeat(first, reps) + offset]
    order = np.lexsort((right, left))
    return left[order], right[order]


def find_duplicates_across(x: np.ndarray, a_index: np.ndarray, b_index: np.ndarray
                           ) -> list[tuple[int, int]]:
    """Pairs ``(i, j)`` of dataset positions, ``i`` in ``a_index`` and ``j`` in ``b_index``, whose
    samples are byte-identical (same bytes in ``x``); sorted. A position in both sets pairs with
    itself."""
    n = len(x)
    a = _as_positions(a_index, n, "a_index")
    b = _as_positions(b_index, n, "b_index")
    both = np.union1d(a, b)
    ids = np.zeros(n, dtype=np.int64)
    ids[both] = content_ids(x if len(both) == n else np.asarray(x)[both])
    left, right = _duplicate_pairs(ids, a, b)
    return list(zip(left.tolist(), right.tolist(), strict=True))


def leakage_report(x: np.ndarray, split: Split) -> dict[str, Any]:
    """Exact duplicate samples between the parts of ``split``: a leak makes test scores too good.

    For each pair of parts: the number of duplicate pairs, how many distinct samples of each part
    are involved, and up to five example position pairs.
    """
    if len(x) != len(split):
        raise ConfigError(f"split covers {len(split)} samples but x has {len(x)}")
    ids = content_ids(x)
    report: dict[str, Any] = {}
    for first, second in (("train", "test"), ("calibration", "test"), ("train", "calibration")):
        left, right = _duplicate_pairs(ids, getattr(split, first), getattr(split, second))
        report[f"{first}_{second}"] = {
            "pairs": len(left),
            "samples": {first: len(np.unique(left)), second: len(np.unique(right))},
            "examples": np.stack([left, right], axis=1)[:_N_EXAMPLES].tolist(),
        }
    return report


# -- files ------------------------------------------------------------------------------------

def save_split(run: RunFolder, split: Split, name: str = "split") -> Path:
    """Write ``split`` as ``<name>.json`` in the run folder: index lists, not-evaluable classes."""
    doc = {
        "format": SPLIT_FORMAT,
        "n_samples": len(split),
        "counts": {part: len(getattr(split, part)) for part in PARTS},
        "not_evaluable": [{"label": label, "count": count}
                          for label, count in split.not_evaluable.items()],
        **split.as_dict(),
    }
    return run.write_json(f"{name}.json", doc)


def load_split(path: str | os.PathLike[str], n_samples: int | None = None) -> Split:
    """Read a split written by ``save_split``, checking that its parts are disjoint integer
    positions covering ``0..n_samples-1`` (``n_samples``: the dataset's length, when known)."""
    path = Path(path)
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError(f"{path}: split file not found") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(f"{path}: not a readable JSON split file ({exc})") from None
    if not isinstance(doc, dict) or doc.get("format") != SPLIT_FORMAT:
        raise DataError(f"{path}: expected a JSON object with \"format\": \"{SPLIT_FORMAT}\"")
    parts = {}
    for part in PARTS:
        values = doc.get(part, [])
        if not isinstance(values, list) or not all(
                isinstance(v, int) and not isinstance(v, bool) for v in values):
            raise DataError(f"{path}: \"{part}\" must be a list of integer sample positions")
        parts[part] = np.asarray(values, dtype=np.int64)
    try:
        not_evaluable = {item["label"]: int(item["count"])
                         for item in doc.get("not_evaluable", [])}
    except (TypeError, KeyError, ValueError):
        raise DataError(f"{path}: \"not_evaluable\" must be a list of "
                        "{\"label\": ..., \"count\": ...} objects") from None
    try:
        split = Split(**parts, not_evaluable=not_evaluable)
    except ConfigError as exc:
        raise DataError(f"{path}: {exc}") from None
    expected = len(split) if n_samples is None else n_samples
    every = np.concatenate([parts[p] for p in PARTS])
    if len(split) != expected or (every.size and every.max() >= expected):
        raise DataError(f"{path}: the split must cover positions 0..{expected - 1} exactly once; "
                        f"it holds {len(split)} positions up to {every.max(initial=-1)}. "
                        "Was it made for another dataset?")
    if "n_samples" in doc and doc["n_samples"] != len(split):
        raise DataError(f"{path}: \"n_samples\" is {doc['n_samples']} but the parts hold "
                        f"{len(split)} positions")
    return split
