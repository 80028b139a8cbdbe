"""ROC, AUC, mean ROC and top-k accuracy against scikit-learn on random inputs with ties."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.testing import assert_allclose, assert_array_equal
from sklearn import metrics as skm
from sklearn.exceptions import UndefinedMetricWarning

from notsure.metrics import (
    interpolate_roc,
    macro_roc,
    mean_roc,
    roc_auc,
    roc_auc_ovr,
    roc_curve,
    top_k_accuracy,
)

TOL = {"rtol": 0, "atol": 1e-12, "equal_nan": True}
FAST = settings(max_examples=60, deadline=None)
POOLS = [(0, 1, 2, 3, 4, 5), (3, 7, 12, 20, 41, 55)]

pytestmark = pytest.mark.filterwarnings("ignore", category=UndefinedMetricWarning)


def score_arrays(shape, draw):
    """Scores from a few levels (many ties) or continuous, possibly negative or huge."""
    kind = draw(st.sampled_from(["ties", "continuous"]))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    if kind == "ties":
        return rng.integers(0, draw(st.integers(1, 4)) + 1, shape) * 0.25 - 0.5
    return rng.normal(0, 10.0 ** draw(st.integers(-3, 6)), shape)


@st.composite
def binary_problems(draw):
    n = draw(st.integers(1, 40))
    y = np.array(draw(st.lists(st.sampled_from([0, 1]), min_size=n, max_size=n)))
    return y, score_arrays(n, draw)


@st.composite
def multiclass_problems(draw, min_classes=1):
    pool = draw(st.sampled_from(POOLS))
    labels = sorted(draw(st.sets(st.sampled_from(pool), min_size=min_classes, max_size=6)))
    n = draw(st.integers(1, 40))
    y = np.array(draw(st.lists(st.sampled_from(labels), min_size=n, max_size=n)))
    return y, score_arrays((n, len(labels)), draw), labels


def _interp_reference(fpr, tpr, grid):
    """Top of the vertical step where the grid hits a curve point, else linear interpolation."""
    out = []
    for x in grid:
        at = fpr == x
        out.append(tpr[at].max() if at.any() else np.interp(x, fpr, tpr))
    return np.array(out)


@FAST
@given(binary_problems())
def test_roc_curve_equals_sklearn_without_dropping_points(problem):
    y, s = problem
    fpr, tpr, thr = roc_curve(y, s)
    ref = skm.roc_curve(y, s, drop_intermediate=False)
    assert_array_equal(fpr, ref[0])
    assert_array_equal(tpr, ref[1])
    assert_array_equal(thr, ref[2])
    assert thr[0] == np.inf and len(thr) == len(np.unique(s)) + 1


@FAST
@given(binary_problems())
def test_roc_auc_equals_sklearn(problem):
    y, s = problem
    ref = skm.roc_auc_score(y, s) if len(np.unique(y)) == 2 else np.nan
    assert_allclose(roc_auc(y, s), ref, **TOL)
    assert_allclose(roc_auc(y.astype(bool), s), ref, **TOL)


@FAST
@given(multiclass_problems(), st.sampled_from([None, "macro", "weighted"]))
def test_roc_auc_ovr_equals_sklearn_per_class_and_averaged(problem, average):
    y, s, labels = problem
    s = s - s.min() + 1.0
    s = s / s.sum(axis=1, keepdims=True)  # sklearn's multiclass AUC wants probabilities
    per_class = np.array(
        [
            skm.roc_auc_score(y == c, s[:, i]) if 0 < np.sum(y == c) < len(y) else np.nan
            for i, c in enumerate(labels)
        ]
    )
    got = roc_auc_ovr(y, s, labels=labels, average=None)
    assert_allclose(got, per_class, **TOL)
    if len(labels) >= 3:
        ref = skm.roc_auc_score(y, s, multi_class="ovr", labels=labels, average=average)
        assert_allclose(roc_auc_ovr(y, s, labels=labels, average=average), ref, **TOL)
    if labels == list(range(len(labels))):
        assert_allclose(roc_auc_ovr(y, s, average=None), per_class, **TOL)


@FAST
@given(multiclass_problems(min_classes=3), st.integers(1, 6))
def test_top_k_accuracy_equals_sklearn_including_ties(problem, k):
    y, s, labels = problem
    k = min(k, len(labels))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = skm.top_k_accuracy_score(y, s, k=k, labels=labels)
    assert top_k_accuracy(y, s, k, labels=labels) == ref


def test_top_k_uses_label_values_not_column_positions():
    # labels {3, 7, 12}: y_true holds values, scores columns follow labels.
    scores = np.array([[0.1, 0.2, 0.7], [0.8, 0.1, 0.1], [0.2, 0.5, 0.3]])
    y = np.array([12, 3, 12])
    assert top_k_accuracy(y, scores, 1, labels=[3, 7, 12]) == 2 / 3
    assert top_k_accuracy(y, scores, 2, labels=[3, 7, 12]) == 1.0
    assert top_k_accuracy([2, 0], [[0.5, 0.2, 0.3], [0.1, 0.1, 0.8]], 3) == 1.0


@FAST
@given(st.lists(binary_problems(), min_size=1, max_size=4), st.booleans())
def test_mean_roc_interpolates_sklearn_curves(problems, custom_grid):
    problems = [(y, s) for y, s in problems if 0 < y.sum() < len(y)]
    if not problems:
        return
    grid = np.sort(np.unique(np.r_[0.0, 1.0, np.linspace(0, 1, 7) ** 2])) if custom_grid else None
    curves = [roc_curve(y, s) for y, s in problems]
    result = mean_roc(curves, grid=grid)
    g = result.fpr_grid
    assert_array_equal(g, grid if custom_grid else np.linspace(0, 1, 101))
    refs = []
    for y, s in problems:
        # sklearn's dropped points are collinear, so interpolating its short curve must agree
        fpr, tpr, _ = skm.roc_curve(y, s, drop_intermediate=True)
        refs.append(_interp_reference(fpr, tpr, g))
    refs = np.array(refs)
    assert_allclose(result.mean_tpr, refs.mean(axis=0), **TOL)
    assert_allclose(result.std_tpr, refs.std(axis=0), **TOL)
    assert_allclose(result.tpr_lo, np.clip(refs.mean(0) - refs.std(0), 0, 1), **TOL)
    assert_allclose(result.tpr_hi, np.clip(refs.mean(0) + refs.std(0), 0, 1), **TOL)
    aucs = [skm.roc_auc_score(y, s) for y, s in problems]
    assert_allclose(result.aucs, aucs, **TOL)
    assert_allclose([result.mean_auc, result.std_auc], [np.mean(aucs), np.std(aucs)], **TOL)


def test_mean_roc_of_perfect_curves_is_one_from_zero_fpr():
    curve = roc_curve([0, 0, 1, 1], [0.1, 0.2, 0.8, 0.9])
    result = mean_roc([curve, curve])
    assert_array_equal(result.mean_tpr, np.ones(101))  # best TPR at FPR 0 is 1, not forced to 0
    assert result.mean_auc == 1.0 and result.std_auc == 0.0


def test_interpolate_roc_takes_top_of_vertical_steps():
    fpr = np.array([0.0, 0.0, 0.5, 0.5, 1.0])
    tpr = np.array([0.0, 0.4, 0.6, 0.8, 1.0])
    got = interpolate_roc(fpr, tpr, np.array([0.0, 0.25, 0.5, 0.75, 1.0]))
    assert_allclose(got, [0.4, 0.5, 0.8, 0.9, 1.0], rtol=0, atol=1e-15)


@FAST
@given(multiclass_problems(min_classes=2))
def test_macro_roc_averages_interpolated_sklearn_class_curves(problem):
    y, s, labels = problem
    if any(not 0 < np.sum(y == c) < len(y) for c in labels):
        return
    grid, tpr = macro_roc(y, s, labels=labels)
    refs = []
    for i, c in enumerate(labels):
        fpr_c, tpr_c, _ = skm.roc_curve(y == c, s[:, i], drop_intermediate=False)
        refs.append(_interp_reference(fpr_c, tpr_c, grid))
    assert_allclose(tpr, np.mean(refs, axis=0), **TOL)
    result = mean_roc([(grid, tpr)])
    assert_allclose(result.mean_tpr, tpr, **TOL)
