"""The ambiguity job: the images a classifier gets wrong most confidently, the ones it is least
sure of, and likely label errors, each scored only by models that never trained on it.

Scores come from a selective run (its ensemble for images in the run's test split, the one fold
model that held an image out for images in its training pool) or, without a run, from models
cross-fitted for the purpose on the whole dataset. The analysed set is the official test part
(MNIST ``t10k``) by default, or the run's own test split with ``--split``.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from notsure.analysis.ambiguity import (
    RANK_BY,
    ConfidentLearning,
    confidence,
    confident_learning,
    ensemble_probabilities,
    entropy,
    least_confident,
    member_agreement,
    most_confident_wrong,
    top2_margin,
)
from notsure.data import load
from notsure.data.dataset import Dataset
from notsure.data.exclusions import write_exclusions
from notsure.data.fetch import ensure_mnist
from notsure.data.splits import (
    Split,
    leakage_report,
    load_split,
    save_split,
    stratified_kfold,
    stratified_test_split,
)
from notsure.errors import ConfigError, DataError
from notsure.io.progress import say
from notsure.io.run_folder import RunFolder
from notsure.jobs.predictor import SelectivePredictor
from notsure.jobs.selective import SelectiveConfig, _fit_and_evaluate, check_cross_fit_options
from notsure.models.cnn import CNNConfig
from notsure.models.cross_fit import cross_fit
from notsure.models.predict import predict_logits
from notsure.reports.report import png_bytes

#: Id prefixes of a dataset's official test part, analysed by default.
TEST_PARTS = ("t10k", "test")
ENSEMBLE, OUT_OF_FOLD = "ensemble", "out_of_fold"
COLUMNS = ("rank", "index", "id", "given_label", "predicted_label", "confidence", "margin",
           "entropy", "p_given", "score_source", "n_members", "member_agreement")
SUSPECT_COLUMNS = (*COLUMNS[:5], "suggested_label", *COLUMNS[5:])
TABLES = ("most_confident_wrong", "least_confident", "suspected_label_errors")
IMAGE_SCALE = 4


@dataclass
class AmbiguousConfig:
    """Settings of ``notsure ambiguous``; recorded in the run manifest."""

    run: str | None = None  # selective run folder whose models score the images
    split: bool = False  # analyse the run's own test split instead of the official test part
    data: str | None = None  # without --run: dataset (default MNIST) to cross-fit models on
    format: str | None = None
    out: str | None = None
    seed: int = 0
    folds: int = 5
    quick: bool = False
    epochs: int | None = None
    top: int = 20
    rank_by: str = "self_confidence"
    write_exclusions: str | None = None
    measure_exclusion: bool = False
    test_per_class: int = 1000  # for --measure-exclusion without a run
    target_fpr: float = 0.00015
    delta: float = 0.05
    quiet: bool = False
    cnn: dict = field(default_factory=dict)  # CNN settings used when cross-fitting here

    def validate(self) -> None:
        """Refuse settings that cannot work before anything is loaded or written."""
        if self.top < 1:
            raise ConfigError(f"--top must be >= 1, got {self.top}")
        if self.rank_by not in RANK_BY:
            raise ConfigError(f"--rank-by must be one of {RANK_BY}, got {self.rank_by!r}")
        if self.split and self.run is None:
            raise ConfigError("--split analyses a run's test split: give --run RUN_DIR too")
        if self.run is not None and (self.data is not None or self.format is not None):
            raise ConfigError("--data/--format are for cross-fitting without a run; a run "
                              "folder already names its dataset")
        check_cross_fit_options(self.folds, self.seed, self.epochs)
        if self.write_exclusions is not None:
            target = Path(self.write_exclusions)
            if target.is_dir() or not target.parent.is_dir():
                raise ConfigError(f"--write-exclusions {target}: give a file path in an "
                                  "existing folder")

    def cnn_config(self) -> CNNConfig:
        """The CNN preset for cross-fitting without a run."""
        return CNNConfig.preset(self.quick, epochs=self.epochs)


@dataclass
class Scores:
    """Out-of-sample scores of the analysed images and which model produced each."""

    positions: np.ndarray  # (M,) dataset positions analysed
    probs: np.ndarray  # (M, C) class probabilities (mean of members' softmax)
    source: np.ndarray  # (M,) ENSEMBLE or OUT_OF_FOLD
    scorer: np.ndarray  # (M,) fold model that scored the row; -1: the whole ensemble
    n_members: np.ndarray  # (M,)
    agreement: np.ndarray  # (M,) share of members on the predicted class; NaN for one member
    trained_on: dict[int, np.ndarray]  # scorer -> dataset positions it was trained on


@dataclass
class AmbiguousResult:
    """Everything the CSVs, images and report are built from."""

    config: AmbiguousConfig
    dataset: Dataset
    analysed: str  # what the analysed set is, in words
    scores: Scores
    index: np.ndarray  # (M,) index shown for each analysed row (position in its file)
    cl: ConfidentLearning
    tables: dict[str, list[dict]]
    leakage_checked: int
    exclusion: dict | None
    run_manifest: dict | None


# -- inputs -----------------------------------------------------------------------------------

def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path} is missing: give the folder of a finished `notsure "
                          "selective` run") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(f"{path}: not a readable JSON file ({exc})") from None


def load_dataset(data: str | None, format: str | None, quiet: bool) -> Dataset:
    """The images to analyse: ``data`` through the data layer, default MNIST (train + t10k)."""
    ds = load(data if data is not None else ensure_mnist(quiet=quiet), format=format)
    if ds.kind != "images":
        raise ConfigError(f"{ds.source}: the ambiguity job needs images, got {ds.kind} of "
                          f"shape {ds.shape}")
    return ds


def load_run_dataset(run_dir: Path, quiet: bool) -> tuple[Dataset, dict]:
    """The run's dataset, checked against the fingerprint in its manifest, and the manifest."""
    manifest = _read_json(run_dir / "manifest.json")
    if manifest.get("job") != "selective" or manifest.get("status") != "complete":
        raise ConfigError(f"{run_dir}: not a finished `notsure selective` run (job "
                          f"{manifest.get('job')!r}, status {manifest.get('status')!r})")
    config = manifest.get("config") or {}
    ds = load_dataset(config.get("data"), config.get("format"), quiet)
    recorded = manifest.get("data", {}).get("dataset", {}).get("fingerprint")
    if recorded != ds.fingerprint:
        raise DataError(f"{run_dir}: the run was trained on data with fingerprint {recorded}, "
                        f"but {ds.source} now has {ds.fingerprint}; the positions in its split "
                        "would point at other images")
    return ds, manifest


