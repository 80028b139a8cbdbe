"""The main job: an image classifier that answers ``not_sure`` so every class keeps its false
positive rate at or below a target on a locked test set.

dataset -> locked stratified test split -> (optional: drop or relabel listed suspected label errors
of the training pool) -> cross-fitted CNN ensemble (out-of-fold scores for every pool image) ->
per-class Neyman-Pearson thresholds on the ensemble margin (calibration data only) -> decisions on
the test set -> metrics before and after -> report.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from notsure import NOT_SURE
from notsure.data import load
from notsure.data.dataset import Dataset
from notsure.data.exclusions import apply_exclusions, locate, read_exclusions
from notsure.data.fetch import ensure_mnist
from notsure.data.splits import (
    Split,
    leakage_report,
    save_split,
    stratified_kfold,
    stratified_test_split,
)
from notsure.decisions import ThresholdStrategy, choose_thresholds, logit_margins
from notsure.errors import ConfigError
from notsure.io.hashing import sha256_file
from notsure.io.progress import say
from notsure.io.run_folder import RunFolder
from notsure.jobs.guard import fit_guard, guard_summary, member_features
from notsure.jobs.predictor import Decisions, SelectivePredictor
from notsure.metrics import (
    accuracy,
    aurc,
    confusion_matrix,
    coverage,
    per_class_rates,
    risk_coverage_curve,
    selective_accuracy,
)
from notsure.models.cnn import CNNConfig
from notsure.models.cross_fit import CrossFit, cross_fit

EXCLUSION_MODES = ("drop", "relabel")


@dataclass
class SelectiveConfig:
    """Settings of ``notsure selective``; recorded in the run manifest."""

    data: str | None = None  # None: MNIST from the data folder (downloaded if missing)
    format: str | None = None
    out: str | None = None
    seed: int = 0
    test_per_class: int = 1000
    folds: int = 5
    target_fpr: float = 0.00015
    delta: float = 0.05
    quick: bool = False
    quiet: bool = False
    epochs: int | None = None  # override the preset's epochs
    precision: str | None = None  # override the preset's precision ("bf16" or "fp32")
    cnn: dict = field(default_factory=dict)  # filled with the CNN settings actually used
    exclusions: str | None = None  # exclusion CSV (id,given_label,suggested_label) for the pool
    exclusion_mode: str = "drop"  # "drop" the listed pool samples or "relabel" them

    def validate(self) -> None:
        """Refuse settings that cannot work before anything is loaded or written."""
        if self.exclusion_mode not in EXCLUSION_MODES:
            raise ConfigError(f"--exclusion-mode must be one of {', '.join(EXCLUSION_MODES)}, "
                              f"got {self.exclusion_mode!r}")
        if not 0.0 < self.target_fpr < 1.0:
            raise ConfigError(f"--target-fpr must lie in (0, 1), got {self.target_fpr}")
        if not 0.0 < self.delta < 1.0:
            raise ConfigError(f"--delta must lie in (0, 1), got {self.delta}")
        if self.test_per_class < 1:
            raise ConfigError(f"--test-per-class must be >= 1, got {self.test_per_class}")
        check_cross_fit_options(self.folds, self.seed, self.epochs)

    def cnn_config(self) -> CNNConfig:
        """The CNN preset (``--quick`` or default) with ``--epochs``/``--precision`` applied.

        The presets use no label smoothing: smoothing caps every logit margin near
        log((1 - e + e/C) / (e/C)), squeezing confident right and confident wrong answers into one
        band, exactly where a 0.00015 FPR threshold has to separate them.
        """
        return CNNConfig.preset(self.quick, epochs=self.epochs, precision=self.precision)


def check_cross_fit_options(folds: int, seed: int, epochs: int | None) -> None:
    """The options every cross-fitting job shares; ConfigError names the one out of range."""
    if folds < 2:
        raise ConfigError(f"--folds must be >= 2 (cross-fitting), got {folds}")
    if seed < 0:
        raise ConfigError(f"--seed must be >= 0, got {seed}")
    if epochs is not None and epochs < 1:
        raise ConfigError(f"--epochs must be >= 1, got {epochs}")


def load_images(config: SelectiveConfig) -> Dataset:
    """The job's dataset: ``--data`` through the data layer, default MNIST (train + t10k)."""
    path = config.data if config.data is not None else ensure_mnist(quiet=config.quiet)
    ds = load(path, format=config.format)
    if ds.kind != "images":
        raise ConfigError(
            f"{ds.source}: the selective job needs images, got {ds.kind} of shape {ds.shape}; "
            "use `notsure embeddings` for vectors"
        )
    return ds


