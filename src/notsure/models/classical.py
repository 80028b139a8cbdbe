"""Classical model families for the compare job: scikit-learn estimators on flat features, each
with its hyperparameter grid and a way to score the whole grid from as few fits as possible.

Images become flat float32 pixels scaled to [0, 1] (:func:`pixel_features`); vectors are used as
they are, standardized inside the linear and RBF models. ``Family.grid_predict`` returns the
predictions of every grid candidate: most families fit once per candidate, but k-NN finds the
``k_max`` nearest neighbours once per metric and votes for every k, the decision tree grows one
full tree per criterion and predicts with its depth-d prefix, and the random forest grows its
largest forest once and averages its first m trees.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sklearn.ensemble import RandomForestClassifier
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.neighbors import NearestNeighbors
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC, LinearSVC
from sklearn.tree import DecisionTreeClassifier

from notsure.analysis import knn
from notsure.errors import ConfigError

Params = dict[str, Any]

#: Features (MNIST's 28x28 pixels) for which the default sample caps are set.
REFERENCE_FEATURES = 784
#: ``class_weight`` values the families accept: none, or scikit-learn's "balanced".
CLASS_WEIGHTS: tuple[str | None, ...] = (None, "balanced")


def pixel_features(x: np.ndarray, pixel_max: float) -> np.ndarray:
    """Images ``(N, H, W)`` as flat float32 rows scaled to [0, 1] by ``pixel_max`` (255 for
    8-bit pixels, 1 for binary images); vectors ``(N, D)`` as float32 unchanged."""
    x = np.asarray(x)
    if x.ndim == 2:
        return x.astype(np.float32, copy=False)
    if pixel_max <= 0:
        raise ConfigError(f"pixel_max must be > 0, got {pixel_max}")
    return x.reshape(len(x), -1).astype(np.float32) * np.float32(1.0 / pixel_max)


def params_text(params: Params) -> str:
    """``"C=0.1, kernel=rbf"``: a candidate as people read it."""
    return ", ".join(f"{k}={v}" for k, v in params.items())


@dataclass(frozen=True)
class Family:
    """One model family: its grid (simplest candidates first), how its curve is drawn, and how
    many training samples its cross-validation and its final fit use at most (``None``: all)."""

    name: str
    title: str
    grid: tuple[Params, ...]
    curve_x: str
    curve_by: str | None = None
    log_x: bool = False
    cv_max: int | None = None
    fit_max: int | None = None
    standardize_vectors: bool = False
    options: Params = field(default_factory=dict)

    def make(self, params: Params, seed: int, class_weight: str | None,
             standardize: bool = False) -> Any:
        """A fresh, unfitted estimator for one candidate."""
        raise NotImplementedError

    def fit(self, params: Params, x: np.ndarray, y: np.ndarray, seed: int,
            class_weight: str | None = None, standardize: bool = False) -> Any:
        """The candidate ``params`` fitted on features ``x`` and labels ``y``."""
        est = self.make(params, seed, class_weight, standardize and self.standardize_vectors)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)  # capped iterations: by design
            return est.fit(x, y)

    def grid_predict(self, x_fit: np.ndarray, y_fit: np.ndarray, x_eval: np.ndarray, seed: int,
                     class_weight: str | None = None, standardize: bool = False) -> np.ndarray:
        """Predictions ``(len(grid), len(x_eval))`` of every candidate fitted on ``x_fit``."""
        return np.stack([self.fit(p, x_fit, y_fit, seed, class_weight, standardize)
                         .predict(x_eval) for p in self.grid])


def _scaled(est: Any, standardize: bool) -> Any:
    return make_pipeline(StandardScaler(), est) if standardize else est


class LogisticFamily(Family):
    def make(self, params, seed, class_weight, standardize=False):
        return _scaled(LogisticRegression(C=params["C"], max_iter=self.options["max_iter"],
                                          tol=self.options["tol"], class_weight=class_weight),
                       standardize)


class LinearSVMFamily(Family):
    def make(self, params, seed, class_weight, standardize=False):
        return _scaled(LinearSVC(C=params["C"], max_iter=self.options["max_iter"],
                                 class_weight=class_weight, random_state=seed), standardize)


class RBFSVMFamily(Family):
    def make(self, params, seed, class_weight, standardize=False):
        return _scaled(SVC(C=params["C"], kernel="rbf", gamma="scale",
                           cache_size=self.options.get("cache_mb", 500),
                           class_weight=class_weight, random_state=seed), standardize)


# -- k-nearest neighbours -----------------------------------------------------------------------

def _metric_space(x: np.ndarray, metric: str) -> np.ndarray:
    """Rows where Euclidean order is ``metric`` order: cosine = Euclidean on unit rows."""
    if metric == "cosine":
        return knn.l2_normalize(x).astype(np.float32)
    if metric == "euclidean":
        return x
    raise ConfigError(f"k-NN metric must be one of {knn.METRICS}, got {metric!r}")


def _neighbor_rows(x_fit: np.ndarray, x_eval: np.ndarray, metric: str,
                   k_max: int) -> np.ndarray:
    """Rows of ``x_fit`` nearest to each row of ``x_eval``, ``(len(x_eval), k_max)``, nearest
    first, by scikit-learn's exact brute-force search."""
    search = NearestNeighbors(n_neighbors=k_max, algorithm="brute", metric="euclidean")
    search.fit(_metric_space(x_fit, metric))
    return search.kneighbors(_metric_space(x_eval, metric), return_distance=False)