def official_test_positions(ds: Dataset) -> np.ndarray:
    """Positions of the official test part (ids ``t10k/<i>`` or ``test/<i>``)."""
    prefix = np.char.partition(ds.ids.astype(str), "/")[:, 0]
    return np.flatnonzero(np.isin(prefix, TEST_PARTS))


def file_index(ds: Dataset, positions: np.ndarray) -> np.ndarray:
    """The index to show for each analysed sample: its position in its file when all come from
    one file (``t10k/4176`` -> 4176), else its position in the dataset."""
    parts = np.char.partition(ds.ids[positions].astype(str), "/")
    prefix, number = parts[:, 0], parts[:, 2]
    if len(positions) and len(np.unique(prefix)) == 1 and np.all(np.char.isdigit(number)):
        index = number.astype(np.int64)
        if len(np.unique(index)) == len(index):
            return index
    return np.asarray(positions, dtype=np.int64)


# -- scoring ----------------------------------------------------------------------------------

def _run_folds(run_dir: Path, split: Split) -> np.ndarray:
    """Fold of each training-pool position, from the run's ``folds.json``, checked."""
    doc = _read_json(run_dir / "folds.json")
    try:
        positions = np.asarray(doc["positions"], dtype=np.int64)
        fold = np.asarray(doc["fold"], dtype=np.int64)
    except (KeyError, TypeError, ValueError) as exc:
        raise DataError(f"{run_dir / 'folds.json'}: expected lists \"positions\" and \"fold\" "
                        f"({exc})") from None
    if positions.shape != fold.shape or not np.array_equal(np.sort(positions), split.train):
        raise DataError(f"{run_dir / 'folds.json'}: its positions are not the training part of "
                        "split.json; the run folder is inconsistent")
    out = np.full(split.train.shape, -1, dtype=np.int64)
    out[np.searchsorted(split.train, positions)] = fold
    return out


def _stored_scores(run_dir: Path, split: Split, pool_fold: np.ndarray) -> dict | None:
    """The run's ``scores.npz`` (older runs lack it), checked against its split and folds."""
    path = run_dir / "scores.npz"
    if not path.is_file():
        return None
    with np.load(path, allow_pickle=False) as npz:
        stored = {k: npz[k] for k in npz.files}
    pool = stored.get("pool_positions")
    if (pool is None or not np.array_equal(pool, split.train)
            or not np.array_equal(stored.get("test_positions"), split.test)
            or not np.array_equal(stored.get("fold_of"), pool_fold)):
        raise DataError(f"{path}: its positions or folds differ from split.json/folds.json; "
                        "the run folder is inconsistent")
    return stored


