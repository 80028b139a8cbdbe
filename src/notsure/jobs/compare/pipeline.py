"""The compare job: which model family should we use, and how sure are we?

dataset -> groups that keep exact-duplicate images (and given groups) together -> locked
stratified test split -> per classical family: stratified K-fold CV of its grid on (a stated
stratified subsample of) the training part, best candidate refit on the training part -> CNNs
trained on the training part with a fixed architecture -> overlap check of every model's training
data against the test split (refused if any sample id or exact-duplicate image is shared) -> one
evaluation on the test split -> summary, curves, per-class reports, confusions -> report.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from numbers import Integral, Real
from typing import Any, ClassVar

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from threadpoolctl import threadpool_limits

from notsure import metrics
from notsure.data import load
from notsure.data.dataset import Dataset
from notsure.data.fetch import ensure_mnist
from notsure.data.splits import (
    Split,
    content_ids,
    find_duplicates_across,
    stratified_fraction_split,
    stratified_kfold,
    stratified_test_split,
)
from notsure.errors import ConfigError
from notsure.io.progress import say
from notsure.jobs.run_options import CROSS_FIT_CONSTRAINTS, RUN_CONSTRAINTS, check_run_options
from notsure.models import CNNConfig, predict_logits, train_cnn
from notsure.models.checkpoints import CheckpointStore
from notsure.models.classical import CLASS_WEIGHTS, Family, families, params_text
from notsure.parallel import DEFAULT_EXECUTOR, execution_of, run_tasks
from notsure.params import Interval, Options, validate

CNN_MODELS: tuple[str, ...] = ("cnn", "cnn_deep")
CNN_TITLES = {"cnn": "CNN (selective job's)", "cnn_deep": "deeper CNN"}
#: Every model name ``--models`` accepts, in report order.
ALL_MODELS: tuple[str, ...] = (*families(), *CNN_MODELS)
#: Cross-validation scores a family's best candidate can be chosen by.
SELECT_BY: tuple[str, ...] = ("macro_f1", "accuracy")
CV_METRICS: tuple[str, ...] = ("accuracy", "macro_f1")
#: Training images of each CNN in a ``--quick`` run (the quick preset's own cap, lowered).
QUICK_CNN_IMAGES = 6000
#: BLAS/OpenMP threads of the scikit-learn models. One: on a busy 2-core machine two threads spin
#: against other jobs (logistic regression ran 15x slower); forests still grow trees in parallel.
CLASSICAL_THREADS = 1


@dataclass
class CompareConfig:
    """Settings of ``notsure compare``; recorded in the run manifest."""

    data: str | None = None  # None: MNIST from the data folder (downloaded if missing)
    format: str | None = None
    labels: str | None = None  # labels file of a headerless CSV or IDX images file
    out: str | None = None
    seed: int = 0
    models: tuple[str, ...] | None = None  # None: every family (CNNs only for images)
    test_fraction: float = 1 / 7
    test_per_class: int | None = None  # instead of test_fraction: this many test samples a class
    cv_folds: int = 5
    quick: bool = False
    cv_max: dict[str, int] = field(default_factory=dict)  # family or "all" -> CV sample cap
    fit_max: dict[str, int] = field(default_factory=dict)  # family or "all" -> final-fit cap
    class_weight: str | None = None  # None or "balanced"
    select_by: str = "macro_f1"
    epochs: int | None = None  # override the CNN presets' epochs
    quiet: bool = False
    executor: str = DEFAULT_EXECUTOR  # where the CV fits run: "local", "processes" or "dask"
    workers: int | None = None  # processes running CV fits at once (None: one per core)
    scheduler: str | None = None  # address of a dask.distributed scheduler (executor "dask")
    resume: str | None = None  # folder of a killed run to continue (same settings and data)
    mlflow: str | None = None  # MLflow tracking URI the finished run is logged to

    _constraints: ClassVar[dict] = {
        "test_fraction": [Interval(Real, 0, 1, closed="neither")],
        "test_per_class": [None, Interval(Integral, 1, None)],
        "cv_folds": CROSS_FIT_CONSTRAINTS["folds"],
        "seed": CROSS_FIT_CONSTRAINTS["seed"],
        "epochs": CROSS_FIT_CONSTRAINTS["epochs"],
        "class_weight": [Options(CLASS_WEIGHTS)],
        "select_by": [Options(SELECT_BY)],
        **RUN_CONSTRAINTS,
    }

    def validate(self) -> None:
        """Refuse settings that cannot work before anything is loaded or written."""
        validate(self, self._constraints, names={"cv_folds": "--folds"})
        check_run_options(self)  # across fields: --scheduler, --resume, --mlflow
        # Lists of model names: the message names the unknown ones.
        if self.models is not None:
            unknown = [m for m in self.models if m not in ALL_MODELS]
            if unknown or not self.models:
                raise ConfigError(f"--models: unknown {unknown or 'empty list'}; choose from "
                                  f"{', '.join(ALL_MODELS)}")
        for option, caps in (("--cv-max", self.cv_max), ("--fit-max", self.fit_max)):
            for name, n in caps.items():
                if name != "all" and name not in ALL_MODELS:
                    raise ConfigError(f"{option} {name}={n}: unknown model; use 'all' or one of "
                                      f"{', '.join(ALL_MODELS)}")
                if n < 2:
                    raise ConfigError(f"{option} {name}={n}: a cap must be >= 2 samples")

    def cap(self, caps: dict[str, int], name: str, default: int | None) -> int | None:
        """The sample cap of model ``name``: its own, else ``all``, else the default."""
        return caps.get(name, caps.get("all", default))


def deeper(config: CNNConfig) -> CNNConfig:
    """The deeper CNN: one more stage, twice as wide as the last, after ``config``'s stages."""
    return config.replace(stages=(*config.stages, (2 * config.stages[-1][-1],)))


