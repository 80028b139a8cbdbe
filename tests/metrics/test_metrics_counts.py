"""Counting metrics against scikit-learn and scipy on random inputs, plus a hand-worked example."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.testing import assert_allclose, assert_array_equal
from scipy.stats import binomtest
from sklearn import metrics as skm

from notsure import NOT_SURE
from notsure.metrics import (
    accuracy,
    classification_report,
    clopper_pearson,
    confusion_matrix,
    per_class_rates,
    precision_recall_f1,
)

NS = NOT_SURE
TOL = {"rtol": 0, "atol": 1e-12, "equal_nan": True}
FAST = settings(max_examples=60, deadline=None)

# Label pools: contiguous, non-contiguous, and values so far apart that the encoder cannot
# use a lookup table and falls back to a binary search.
POOLS = [(0, 1, 2, 3, 4), (3, 7, 12, 20, 41), (-5, 2, 9**12, 2**40, 3 * 10**12)]


@st.composite
def problems(draw):
    """``(y_true, y_pred, labels_arg, labels)``: random labels, often with classes missing."""
    pool = draw(st.sampled_from(POOLS))
    labels = sorted(draw(st.sets(st.sampled_from(pool), min_size=1, max_size=len(pool))))
    n = draw(st.integers(1, 30))
    y_true = draw(st.lists(st.sampled_from(labels), min_size=n, max_size=n))
    y_pred = draw(st.lists(st.sampled_from(labels + [NS]), min_size=n, max_size=n))
    if draw(st.booleans()):
        labels_arg = draw(st.permutations(labels))
    else:
        labels_arg = None
        labels = sorted((set(y_true) | set(y_pred)) - {NS})
    return (
        np.array(y_true, dtype=np.int64),
        np.array(y_pred, dtype=np.int64),
        labels_arg,
        (labels_arg if labels_arg is not None else labels),
    )


def _rate(num, den):
    num, den = np.asarray(num, float), np.asarray(den, float)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / den, np.nan)


@FAST
@given(problems())
def test_confusion_matrix_equals_sklearn(problem):
    y_true, y_pred, labels_arg, labels = problem
    ref = skm.confusion_matrix(y_true, y_pred, labels=list(labels) + [NS])[:-1]
    got = confusion_matrix(y_true, y_pred, labels_arg, not_sure_column=True)
    assert got.dtype == np.int64
    assert_array_equal(got, ref)
    assert_array_equal(
        confusion_matrix(y_true, y_pred, labels_arg, not_sure_column=False), ref[:, :-1]
    )
    auto = confusion_matrix(y_true, y_pred, labels_arg)
    assert_array_equal(auto, ref if (y_pred == NS).any() else ref[:, :-1])


@FAST
@given(problems())
def test_per_class_rates_equal_sklearn_multilabel_confusion(problem):
    y_true, y_pred, labels_arg, labels = problem
    mcm = skm.multilabel_confusion_matrix(y_true, y_pred, labels=list(labels))
    tn, fp, fn, tp = mcm[:, 0, 0], mcm[:, 0, 1], mcm[:, 1, 0], mcm[:, 1, 1]
    r = per_class_rates(y_true, y_pred, labels_arg)
    assert_array_equal(r.labels, labels)
    for got, ref in ((r.tp, tp), (r.fp, fp), (r.fn, fn), (r.tn, tn), (r.support, tp + fn)):
        assert_array_equal(got, ref)
    assert_array_equal(r.not_sure, [np.sum((y_true == c) & (y_pred == NS)) for c in labels])
    assert_allclose(r.tpr, _rate(tp, tp + fn), **TOL)
    assert_allclose(r.fpr, _rate(fp, fp + tn), **TOL)
    assert_allclose(r.precision, _rate(tp, tp + fp), **TOL)
    assert r.tpr_ci.shape == r.fpr_ci.shape == r.precision_ci.shape == (len(labels), 2)
    for ci, k, n in (
        (r.tpr_ci, tp, tp + fn),
        (r.fpr_ci, fp, fp + tn),
        (r.precision_ci, tp, tp + fp),
    ):
        for i in range(len(labels)):
            if n[i] == 0:
                assert np.isnan(ci[i]).all()
            else:
                ref = binomtest(int(k[i]), int(n[i])).proportion_ci(method="exact")
                assert_allclose(ci[i], [ref.low, ref.high], rtol=0, atol=5e-12)


@FAST
@given(problems())
def test_accuracy_equals_sklearn_and_abstentions_count_wrong(problem):
    y_true, y_pred, _, _ = problem
    assert accuracy(y_true, y_pred) == skm.accuracy_score(y_true, y_pred)


@settings(max_examples=80, deadline=None)
@given(
    problems(),
    st.sampled_from([None, "macro", "micro", "weighted"]),
    st.sampled_from([0.0, 1.0, np.nan]),
)
def test_precision_recall_f1_equal_sklearn(problem, average, zero_division):
    y_true, y_pred, labels_arg, labels = problem
    ref = skm.precision_recall_fscore_support(
        y_true, y_pred, labels=list(labels), average=average, zero_division=zero_division
    )
    got = precision_recall_f1(
        y_true, y_pred, labels_arg, average=average, zero_division=zero_division
    )
    for g, r in zip(got[:3], ref[:3], strict=True):
        assert_allclose(g, r, **TOL)
    if average is None:
        assert_array_equal(got[3], ref[3])
    else:
        assert got[3] is None and all(isinstance(v, float) for v in got[:3])


@FAST
@given(problems())
def test_classification_report_rows_equal_sklearn(problem):
    y_true, y_pred, labels_arg, labels = problem
    ref = skm.classification_report(
        y_true, y_pred, labels=list(labels), output_dict=True, zero_division=0.0
    )
    rows = classification_report(y_true, y_pred, labels_arg)
    by_name = {row["class"]: row for row in rows}
    assert [row["class"] for row in rows] == [str(v) for v in labels] + [
        "accuracy",
        "macro avg",
        "weighted avg",
    ]
    for name in [str(v) for v in labels] + ["macro avg", "weighted avg"]:
        for key, ref_key in (("precision", "precision"), ("recall", "recall"), ("f1", "f1-score")):
            assert_allclose(by_name[name][key], ref[name][ref_key], **TOL)
        assert by_name[name]["support"] == ref[name]["support"]
    assert_allclose(by_name["accuracy"]["f1"], skm.accuracy_score(y_true, y_pred), **TOL)
    abstained = bool((y_pred == NS).any())
    assert ("not_sure" in rows[0]) == abstained and ("fpr" in rows[0]) == abstained
    if abstained:
        mcm = skm.multilabel_confusion_matrix(y_true, y_pred, labels=list(labels))
        fpr = _rate(mcm[:, 0, 1], mcm[:, 0, 1] + mcm[:, 0, 0])
        assert_allclose([by_name[str(v)]["fpr"] for v in labels], fpr, **TOL)
        assert by_name["accuracy"]["not_sure"] == int(np.sum(y_pred == NS))


def test_hand_worked_example_with_abstentions():
    # 8 samples, 3 classes, 2 abstentions (samples 2 and 5), worked out by hand:
    #   true 0: predicted 0, 0, not_sure   -> row [2, 0, 0, 1]
    #   true 1: predicted 1, 2, not_sure   -> row [0, 1, 1, 1]
    #   true 2: predicted 2, 0             -> row [1, 0, 1, 0]
    y_true = [0, 0, 0, 1, 1, 1, 2, 2]
    y_pred = [0, 0, NS, 1, 2, NS, 2, 0]
    expected = [[2, 0, 0, 1], [0, 1, 1, 1], [1, 0, 1, 0]]
    for to_label in ({0: 0, 1: 1, 2: 2}, {0: 3, 1: 7, 2: 12}):  # also non-contiguous labels
        yt = [to_label[v] for v in y_true]
        yp = [to_label.get(v, NS) for v in y_pred]
        assert_array_equal(confusion_matrix(yt, yp), expected)
        r = per_class_rates(yt, yp)
        assert_array_equal(r.labels, [to_label[c] for c in (0, 1, 2)])
        assert_array_equal(r.tp, [2, 1, 1])
        assert_array_equal(r.fn, [1, 2, 1])  # abstentions are false negatives of their class
        assert_array_equal(r.fp, [1, 0, 1])  # ... and never false positives
        assert_array_equal(r.tn, [4, 5, 5])
        assert_array_equal(r.not_sure, [1, 1, 0])
        assert_allclose(r.tpr, [2 / 3, 1 / 3, 1 / 2], rtol=0, atol=1e-15)
        assert_allclose(r.fpr, [1 / 5, 0 / 5, 1 / 6], rtol=0, atol=1e-15)
        assert_allclose(r.precision, [2 / 3, 1 / 1, 1 / 2], rtol=0, atol=1e-15)
        assert accuracy(yt, yp) == 4 / 8
        rows = r.as_rows(class_names={3: "three", 7: "seven", 12: "twelve", 0: "a", 1: "b", 2: "c"})
        assert rows[1]["tp"] == 1 and rows[1]["fpr"] == 0.0 and rows[1]["not_sure"] == 1
    report = classification_report(y_true, y_pred, class_names=["zero", "one", "two"])
    assert [row["class"] for row in report][:3] == ["zero", "one", "two"]
    assert report[0]["not_sure"] == 1 and report[3]["not_sure"] == 2
    assert report[2]["fpr"] == 1 / 6


def test_undefined_rates_are_nan():
    r = per_class_rates([0, 0, 0], [0, 1, NS], labels=[0, 1, 2])
    assert np.isnan(r.tpr[1]) and np.isnan(r.tpr[2])  # no true samples of classes 1 and 2
    assert np.isnan(r.fpr[0])  # every sample is class 0: no negatives
    assert np.isnan(r.precision[2])  # class 2 never predicted
    assert np.isnan(r.tpr_ci[1]).all() and np.isnan(r.precision_ci[2]).all()


def test_single_class():
    assert_array_equal(confusion_matrix([4, 4], [4, 4]), [[2]])
    assert_array_equal(confusion_matrix([4, 4], [4, NS]), [[1, 1]])
    p, r, f, s = precision_recall_f1([4, 4], [4, NS])
    assert_array_equal([p, r, f, s], [[1.0], [0.5], [2 / 3], [2]])


@settings(max_examples=40, deadline=None)
@given(
    st.integers(0, 300).flatmap(lambda n: st.tuples(st.integers(0, n), st.just(n))),
    st.sampled_from([0.8, 0.9, 0.95, 0.99]),
)
def test_clopper_pearson_equals_scipy_binomtest(kn, confidence):
    k, n = kn
    lo, hi = clopper_pearson(k, n, confidence)
    if n == 0:
        assert np.isnan(lo) and np.isnan(hi)
        return
    ci = binomtest(k, n).proportion_ci(confidence_level=confidence, method="exact")
    # scipy finds the bounds with brentq (xtol 2e-12); ours are closed-form beta quantiles.
    assert_allclose([lo, hi], [ci.low, ci.high], rtol=0, atol=5e-12)
    assert (lo == 0) == (k == 0) and (hi == 1) == (k == n)


def test_clopper_pearson_is_vectorized_and_matches_per_class_rates():
    k = np.array([0, 3, 10, 0])
    n = np.array([10, 10, 10, 0])
    lo, hi = clopper_pearson(k, n)
    assert lo.shape == hi.shape == (4,)
    for i in range(3):
        ci = binomtest(int(k[i]), int(n[i])).proportion_ci(method="exact")
        assert_allclose([lo[i], hi[i]], [ci.low, ci.high], rtol=0, atol=5e-12)
    assert np.isnan(lo[3]) and np.isnan(hi[3])
    r = per_class_rates([0, 0, 0, 1, 1], [0, 0, NS, 1, 0], confidence=0.9)
    ci = binomtest(2, 3).proportion_ci(confidence_level=0.9, method="exact")
    assert_allclose(r.tpr_ci[0], [ci.low, ci.high], rtol=0, atol=5e-12)
    # class 0: one false positive (sample 4) among the 2 samples of class 1
    ci = binomtest(1, 2).proportion_ci(confidence_level=0.9, method="exact")
    assert_allclose(r.fpr_ci[0], [ci.low, ci.high], rtol=0, atol=5e-12)


def test_large_label_values_use_the_same_counts():
    rng = np.random.default_rng(0)
    y_true = rng.integers(0, 4, 200)
    y_pred = np.where(rng.random(200) < 0.2, NS, rng.integers(0, 4, 200))
    big = np.array([-7, 10**6, 5 * 10**12, 2**62])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        small = confusion_matrix(y_true, y_pred)
        far = confusion_matrix(big[y_true], np.where(y_pred == NS, NS, big[y_pred]))
    assert_array_equal(small, far)


@pytest.mark.parametrize("average", ["macro", "weighted", "micro"])
def test_labels_never_seen_count_in_macro_like_sklearn(average):
    y_true, y_pred = [0, 0, 1], [0, 1, 1]
    ref = skm.precision_recall_fscore_support(
        y_true, y_pred, labels=[0, 1, 5], average=average, zero_division=0.0
    )
    got = precision_recall_f1(y_true, y_pred, [0, 1, 5], average=average)
    assert_allclose(got[:3], ref[:3], **TOL)