def scores_from_run(run_dir: Path, ds: Dataset, analyse_split: bool,
                    quiet: bool) -> tuple[Scores, str]:
    """Score each analysed image with run models that never trained on it.

    Images in the run's test split: the whole ensemble. Images in its training pool: the fold
    model that held them out (``oof_logits`` of ``scores.npz``, or recomputed from that model).
    """
    predictor = SelectivePredictor.load(run_dir)
    split = load_split(run_dir / "split.json", len(ds))
    pool_fold = _run_folds(run_dir, split)
    k = len(predictor.models)
    if pool_fold.min() < 0 or pool_fold.max() >= k:
        raise DataError(f"{run_dir / 'folds.json'}: folds must lie in 0..{k - 1} (one per model)")
    stored = _stored_scores(run_dir, split, pool_fold)
    if analyse_split:
        positions, what = split.test, f"the run's own test split ({len(split.test):,} images)"
    else:
        positions = official_test_positions(ds)
        if not len(positions):
            raise ConfigError(f"{ds.source} has no official test part (ids t10k/<i> or "
                              "test/<i>); analyse the run's test split with --split")
        what = f"the official test set ({len(positions):,} images)"

    in_test = np.isin(positions, split.test)
    test_rows = np.searchsorted(split.test, positions[in_test])
    if stored is not None:
        member = stored["test_member_logits"][:, test_rows]
    else:
        member = predict_logits(predictor.models, ds.x[positions[in_test]],
                                precision=predictor.precision, quiet=quiet)
    pool_rows = np.searchsorted(split.train, positions[~in_test])
    if np.any(split.train[np.minimum(pool_rows, len(split.train) - 1)] != positions[~in_test]):
        raise DataError(f"{run_dir}: some analysed images are in neither the run's training "
                        "pool nor its test split")
    fold = pool_fold[pool_rows]
    if stored is not None:
        oof = stored["oof_logits"][pool_rows]
    else:
        oof = np.empty((len(pool_rows), ds.n_classes), dtype=np.float32)
        for j in range(k):
            rows = np.flatnonzero(fold == j)
            if rows.size:
                oof[rows] = predict_logits(predictor.models[j], ds.x[positions[~in_test][rows]],
                                           precision=predictor.precision, quiet=quiet)

    m = len(positions)
    probs = np.empty((m, ds.n_classes))
    probs[in_test] = ensemble_probabilities(member)
    probs[~in_test] = ensemble_probabilities(oof[None])
    scorer = np.full(m, -1, dtype=np.int64)
    scorer[~in_test] = fold
    agreement = np.full(m, np.nan)
    agreement[in_test] = member_agreement(member, probs[in_test].argmax(axis=1))
    trained_on = {j: split.train[pool_fold != j] for j in range(k)}
    trained_on[-1] = split.train
    scores = Scores(positions=positions, probs=probs,
                    source=np.where(in_test, ENSEMBLE, OUT_OF_FOLD), scorer=scorer,
                    n_members=np.where(in_test, k, 1), agreement=agreement, trained_on=trained_on)
    return scores, what


def scores_by_cross_fit(ds: Dataset, positions: np.ndarray, config: AmbiguousConfig,
                        cnn: CNNConfig) -> Scores:
    """Cross-fit ``config.folds`` models on the whole dataset; each analysed image is scored by
    the one model that held it out."""
    plan = stratified_kfold(ds.y, config.folds, config.seed)
    fit = cross_fit(ds.x, ds.y, ds.n_classes, plan.folds, cnn, config.seed, quiet=config.quiet)
    scorer = fit.fold_of[positions]
    m = len(positions)
    probs = ensemble_probabilities(fit.oof_logits[positions][None])
    return Scores(positions=positions, probs=probs,
                  source=np.full(m, OUT_OF_FOLD), scorer=scorer, n_members=np.ones(m, np.int64),
                  agreement=np.full(m, np.nan),
                  trained_on={k: train for k, (train, _) in enumerate(plan.folds)})


def count_out_of_sample(scores: Scores) -> int:
    """Check that no analysed image was in the training data of the model that scored it;
    returns the number of images checked, raises DataError on a leak."""
    for scorer in np.unique(scores.scorer):
        seen = np.intersect1d(scores.positions[scores.scorer == scorer],
                              scores.trained_on[int(scorer)])
        if seen.size:
            raise DataError(f"{seen.size} analysed images (e.g. position {seen[0]}) were in the "
                            f"training data of the model that scored them ({scorer}); refusing "
                            "to report leaked scores")
    return len(scores.positions)