def cnn_config(config: CompareConfig, name: str) -> CNNConfig:
    """The CNN preset of model ``name`` (the selective job's ``default``, or ``quick``)."""
    base = CNNConfig.default()
    if config.quick:
        base = CNNConfig.quick()
        base = base.replace(max_train=min(base.max_train or QUICK_CNN_IMAGES, QUICK_CNN_IMAGES))
    if config.epochs is not None:
        base = base.replace(epochs=config.epochs)
    return deeper(base) if name == "cnn_deep" else base


# -- data and split -----------------------------------------------------------------------------

def load_data(config: CompareConfig) -> Dataset:
    """The dataset: ``--data`` through the data layer, default MNIST (train + t10k pooled)."""
    path = config.data if config.data is not None else ensure_mnist(quiet=config.quiet)
    return load(path, format=config.format, labels_path=config.labels)


def leak_groups(ds: Dataset) -> np.ndarray | None:
    """Group index per sample that keeps exact-duplicate samples (and the dataset's own groups,
    e.g. subjects) on one side of every split; ``None`` when every sample is alone."""
    ids = content_ids(ds.x)
    n = len(ds)
    links = [np.unique(ids, return_inverse=True)[1]]
    if ds.groups is not None:
        links.append(np.unique(ds.groups, return_inverse=True)[1])
    rows, cols = [], []
    for key in links:  # link each sample to the first sample with the same key
        first = np.full(key.max() + 1, n, dtype=np.int64)
        np.minimum.at(first, key, np.arange(n))
        rows.append(np.arange(n))
        cols.append(first[key])
    rows, cols = np.concatenate(rows), np.concatenate(cols)
    graph = coo_matrix((np.ones(len(rows)), (rows, cols)), shape=(n, n))
    n_groups, groups = connected_components(graph, directed=False)
    return None if n_groups == n else groups.astype(np.int64)


def lock_split(ds: Dataset, config: CompareConfig, groups: np.ndarray | None) -> Split:
    """The test split, drawn first from the labels, groups and seed alone; stratified."""
    if config.test_per_class is not None:
        return stratified_test_split(ds.y, config.test_per_class, config.seed, groups=groups,
                                     allow_small=True)
    return stratified_fraction_split(ds.y, config.test_fraction, config.seed, groups=groups)


