"""Metrics on continuous scores: ROC curves and AUC (binary, one-vs-rest), mean ROC, top-k.

Curves and areas equal scikit-learn's (``roc_curve(..., drop_intermediate=False)``,
``roc_auc_score``, ``top_k_accuracy_score``), tie handling included. AUCs are computed from
integer counts (Mann-Whitney U), so they are exact up to one final rounding.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from notsure.errors import ConfigError
from notsure.metrics.validation import (
    check_choice,
    check_label_array,
    check_labels,
    check_scores,
    encode,
)

#: Default false-positive-rate grid for averaged ROC curves: 101 points 0, 0.01, ..., 1.
DEFAULT_GRID = np.linspace(0.0, 1.0, 101)


def _check_binary(y_true_binary: object, scores: object) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(y_true_binary)
    if y.ndim != 1 or y.size == 0:
        raise ConfigError(
            f"y_true_binary must be a non-empty 1-D array of 0/1, got shape {y.shape}"
        )
    if y.dtype.kind not in "biu":
        raise ConfigError(f"y_true_binary must be bool or integer 0/1, got dtype {y.dtype}")
    other = (y != 0) & (y != 1)
    if other.any():
        raise ConfigError(
            f"y_true_binary must hold only 0/1, got {np.unique(y[other])[:10].tolist()}; "
            "pass (y_true == positive_class)"
        )
    s = check_scores(scores, "scores", ndim=1, n_samples=len(y))
    return y.astype(bool), s


def _threshold_counts(positive: np.ndarray, score: np.ndarray) -> tuple[np.ndarray, ...]:
    """``(fps, tps, thresholds)``: counts of samples scored >= each distinct score, descending."""
    order = np.argsort(score)[::-1]
    score = score[order]
    ends = np.append(np.flatnonzero(np.diff(score)), score.size - 1)
    tps = np.cumsum(positive[order], dtype=np.int64)[ends]
    fps = ends + 1 - tps
    return fps, tps, score[ends]


def _rate(counts: np.ndarray) -> np.ndarray:
    """Cumulative counts as a rate curve starting at 0; all NaN if the total is 0."""
    counts = np.concatenate(([0.0], counts))
    return counts / counts[-1] if counts[-1] > 0 else np.full(counts.shape, np.nan)


def _auc(positive: np.ndarray, score: np.ndarray) -> float:
    """ROC AUC by the Mann-Whitney U: P(positive scored above negative) + P(tie) / 2.

    Exact integer counts from two sorts and binary searches (faster than one argsort); equal to
    the trapezoid area under :func:`roc_curve`. NaN with no positives or no negatives.
    """
    pos = np.sort(score[positive])
    neg = np.sort(score[~positive])
    if pos.size == 0 or neg.size == 0:
        return float("nan")
    below = np.searchsorted(neg, pos, side="left").sum(dtype=np.int64)
    below_or_tied = np.searchsorted(neg, pos, side="right").sum(dtype=np.int64)
    return int(below + below_or_tied) / (2 * pos.size * neg.size)


def roc_curve(y_true_binary: object, scores: object) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(fpr, tpr, thresholds)``: one point per distinct score, highest first, after (0, 0).

    ``thresholds[0]`` is ``inf`` (nothing predicted positive); tied scores form one point. Same
    as scikit-learn's ``roc_curve(..., drop_intermediate=False)``; the FPR (TPR) is all NaN when
    there are no negatives (positives).
    """
    y, s = _check_binary(y_true_binary, scores)
    fps, tps, thresholds = _threshold_counts(y, s)
    return _rate(fps), _rate(tps), np.concatenate(([np.inf], thresholds))


def roc_auc(y_true_binary: object, scores: object) -> float:
    """Area under the ROC curve (ties count half, as in the Mann-Whitney U); NaN if one class."""
    y, s = _check_binary(y_true_binary, scores)
    return _auc(y, s)