def exclude_from_pool(ds: Dataset, split: Split, path: str, mode: str
                      ) -> tuple[Dataset, Split, dict]:
    """Drop the samples listed in the exclusion file ``path`` from the training pool, or give them
    their suggested labels (``mode``); listed test samples stay as they are, the test set being
    the yardstick.

    Returns the dataset to train and calibrate on (labels differ from ``ds`` only at pool
    positions), the split actually used (dropped positions in its ``excluded`` part) and what the
    manifest records. Bad files raise DataError naming the file and line.
    """
    table = read_exclusions(path)
    listed = locate(ds, table)
    in_test = np.isin(listed, split.test)
    in_pool = listed[~in_test]
    if mode == "drop":
        split = Split(train=np.setdiff1d(split.train, in_pool), test=split.test,
                      calibration=split.calibration, excluded=in_pool,
                      not_evaluable=split.not_evaluable)
    else:
        suggested = apply_exclusions(ds, table, "relabel").y
        y = ds.y.copy()
        y[in_pool] = suggested[in_pool]
        ds = dataclasses.replace(ds, y=y, fingerprint="")
    info = {"file": str(path), "sha256": sha256_file(path), "mode": mode,
            "n_listed": int(len(listed)), "n_pool": int(len(in_pool)),
            "n_test": int(in_test.sum())}
    return ds, split, info


def evaluate(y_true: np.ndarray, y_pred: np.ndarray, labels: np.ndarray) -> dict:
    """Confusion matrix, per-class rates with Clopper-Pearson intervals, accuracy, coverage."""
    rates = per_class_rates(y_true, y_pred, labels)
    abstains = bool(np.any(y_pred == NOT_SURE))
    return {
        "accuracy": accuracy(y_true, y_pred),
        "coverage": coverage(y_pred),
        "selective_accuracy": selective_accuracy(y_true, y_pred),
        "n": int(len(y_true)),
        "n_not_sure": int(np.sum(y_pred == NOT_SURE)),
        "n_errors": int(np.sum((y_pred != y_true) & (y_pred != NOT_SURE))),
        "confusion_matrix": confusion_matrix(y_true, y_pred, labels, not_sure_column=abstains),
        "tp": rates.tp, "fp": rates.fp, "fn": rates.fn, "tn": rates.tn,
        "support": rates.support,
        "fpr": rates.fpr, "fpr_ci": rates.fpr_ci,
        "tpr": rates.tpr, "tpr_ci": rates.tpr_ci,
        "precision": rates.precision,
    }


@dataclass
class SelectiveResult:
    """Everything the report and ``metrics.json`` are built from."""

    config: SelectiveConfig
    dataset: Dataset
    split: object
    leakage: dict
    fit: CrossFit
    certificates: list
    test_decisions: Decisions
    before: dict
    after: dict
    calibration_after: dict
    member_test_accuracy: list[float]
    risk_coverage: object
    aurc: float
    timings: dict
    exclusions: dict | None = None  # what exclude_from_pool did, when an exclusion file was used
    guard: dict | None = None  # the out-of-distribution guard's threshold, cost and catch rates


def run_selective(config: SelectiveConfig, argv: list[str] | None = None) -> Path:
    """Run the whole job and return the run folder."""
    config.validate()
    cnn = config.cnn_config()
    config.cnn = cnn.to_dict()
    quiet = config.quiet
    # Input is read and the split drawn before the run folder exists: bad input writes nothing.
    t0 = time.perf_counter()
    ds = load_images(config)
    t_load = time.perf_counter() - t0
    say(f"loaded {len(ds):,} images {ds.shape} in {ds.n_classes} classes from {ds.source}",
        quiet=quiet)
    t0 = time.perf_counter()
    # The test split is drawn first, from the data and the seed alone, and locked.
    split = stratified_test_split(ds.y, config.test_per_class, config.seed)
    data, exclusions = ds, None
    if config.exclusions is not None:
        data, split, exclusions = exclude_from_pool(ds, split, config.exclusions,
                                                    config.exclusion_mode)
    pool = split.train
    plan = stratified_kfold(data.y[pool], config.folds, config.seed)
    t_split = time.perf_counter() - t0

    with RunFolder("selective", config.out, config=config, seed=config.seed, argv=argv) as run:
        run.record_timing("load", t_load)
        run.record_timing("split", t_split)
        run.record_data("dataset", ds.provenance())
        if exclusions is not None:
            run.record_data("exclusions", exclusions)
        save_split(run, split)
        run.write_json("folds.json", {"positions": pool.tolist(), "fold": plan.fold.tolist()})
        with run.stage("leakage_check"):
            leakage = leakage_report(ds.x, split)
        result = _fit_and_evaluate(run, config, cnn, data, split, plan, leakage,
                                   exclusions=exclusions)
        with run.stage("report"):
            from notsure.jobs.selective_report import write_outputs

            write_outputs(run, result)
        run.finish()
    say(summary_line(result, run.path), quiet=quiet)
    return run.path