def stratified_subsample(y: np.ndarray, index: np.ndarray, n: int | None, seed: int,
                         groups: np.ndarray | None = None) -> np.ndarray:
    """About ``n`` of the positions ``index``, stratified by class (whole groups); every class
    of ``index`` keeps at least one sample. All of ``index`` when ``n`` is None or not smaller."""
    index = np.sort(np.asarray(index))
    if n is None or n >= len(index):
        return index
    part = stratified_fraction_split(y[index], n / len(index), seed,
                                     groups=None if groups is None else groups[index])
    chosen = index[part.test]
    missing = np.setdiff1d(y[index], y[chosen])
    return np.union1d(chosen, _first_of(y, index, missing))


def _first_of(y: np.ndarray, index: np.ndarray, classes: np.ndarray) -> np.ndarray:
    """The first position in ``index`` of each class in ``classes``."""
    labels, first = np.unique(y[index], return_index=True)
    return index[first[np.isin(labels, classes)]]


def overlap_reason(ds: Dataset, fit_index: np.ndarray, test_index: np.ndarray) -> str | None:
    """Why a model trained on ``fit_index`` must not be scored on ``test_index``, or ``None``:
    a shared sample id, or a training image byte-identical to a test image."""
    shared = np.intersect1d(ds.ids[fit_index], ds.ids[test_index])
    if shared.size:
        return (f"{shared.size} training sample id(s) are also in the test split "
                f"(e.g. {shared[0]!r})")
    pairs = find_duplicates_across(ds.x, fit_index, test_index)
    if pairs:
        i, j = pairs[0]
        return (f"{len(pairs)} training/test pair(s) of byte-identical samples "
                f"(e.g. training {ds.ids[i]!r} = test {ds.ids[j]!r})")
    return None


# -- plans: every position a model will see, fixed before anything is fitted --------------------

@dataclass
class ModelPlan:
    """What one model trains on: CV folds (dataset positions) and the final-fit positions."""

    name: str
    title: str
    family: Family | None  # None for the CNNs
    cnn: CNNConfig | None
    cv_index: np.ndarray  # the CV sample (training positions), empty for CNNs
    folds: list[tuple[np.ndarray, np.ndarray]]  # (fit, validation) dataset positions
    cv_not_evaluable: dict
    fit_index: np.ndarray

    @property
    def n_trained(self) -> int:
        """Images the final model learns from: a CNN preset's ``max_train`` may cap them."""
        cap = self.cnn.max_train if self.cnn is not None else None
        return min(len(self.fit_index), cap or len(self.fit_index))


def plan_models(ds: Dataset, split: Split, config: CompareConfig,
                groups: np.ndarray | None) -> list[ModelPlan]:
    """The models to compare with their CV folds and final-fit samples, all from the training
    part of ``split`` only."""
    names = list(config.models or ALL_MODELS)
    if ds.kind != "images":
        asked = [n for n in names if n in CNN_MODELS]
        if config.models is not None and asked:
            raise ConfigError(f"--models {','.join(asked)}: the CNNs need images, but "
                              f"{ds.source} holds vectors of shape {ds.shape}")
        names = [n for n in names if n not in CNN_MODELS]
    specs = families(config.quick, int(np.prod(ds.shape)))
    train = split.train
    plans = []
    for name in names:
        fit_cap = config.cap(config.fit_max, name, specs[name].fit_max if name in specs else None)
        fit_index = stratified_subsample(ds.y, train, fit_cap, config.seed + 1, groups)
        if name in CNN_MODELS:
            cnn = cnn_config(config, name)
            plans.append(ModelPlan(name, CNN_TITLES[name], None, cnn, np.empty(0, np.int64), [],
                                   {}, fit_index))
            continue
        family = specs[name]
        cv_index = stratified_subsample(ds.y, train, config.cap(config.cv_max, name,
                                                                 family.cv_max),
                                        config.seed + 1, groups)
        plan = stratified_kfold(ds.y[cv_index], config.cv_folds, config.seed,
                                groups=None if groups is None else groups[cv_index])
        folds = [(cv_index[a], cv_index[b]) for a, b in plan.folds]
        not_evaluable = {ds.class_names[c]: n for c, n in plan.not_evaluable.items()}
        plans.append(ModelPlan(name, family.title, family, None, cv_index, folds, not_evaluable,
                               fit_index))
    return plans


# -- fitting and evaluation ---------------------------------------------------------------------

