"""Every metric rejects bad input with a ConfigError naming the argument and shape or value."""

from __future__ import annotations

import functools

import numpy as np
import pytest

from notsure import NOT_SURE
from notsure.errors import ConfigError
from notsure.metrics import (
    ClassRates,
    accuracy,
    aurc,
    classification_report,
    clopper_pearson,
    confusion_matrix,
    coverage,
    macro_roc,
    mean_roc,
    per_class_rates,
    precision_recall_f1,
    risk_coverage_curve,
    roc_auc,
    roc_auc_ovr,
    roc_curve,
    selective_accuracy,
    top_k_accuracy,
)

Y = np.array([0, 1, 2, 1])
P = np.array([0, 2, NOT_SURE, 1])
S = np.array([[0.6, 0.3, 0.1], [0.2, 0.5, 0.3], [0.1, 0.1, 0.8], [0.3, 0.4, 0.3]])
LABEL_METRICS = [
    confusion_matrix,
    per_class_rates,
    accuracy,
    precision_recall_f1,
    classification_report,
    selective_accuracy,
]
SCORE_METRICS = [roc_auc_ovr, macro_roc, functools.partial(top_k_accuracy, k=1)]


def raises(match):
    return pytest.raises(ConfigError, match=match)


@pytest.mark.parametrize("metric", LABEL_METRICS)
def test_mismatched_lengths(metric):
    with raises(r"y_true has 4, y_pred has 3"):
        metric(Y, P[:3])


@pytest.mark.parametrize("metric", LABEL_METRICS)
def test_empty_input(metric):
    with raises(r"y_true is empty \(shape \(0,\)\)"):
        metric([], [])


@pytest.mark.parametrize("metric", [confusion_matrix, per_class_rates, precision_recall_f1])
def test_unknown_labels(metric):
    with raises(r"y_true contains values not in labels: \[2\] \(first at index 2\)"):
        metric(Y, [0, 1, 1, 1], labels=[0, 1])
    with raises(r"y_pred contains values not in labels: \[2\] \(first at index 1\)"):
        metric([0, 1, 1, 1], P, labels=[0, 1])


def test_label_arrays_must_be_1d_integers_and_true_labels_never_not_sure():
    with raises(r"y_true must be 1-D .* got shape \(2, 2\)"):
        confusion_matrix([[0, 1], [1, 0]], [0, 1, 1, 0])
    with raises(r"y_pred must hold integer class labels, got dtype float64"):
        accuracy([0, 1], [0.0, 1.5])
    with raises(r"y_true contains NOT_SURE \(-1\) at index 1"):
        accuracy([0, NOT_SURE], [0, 1])
    with raises(r"labels must be unique, got repeated \[1\]"):
        confusion_matrix(Y, P, labels=[0, 1, 1, 2])
    with raises(r"labels must not contain NOT_SURE"):
        confusion_matrix(Y, P, labels=[0, 1, 2, NOT_SURE])
    with raises(r"not_sure_column must be None, True or False, got 'yes'"):
        confusion_matrix(Y, P, not_sure_column="yes")


def test_unknown_labels_far_apart():
    # label values too far apart for a lookup table: the binary-search path reports the same way
    with raises(r"y_true contains values not in labels: \[1000000000000\] \(first at index 0\)"):
        confusion_matrix([10**12, 5], [5, 5], labels=[5, 10**13])
    with raises(r"y_pred contains values not in labels: \[7\] \(first at index 1\)"):
        confusion_matrix([5, 5], [5, 7], labels=[5, 10**13])


def test_all_abstain():
    with raises(r"y_true contains values not in labels"):
        confusion_matrix([5], [NOT_SURE], labels=[0])
    assert confusion_matrix([0], [NOT_SURE], labels=[0]).tolist() == [[0, 1]]
    assert confusion_matrix([0, 2], [NOT_SURE, NOT_SURE]).tolist() == [[0, 0, 1], [0, 0, 1]]


def test_average_and_zero_division_are_checked():
    with raises(r"average must be one of \[None, 'macro', 'micro', 'weighted'\], got 'binary'"):
        precision_recall_f1(Y, P, average="binary")
    with raises(r"zero_division must be 0.0, 1.0 or nan, got 'warn'"):
        precision_recall_f1(Y, P, zero_division="warn")
    with raises(r"average must be one of \['macro', 'weighted', None\], got 'micro'"):
        roc_auc_ovr(Y, S, average="micro")


