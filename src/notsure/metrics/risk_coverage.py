"""Selective classification: coverage, risk on answered samples, risk-coverage curve, AURC.

A model may answer ``NOT_SURE``. *Coverage* is the fraction of samples answered; *selective
risk* the error rate among them. Sweeping a confidence threshold trades one for the other: the
risk-coverage curve, summarised by its area (AURC, lower is better). Per-class TPR/FPR after
abstention is :func:`notsure.metrics.per_class_rates` on predictions holding ``NOT_SURE``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from notsure.constants import NOT_SURE
from notsure.metrics.counts import check_pair
from notsure.metrics.validation import check_label_array, check_scores


def coverage(y_pred: object) -> float:
    """Fraction of predictions that are an answer: ``1 - n_not_sure / n``."""
    p = check_label_array(y_pred, "y_pred", allow_not_sure=True)
    return float(np.mean(p != NOT_SURE))


def selective_accuracy(y_true: object, y_pred: object) -> float:
    """Accuracy over the answered samples only; NaN when every prediction is ``NOT_SURE``."""
    t, p = check_pair(y_true, y_pred)
    answered = p != NOT_SURE
    return float(np.mean(t[answered] == p[answered])) if answered.any() else float("nan")


def selective_risk(y_true: object, y_pred: object) -> float:
    """Error rate over the answered samples, ``1 - selective_accuracy``; NaN if none answered."""
    return 1.0 - selective_accuracy(y_true, y_pred)


@dataclass(frozen=True, eq=False)
class RiskCoverage:
    """Points of a risk-coverage curve, one per distinct confidence, highest confidence first.

    At ``thresholds[i]`` the samples with confidence >= it are answered: ``coverage[i]`` is their
    fraction of all samples and ``risk[i]`` their error rate (NaN if none is answered).
    """

    coverage: np.ndarray
    risk: np.ndarray
    thresholds: np.ndarray


def risk_coverage_curve(y_true: object, y_pred: object, confidence: object) -> RiskCoverage:
    """Risk and coverage when answering the most confident samples first, for every cut-off.

    Samples are sorted by ``confidence``, descending; tied confidences are answered together, so
    there is one point per distinct value. A ``NOT_SURE`` prediction is never answered, at any
    threshold, so the last coverage is :func:`coverage` of ``y_pred``.
    """
    t, p = check_pair(y_true, y_pred)
    conf = check_scores(confidence, "confidence", ndim=1, n_samples=len(t))
    order = np.argsort(conf)[::-1]
    conf = conf[order]
    ends = np.append(np.flatnonzero(np.diff(conf)), conf.size - 1)
    answered = np.cumsum(p[order] != NOT_SURE)[ends]
    wrong = np.cumsum((p[order] != NOT_SURE) & (p[order] != t[order]))[ends]
    risk = np.divide(wrong, answered, out=np.full(answered.shape, np.nan), where=answered > 0)
    return RiskCoverage(coverage=answered / conf.size, risk=risk, thresholds=conf[ends])


def aurc(y_true: object, y_pred: object, confidence: object) -> float:
    """Area under the risk-coverage curve as a step function: ``sum risk_i * (cov_i - cov_i-1)``.

    With distinct confidences and no ``NOT_SURE`` this is the mean selective risk over answering
    the top 1, 2, ..., n samples (Geifman et al.); tied samples share their group's risk. The area
    stops at the final coverage (< 1 when ``y_pred`` holds ``NOT_SURE``); NaN if none answered.
    """
    curve = risk_coverage_curve(y_true, y_pred, confidence)
    width = np.diff(curve.coverage, prepend=0.0)
    step = width > 0
    return float(np.sum(curve.risk[step] * width[step])) if step.any() else float("nan")
