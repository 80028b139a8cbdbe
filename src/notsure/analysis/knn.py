"""k-nearest-neighbour scores for every k at once: distances once, one sort, cumulative votes.

The distance matrix between two sets is computed once (vectorized), the ``k_max`` nearest
training points of each query are found with one stable sort, and the class vote fractions for
every ``k = 1..k_max`` come from a cumulative sum of one-hot neighbour labels. Nothing about the
distances is recomputed per ``k``.

Scores are neighbour vote fractions (optionally weighted by inverse distance, like
scikit-learn's ``weights="distance"``). The predicted class is the one with the highest score;
among classes tied on score, the one whose nearest member among the ``k`` neighbours is closest
wins. Neighbours at equal distance are ordered by their position in the training set (stable
sort), so every prediction is deterministic.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from notsure.errors import ConfigError

Metric = Literal["cosine", "euclidean"]
Weighting = Literal["uniform", "distance"]

METRICS: tuple[str, ...] = ("cosine", "euclidean")
WEIGHTINGS: tuple[str, ...] = ("uniform", "distance")
#: Smallest distance used for inverse-distance weights, so a duplicate point gets a huge but
#: finite weight (it then outvotes every other neighbour, as in scikit-learn).
_MIN_DISTANCE = 1e-12


def l2_normalize(x: np.ndarray) -> np.ndarray:
    """Rows of ``x`` scaled to unit Euclidean length (float64); zero rows stay zero."""
    x = np.asarray(x, dtype=np.float64)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.where(norms > 0, norms, 1.0)


def pairwise_distances(a: np.ndarray, b: np.ndarray, metric: Metric) -> np.ndarray:
    """Distances between every row of ``a`` and every row of ``b``: shape ``(len(a), len(b))``.

    Euclidean uses ``||a||^2 + ||b||^2 - 2 a.b`` (clipped at 0 against rounding); cosine is
    ``1 - a.b`` on L2-normalized rows (clipped to ``[0, 2]``). Computed in float64.
    """
    if metric == "euclidean":
        a = np.asarray(a, dtype=np.float64)
        b = np.asarray(b, dtype=np.float64)
        sq = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2.0 * (a @ b.T)
        return np.sqrt(np.clip(sq, 0.0, None))
    if metric == "cosine":
        return np.clip(1.0 - l2_normalize(a) @ l2_normalize(b).T, 0.0, 2.0)
    raise ConfigError(f"metric must be one of {METRICS}, got {metric!r}")


def nearest(dist: np.ndarray, k_max: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices ``(n_query, k_max)`` of the nearest columns of ``dist`` and their distances.

    One stable sort per row: neighbours at equal distance keep training-set order.
    """
    n_train = dist.shape[1]
    if not 1 <= k_max <= n_train:
        raise ConfigError(f"k_max must lie in 1..{n_train} (training points), got {k_max}")
    order = np.argsort(dist, axis=1, kind="stable")[:, :k_max]
    return order, np.take_along_axis(dist, order, axis=1)


def vote_scores(
    neighbor_labels: np.ndarray,
    n_classes: int,
    neighbor_dist: np.ndarray | None = None,
    weighting: Weighting = "uniform",
) -> np.ndarray:
    """Class scores for every k: array ``(k_max, n_query, n_classes)``, rows summing to 1.

    ``scores[k - 1, i, c]`` is the (weighted) fraction of query ``i``'s ``k`` nearest
    neighbours that belong to class ``c``. ``neighbor_labels`` is ``(n_query, k_max)``, nearest
    first; ``neighbor_dist`` is needed for ``weighting="distance"`` (weights ``1 / d``).
    """
    if weighting not in WEIGHTINGS:
        raise ConfigError(f"weighting must be one of {WEIGHTINGS}, got {weighting!r}")
    onehot = (neighbor_labels[:, :, None] == np.arange(n_classes)).astype(np.float64)
    if weighting == "distance":
        if neighbor_dist is None:
            raise ConfigError("weighting='distance' needs the neighbour distances")
        onehot *= 1.0 / np.maximum(neighbor_dist, _MIN_DISTANCE)[:, :, None]
    cumulative = np.cumsum(onehot, axis=1)  # (n_query, k_max, n_classes)
    totals = cumulative.sum(axis=2, keepdims=True)
    return np.moveaxis(cumulative / totals, 1, 0)


def first_rank(neighbor_labels: np.ndarray, n_classes: int) -> np.ndarray:
    """Rank (0 = nearest) of each class's nearest neighbour, ``k_max`` if absent: ``(n, C)``."""
    n_query, k_max = neighbor_labels.shape
    ranks = np.full((n_query, n_classes), k_max, dtype=np.int64)
    rows = np.repeat(np.arange(n_query), k_max)
    cols = np.tile(np.arange(k_max), n_query)
    # minimum.at keeps the smallest rank seen for each (query, class) pair
    np.minimum.at(ranks, (rows, neighbor_labels.ravel()), cols)
    return ranks


def predict(scores: np.ndarray, ranks: np.ndarray) -> np.ndarray:
    """Highest-scoring class; ties go to the class whose nearest member is closest.

    ``scores`` is ``(..., n_query, n_classes)`` (e.g. all k at once), ``ranks`` from
    :func:`first_rank`. Tied classes always have distinct first ranks, so the rule is total.
    """
    best = scores.max(axis=-1, keepdims=True)
    tied_rank = np.where(scores == best, ranks, np.iinfo(np.int64).max)
    return np.argmin(tied_rank, axis=-1)


def knn_all_k(
    dist: np.ndarray,
    y_train: np.ndarray,
    n_classes: int,
    k_max: int,
    weighting: Weighting = "uniform",
) -> tuple[np.ndarray, np.ndarray]:
    """Scores ``(k_max, n_query, C)`` and predictions ``(k_max, n_query)`` for k = 1..k_max.

    ``dist`` is the query-by-training distance matrix, ``y_train`` the training labels.
    """
    order, near_dist = nearest(dist, k_max)
    labels = np.asarray(y_train)[order]
    scores = vote_scores(labels, n_classes, near_dist, weighting)
    return scores, predict(scores, first_rank(labels, n_classes))