@pytest.mark.parametrize("metric", SCORE_METRICS)
def test_scores_of_the_wrong_shape(metric):
    with raises(r"scores must have shape \(n_samples, n_classes\), got shape \(4,\)"):
        metric(Y, S[:, 0])
    with raises(r"scores must have one row per sample \(4\), got shape \(3, 3\)"):
        metric(Y, S[:3])
    with raises(
        r"labels names the class of each scores column: got 2 labels for scores of "
        r"shape \(4, 3\)"
    ):
        metric(Y, S, labels=[0, 1])


@pytest.mark.parametrize("metric", SCORE_METRICS)
def test_scores_not_finite(metric):
    bad = S.copy()
    bad[2, 1] = np.nan
    with raises(r"scores must be finite, got nan at index \(2, 1\) \(shape \(4, 3\)\)"):
        metric(Y, bad)


@pytest.mark.parametrize("metric", [roc_curve, roc_auc])
def test_binary_scores_and_labels(metric):
    with raises(r"scores must have shape \(n_samples,\), got shape \(4, 3\)"):
        metric([0, 1, 1, 0], S)
    with raises(r"scores must be finite, got inf at index \(1,\)"):
        metric([0, 1], [0.2, np.inf])
    with raises(r"y_true_binary must hold only 0/1, got \[2\]"):
        metric([0, 2], [0.1, 0.2])
    with raises(r"y_true_binary must be a non-empty 1-D array of 0/1, got shape \(0,\)"):
        metric([], [])
    with raises(r"scores must have one row per sample \(2\), got shape \(3,\)"):
        metric([0, 1], [0.1, 0.2, 0.3])


@pytest.mark.parametrize("k", [0, 4, 1.5, True])
def test_top_k_out_of_range(k):
    with raises(r"k must be a whole number in 1..3 \(columns of scores, shape \(4, 3\)\)"):
        top_k_accuracy(Y, S, k)


def test_roc_auc_ovr_unknown_labels():
    with raises(r"y_true contains values not in labels: \[9\]"):
        roc_auc_ovr([0, 1, 9, 1], S)


def test_clopper_pearson_arguments():
    with raises(r"k must not exceed n"):
        clopper_pearson(5, 4)
    with raises(r"n must hold non-negative whole counts"):
        clopper_pearson(1, 2.5)
    with raises(r"k must hold non-negative whole counts"):
        clopper_pearson(-1, 2)
    with raises(r"confidence must be a number in \(0, 1\), got 1.5"):
        clopper_pearson(1, 2, confidence=1.5)
    with raises(r"confidence must be a number in \(0, 1\)"):
        per_class_rates(Y, P, confidence=0.0)


def test_mean_roc_and_macro_roc_arguments():
    with raises(r"curves is empty"):
        mean_roc([])
    with raises(r"curves\[1\]: fpr and tpr must be 1-D of equal length >= 2"):
        mean_roc([([0, 1], [0, 1]), ([0, 1], [0, 0.5, 1])])
    with raises(r"curves\[0\]: fpr must be finite and non-decreasing from 0 to 1"):
        mean_roc([roc_curve([1, 1], [0.2, 0.3])])  # no negatives: FPR undefined (NaN)
    with raises(r"grid must be strictly increasing FPR values within \[0, 1\]"):
        mean_roc([([0, 1], [0, 1])], grid=[0, 0.5, 0.5, 1])
    with raises(r"class 2 has 0 samples in y_true out of 3"):
        macro_roc([0, 1, 1], S[:3])


def test_selective_arguments():
    with raises(r"inputs must have one entry per sample, but y_true has 4, y_pred has 2"):
        risk_coverage_curve(Y, P[:2], [0.1, 0.2])
    with raises(r"confidence must have one row per sample \(4\), got shape \(3,\)"):
        risk_coverage_curve(Y, P, [0.1, 0.2, 0.3])
    with raises(r"confidence must be finite, got nan at index \(0,\)"):
        aurc(Y, P, [np.nan, 0.2, 0.3, 0.4])
    with raises(r"y_pred is empty"):
        coverage([])


def test_class_names_must_cover_labels():
    with raises(r"class_names must give a name for every label \[0, 1, 2\]"):
        classification_report(Y, P, class_names=["a", "b"])
    rates = per_class_rates(Y, P)
    assert isinstance(rates, ClassRates)
    with raises(r"class_names must give a name for every label"):
        rates.as_rows(class_names={0: "a"})
