"""k-NN for all k at once, checked against scikit-learn's brute-force neighbours."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import pairwise_distances as sk_pairwise_distances
from sklearn.neighbors import KNeighborsClassifier

from notsure.analysis import knn
from notsure.errors import ConfigError


@pytest.fixture(scope="module")
def blobs() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(7)
    centers = rng.normal(size=(4, 12)) * 1.5
    y = rng.integers(0, 4, size=260)
    x = centers[y] + rng.normal(size=(260, 12))
    return x[:200], y[:200], x[200:]


@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
def test_distances_match_sklearn(blobs, metric):
    x_train, _, x_test = blobs
    ours = knn.pairwise_distances(x_test, x_train, metric)
    ref = sk_pairwise_distances(x_test, x_train, metric=metric)
    np.testing.assert_allclose(ours, ref, atol=1e-10)


@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
@pytest.mark.parametrize("weighting", ["uniform", "distance"])
def test_scores_for_every_k_match_sklearn_predict_proba(blobs, metric, weighting):
    x_train, y_train, x_test = blobs
    dist = knn.pairwise_distances(x_test, x_train, metric)
    # continuous random data: no two training points at exactly the same distance
    assert all(len(np.unique(row)) == len(row) for row in dist)
    scores, pred = knn.knn_all_k(dist, y_train, 4, k_max=15, weighting=weighting)
    assert scores.shape == (15, len(x_test), 4)
    for k in (1, 2, 5, 8, 14, 15):
        clf = KNeighborsClassifier(k, metric=metric, algorithm="brute", weights=weighting)
        clf.fit(x_train, y_train)
        np.testing.assert_allclose(scores[k - 1], clf.predict_proba(x_test), atol=1e-12)
        # predictions agree wherever the top score is not tied (sklearn then takes lowest index)
        top2 = np.sort(scores[k - 1], axis=1)[:, -2:]
        untied = top2[:, 1] > top2[:, 0]
        assert untied.sum() > len(x_test) // 2
        np.testing.assert_array_equal(pred[k - 1][untied], clf.predict(x_test)[untied])


def test_vote_tie_goes_to_class_with_closest_member():
    # query at 0; neighbours in distance order: class 2, class 0, class 0, class 2
    x_train = np.array([[3.0], [1.0], [2.0], [4.0]])
    y_train = np.array([0, 2, 0, 2])
    dist = knn.pairwise_distances(np.zeros((1, 1)), x_train, "euclidean")
    scores, pred = knn.knn_all_k(dist, y_train, 3, k_max=4)
    np.testing.assert_allclose(scores[1, 0], [0.5, 0.0, 0.5])  # k=2: one vote each
    assert pred[1, 0] == 2  # class 2 owns the nearest neighbour (distance 1)
    assert pred[2, 0] == 0  # k=3: two votes for class 0
    assert pred[3, 0] == 2  # k=4: tied again, class 2 is still nearest
    # lowest class index is NOT the rule: swap labels and the winner follows the distance
    _, pred_swapped = knn.knn_all_k(dist, 2 - y_train, 3, k_max=4)
    assert pred_swapped[1, 0] == 0


def test_equal_distances_are_ordered_by_training_position():
    dist = np.array([[1.0, 0.5, 0.5, 0.5]])
    order, near = knn.nearest(dist, 3)
    np.testing.assert_array_equal(order, [[1, 2, 3]])
    np.testing.assert_allclose(near, [[0.5, 0.5, 0.5]])


def test_first_rank_marks_absent_classes_with_k_max():
    labels = np.array([[1, 1, 3], [0, 2, 0]])
    np.testing.assert_array_equal(knn.first_rank(labels, 4), [[3, 0, 3, 2], [0, 3, 1, 3]])


def test_bad_arguments_raise_config_error():
    with pytest.raises(ConfigError, match="metric"):
        knn.pairwise_distances(np.ones((2, 2)), np.ones((2, 2)), "manhattan")
    with pytest.raises(ConfigError, match="k_max"):
        knn.nearest(np.ones((2, 3)), 4)
    with pytest.raises(ConfigError, match="weighting"):
        knn.vote_scores(np.zeros((2, 3), dtype=int), 2, weighting="gaussian")
