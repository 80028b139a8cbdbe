"""Coverage, selective risk, risk-coverage curve and AURC against direct computations."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.metrics import accuracy_score

from notsure import NOT_SURE
from notsure.metrics import (
    aurc,
    coverage,
    risk_coverage_curve,
    selective_accuracy,
    selective_risk,
)

NS = NOT_SURE
TOL = {"rtol": 0, "atol": 1e-12, "equal_nan": True}


@st.composite
def selective_problems(draw):
    labels = draw(st.sampled_from([(0, 1), (0, 1, 2), (3, 7, 12)]))
    n = draw(st.integers(1, 30))
    y_true = np.array(draw(st.lists(st.sampled_from(labels), min_size=n, max_size=n)))
    y_pred = np.array(draw(st.lists(st.sampled_from(labels + (NS,)), min_size=n, max_size=n)))
    levels = draw(st.integers(1, 40))  # few levels -> many tied confidences
    confidence = np.array(draw(st.lists(st.integers(0, levels), min_size=n, max_size=n))) / levels
    return y_true, y_pred, confidence


def _brute_curve(y_true, y_pred, confidence):
    """Answer samples with confidence >= t (and not NOT_SURE), for each distinct t, descending."""
    cov, risk = [], []
    thresholds = np.unique(confidence)[::-1]
    for t in thresholds:
        answered = (confidence >= t) & (y_pred != NS)
        cov.append(answered.sum() / len(y_true))
        risk.append(
            1 - accuracy_score(y_true[answered], y_pred[answered]) if answered.any() else np.nan
        )
    return np.array(cov), np.array(risk), thresholds


@settings(max_examples=80, deadline=None)
@given(selective_problems())
def test_selective_metrics_equal_direct_computation(problem):
    y_true, y_pred, confidence = problem
    answered = y_pred != NS
    assert coverage(y_pred) == answered.sum() / len(y_pred)
    ref = accuracy_score(y_true[answered], y_pred[answered]) if answered.any() else np.nan
    assert_allclose(selective_accuracy(y_true, y_pred), ref, **TOL)
    assert_allclose(selective_risk(y_true, y_pred), 1 - ref, **TOL)

    curve = risk_coverage_curve(y_true, y_pred, confidence)
    cov, risk, thresholds = _brute_curve(y_true, y_pred, confidence)
    assert_array_equal(curve.thresholds, thresholds)
    assert_allclose(curve.coverage, cov, **TOL)
    assert_allclose(curve.risk, risk, **TOL)
    assert_allclose(curve.coverage[-1], coverage(y_pred), **TOL)

    widths = np.diff(cov, prepend=0.0)
    area = np.nansum(risk * widths) if (widths > 0).any() else np.nan
    assert_allclose(aurc(y_true, y_pred, confidence), area, **TOL)


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 30), st.integers(0, 2**32 - 1))
def test_aurc_is_mean_risk_over_top_m_without_ties(n, seed):
    # Geifman & El-Yaniv: with distinct confidences, AURC = (1/n) sum_m risk(top m answered).
    rng = np.random.default_rng(seed)
    y_true = rng.integers(0, 3, n)
    y_pred = np.where(rng.random(n) < 0.6, y_true, rng.integers(0, 3, n))
    confidence = rng.permutation(n) / n
    order = np.argsort(-confidence)
    wrong = (y_pred != y_true)[order]
    expected = np.mean(np.cumsum(wrong) / np.arange(1, n + 1))
    assert_allclose(aurc(y_true, y_pred, confidence), expected, **TOL)


def test_hand_worked_risk_coverage_with_tie_and_abstention():
    y_true = [0, 1, 1, 0, 0]
    y_pred = [0, 1, 0, NS, 1]
    confidence = [0.9, 0.8, 0.8, 0.7, 0.1]
    # 0.9: answer {0} right -> cov 1/5, risk 0
    # 0.8: answer {0,1,2} (tie kept together), sample 2 wrong -> cov 3/5, risk 1/3
    # 0.7: sample 3 is NOT_SURE, never answered -> cov 3/5, risk 1/3
    # 0.1: sample 4 wrong -> cov 4/5, risk 2/4
    curve = risk_coverage_curve(y_true, y_pred, confidence)
    assert_allclose(curve.thresholds, [0.9, 0.8, 0.7, 0.1])
    assert_allclose(curve.coverage, [1 / 5, 3 / 5, 3 / 5, 4 / 5], rtol=0, atol=1e-15)
    assert_allclose(curve.risk, [0, 1 / 3, 1 / 3, 1 / 2], rtol=0, atol=1e-15)
    assert_allclose(aurc(y_true, y_pred, confidence), 0 * 1 / 5 + 1 / 3 * 2 / 5 + 1 / 2 * 1 / 5)
    assert coverage(y_pred) == 4 / 5
    assert selective_accuracy(y_true, y_pred) == 2 / 4


def test_nothing_answered_gives_nan():
    assert coverage([NS, NS]) == 0.0
    assert np.isnan(selective_accuracy([0, 1], [NS, NS]))
    assert np.isnan(selective_risk([0, 1], [NS, NS]))
    assert np.isnan(aurc([0, 1], [NS, NS], [0.5, 0.2]))