def _fit_and_evaluate(run: RunFolder, config: SelectiveConfig, cnn: CNNConfig, ds: Dataset,
                      split, plan, leakage: dict, exclusions: dict | None = None
                      ) -> SelectiveResult:
    """Cross-fit, calibrate on out-of-fold scores, decide on the test set, save the predictor.

    Trains and calibrates on ``ds.y[split.train]`` and scores against ``ds.y[split.test]``: to
    relabel, pass a copy of the dataset whose labels differ only at pool positions.
    """
    quiet = config.quiet
    pool, test = split.train, split.test
    with run.stage("cross_fit"):
        fit = cross_fit(ds.x[pool], ds.y[pool], ds.n_classes, plan.folds, cnn, config.seed,
                        x_extra=ds.x[test], quiet=quiet)

    with run.stage("calibrate"):
        # Thresholds see only out-of-fold scores of non-test images.
        oof_margins = logit_margins(fit.oof_logits)
        certificates = choose_thresholds(oof_margins, ds.y[pool], config.target_fpr, config.delta)
        strategy = ThresholdStrategy.from_certificates(certificates)
        predictor = SelectivePredictor(
            models=[r.model for r in fit.results], strategy=strategy,
            class_names=ds.class_names, image_shape=ds.shape, precision=cnn.precision)
        calibration_pred = strategy.decide(oof_margins, fit.oof_logits)
        guard_fit = fit_guard(predictor.models, ds.x[pool], ds.y[pool], ds.n_classes, plan.folds,
                              seed=config.seed, precision=cnn.precision)
        predictor.guard = guard_fit.guard
        calibration_after = evaluate(ds.y[pool], calibration_pred, np.arange(ds.n_classes))

    with run.stage("evaluate"):
        labels = np.arange(ds.n_classes)
        y_test = ds.y[test]
        decisions = predictor.decide_logits(
            fit.extra_logits, member_features(predictor.models, ds.x[test], cnn.precision))
        before = evaluate(y_test, decisions.candidate, labels)
        after = evaluate(y_test, decisions.prediction, labels)
        rc = risk_coverage_curve(y_test, decisions.candidate, decisions.confidence)
        area = aurc(y_test, decisions.candidate, decisions.confidence)
        members = [accuracy(y_test, lg.argmax(1)) for lg in fit.extra_logits]

    with run.stage("save_scores"):
        # Every score behind the thresholds and the test decisions, for audit and reuse.
        with run.atomic("scores.npz") as tmp:
            with open(tmp, "wb") as fh:
                np.savez_compressed(
                    fh, pool_positions=pool, oof_logits=fit.oof_logits, fold_of=fit.fold_of,
                    test_positions=test, test_member_logits=fit.extra_logits)

    with run.stage("save_model"):
        predictor.save(run, [r.config for r in fit.results],
                       meta={"target_fpr": config.target_fpr, "delta": config.delta,
                             "seed": config.seed})

    with run.stage("guard_check"):
        guard = guard_summary(predictor, guard_fit, calibration_pred, decisions, ds.x[test],
                              y_test, config.seed)

    with run.stage("throughput"):
        run.record("predict_throughput", measure_throughput(predictor, ds.x[test]))

    return SelectiveResult(
        config=config, dataset=ds, split=split, leakage=leakage, fit=fit,
        certificates=certificates, test_decisions=decisions, before=before, after=after,
        calibration_after=calibration_after, member_test_accuracy=members,
        risk_coverage=rc, aurc=area, timings=run.manifest["timings_s"], exclusions=exclusions,
        guard=guard,
    )


def measure_throughput(predictor: SelectivePredictor, x: np.ndarray) -> dict:
    """Images per second of the deployed predictor on ``x`` (best of two passes)."""
    best = np.inf
    for _ in range(2):
        t0 = time.perf_counter()
        predictor.predict(x)
        best = min(best, time.perf_counter() - t0)
    return {"images": int(len(x)), "seconds": best, "images_per_second": len(x) / best}


def summary_line(result: SelectiveResult, path: Path) -> str:
    """One line for the terminal: the headline numbers and where the report is."""
    fpr = result.after["fpr"]
    worst = int(np.nanargmax(fpr))
    return (
        f"before: accuracy {result.before['accuracy']:.4%}; after: coverage "
        f"{result.after['coverage']:.2%}, max class FPR {fpr[worst]:.5f} "
        f"(class {result.dataset.class_names[worst]}, target {result.config.target_fpr}); "
        f"report: {path / 'report.html'}"
    )

