"""Ambiguity scores, rankings and confident learning against brute-force references."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from notsure.analysis.ambiguity import (
    class_thresholds,
    confidence,
    confident_learning,
    ensemble_probabilities,
    entropy,
    label_error_candidates,
    least_confident,
    member_agreement,
    most_confident_wrong,
    top2_margin,
)
from notsure.errors import ConfigError


def random_probs(n: int, c: int, seed: int, sharpness: float = 3.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    z = sharpness * rng.normal(size=(n, c))
    return np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)


def test_scores_match_definitions():
    p = random_probs(200, 5, 0)
    rows = [sorted(r, reverse=True) for r in p.tolist()]
    np.testing.assert_allclose(confidence(p), [r[0] for r in rows])
    np.testing.assert_allclose(top2_margin(p), [r[0] - r[1] for r in rows])
    np.testing.assert_allclose(entropy(p), stats.entropy(p, axis=1))
    one_hot = np.eye(4)[[0, 3]]
    np.testing.assert_allclose(entropy(one_hot), [0.0, 0.0])
    np.testing.assert_allclose(entropy(np.full((1, 4), 0.25)), [np.log(4)])


def test_ensemble_probabilities_and_agreement():
    rng = np.random.default_rng(1)
    logits = rng.normal(size=(3, 50, 4))
    expected = np.mean([stats_softmax(lg) for lg in logits], axis=0)
    np.testing.assert_allclose(ensemble_probabilities(logits), expected)
    pred = expected.argmax(axis=1)
    brute = [sum(int(np.argmax(logits[k, i]) == pred[i]) for k in range(3)) / 3
             for i in range(50)]
    np.testing.assert_allclose(member_agreement(logits, pred), brute)


def stats_softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def test_rankings_match_brute_force_sorts():
    p = random_probs(300, 4, 2, sharpness=1.5)
    p[10] = p[11]  # a tie: position decides
    y = np.random.default_rng(3).integers(0, 4, 300)
    wrong = [i for i in range(300) if int(np.argmax(p[i])) != y[i]]
    expected = sorted(wrong, key=lambda i: (-max(p[i]), i))
    assert most_confident_wrong(p, y).tolist() == expected

    def margin(i):
        a, b = sorted(p[i], reverse=True)[:2]
        return a - b

    expected = sorted(range(300), key=lambda i: (margin(i), -stats.entropy(p[i]), i))
    assert least_confident(p).tolist() == expected
    expected = sorted(range(300), key=lambda i: (-stats.entropy(p[i]), margin(i), i))
    assert least_confident(p, by="entropy").tolist() == expected
    with pytest.raises(ConfigError, match="by="):
        least_confident(p, by="nope")


def brute_confident_learning(p: np.ndarray, y: np.ndarray):
    """Confident learning written out sample by sample, as in Northcutt et al. (2021)."""
    n, c = p.shape
    t = [np.mean([p[i, j] for i in range(n) if y[i] == j]) for j in range(c)]
    joint = np.zeros((c, c), dtype=int)
    issues = []
    for i in range(n):
        above = [j for j in range(c) if p[i, j] >= t[j]]
        if not above:
            continue
        j = max(above, key=lambda k: p[i, k])
        joint[y[i], j] += 1
        if j != y[i]:
            issues.append(i)
    return np.array(t), joint, issues


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_confident_learning_matches_brute_force(seed):
    rng = np.random.default_rng(seed)
    n, c = 400, 4
    y = rng.integers(0, c, n)
    # A decent classifier: probability mass on the true class, some labels flipped.
    logits = 3.0 * np.eye(c)[y] + rng.normal(size=(n, c))
    p = stats_softmax(logits)
    flipped = rng.choice(n, 30, replace=False)
    y_noisy = y.copy()
    y_noisy[flipped] = (y[flipped] + rng.integers(1, c, 30)) % c
    t, joint, issues = brute_confident_learning(p, y_noisy)
    cl = confident_learning(p, y_noisy)
    np.testing.assert_allclose(cl.thresholds, t)
    np.testing.assert_array_equal(cl.joint, joint)
    assert cl.issues.tolist() == sorted(issues, key=lambda i: (p[i, y_noisy[i]], i))
    by_margin = confident_learning(p, y_noisy, rank_by="margin")
    assert by_margin.issues.tolist() == sorted(
        issues, key=lambda i: (-(p[i].max() - p[i, y_noisy[i]]), i))
    # The planted flips dominate the top of the list.
    assert np.isin(cl.issues[:20], flipped).mean() >= 0.8


def test_thresholds_from_a_reference_set_judge_a_subset():
    rng = np.random.default_rng(4)
    n, c = 600, 3
    y = rng.integers(0, c, n)
    p = stats_softmax(2.5 * np.eye(c)[y] + rng.normal(size=(n, c)))
    reference = class_thresholds(p, y)
    subset = np.arange(100)
    cl = confident_learning(p[subset], y[subset], thresholds=reference)
    whole = confident_learning(p, y)
    np.testing.assert_allclose(cl.thresholds, whole.thresholds)
    # Judged by the whole set's thresholds, the subset's flags are the whole set's flags in it.
    assert sorted(cl.issues.tolist()) == sorted(i for i in whole.issues.tolist() if i < 100)
    with pytest.raises(ConfigError, match=r"thresholds must have shape \(3,\)"):
        confident_learning(p, y, thresholds=np.ones(2))


def test_label_error_candidates_put_flagged_first_then_every_other_wrong_answer():
    rng = np.random.default_rng(5)
    n, c = 500, 4
    y = rng.integers(0, c, n)
    p = stats_softmax(3.0 * np.eye(c)[y] + rng.normal(size=(n, c)))
    flipped = rng.choice(n, 25, replace=False)
    y_noisy = y.copy()
    y_noisy[flipped] = (y[flipped] + 1) % c
    cl = confident_learning(p, y_noisy)
    order, suggested = label_error_candidates(p, y_noisy, cl)
    top = p.argmax(axis=1)
    expected_set = set(cl.issues.tolist()) | set(np.flatnonzero(top != y_noisy).tolist())
    assert sorted(order.tolist()) == sorted(expected_set)
    assert order[:len(cl.issues)].tolist() == cl.issues.tolist()
    rest = order[len(cl.issues):].tolist()
    assert rest == sorted(rest, key=lambda i: (p[i, y_noisy[i]], i))
    assert np.all(suggested[cl.issues] == cl.confident_label[cl.issues])
    assert np.all(suggested[rest] == top[rest])
    assert np.all(suggested[order] != y_noisy[order])
    # The planted flips are found: most of them lead the list.
    assert np.isin(order[:25], flipped).mean() >= 0.8


def test_confident_learning_class_without_labels_gets_no_counts():
    p = np.array([[0.9, 0.05, 0.05], [0.2, 0.7, 0.1], [0.1, 0.1, 0.8]])
    y = np.array([0, 1, 1])  # nobody labelled 2
    cl = confident_learning(p, y)
    assert np.isinf(cl.thresholds[2])
    assert cl.joint[:, 2].sum() == 0


def test_bad_input_is_refused():
    with pytest.raises(ConfigError, match="shape"):
        confidence(np.ones(3))
    with pytest.raises(ConfigError, match="labels"):
        most_confident_wrong(np.full((2, 2), 0.5), np.array([0, 2]))
    with pytest.raises(ConfigError, match="rank_by"):
        confident_learning(np.full((2, 2), 0.5), np.array([0, 1]), rank_by="nope")
