"""The ambiguity job: the images a classifier gets wrong most confidently, the ones it is least
sure of, and likely label errors, each scored only by models that never trained on it.

Every image of the dataset gets out-of-sample class probabilities from two independent models:
the CNN (a selective run's ensemble for its test split and the fold model that held an image out
for its training pool; without a run, CNNs cross-fitted here) and a k-NN vote among the very
images that CNN was trained on. Rankings of the analysed set (the official test part, MNIST
``t10k``, by default; ``--split`` the run's test split; ``--all`` every image) use the CNN;
suspected label errors use confident learning on the mean of the two opinions, with per-class
thresholds from every image, so a mislabelled image must look like a typical member of another
class to both models.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from numbers import Integral
from pathlib import Path
from typing import ClassVar

import numpy as np

from notsure.analysis.ambiguity import (
    RANK_BY,
    ConfidentLearning,
    confidence,
    confident_learning,
    ensemble_probabilities,
    entropy,
    label_error_candidates,
    least_confident,
    most_confident_wrong,
    top2_margin,
)
from notsure.data import load
from notsure.data.dataset import Dataset
from notsure.data.fetch import ensure_mnist
from notsure.data.splits import Split, stratified_kfold
from notsure.errors import ConfigError, DataError
from notsure.io.progress import progress
from notsure.jobs.run_options import CROSS_FIT_CONSTRAINTS, RUN_CONSTRAINTS, check_run_options
from notsure.models.checkpoints import CheckpointStore
from notsure.models.classical import neighbor_vote_shares
from notsure.models.cnn import CNNConfig
from notsure.models.cross_fit import cross_fit
from notsure.parallel import DEFAULT_EXECUTOR, execution_of
from notsure.params import Interval, Options, validate

#: Id prefixes of a dataset's official test part, analysed by default.
TEST_PARTS = ("t10k", "test")
SCOPES = ("test", "split", "all")
ENSEMBLE, OUT_OF_FOLD = "ensemble", "out_of_fold"
KNN_METRIC = "cosine"
COLUMNS = ("rank", "index", "id", "given_label", "predicted_label", "confidence", "margin",
           "entropy", "p_given", "knn_label", "knn_p_given", "score_source", "n_members",
           "member_agreement")
SUSPECT_COLUMNS = ("rank", "index", "id", "given_label", "suggested_label", "cl_flagged",
                   "label_quality", *COLUMNS[4:])
TABLES = ("most_confident_wrong", "least_confident", "suspected_label_errors")
IMAGE_SCALE = 4


@dataclass
class AmbiguousConfig:
    """Settings of ``notsure ambiguous``; recorded in the run manifest."""

    run: str | None = None  # selective run folder whose models score the images
    scope: str = "test"  # "test": official test part; "split": the run's test split; "all"
    data: str | None = None  # without --run: dataset (default MNIST) to cross-fit models on
    format: str | None = None
    out: str | None = None
    seed: int = 0
    folds: int = 5
    quick: bool = False
    epochs: int | None = None
    top: int = 20
    knn_k: int = 10  # neighbours of the k-NN opinion
    rank_by: str = "self_confidence"
    write_exclusions: str | None = None
    measure_exclusion: bool = False
    # For --measure-exclusion without a run; None: the selective job's default.
    test_per_class: int | None = None
    target_fpr: float | None = None
    delta: float | None = None
    quiet: bool = False
    cnn: dict = field(default_factory=dict)  # CNN settings used when cross-fitting here
    executor: str = DEFAULT_EXECUTOR  # where fold models train: "local", "processes" or "dask"
    workers: int | None = None  # processes training fold models at once (None: one per core)
    scheduler: str | None = None  # address of a dask.distributed scheduler (executor "dask")
    resume: str | None = None  # folder of a killed run to continue (same settings and data)
    mlflow: str | None = None  # MLflow tracking URI the finished run is logged to

    _constraints: ClassVar[dict] = {
        "scope": [Options(SCOPES)],
        "top": [Interval(Integral, 1, None)],
        "knn_k": [Interval(Integral, 1, None)],
        "rank_by": [Options(RANK_BY)],
        **CROSS_FIT_CONSTRAINTS,
        **RUN_CONSTRAINTS,
    }

    def validate(self) -> None:
        """Refuse settings that cannot work before anything is loaded or written."""
        validate(self, self._constraints, names={"scope": "scope"})  # set by --split / --all
        # Across fields: what --split and --data need of --run, and the run options.
        if self.scope == "split" and self.run is None:
            raise ConfigError("--split analyses a run's test split: give --run RUN_DIR too")
        if self.run is not None and (self.data is not None or self.format is not None):
            raise ConfigError("--data/--format are for cross-fitting without a run; a run "
                              "folder already names its dataset")
        check_run_options(self)
        # Against the file system: the exclusions file must be writable where it is named.
        if self.write_exclusions is not None:
            target = Path(self.write_exclusions)
            if target.is_dir() or not target.parent.is_dir():
                raise ConfigError(f"--write-exclusions {target}: give a file path in an "
                                  "existing folder")

    def cnn_config(self) -> CNNConfig:
        """The CNN preset for cross-fitting without a run; one thread per fold model, so it
        comes out the same on every executor."""
        return CNNConfig.preset(self.quick, epochs=self.epochs, threads=1)


@dataclass
class Scores:
    """Out-of-sample scores of images and which model produced each."""

    positions: np.ndarray  # (M,) dataset positions scored
    probs: np.ndarray  # (M, C) CNN class probabilities (mean of members' softmax)
    source: np.ndarray  # (M,) ENSEMBLE or OUT_OF_FOLD
    scorer: np.ndarray  # (M,) fold model that scored the row; -1: the whole ensemble
    n_members: np.ndarray  # (M,)
    agreement: np.ndarray  # (M,) share of members on the predicted class; NaN for one member
    trained_on: dict[int, np.ndarray]  # scorer -> dataset positions it was trained on
    knn: np.ndarray | None = None  # (M, C) k-NN vote shares among the scorer's training images

    def take(self, rows: np.ndarray) -> Scores:
        """The scores of ``rows`` only (same models, same training sets)."""
        return replace(self, positions=self.positions[rows], probs=self.probs[rows],
                       source=self.source[rows], scorer=self.scorer[rows],
                       n_members=self.n_members[rows], agreement=self.agreement[rows],
                       knn=None if self.knn is None else self.knn[rows])

    @property
    def both(self) -> np.ndarray:
        """The two-model opinion: mean of the CNN and k-NN probabilities."""
        if self.knn is None:
            raise ConfigError("k-NN opinions are not computed yet (call knn_opinions)")
        return (self.probs + self.knn) / 2.0


@dataclass
class AmbiguousResult:
    """Everything the CSVs, images and report are built from."""

    config: AmbiguousConfig
    dataset: Dataset
    analysed: str  # what the analysed set is, in words
    scores: Scores  # of the analysed images
    n_scored: int  # images with out-of-sample scores (the thresholds' reference set)
    index: np.ndarray  # (M,) index shown for each analysed row
    index_in_file: bool  # index is the position in the one file all rows come from
    cl: ConfidentLearning
    flag_counts: dict  # per opinion: images flagged in the reference set and in the analysed set
    tables: dict[str, list[dict]]
    leakage_checked: int
    exclusion: dict | None
    run_manifest: dict | None


# -- inputs -----------------------------------------------------------------------------------

def load_dataset(data: str | None, format: str | None, quiet: bool) -> Dataset:
    """The images to analyse: ``data`` through the data layer, default MNIST (train + t10k)."""
    ds = load(data if data is not None else ensure_mnist(quiet=quiet), format=format)
    if ds.kind != "images":
        raise ConfigError(f"{ds.source}: the ambiguity job needs images, got {ds.kind} of "
                          f"shape {ds.shape}")
    return ds


def official_test_positions(ds: Dataset) -> np.ndarray:
    """Positions of the official test part (ids ``t10k/<i>`` or ``test/<i>``)."""
    prefix = np.char.partition(ds.ids.astype(str), "/")[:, 0]
    return np.flatnonzero(np.isin(prefix, TEST_PARTS))


def file_index(ds: Dataset, positions: np.ndarray) -> tuple[np.ndarray, bool]:
    """The index to show for each analysed sample, and whether it is its position in its file:
    so when all come from one file (``t10k/4176`` -> 4176), else the position in the dataset."""
    parts = np.char.partition(ds.ids[positions].astype(str), "/")
    prefix, number = parts[:, 0], parts[:, 2]
    if len(positions) and len(np.unique(prefix)) == 1 and np.all(np.char.isdigit(number)):
        index = number.astype(np.int64)
        if len(np.unique(index)) == len(index):
            return index, True
    return np.asarray(positions, dtype=np.int64), False


# -- scoring ----------------------------------------------------------------------------------



def scores_by_cross_fit(ds: Dataset, config: AmbiguousConfig, cnn: CNNConfig,
                        checkpoints: CheckpointStore | None = None) -> Scores:
    """Cross-fit ``config.folds`` CNNs on the whole dataset; every image is scored by the one
    model that held it out. With ``checkpoints``, trained fold models are saved and reused."""
    plan = stratified_kfold(ds.y, config.folds, config.seed)
    fit = cross_fit(ds.x, ds.y, ds.n_classes, plan.folds, cnn, config.seed, quiet=config.quiet,
                    execution=execution_of(config), checkpoints=checkpoints)
    n = len(ds)
    return Scores(positions=np.arange(n), probs=ensemble_probabilities(fit.oof_logits[None]),
                  source=np.full(n, OUT_OF_FOLD), scorer=fit.fold_of,
                  n_members=np.ones(n, np.int64), agreement=np.full(n, np.nan),
                  trained_on={k: train for k, (train, _) in enumerate(plan.folds)})


def analysed_rows(ds: Dataset, scores: Scores, scope: str,
                  split: Split | None) -> tuple[np.ndarray, str]:
    """Rows of ``scores`` to analyse, and what they are in words."""
    if scope == "all":
        missing = len(ds) - len(scores.positions)
        return np.arange(len(scores.positions)), (
            f"every scored image ({len(scores.positions):,}"
            + (f"; {missing:,} dropped from the run's training are not scored)" if missing
               else ")"))
    if scope == "split":
        positions = split.test
        what = f"the run's own test split ({len(positions):,} images)"
    else:
        positions = official_test_positions(ds)
        if not len(positions):
            if split is not None:
                raise ConfigError(f"{ds.source} has no official test part (ids t10k/<i> or "
                                  "test/<i>); analyse the run's test split with --split, or "
                                  "every image with --all")
            return np.arange(len(scores.positions)), f"every image ({len(ds):,})"
        what = f"the official test set ({len(positions):,} images)"
    order = np.argsort(scores.positions)
    at = np.searchsorted(scores.positions, positions, sorter=order)
    rows = order[np.minimum(at, len(order) - 1)]
    if np.any(scores.positions[rows] != positions):
        raise DataError("some analysed images are in neither the run's training pool nor its "
                        "test split (excluded from its training); analyse with --split")
    return rows, what


def knn_opinions(ds: Dataset, scores: Scores, k: int, quiet: bool) -> np.ndarray:
    """k-NN class probabilities (cosine, raw pixels) of every scored image, its neighbours drawn
    only from the images its CNN was trained on: a second opinion with the same guarantee."""
    x = np.asarray(ds.x).reshape(len(ds), -1)
    out = np.empty((len(scores.positions), ds.n_classes))
    for scorer in progress(np.unique(scores.scorer).tolist(), desc="k-NN opinions",
                           quiet=quiet):
        rows = np.flatnonzero(scores.scorer == scorer)
        reference = scores.trained_on[scorer]
        out[rows] = neighbor_vote_shares(x[reference], ds.y[reference],
                                         x[scores.positions[rows]], KNN_METRIC,
                                         min(k, len(reference)), ds.n_classes)
    return out


def count_out_of_sample(scores: Scores) -> int:
    """Check that no image was in the training data of the model that scored it (the CNN, and
    the k-NN, whose neighbours come from the same images); returns the number checked, raises
    DataError on a leak."""
    for scorer in np.unique(scores.scorer):
        seen = np.intersect1d(scores.positions[scores.scorer == scorer],
                              scores.trained_on[int(scorer)])
        if seen.size:
            raise DataError(f"{seen.size} analysed images (e.g. position {seen[0]}) were in the "
                            f"training data of the model that scored them ({scorer}); refusing "
                            "to report leaked scores")
    return len(scores.positions)


def flag_counts(all_scores: Scores, y_all: np.ndarray, rows: np.ndarray) -> dict:
    """Images confident learning flags with the CNN, the k-NN and both opinions, in the whole
    scored set and in the analysed rows: how much each opinion alone would claim."""
    out = {}
    for name, p in (("cnn", all_scores.probs), ("knn", all_scores.knn),
                    ("both", all_scores.both)):
        flagged = confident_learning(p, y_all).issues
        out[name] = {"scored": int(len(flagged)), "analysed": int(np.isin(flagged, rows).sum())}
    return out


# -- rankings as rows -------------------------------------------------------------------------

def ranking_rows(ds: Dataset, scores: Scores, index: np.ndarray, order: np.ndarray,
                 suspects: tuple[np.ndarray, np.ndarray] | None = None) -> list[dict]:
    """One CSV row per analysed row in ``order`` (rows of ``scores``), ranked from 1.

    ``suspects``: the suggested label of every row and which rows confident learning flags, for
    the suspected-label-error table (adds ``suggested_label``, ``cl_flagged``, ``label_quality``).
    """
    p = scores.probs[order]
    names = np.asarray(ds.class_names, dtype=object)
    given = ds.y[scores.positions[order]]
    at = np.arange(len(order))
    knn = scores.knn[order]
    columns = {"rank": np.arange(1, len(order) + 1), "index": index[order],
               "id": ds.ids[scores.positions[order]], "given_label": names[given]}
    if suspects is not None:
        suggested, flagged = suspects
        columns |= {"suggested_label": names[suggested[order]], "cl_flagged": flagged[order],
                    "label_quality": scores.both[order][at, given]}
    columns |= {
        "predicted_label": names[p.argmax(axis=1)],
        "confidence": confidence(p), "margin": top2_margin(p), "entropy": entropy(p),
        "p_given": p[at, given], "knn_label": names[knn.argmax(axis=1)],
        "knn_p_given": knn[at, given],
        "score_source": scores.source[order], "n_members": scores.n_members[order],
        "member_agreement": scores.agreement[order],
    }
    # Plain Python values: the CSV writer prints floats with repr.
    values = [np.asarray(v).tolist() for v in columns.values()]
    return [dict(zip(columns, row, strict=True)) for row in zip(*values, strict=True)]


def rank_tables(ds: Dataset, scores: Scores, index: np.ndarray, top: int,
                cl: ConfidentLearning) -> dict[str, list[dict]]:
    """The three rankings: every image the CNN gets wrong, most confident first; the ``top``
    least confident; every label-error candidate, confident-learning flags first."""
    y = ds.y[scores.positions]
    order, suggested = label_error_candidates(scores.both, y, cl)
    flagged = cl.flagged
    return {
        "most_confident_wrong": ranking_rows(ds, scores, index,
                                             most_confident_wrong(scores.probs, y)),
        "least_confident": ranking_rows(ds, scores, index, least_confident(scores.probs)[:top]),
        "suspected_label_errors": ranking_rows(ds, scores, index, order,
                                               suspects=(suggested, flagged)),
    }


# -- exclusion measurement --------------------------------------------------------------------


# -- the job ----------------------------------------------------------------------------------