# -- rankings as rows -------------------------------------------------------------------------

def ranking_rows(ds: Dataset, scores: Scores, index: np.ndarray, order: np.ndarray,
                 suggested: np.ndarray | None = None) -> list[dict]:
    """One CSV row per analysed row in ``order`` (rows of ``scores``), ranked from 1."""
    p = scores.probs[order]
    names = np.asarray(ds.class_names, dtype=object)
    given = ds.y[scores.positions[order]]
    pred = p.argmax(axis=1)
    columns = {
        "rank": np.arange(1, len(order) + 1), "index": index[order],
        "id": ds.ids[scores.positions[order]], "given_label": names[given],
        "predicted_label": names[pred],
        **({"suggested_label": names[suggested[order]]} if suggested is not None else {}),
        "confidence": confidence(p), "margin": top2_margin(p), "entropy": entropy(p),
        "p_given": p[np.arange(len(order)), given],
        "score_source": scores.source[order], "n_members": scores.n_members[order],
        "member_agreement": scores.agreement[order],
    }
    # Plain Python values: the CSV writer prints floats with repr.
    values = [np.asarray(v).tolist() for v in columns.values()]
    return [dict(zip(columns, row, strict=True)) for row in zip(*values, strict=True)]


def rank_tables(ds: Dataset, scores: Scores, index: np.ndarray, top: int,
                cl: ConfidentLearning) -> dict[str, list[dict]]:
    """The three rankings: every confidently wrong image, the ``top`` least confident, every
    suspected label error."""
    y = ds.y[scores.positions]
    return {
        "most_confident_wrong": ranking_rows(ds, scores, index,
                                             most_confident_wrong(scores.probs, y)),
        "least_confident": ranking_rows(ds, scores, index, least_confident(scores.probs)[:top]),
        "suspected_label_errors": ranking_rows(ds, scores, index, cl.issues,
                                               suggested=cl.confident_label),
    }


# -- exclusion measurement --------------------------------------------------------------------

def measure_exclusion(run: RunFolder, ds: Dataset, excluded: np.ndarray, settings: dict,
                      argv: list[str] | None) -> dict:
    """Run the selective job (quick preset, same seed, same locked test split) twice: on every
    label, and with ``excluded`` positions dropped from training. Each lands in its own run
    folder under ``exclusion/``; returns the headline numbers of both."""
    from notsure.jobs.selective_report import write_outputs

    split = stratified_test_split(ds.y, settings["test_per_class"], settings["seed"])
    dropped = np.intersect1d(excluded, split.train)
    out = {"excluded": int(len(excluded)), "dropped_from_training": int(len(dropped)),
           "kept_in_test": int(len(np.intersect1d(excluded, split.test)))}
    for name, drop in (("all_labels", np.empty(0, np.int64)), ("without_suspected", dropped)):
        keep = np.setdiff1d(np.arange(len(ds)), drop)
        sub_ds = ds.subset(keep)
        sub_split = Split(train=np.searchsorted(keep, np.setdiff1d(split.train, drop)),
                          test=np.searchsorted(keep, split.test))
        cfg = SelectiveConfig(seed=settings["seed"], test_per_class=settings["test_per_class"],
                              folds=settings["folds"], target_fpr=settings["target_fpr"],
                              delta=settings["delta"], quick=True, quiet=settings["quiet"],
                              epochs=settings.get("epochs"))
        cfg.validate()
        cnn = cfg.cnn_config()
        cfg.cnn = cnn.to_dict()
        plan = stratified_kfold(sub_ds.y[sub_split.train], cfg.folds, cfg.seed)
        say(f"measuring exclusion: selective job {name} "
            f"({len(sub_split.train):,} training images)", quiet=cfg.quiet)
        with RunFolder("selective", run.path / "exclusion" / name, config=cfg, seed=cfg.seed,
                       argv=argv) as sub:
            sub.record_data("dataset", {"source": ds.source, "fingerprint": sub_ds.fingerprint,
                                        "n": len(sub_ds), "dropped": int(len(drop))})
            save_split(sub, sub_split)
            sub.write_json("folds.json", {"positions": sub_split.train.tolist(),
                                          "fold": plan.fold.tolist()})
            leakage = leakage_report(sub_ds.x, sub_split)
            result = _fit_and_evaluate(sub, cfg, cnn, sub_ds, sub_split, plan, leakage)
            write_outputs(sub, result)
            sub.finish()
        out[name] = {"accuracy": result.before["accuracy"],
                     "coverage": result.after["coverage"],
                     "max_fpr": float(np.nanmax(result.after["fpr"])),
                     "n_train": int(len(sub_split.train)), "n_test": int(len(sub_split.test)),
                     "run": str(sub.path)}
    return out