@dataclass
class CvResult:
    """Cross-validation of one family's grid: ``scores[metric]`` is ``(n_candidates, n_folds)``."""

    candidates: tuple[dict, ...]
    scores: dict[str, np.ndarray]
    chosen: int
    select_by: str
    seconds: float

    def mean(self, metric: str) -> np.ndarray:
        return self.scores[metric].mean(axis=1)

    def std(self, metric: str) -> np.ndarray:
        return self.scores[metric].std(axis=1, ddof=1) if self.scores[metric].shape[1] > 1 \
            else np.zeros(len(self.candidates))


@dataclass
class ModelResult:
    """One model's selection, final fit and single test evaluation (``y_pred`` None: refused)."""

    plan: ModelPlan
    params: dict[str, Any]
    cv: CvResult | None
    fit_seconds: float
    predict_seconds: float | None
    y_pred: np.ndarray | None
    refused: str | None
    history: list[dict] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.plan.name


def fold_scores(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    """Accuracy and macro F1 (classes present in ``y_true`` or ``y_pred``), via notsure.metrics."""
    return {"accuracy": metrics.accuracy(y_true, y_pred),
            "macro_f1": float(metrics.precision_recall_f1(y_true, y_pred, average="macro")[2])}


@dataclass(frozen=True)
class CvFold:
    """One CV task: every candidate of ``family`` fitted on ``fit``, predicting ``val``."""

    family: Family
    fold: int
    fit: np.ndarray
    val: np.ndarray
    seed: int
    class_weight: str | None
    standardize: bool

    @property
    def name(self) -> str:
        return f"cv-{self.family.name}-fold{self.fold}"


def cv_fold_predictions(task: CvFold, data: tuple[np.ndarray, np.ndarray]
                        ) -> tuple[np.ndarray, float]:
    """Predictions ``(candidates, len(val))`` of one CV fold (``data``: features, labels) and
    the seconds they took."""
    features, y = data
    t0 = time.perf_counter()
    pred = task.family.grid_predict(features[task.fit], y[task.fit], features[task.val],
                                    task.seed, task.class_weight, task.standardize)
    return pred, time.perf_counter() - t0


def run_cv_folds(plans: list[ModelPlan], features: np.ndarray, y: np.ndarray,
                 config: CompareConfig, standardize: bool,
                 store: CheckpointStore | None = None
                 ) -> dict[str, tuple[list[np.ndarray], float]]:
    """Every classical family's CV fold predictions and their seconds in all, computed as
    independent tasks on ``config.execution``; each fold is checkpointed as it finishes and
    reused on resume."""
    tasks = [CvFold(p.family, f, fit, val, config.seed, config.class_weight, standardize)
             for p in plans if p.family is not None for f, (fit, val) in enumerate(p.folds)]
    done = {}
    for t in tasks:
        if store is not None and store.has(t.name):
            saved = store.load(t.name)
            done[t.name] = (saved.arrays["pred"], saved.meta["seconds"])
    todo = [t for t in tasks if t.name not in done]

    def save(i: int, result: tuple[np.ndarray, float]) -> None:
        if store is not None:
            store.save(todo[i].name, arrays={"pred": result[0]}, meta={"seconds": result[1]})

    new = run_tasks(cv_fold_predictions, todo, shared=(features, y), execution=execution_of(config),
                    threads=CLASSICAL_THREADS, names=[t.name for t in todo], on_result=save,
                    desc="CV folds", quiet=config.quiet)
    done.update((t.name, result) for t, result in zip(todo, new, strict=True))
    out: dict[str, tuple[list[np.ndarray], float]] = {}
    for t in tasks:
        preds, seconds = out.get(t.family.name, ([], 0.0))
        out[t.family.name] = ([*preds, done[t.name][0]], seconds + done[t.name][1])
    return out


def cross_validate(family: Family, y: np.ndarray,
                   folds: Sequence[tuple[np.ndarray, np.ndarray]],
                   fold_preds: Sequence[np.ndarray], config: CompareConfig,
                   seconds: float = 0.0) -> CvResult:
    """Score every candidate of ``family`` on every fold from its predictions ``fold_preds``;
    choose the best mean ``select_by`` (ties: the earlier, simpler candidate)."""
    scores = {m: np.zeros((len(family.grid), len(folds))) for m in CV_METRICS}
    for f, ((_, val), preds) in enumerate(zip(folds, fold_preds, strict=True)):
        for c, pred in enumerate(preds):
            for metric, value in fold_scores(y[val], pred).items():
                scores[metric][c, f] = value
    means = scores[config.select_by].mean(axis=1)
    chosen = int(np.flatnonzero(means == means.max())[0])
    return CvResult(family.grid, scores, chosen, config.select_by, seconds)


def balanced_resample(y: np.ndarray, index: np.ndarray, seed: int) -> np.ndarray:
    """``len(index)`` positions drawn with replacement, each class equally likely: class
    weighting for the CNNs, whose loss takes no weights."""
    counts = np.bincount(y[index])
    weights = 1.0 / counts[y[index]]
    rng = np.random.default_rng([seed, 7])
    return np.sort(rng.choice(index, size=len(index), p=weights / weights.sum()))


def timed(fn, *args, **kwargs) -> tuple[Any, float]:
    """``fn(*args, **kwargs)`` and the seconds it took."""
    t0 = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - t0


def evaluate_model(plan: ModelPlan, ds: Dataset, features: np.ndarray, split: Split,
                   config: CompareConfig, fold_preds: Sequence[np.ndarray] = (),
                   cv_seconds: float = 0.0) -> ModelResult:
    """Select (CV, from the fold predictions of :func:`run_cv_folds`), refit on the plan's
    training samples, then predict the test split once, unless the training samples overlap it
    (then refused, never scored)."""
    standardize = ds.kind == "vectors"
    cv, history = None, []
    if plan.family is not None:
        with threadpool_limits(CLASSICAL_THREADS):
            cv = cross_validate(plan.family, ds.y, plan.folds, fold_preds, config, cv_seconds)
            params = dict(cv.candidates[cv.chosen])
            say(f"{plan.title}: chose {params_text(params)} (CV {config.select_by} "
                f"{cv.mean(config.select_by)[cv.chosen]:.4f})", quiet=config.quiet)
            model, fit_s = timed(plan.family.fit, params, features[plan.fit_index],
                                  ds.y[plan.fit_index], config.seed, config.class_weight,
                                  standardize)

        def predict(x: np.ndarray) -> np.ndarray:
            with threadpool_limits(CLASSICAL_THREADS):
                return model.predict(x)

        x_test = features[split.test]
    else:
        params = {"stages": plan.cnn.stages, "epochs": plan.cnn.epochs}
        train = plan.fit_index
        if config.class_weight == "balanced":
            train = balanced_resample(ds.y, train, config.seed)
        result, fit_s = timed(train_cnn, ds.x[train], ds.y[train], ds.n_classes, plan.cnn,
                               config.seed, quiet=config.quiet)
        history = result.history

        def predict(x: np.ndarray) -> np.ndarray:
            logits = predict_logits(result.model, x, precision=plan.cnn.precision,
                                    threads=plan.cnn.threads)
            return logits.argmax(axis=1)

        x_test = ds.x[split.test]
    refused = overlap_reason(ds, plan.fit_index, split.test)
    if refused is not None:
        say(f"{plan.title}: REFUSED to score on the test split: {refused}", quiet=config.quiet)
        return ModelResult(plan, params, cv, fit_s, None, None, refused, history)
    y_pred, predict_s = timed(predict, x_test)
    return ModelResult(plan, params, cv, fit_s, predict_s, np.asarray(y_pred, dtype=np.int64),
                       None, history)


# -- the job ------------------------------------------------------------------------------------

@dataclass
class CompareResult:
    """Everything the report and ``metrics.json`` are built from."""

    config: CompareConfig
    dataset: Dataset
    split: Split
    n_duplicate_groups: int
    pixel_max: float | None
    models: list[ModelResult]


def pixel_scale(ds: Dataset, train: np.ndarray) -> float | None:
    """What divides pixels to [0, 1]: 1 for binary images, else 255; ``None`` for vectors."""
    if ds.kind != "images":
        return None
    return 1.0 if ds.x[train].max() <= 1 else 255.0