def _check_multiclass(
    y_true: object, scores: object, labels: object | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(labels, column index of each y_true, scores)`` for scores of shape (N, C)."""
    t = check_label_array(y_true, "y_true", allow_not_sure=False)
    s = check_scores(scores, "scores", ndim=2, n_samples=len(t))
    n_cols = s.shape[1]
    labels = np.arange(n_cols) if labels is None else check_labels(labels)
    if len(labels) != n_cols:
        raise ConfigError(
            f"labels names the class of each scores column: got {len(labels)} labels for "
            f"scores of shape {s.shape}"
        )
    return labels, encode(t, labels, "y_true", allow_not_sure=False), s


def roc_auc_ovr(
    y_true: object,
    scores: object,
    labels: object | None = None,
    average: Literal["macro", "weighted"] | None = "macro",
) -> float | np.ndarray:
    """One-vs-rest ROC AUC from scores of shape (N, C) whose columns follow ``labels``.

    ``labels`` defaults to ``0..C-1``. ``average=None`` gives one AUC per class: NaN for a class
    with no samples in ``y_true`` (or only samples of it). As scikit-learn, ``"macro"`` is the
    plain mean (so NaN when any class is undefined) and ``"weighted"`` weights by prevalence (a
    class absent from ``y_true`` has weight 0 and is left out). Scores need not sum to 1.
    """
    check_choice(average, "average", ("macro", "weighted", None))
    labels, idx, s = _check_multiclass(y_true, scores, labels)
    columns = np.ascontiguousarray(s.T)
    aucs = np.array([_auc(idx == c, col) for c, col in enumerate(columns)])
    if average is None:
        return aucs
    if average == "macro":
        return float(np.mean(aucs))
    weights = np.bincount(idx, minlength=len(labels))
    return float(np.average(np.where(weights > 0, aucs, 0.0), weights=weights))


def top_k_accuracy(y_true: object, scores: object, k: int, labels: object | None = None) -> float:
    """Fraction of samples whose true class is among the ``k`` highest-scored columns.

    Columns follow ``labels`` (default ``0..C-1``); ``y_true`` holds label values. Ties are
    broken as scikit-learn's ``top_k_accuracy_score`` does: among equal scores the later column
    ranks higher. So the true class is in the top k iff fewer than k columns score strictly
    higher, or equal and later.
    """
    labels, idx, s = _check_multiclass(y_true, scores, labels)
    n_cols = s.shape[1]
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= k <= n_cols:
        raise ConfigError(
            f"k must be a whole number in 1..{n_cols} (columns of scores, shape {s.shape}), "
            f"got {k!r}"
        )
    true_score = s[np.arange(len(idx)), idx][:, None]
    later = np.arange(n_cols) > idx[:, None]
    ahead = (s > true_score) | ((s == true_score) & later)
    return float(np.mean(ahead.sum(axis=1) < k))


def _check_grid(grid: object | None) -> np.ndarray:
    if grid is None:
        return DEFAULT_GRID.copy()
    g = np.asarray(grid, dtype=np.float64)
    if g.ndim != 1 or g.size < 2 or not np.isfinite(g).all():
        raise ConfigError(f"grid must be a 1-D list of at least 2 FPR values, got shape {g.shape}")
    if g[0] < 0 or g[-1] > 1 or (np.diff(g) <= 0).any():
        raise ConfigError("grid must be strictly increasing FPR values within [0, 1]")
    return g


def _check_curve(curve: object, i: int) -> tuple[np.ndarray, np.ndarray]:
    try:
        fpr, tpr = (np.asarray(a, dtype=np.float64) for a in tuple(curve)[:2])  # type: ignore
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"curves[{i}] must be a tuple (fpr, tpr, ...), got {curve!r}") from exc
    if fpr.ndim != 1 or fpr.shape != tpr.shape or fpr.size < 2:
        raise ConfigError(
            f"curves[{i}]: fpr and tpr must be 1-D of equal length >= 2, "
            f"got shapes {fpr.shape} and {tpr.shape}"
        )
    ok = np.isfinite(fpr).all() and np.isfinite(tpr).all()
    if not ok or fpr[0] != 0 or fpr[-1] != 1 or (np.diff(fpr) < 0).any():
        raise ConfigError(
            f"curves[{i}]: fpr must be finite and non-decreasing from 0 to 1 and tpr finite "
            "(an undefined curve has no positives or no negatives)"
        )
    return fpr, tpr


def interpolate_roc(fpr: np.ndarray, tpr: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """TPR of the piecewise-linear ROC curve at each grid FPR; at a vertical step, the top.

    Right-continuous: at an FPR where the curve rises vertically (tied scores, or the first
    point), the value is the highest TPR reached there, i.e. the best TPR at that FPR.
    """
    j = np.searchsorted(fpr, grid, side="right") - 1
    nxt = np.minimum(j + 1, len(fpr) - 1)
    dx = fpr[nxt] - fpr[j]
    frac = np.divide(grid - fpr[j], dx, out=np.zeros_like(grid), where=dx > 0)
    return tpr[j] + frac * (tpr[nxt] - tpr[j])


@dataclass(frozen=True, eq=False)
class MeanRoc:
    """ROC curves averaged on a common FPR grid, with their spread and areas.

    ``tpr_lo``/``tpr_hi`` are ``mean_tpr -/+ std_tpr`` clipped to [0, 1]; standard deviations use
    ``ddof=0``. ``aucs`` are the trapezoid areas of the input curves (not of the grid version).
    """

    fpr_grid: np.ndarray
    mean_tpr: np.ndarray
    std_tpr: np.ndarray
    tpr_lo: np.ndarray
    tpr_hi: np.ndarray
    aucs: np.ndarray
    mean_auc: float
    std_auc: float


def mean_roc(curves: Sequence[tuple], grid: object | None = None) -> MeanRoc:
    """Average ROC curves (e.g. one per fold) by interpolating TPR onto a common FPR grid.

    Each curve is a tuple ``(fpr, tpr, ...)`` such as :func:`roc_curve` or :func:`macro_roc`
    return. ``grid`` defaults to 101 points 0..1. Interpolation is linear between curve points
    and takes the top of vertical steps (see :func:`interpolate_roc`): at FPR 0 the mean TPR is
    the mean best TPR with no false positive, not forced to 0.
    """
    g = _check_grid(grid)
    checked = [_check_curve(c, i) for i, c in enumerate(curves)]
    if not checked:
        raise ConfigError("curves is empty; mean_roc needs at least one (fpr, tpr) curve")
    tprs = np.stack([interpolate_roc(f, t, g) for f, t in checked])
    aucs = np.array([float(np.trapezoid(t, f)) for f, t in checked])
    mean, std = tprs.mean(axis=0), tprs.std(axis=0)
    return MeanRoc(
        fpr_grid=g,
        mean_tpr=mean,
        std_tpr=std,
        tpr_lo=np.clip(mean - std, 0.0, 1.0),
        tpr_hi=np.clip(mean + std, 0.0, 1.0),
        aucs=aucs,
        mean_auc=float(aucs.mean()),
        std_auc=float(aucs.std()),
    )


def macro_roc(
    y_true: object, scores: object, labels: object | None = None, grid: object | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Macro-average one-vs-rest ROC curve ``(fpr_grid, tpr)`` of one fold.

    Each class's curve is interpolated onto the grid (see :func:`interpolate_roc`) and the TPRs
    averaged. Raises ConfigError if a class has no positive or no negative sample, because its
    curve is undefined: pass ``labels=`` and matching score columns without it.
    """
    g = _check_grid(grid)
    labels, idx, s = _check_multiclass(y_true, scores, labels)
    tprs = []
    for c, col in enumerate(np.ascontiguousarray(s.T)):
        fps, tps, _ = _threshold_counts(idx == c, col)
        if fps[-1] == 0 or tps[-1] == 0:
            raise ConfigError(
                f"class {labels[c]} has {tps[-1]} samples in y_true out of {len(idx)}: its "
                "one-vs-rest ROC curve is undefined; drop it from labels= and scores"
            )
        tprs.append(interpolate_roc(_rate(fps), _rate(tps), g))
    return g, np.mean(tprs, axis=0)
