"""The main job: an image classifier that answers ``not_sure`` so every class keeps its false
positive rate at or below a target on a locked test set.

dataset -> locked stratified test split -> (optional: drop or relabel listed suspected label errors
of the training pool) -> K folds x M CNN members (out-of-fold fold-ensemble scores for every pool
image) -> per-class Neyman-Pearson thresholds on the deployed rule's score (calibration data only)
-> decisions on the test set -> metrics before and after -> report.

:func:`fit_and_evaluate` computes and returns a :class:`SelectiveResult` without touching the disk;
:func:`~notsure.jobs.selective.run.run_selective` reads the input, writes the run folder and
the report around it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from numbers import Integral
from typing import ClassVar

import numpy as np

from notsure.analysis.ambiguity import confident_learning, ensemble_probabilities
from notsure.constants import NOT_SURE
from notsure.data import load
from notsure.data.dataset import Dataset
from notsure.data.exclusions import apply_exclusions, locate, read_exclusions
from notsure.data.fetch import ensure_mnist
from notsure.data.splits import (
    Split,
)
from notsure.decisions import (
    MEANINGS,
    RULES,
    ThresholdStrategy,
    all_classes_pass_probability,
    allowed_exceedances,
    allowed_exceedances_for_test,
    allowed_test_fp,
    calibration_scores,
    certifiable_fpr,
    choose_thresholds,
    class_delta,
    criterion_pass_probability,
    deployed_scores,
    route,
    score_kinds,
)
from notsure.deploy.predictor import Decisions, SelectivePredictor
from notsure.errors import ConfigError
from notsure.io.hashing import sha256_file
from notsure.jobs.run_options import (
    CROSS_FIT_CONSTRAINTS,
    GUARANTEE_CONSTRAINTS,
    RUN_CONSTRAINTS,
    check_run_options,
)
from notsure.jobs.selective.guard import fit_guard, guard_summary
from notsure.metrics import (
    accuracy,
    aurc,
    risk_coverage_curve,
    selective_metrics,
)
from notsure.models.checkpoints import CheckpointStore
from notsure.models.cnn import CNNConfig
from notsure.models.cross_fit import CrossFit, cross_fit
from notsure.models.runtime import PRECISIONS
from notsure.parallel import DEFAULT_EXECUTOR, execution_of
from notsure.params import Interval, Options, validate

EXCLUSION_MODES = ("drop", "relabel")
# Per member of the default run (the CNN preset's own default is 8): 2 folds x 3 members of 6
# epochs fit the 15-minute budget on two AVX2 cores, and on calibration data 3 members of 6
# epochs covered more than 2 of 8 (seed 0: 96.90% against 96.35%, same guarantee).
DEFAULT_EPOCHS = 6


@dataclass
class SelectiveConfig:
    """Settings of ``notsure selective``; recorded in the run manifest."""

    data: str | None = None  # None: MNIST from the data folder (downloaded if missing)
    format: str | None = None
    out: str | None = None
    seed: int = 0
    # 1,482 per class: the smallest test set that allows 2 false positives per class (13,338
    # negatives); at 1,000 (1 allowed) no threshold gives every class a 0.9 chance to pass.
    test_per_class: int = 1482
    folds: int = 2
    members: int = 3  # CNNs per fold; the fold's ensemble scores its held-out images
    executor: str = DEFAULT_EXECUTOR  # where members train: "local", "processes" or "dask"
    workers: int | None = None  # processes training members at once (None: one per core)
    scheduler: str | None = None  # address of a dask.distributed scheduler (executor "dask")
    strategy: str = "routed"  # decision rule, one of notsure.decisions.RULES
    target_fpr: float = 0.00015
    delta: float = 0.1
    fpr_meaning: str = "test-all"  # one of notsure.decisions.MEANINGS (MEANING_TEXT says what)
    quick: bool = False
    quiet: bool = False
    epochs: int | None = None  # override the preset's epochs
    precision: str | None = None  # override the preset's precision ("bf16" or "fp32")
    cnn: dict = field(default_factory=dict)  # filled with the CNN settings actually used
    exclusions: str | None = None  # exclusion CSV (id,given_label,suggested_label) for the pool
    exclusion_mode: str = "drop"  # "drop" the listed pool samples or "relabel" them
    resume: str | None = None  # folder of a killed run to continue (same settings and data)
    mlflow: str | None = None  # MLflow tracking URI the finished run is logged to

    _constraints: ClassVar[dict] = {
        "test_per_class": [Interval(Integral, 1, None)],
        "members": [Interval(Integral, 1, None)],
        "strategy": [Options(RULES)],
        **GUARANTEE_CONSTRAINTS,
        "fpr_meaning": [Options(MEANINGS)],
        "precision": [None, Options(PRECISIONS)],
        "exclusion_mode": [Options(EXCLUSION_MODES)],
        **CROSS_FIT_CONSTRAINTS,
        **RUN_CONSTRAINTS,
    }

    def validate(self) -> None:
        """Refuse settings that cannot work before anything is loaded or written."""
        validate(self, self._constraints)
        check_run_options(self)  # across fields: --scheduler, --resume, --mlflow

    def cnn_config(self) -> CNNConfig:
        """The CNN preset (``--quick`` or default) with ``--epochs``/``--precision`` applied;
        without ``--epochs`` the default run trains each member DEFAULT_EPOCHS epochs.

        The presets use no label smoothing: smoothing caps every logit margin near
        log((1 - e + e/C) / (e/C)), squeezing confident right and confident wrong answers into one
        band, exactly where a 0.00015 FPR threshold has to separate them.
        """
        # One thread per member: members train in parallel processes (``executor``), and a
        # member's numbers must not depend on where or beside how many others it trains.
        epochs = self.epochs if self.epochs is not None or self.quick else DEFAULT_EPOCHS
        return CNNConfig.preset(self.quick, epochs=epochs, precision=self.precision, threads=1)


def check_target_supported(config: SelectiveConfig, y_pool: np.ndarray, n_classes: int) -> None:
    """Refuse, before any training, a target the calibration data cannot certify for some class,
    saying what the data can certify."""
    counts = np.bincount(y_pool, minlength=n_classes)
    n_neg = int(len(y_pool) - counts.max())  # the class with the fewest negatives
    m = config.test_per_class * (n_classes - 1)
    if config.fpr_meaning != "rate":
        delta_c = class_delta(config.fpr_meaning, config.delta, n_classes)
        if allowed_exceedances_for_test(n_neg, config.target_fpr, delta_c, m) < 0:
            best = criterion_pass_probability(n_neg, 0, config.target_fpr, m)
            allowed = allowed_test_fp(config.target_fpr, m)
            raise ConfigError(
                f"--fpr-meaning {config.fpr_meaning}: with --test-per-class "
                f"{config.test_per_class} ({m:,} test negatives per class, {allowed} false "
                f"positive{'' if allowed == 1 else 's'} allowed) and "
                f"{n_neg:,} calibration negatives, even a threshold above every calibration "
                f"negative passes a class with probability {best:.4f}, short of "
                f"{1 - delta_c:.4f}; raise --delta, pick a --test-per-class that allows one more "
                "false positive, or use --fpr-meaning rate")
        return
    if allowed_exceedances(n_neg, config.target_fpr, config.delta) < 0:
        raise ConfigError(
            f"--target-fpr {config.target_fpr} cannot be certified (--fpr-meaning "
            f"{config.fpr_meaning}, --delta {config.delta}): the training pool gives at most "
            f"{n_neg:,} calibration negatives for some class, which certify a true FPR of at best "
            f"{certifiable_fpr(n_neg, config.delta):.2g}; raise --target-fpr or --delta, or "
            "bring more data")


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




@dataclass
class SelectiveResult:
    """Everything the report and ``metrics.json`` are built from."""

    config: SelectiveConfig
    dataset: Dataset
    split: object
    leakage: dict
    fit: CrossFit
    certificates: list
    predictor: SelectivePredictor
    test_decisions: Decisions
    before: dict
    after: dict
    calibration_after: dict
    member_test_accuracy: list[float]
    all_member_accuracy: float  # arg-max of the mean logits of every member, on the test set
    risk_coverage: object
    aurc: float
    rule_comparison: list[dict]  # score kinds compared on calibration data only
    test_of_other_rules: list[dict]  # the other rules on the test set: reported, never used
    pass_probability: float  # lower bound on P(every class passes the test criterion)
    pass_probability_independent: float  # the same if classes failed independently (product)
    timings: dict
    exclusions: dict | None = None  # what exclude_from_pool did, when an exclusion file was used
    guard: dict | None = None  # the out-of-distribution guard's threshold, cost and catch rates
    label_errors: LabelErrorAudit | None = None  # where the false positives come from


TOP_NEGATIVES = 3  # highest-scoring calibration negatives per class shown in the report


@dataclass
class LabelErrorAudit:
    """Confident learning on the out-of-fold probabilities of the pool, and what it says of the
    negatives that set the thresholds and of every test false positive.

    ``top_negatives`` rows: class, pool row, score, threshold, flagged; ``test_false_positives``
    rows: test row, given label, answer, flagged (by the pool's confident-learning thresholds:
    the test labels choose nothing).
    """

    flagged: np.ndarray  # pool rows confident learning suspects of a wrong label, ranked
    top_negatives: list[dict]
    test_false_positives: list[dict]


def label_error_audit(fit: CrossFit, y_pool: np.ndarray, cal_scores: np.ndarray,
                      thresholds: np.ndarray, decisions: Decisions, y_test: np.ndarray,
                      top: int = TOP_NEGATIVES) -> LabelErrorAudit:
    """Separate likely label errors from model errors among the pool's highest-scoring negatives
    and the test false positives (Northcutt et al.'s confident learning on out-of-fold scores)."""
    cl = confident_learning(ensemble_probabilities(fit.oof_member_logits), y_pool)
    flagged = cl.flagged
    rows = []
    for c in range(cal_scores.shape[1]):
        neg = np.flatnonzero(y_pool != c)
        for i in neg[np.argsort(-cal_scores[neg, c], kind="stable")][:top]:
            rows.append({"class": c, "row": int(i), "label": int(y_pool[i]),
                         "score": float(cal_scores[i, c]), "threshold": float(thresholds[c]),
                         "above_threshold": bool(cal_scores[i, c] > thresholds[c]),
                         "likely_label_error": bool(flagged[i])})
    fps = np.flatnonzero((decisions.prediction != NOT_SURE) & (decisions.prediction != y_test))
    fp_rows = []
    if len(fps):
        # The answering fold's members: the same probabilities confident learning saw in the pool.
        k = fit.n_folds
        members = fit.extra_logits.reshape(k, fit.members, *fit.extra_logits.shape[1:])
        chosen = members[decisions.routes[fps], :, fps].transpose(1, 0, 2)
        p = ensemble_probabilities(chosen)
        suspect = confident_learning(p, y_test[fps], thresholds=cl.thresholds).flagged
        fp_rows = [{"row": int(i), "label": int(y_test[i]), "answer": int(decisions.prediction[i]),
                    "likely_label_error": bool(f)} for i, f in zip(fps, suspect, strict=True)]
    return LabelErrorAudit(cl.issues, rows, fp_rows)


@contextlib.contextmanager
def _no_stage(name: str) -> Iterator[None]:
    yield


def fit_and_evaluate(config: SelectiveConfig, cnn: CNNConfig, ds: Dataset, split, plan,
                     leakage: dict, exclusions: dict | None = None,
                     stage: Callable[[str], contextlib.AbstractContextManager] = _no_stage,
                     checkpoints: CheckpointStore | None = None) -> SelectiveResult:
    """Cross-fit, calibrate on out-of-fold scores, decide on the test set; no disk access but
    the optional ``checkpoints`` of trained members (saved as they finish, reused on resume).

    Trains and calibrates on ``ds.y[split.train]`` and scores against ``ds.y[split.test]``: to
    relabel, pass a copy of the dataset whose labels differ only at pool positions. ``stage``
    times each step (the run folder's ``stage``).
    """
    quiet = config.quiet
    pool, test = split.train, split.test
    labels = np.arange(ds.n_classes)
    m_test = config.test_per_class * (ds.n_classes - 1)
    with stage("cross_fit"):
        fit = cross_fit(ds.x[pool], ds.y[pool], ds.n_classes, plan.folds, cnn, config.seed,
                        members=config.members, execution=execution_of(config),
                        checkpoints=checkpoints, x_extra=ds.x[test], quiet=quiet)

    with stage("calibrate"):
        # Thresholds see only out-of-fold scores of non-test images.
        y_pool = ds.y[pool]
        cal_scores = calibration_scores(config.strategy, fit.oof_member_logits)
        certificates = choose_thresholds(cal_scores, y_pool, config.target_fpr, config.delta,
                                         meaning=config.fpr_meaning, test_negatives=m_test)
        strategy = ThresholdStrategy.from_certificates(certificates)
        predictor = SelectivePredictor(
            models=[r.model for r in fit.results], strategy=strategy,
            class_names=ds.class_names, image_shape=ds.shape, precision=cnn.precision,
            rule=config.strategy, n_folds=config.folds)
        cal_rank = (fit.oof_member_logits[0] if config.strategy == "min-member"
                    else fit.oof_logits)
        calibration_pred = strategy.decide(cal_scores, cal_rank)
        calibration_after = selective_metrics(y_pool, calibration_pred, labels)
        comparison = compare_scores(fit.oof_member_logits, y_pool, config, m_test)

    with stage("guard"):
        # Out-of-distribution guard from pool data only; it can only remove answers.
        guard_fit = fit_guard(fit, ds.x[pool], y_pool, ds.n_classes)
        predictor.guard = guard_fit.guard

    with stage("evaluate"):
        y_test = ds.y[test]
        routes = route(ds.x[test], config.folds)
        decisions = predictor.decide_logits(fit.extra_logits, routes, fit.extra_features,
                                             ds.x[test])
        before = selective_metrics(y_test, decisions.candidate, labels)
        after = selective_metrics(y_test, decisions.prediction, labels)
        rc = risk_coverage_curve(y_test, decisions.candidate, decisions.confidence)
        area = aurc(y_test, decisions.candidate, decisions.confidence)
        members = [accuracy(y_test, lg.argmax(1)) for lg in fit.extra_logits]
        all_member = accuracy(y_test, fit.extra_logits.mean(axis=0).argmax(1))
        others = other_rules_on_test(fit, y_pool, y_test, routes, config, m_test)

    with stage("guard_check"):
        guard = guard_summary(predictor, guard_fit, calibration_pred, decisions, ds.x[test],
                              y_test, config.seed)

    with stage("label_errors"):
        audit = label_error_audit(fit, y_pool, cal_scores, strategy.thresholds, decisions, y_test)

    return SelectiveResult(
        config=config, dataset=ds, split=split, leakage=leakage, fit=fit,
        certificates=certificates, predictor=predictor, test_decisions=decisions,
        before=before, after=after, calibration_after=calibration_after,
        member_test_accuracy=members, all_member_accuracy=all_member, risk_coverage=rc,
        aurc=area, rule_comparison=comparison, test_of_other_rules=others,
        pass_probability=all_classes_pass_probability(
            [c.test_pass_probability for c in certificates]),
        pass_probability_independent=float(np.prod(
            [c.test_pass_probability for c in certificates])),
        timings={}, exclusions=exclusions, guard=guard, label_errors=audit,
    )


def compare_scores(oof_member_logits: np.ndarray, y: np.ndarray, config: SelectiveConfig,
                   m_test: int) -> list[dict]:
    """Each score kind's thresholds, coverage, lowest class TPR and AURC on out-of-fold
    calibration data (in-sample for its thresholds; the choice of rule never uses test data)."""
    labels = np.arange(oof_member_logits.shape[2])
    rows = []
    for name, (scores, rank) in score_kinds(oof_member_logits).items():
        certs = choose_thresholds(scores, y, config.target_fpr, config.delta,
                                  meaning=config.fpr_meaning, test_negatives=m_test)
        strategy = ThresholdStrategy.from_certificates(certs)
        pred = strategy.decide(scores, rank)
        m = selective_metrics(y, pred, labels)
        conf = strategy.confidence(scores, rank)
        rows.append({"score": name, "coverage": m["coverage"], "min_class_tpr":
                     float(np.nanmin(m["tpr"])), "calibration_fp": int(np.sum(m["fp"])),
                     "aurc": aurc(y, rank.argmax(axis=1), conf)})
    return rows


def other_rules_on_test(fit: CrossFit, y_pool: np.ndarray, y_test: np.ndarray,
                        routes: np.ndarray, config: SelectiveConfig, m_test: int) -> list[dict]:
    """Every rule, calibrated its own way on out-of-fold data, on the test set. Reported for the
    audit only: the deployed rule is the configured one, chosen without these numbers."""
    labels = np.arange(fit.oof_member_logits.shape[2])
    rows = []
    for rule in RULES:
        certs = choose_thresholds(calibration_scores(rule, fit.oof_member_logits), y_pool,
                                  config.target_fpr, config.delta, meaning=config.fpr_meaning,
                                  test_negatives=m_test)
        candidate, scores = deployed_scores(rule, fit.extra_logits, fit.n_folds, routes)
        pred = ThresholdStrategy.from_certificates(certs).decide(scores, candidate)
        m = selective_metrics(y_test, pred, labels)
        rows.append({"rule": rule, "coverage": m["coverage"], "test_fp": int(np.sum(m["fp"])),
                     "max_class_fp": int(np.max(m["fp"])),
                     "classes_at_or_below_target": int(np.sum(m["fpr"] <= config.target_fpr)),
                     "min_class_tpr": float(np.nanmin(m["tpr"])),
                     "deployed": "yes" if rule == config.strategy else ""})
    return rows


def measure_throughput(predictor: SelectivePredictor, x: np.ndarray) -> dict:
    """Images per second of the deployed predictor on ``x`` (best of two passes)."""
    best = np.inf
    for _ in range(2):
        t0 = time.perf_counter()
        predictor.predict(x)
        best = min(best, time.perf_counter() - t0)
    return {"images": int(len(x)), "seconds": best, "images_per_second": len(x) / best}