def neighbor_votes(x_fit: np.ndarray, y_fit: np.ndarray, x_eval: np.ndarray, metric: str,
                   k_max: int) -> np.ndarray:
    """k-NN predictions ``(k_max, len(x_eval))`` for k = 1..k_max from one neighbour search.

    Neighbours come from scikit-learn's exact brute-force search; votes and ties follow
    :mod:`notsure.analysis.knn` (tied classes: the one with the nearest member wins).
    """
    k_max = min(k_max, len(x_fit))
    classes, y_enc = np.unique(y_fit, return_inverse=True)
    labels = y_enc[_neighbor_rows(x_fit, x_eval, metric, k_max)]
    scores = knn.vote_scores(labels, len(classes))
    return classes[knn.predict(scores, knn.first_rank(labels, len(classes)))]


def neighbor_vote_shares(x_fit: np.ndarray, y_fit: np.ndarray, x_eval: np.ndarray,
                         metric: str, k: int, n_classes: int) -> np.ndarray:
    """Share of each ``x_eval`` row's ``k`` nearest ``x_fit`` rows in each class 0..C-1,
    ``(len(x_eval), n_classes)``: k-NN class probabilities with uniform weights."""
    y_fit = np.asarray(y_fit)
    if not 1 <= k <= len(x_fit):
        raise ConfigError(f"k must lie in 1..{len(x_fit)} (reference rows), got {k}")
    if y_fit.shape != (len(x_fit),) or (y_fit.size and not 0 <= y_fit.min() <= y_fit.max()
                                        < n_classes):
        raise ConfigError(f"y_fit must be {len(x_fit)} class indices in 0..{n_classes - 1}")
    if not len(x_eval):
        return np.zeros((0, n_classes))
    labels = y_fit[_neighbor_rows(x_fit, x_eval, metric, k)]
    return knn.vote_scores(labels, n_classes)[k - 1]


class NeighborVote:
    """A fitted k-NN classifier (stores the training rows) with the votes of ``neighbor_votes``."""

    def __init__(self, metric: str, k: int) -> None:
        self.metric, self.k = metric, k

    def fit(self, x: np.ndarray, y: np.ndarray) -> NeighborVote:
        self.x_, self.y_ = x, np.asarray(y)
        return self

    def predict(self, x: np.ndarray) -> np.ndarray:
        return neighbor_votes(self.x_, self.y_, x, self.metric, self.k)[self.k - 1]


class KNNFamily(Family):
    def make(self, params, seed, class_weight, standardize=False):
        return NeighborVote(params["metric"], params["k"])

    def grid_predict(self, x_fit, y_fit, x_eval, seed, class_weight=None, standardize=False):
        by_metric = {}
        for metric in dict.fromkeys(p["metric"] for p in self.grid):
            k_max = max(p["k"] for p in self.grid if p["metric"] == metric)
            by_metric[metric] = neighbor_votes(x_fit, y_fit, x_eval, metric, k_max)
        return np.stack([by_metric[p["metric"]][min(p["k"], len(x_fit)) - 1] for p in self.grid])


# -- decision tree ------------------------------------------------------------------------------

def depth_predictions(tree: DecisionTreeClassifier, x: np.ndarray,
                      depths: Sequence[int]) -> np.ndarray:
    """Predictions ``(len(depths), len(x))`` of the depth-d prefixes of a fitted tree.

    The depth-d prefix predicts the majority class of the node a sample reaches at depth d (or
    of its leaf, if shallower). A tree grown with ``max_depth=d`` makes the same splits (a node's
    best split depends only on its samples), except where two splits are exactly equally good
    and the random feature order picks one; so one full tree gives every depth.
    """
    path = tree.decision_path(x).tocsr()
    path.sort_indices()  # depth-first node ids grow from root to leaf along every path
    start, length = path.indptr[:-1], np.diff(path.indptr)
    step = np.minimum(np.asarray(depths)[:, None], length[None, :] - 1)
    nodes = path.indices[start[None, :] + step]
    majority = tree.tree_.value[:, 0, :].argmax(axis=1)
    return tree.classes_[majority[nodes]]


class TreeFamily(Family):
    def make(self, params, seed, class_weight, standardize=False):
        return DecisionTreeClassifier(criterion=params["criterion"], max_depth=params["depth"],
                                      class_weight=class_weight, random_state=seed)

    def grid_predict(self, x_fit, y_fit, x_eval, seed, class_weight=None, standardize=False):
        out = np.empty((len(self.grid), len(x_eval)), dtype=np.asarray(y_fit).dtype)
        for criterion in dict.fromkeys(p["criterion"] for p in self.grid):
            rows = [i for i, p in enumerate(self.grid) if p["criterion"] == criterion]
            full = self.fit({"criterion": criterion, "depth": None}, x_fit, y_fit, seed,
                            class_weight)
            out[rows] = depth_predictions(full, x_eval, [self.grid[i]["depth"] for i in rows])
        return out