# -- the job ----------------------------------------------------------------------------------

def run_ambiguous(config: AmbiguousConfig, argv: list[str] | None = None) -> Path:
    """Run the whole job and return the run folder."""
    config.validate()
    quiet = config.quiet
    # Input is read and checked before the run folder exists: bad input writes nothing.
    t0 = time.perf_counter()
    run_manifest = None
    if config.run is not None:
        run_dir = Path(config.run)
        SelectivePredictor.load(run_dir)  # a clear error early if this is not a run folder
        ds, run_manifest = load_run_dataset(run_dir, quiet)
        cnn = None
    else:
        ds = load_dataset(config.data, config.format, quiet)
        cnn = config.cnn_config()
        config.cnn = cnn.to_dict()
        positions = official_test_positions(ds)
        what = (f"the official test set ({len(positions):,} images)" if len(positions) else
                f"every image ({len(ds):,})")
        positions = positions if len(positions) else np.arange(len(ds))
    t_load = time.perf_counter() - t0

    with RunFolder("ambiguous", config.out, config=config, seed=config.seed, argv=argv) as run:
        run.record_timing("load", t_load)
        run.record_data("dataset", {"source": ds.source, "format": ds.format,
                                    "fingerprint": ds.fingerprint, "n": len(ds)})
        with run.stage("score"):
            if config.run is not None:
                scores, what = scores_from_run(Path(config.run), ds, config.split, quiet)
            else:
                scores = scores_by_cross_fit(ds, positions, config, cnn)
        with run.stage("leakage_check"):
            checked = count_out_of_sample(scores)
        with run.stage("rank"):
            index = file_index(ds, scores.positions)
            cl = confident_learning(scores.probs, ds.y[scores.positions], rank_by=config.rank_by)
            tables = rank_tables(ds, scores, index, config.top, cl)
        with run.stage("images"):
            write_images(run, ds, scores, index, tables)
        if config.write_exclusions is not None:
            rows = tables["suspected_label_errors"]
            write_exclusions(config.write_exclusions, [r["id"] for r in rows],
                             [r["given_label"] for r in rows],
                             [r["suggested_label"] for r in rows])
        exclusion = None
        if config.measure_exclusion:
            with run.stage("measure_exclusion"):
                settings = _measure_settings(config, run_manifest)
                exclusion = measure_exclusion(run, ds, scores.positions[cl.issues], settings, argv)
        result = AmbiguousResult(config=config, dataset=ds, analysed=what, scores=scores,
                                 index=index, cl=cl, tables=tables, leakage_checked=checked,
                                 exclusion=exclusion, run_manifest=run_manifest)
        with run.stage("report"):
            from notsure.jobs.ambiguous_report import write_outputs

            write_outputs(run, result)
        run.finish()
    say(summary_line(result, run.path), quiet=quiet)
    return run.path


def _measure_settings(config: AmbiguousConfig, run_manifest: dict | None) -> dict:
    """Settings of the two selective runs: the analysed run's, else this job's."""
    source = (run_manifest or {}).get("config") or {}
    keys = ("seed", "test_per_class", "folds", "target_fpr", "delta")
    settings = {k: source.get(k, getattr(config, k)) for k in keys}
    return {**settings, "epochs": config.epochs, "quiet": config.quiet}


def write_images(run: RunFolder, ds: Dataset, scores: Scores, index: np.ndarray,
                 tables: dict[str, list[dict]]) -> list[Path]:
    """``imgs/<index>.png`` (upscaled, nearest) for every image listed in any ranking."""
    where = {int(i): int(p) for i, p in zip(index, scores.positions, strict=True)}
    listed = sorted({int(r["index"]) for rows in tables.values() for r in rows})
    paths = []
    for i in listed:
        with run.atomic(f"imgs/{i}.png") as tmp:
            tmp.write_bytes(png_bytes(np.asarray(ds.x[where[i]]), IMAGE_SCALE))
        paths.append(run.file(f"imgs/{i}.png"))
    return paths


def summary_line(result: AmbiguousResult, path: Path) -> str:
    """One line for the terminal: the counts of each list and where the report is."""
    t = result.tables
    return (f"analysed {len(result.scores.positions):,} images: "
            f"{len(t['most_confident_wrong'])} wrong, "
            f"{len(t['suspected_label_errors'])} suspected label errors; "
            f"report: {path / 'report.html'}")
