"""The embeddings job: integrity, statistics, t-SNE and nested k-NN cross-validation of
``{syndrome: {subject: {image: vector}}}`` embeddings, with a logistic-regression baseline.

pickle -> restricted unpickling -> integrity checks (bad entries dropped, every finding listed)
-> flattened dataset -> statistics and t-SNE -> subject-grouped, syndrome-stratified outer folds
-> per fold: k chosen by inner grouped CV, test fold scored -> metrics, paired comparison of the
distances, baseline on the same folds -> report, tables, ``metrics.json``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from numbers import Integral, Real
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from notsure.analysis import embedding_cv, embedding_stats, knn
from notsure.analysis.embedding_cv import CvResult
from notsure.analysis.embedding_integrity import IntegrityReport, check_embeddings
from notsure.analysis.embedding_stats import TSNE_BACKENDS
from notsure.data.dataset import Dataset
from notsure.data.fetch import data_dir
from notsure.data.pickles import dataset_from_embeddings, safe_unpickle
from notsure.data.splits import KFoldPlan
from notsure.errors import ConfigError
from notsure.jobs.run_options import CROSS_FIT_CONSTRAINTS, RUN_CONSTRAINTS, check_run_options
from notsure.models.classical import CLASS_WEIGHTS
from notsure.parallel import execution_of
from notsure.params import Interval, Options, validate

#: Where the customer's file lives under the data folder.
DEFAULT_FILE = Path("syndromes") / "mini_gm_public_v0.1.p"


#: The t-SNE implementations ``--tsne-backend`` chooses from (auto: openTSNE if installed).
#: How each distance is written for people.
DISTANCE_NAMES = {"cosine": "cosine", "euclidean": "Euclidean"}


def default_path() -> Path:
    """``data_dir()/syndromes/mini_gm_public_v0.1.p`` (``$NOTSURE_DATA_DIR`` or the cache)."""
    return data_dir() / DEFAULT_FILE


@dataclass
class EmbeddingsConfig:
    """Settings of ``notsure embeddings``; recorded in the run manifest."""

    path: str | None = None  # None: default_path()
    out: str | None = None
    seed: int = 0
    n_folds: int = 10
    k_max: int = 15
    inner_folds: int = 5
    weighting: str = "uniform"  # k-NN votes: "uniform" or "distance" (1/d)
    dim: int | None = None  # expected vector length; None: the most common one
    tsne: bool = True
    tsne_backend: str = "auto"  # "auto" (openTSNE if installed), "opentsne", "sklearn"
    tsne_perplexity: float = 30.0
    tsne_iter: int = 500  # after 250 early-exaggeration iterations
    baseline: bool = True
    baseline_cs: tuple[float, ...] = (0.3, 1.0, 3.0, 10.0)
    class_weight: str | None = "balanced"
    quiet: bool = False
    # Where the outer folds run. "local" by default: they are small next to starting worker
    # processes; "processes" or "dask" spread them when the data grow.
    executor: str = "local"
    workers: int | None = None  # processes or local Dask workers (None: one per core)
    scheduler: str | None = None  # address of a dask.distributed scheduler (executor "dask")
    mlflow: str | None = None  # MLflow tracking URI the finished run is logged to

    _constraints: ClassVar[dict] = {
        "seed": CROSS_FIT_CONSTRAINTS["seed"],
        "n_folds": CROSS_FIT_CONSTRAINTS["folds"],
        "inner_folds": [Interval(Integral, 2, None)],
        "k_max": [Interval(Integral, 1, None)],
        "weighting": [Options(knn.WEIGHTINGS)],
        "dim": [None, Interval(Integral, 1, None)],
        "tsne_backend": [Options(TSNE_BACKENDS)],
        "tsne_perplexity": [Interval(Real, 0, None, closed="neither")],
        "tsne_iter": [Interval(Integral, 1, None)],
        "class_weight": [Options(CLASS_WEIGHTS)],
        **RUN_CONSTRAINTS,
    }
    #: Settings of the Python API only (no command-line flags) are named as their fields.
    _names: ClassVar[dict] = {"n_folds": "--folds", "tsne_perplexity": "tsne_perplexity",
                              "tsne_iter": "tsne_iter", "class_weight": "class_weight"}

    def validate(self) -> None:
        """Refuse settings that cannot work before anything is loaded or written."""
        validate(self, self._constraints, self._names)
        # A list of values: every C must be positive.
        if not self.baseline_cs or any(c <= 0 for c in self.baseline_cs):
            raise ConfigError(f"baseline C values must be > 0, got {self.baseline_cs}")
        check_run_options(self)  # across fields: --scheduler, --mlflow


@dataclass
class Method:
    """One evaluated method: its out-of-fold results and the metrics computed from them."""

    key: str
    label: str
    cv: CvResult
    folds: list[dict[str, float]]
    pooled: dict[str, float]
    classes: dict[str, np.ndarray]
    roc: Any
    class_roc: list[Any] = field(default_factory=list)
    k_curve: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0

    def mean(self, metric: str) -> float:
        return float(np.mean([f[metric] for f in self.folds]))

    def std(self, metric: str) -> float:
        values = [f[metric] for f in self.folds]
        return float(np.std(values, ddof=1)) if len(values) > 1 else float("nan")


@dataclass
class EmbeddingsResult:
    """Everything the report and ``metrics.json`` are built from."""

    config: EmbeddingsConfig
    path: Path
    sha256: str
    dataset: Dataset
    integrity: IntegrityReport
    plan: KFoldPlan
    stats: dict[str, Any]
    tsne: dict[str, dict[str, Any]]
    methods: dict[str, Method]
    paired: list[dict[str, Any]]
    paired_baseline: list[dict[str, Any]]


def load_embeddings(path: Path, dim: int | None = None) -> tuple[Dataset, IntegrityReport]:
    """Unpickle safely, run the integrity checks, flatten the cleaned dict with the data layer."""
    raw = safe_unpickle(path)
    report = check_embeddings(raw, str(path), dim)
    return dataset_from_embeddings(report.clean, path), report


def statistics(ds: Dataset) -> dict[str, Any]:
    """Counts, imbalance, images per subject and vector norms of the dataset."""
    norms, eta2 = embedding_stats.norm_rows(ds.x, ds.y, ds.class_names)
    return {"summary": embedding_stats.summary(ds.y, ds.groups, ds.class_names),
            "classes": embedding_stats.class_rows(ds.y, ds.groups, ds.class_names),
            "per_subject": embedding_stats.images_per_subject_rows(ds.groups),
            "norms": norms, "norm_eta2": eta2,
            "norm_values": np.linalg.norm(ds.x.astype(np.float64), axis=1)}


def tsne_maps(ds: Dataset, config: EmbeddingsConfig) -> dict[str, dict[str, Any]]:
    """t-SNE of the L2-normalized and of the raw vectors, each with its cluster measures."""
    maps = {}
    for key, x, metric in (("normalized", knn.l2_normalize(ds.x), "cosine"),
                           ("raw", ds.x.astype(np.float64), "euclidean")):
        points, backend, seconds = embedding_stats.tsne_2d(
            x, config.seed, perplexity=config.tsne_perplexity, n_iter=config.tsne_iter,
            backend=config.tsne_backend)
        rows, overall = embedding_stats.cluster_rows(x, metric, points, ds.y, ds.groups,
                                                     ds.class_names)
        maps[key] = {"points": points, "backend": backend, "seconds": seconds,
                     "metric": metric, "clusters": rows, "overall": overall}
    return maps


def _method(key: str, label: str, cv: CvResult, y: np.ndarray, n_classes: int,
            seconds: float) -> Method:
    tested = cv.fold >= 0
    method = Method(
        key=key, label=label, cv=cv,
        folds=embedding_cv.per_fold(cv, y, n_classes),
        pooled=embedding_cv.fold_metrics(y[tested], cv.scores[tested], cv.pred[tested],
                                         n_classes),
        classes=embedding_cv.fold_class_metrics(cv, y, n_classes),
        roc=embedding_cv.fold_macro_rocs(cv, y, n_classes),
        class_roc=embedding_cv.class_rocs(cv, y, n_classes),
        seconds=seconds)
    if cv.curve_scores is not None:
        method.k_curve = embedding_cv.k_curve(cv, y, n_classes)
    return method


def evaluate_knn(ds: Dataset, plan: KFoldPlan, config: EmbeddingsConfig) -> dict[str, Method]:
    """Nested k-NN cross-validation for both distances (one distance matrix each)."""
    methods = {}
    for metric in knn.METRICS:
        t0 = time.perf_counter()
        dist = knn.pairwise_distances(ds.x, ds.x, metric)
        cv = embedding_cv.knn_cv(dist, ds.y, ds.groups, ds.n_classes, plan, k_max=config.k_max,
                                 n_inner=config.inner_folds, seed=config.seed,
                                 weighting=config.weighting, name=metric,
                                 execution=execution_of(config), quiet=config.quiet)
        seconds = time.perf_counter() - t0
        methods[metric] = _method(metric, f"k-NN {DISTANCE_NAMES[metric]}", cv, ds.y,
                                  ds.n_classes, seconds)
    return methods


def evaluate_baseline(ds: Dataset, plan: KFoldPlan, config: EmbeddingsConfig) -> Method:
    """Logistic regression on L2-normalized vectors over the same outer folds, C nested."""
    t0 = time.perf_counter()
    cv = embedding_cv.logreg_cv(ds.x, ds.y, ds.groups, ds.n_classes, plan,
                                cs=config.baseline_cs, n_inner=config.inner_folds,
                                seed=config.seed, class_weight=config.class_weight,
                                execution=execution_of(config), quiet=config.quiet)
    return _method("logreg", "logistic regression", cv, ds.y, ds.n_classes,
                   time.perf_counter() - t0)


def check_k_max(ds: Dataset, plan: KFoldPlan, config: EmbeddingsConfig) -> None:
    """k_max must not exceed the smallest inner training part."""
    smallest = min(len(train) for train, _ in plan.folds)
    bound = smallest - int(np.ceil(smallest / config.inner_folds)) - 1
    if config.k_max > bound:
        raise ConfigError(f"--k-max {config.k_max} is too large for {len(ds)} images in "
                          f"{config.n_folds} x {config.inner_folds} folds; use at most {bound}")