# -- random forest ------------------------------------------------------------------------------

def staged_forest_predictions(forest: RandomForestClassifier, x: np.ndarray,
                              sizes: Sequence[int]) -> np.ndarray:
    """Predictions ``(len(sizes), len(x))`` of the forests made of the first m trees.

    scikit-learn draws each tree's seed in order from the forest's ``random_state``, so the first
    m trees of a larger forest are exactly the forest grown with ``n_estimators=m``.
    """
    sizes = np.asarray(sizes)
    if sizes.max() > len(forest.estimators_):
        raise ConfigError(f"forest has {len(forest.estimators_)} trees, asked for {sizes.max()}")
    total = np.zeros((len(x), len(forest.classes_)))
    out = np.empty((len(sizes), len(x)), dtype=forest.classes_.dtype)
    for m, tree in enumerate(forest.estimators_, start=1):
        total += tree.predict_proba(x)
        for i in np.flatnonzero(sizes == m):
            out[i] = forest.classes_[total.argmax(axis=1)]
    return out


class ForestFamily(Family):
    def make(self, params, seed, class_weight, standardize=False):
        return RandomForestClassifier(n_estimators=params["trees"],
                                      max_features=params["max_features"],
                                      class_weight=class_weight, n_jobs=-1, random_state=seed)

    def grid_predict(self, x_fit, y_fit, x_eval, seed, class_weight=None, standardize=False):
        out = np.empty((len(self.grid), len(x_eval)), dtype=np.asarray(y_fit).dtype)
        for features in dict.fromkeys(p["max_features"] for p in self.grid):
            rows = [i for i, p in enumerate(self.grid) if p["max_features"] == features]
            sizes = [self.grid[i]["trees"] for i in rows]
            forest = self.fit({"trees": max(sizes), "max_features": features}, x_fit, y_fit,
                              seed, class_weight)
            out[rows] = staged_forest_predictions(forest, x_eval, sizes)
        return out


# -- the families -------------------------------------------------------------------------------

def _grid(**axes: Sequence[Any]) -> tuple[Params, ...]:
    """Every combination of the axes, the first axis varying slowest."""
    grid: list[Params] = [{}]
    for name, values in axes.items():
        grid = [{**g, name: v} for g in grid for v in values]
    return tuple(grid)


def families(quick: bool = False, n_features: int = REFERENCE_FEATURES) -> dict[str, Family]:
    """The classical families by name, with grids and sample caps for a full or ``quick`` run.

    The caps keep the default MNIST comparison within its time budget on a 2-core machine (see
    ``benchmarks/bench_compare.py``); ``quick`` caps everything to a few thousand samples. The
    RBF SVM's time grows with samples squared times features, so for inputs wider than MNIST's
    784 pixels its caps shrink by sqrt(784 / n_features) (56x56 letters: half).
    """
    def cap(full: int | None, small: int) -> int:
        return small if quick else full

    def kernel_cap(full: int, small: int) -> int:
        return round(cap(full, small) * min(1.0, (REFERENCE_FEATURES / n_features) ** 0.5))

    return {f.name: f for f in (
        LogisticFamily("logreg", "logistic regression", _grid(C=(0.01, 0.1, 1.0)),
                       curve_x="C", log_x=True, cv_max=cap(10_000, 2_000),
                       fit_max=cap(None, 6_000), standardize_vectors=True,
                       options={"max_iter": 200, "tol": 1e-3}),
        LinearSVMFamily("linear_svm", "linear SVM", _grid(C=(0.001, 0.01, 0.1)),
                        curve_x="C", log_x=True, cv_max=cap(10_000, 2_000),
                        fit_max=cap(None, 6_000), standardize_vectors=True,
                        options={"max_iter": 2000}),
        RBFSVMFamily("rbf_svm", "RBF SVM", _grid(C=(1.0, 3.0, 10.0)), curve_x="C", log_x=True,
                     cv_max=kernel_cap(6_000, 1_500), fit_max=kernel_cap(20_000, 3_000),
                     standardize_vectors=True),
        KNNFamily("knn", "k-NN", _grid(metric=("euclidean", "cosine"), k=tuple(range(1, 21))),
                  curve_x="k", curve_by="metric", cv_max=cap(20_000, 4_000),
                  fit_max=cap(None, 10_000)),
        TreeFamily("tree", "decision tree",
                   _grid(criterion=("gini", "entropy"), depth=tuple(range(1, 31))),
                   curve_x="depth", curve_by="criterion", cv_max=cap(None, 4_000),
                   fit_max=cap(None, 10_000)),
        ForestFamily("forest", "random forest",
                     _grid(max_features=("sqrt", "log2"),
                           trees=(10, 25, 50, 100) if quick else (10, 25, 50, 100, 200)),
                     curve_x="trees", curve_by="max_features", log_x=True,
                     cv_max=cap(20_000, 3_000), fit_max=cap(None, 10_000)),
    )}
