"""The classical families' shortcuts against scikit-learn fitted the plain way: all-k k-NN,
depth prefixes of one tree, first-m-trees forests, and every family's grid."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.datasets import make_classification
from sklearn.ensemble import RandomForestClassifier
from sklearn.neighbors import KNeighborsClassifier
from sklearn.tree import DecisionTreeClassifier

from notsure.errors import ConfigError
from notsure.models import classical
from notsure.models.classical import (
    depth_predictions,
    families,
    neighbor_vote_shares,
    neighbor_votes,
    pixel_features,
    staged_forest_predictions,
)


@pytest.fixture(scope="module")
def data():
    x, y = make_classification(700, 12, n_informative=6, n_classes=3, random_state=0)
    x = x.astype(np.float32)
    return x[:500], y[:500], x[500:], y[500:]


@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
def test_neighbor_votes_match_scikit_learn_for_every_k(data, metric):
    x, y, xt, _ = data
    binary = y % 2  # two classes and odd k: no tied votes, so the tie rule cannot matter
    votes = neighbor_votes(x, binary, xt, metric, 9)
    for k in (1, 3, 5, 7, 9):
        ref = KNeighborsClassifier(k, metric=metric, algorithm="brute").fit(x, binary)
        assert np.array_equal(votes[k - 1], ref.predict(xt)), k


@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
def test_neighbor_vote_shares_equal_scikit_learn_probabilities(data, metric):
    x, y, xt, _ = data
    shares = neighbor_vote_shares(x, y, xt, metric, 7, n_classes=4)
    ref = KNeighborsClassifier(7, metric=metric, algorithm="brute").fit(x, y)
    assert shares.shape == (len(xt), 4)
    assert np.allclose(shares[:, :3], ref.predict_proba(xt))
    assert np.all(shares[:, 3] == 0)  # a class absent from the reference rows gets no votes
    with pytest.raises(ConfigError, match="k must lie"):
        neighbor_vote_shares(x, y, xt, metric, len(x) + 1, n_classes=4)
    with pytest.raises(ConfigError, match="class indices"):
        neighbor_vote_shares(x, y, xt, metric, 3, n_classes=2)


def test_neighbor_vote_model_predicts_like_its_grid(data):
    x, y, xt, _ = data
    model = classical.NeighborVote("cosine", 4).fit(x, y)
    assert np.array_equal(model.predict(xt), neighbor_votes(x, y, xt, "cosine", 10)[3])


def test_depth_prefixes_match_depth_limited_trees(data):
    x, y, xt, _ = data
    full = DecisionTreeClassifier(random_state=0).fit(x, y)
    depths = [1, 2, 3, full.get_depth(), full.get_depth() + 5]
    pred = depth_predictions(full, xt, depths)
    for d, p in zip(depths[:3], pred[:3], strict=True):
        # shallow nodes are large, so no two splits tie exactly: the same tree
        ref = DecisionTreeClassifier(max_depth=d, random_state=0).fit(x, y)
        assert np.array_equal(p, ref.predict(xt)), d
    assert np.array_equal(pred[3], full.predict(xt))
    assert np.array_equal(pred[4], full.predict(xt))


def test_first_trees_of_a_forest_are_the_smaller_forest(data):
    x, y, xt, _ = data
    big = RandomForestClassifier(20, random_state=4).fit(x, y)
    pred = staged_forest_predictions(big, xt, [3, 20, 7])
    for m, p in zip([3, 20, 7], pred, strict=True):
        ref = RandomForestClassifier(m, random_state=4).fit(x, y)
        assert np.array_equal(p, ref.predict(xt)), m


@pytest.mark.parametrize("name", list(families(quick=True)))
def test_grid_predict_gives_each_candidate_as_fitted_alone(data, name):
    x, y, xt, yt = data
    family = families(quick=True)[name]
    grid = family.grid_predict(x, y, xt, seed=0)
    assert grid.shape == (len(family.grid), len(xt))
    best = max(float(np.mean(p == yt)) for p in grid)
    assert best > 0.5  # 3 classes: chance is 1/3
    # spot-check candidates against a plain fit (tree: shallow only, see the prefix test)
    picks = [0, len(family.grid) - 1] if name != "tree" else [0, 1]
    for i in picks:
        alone = family.fit(family.grid[i], x, y, seed=0).predict(xt)
        assert np.array_equal(grid[i], alone), (name, family.grid[i])


def test_pixel_features_scale_images_and_keep_vectors():
    images = np.array([[[0, 255], [51, 102]]], np.uint8)
    assert np.allclose(pixel_features(images, 255.0), [[0, 1, 0.2, 0.4]])
    binary = np.array([[[0, 1], [1, 0]]], np.uint8)
    assert np.array_equal(pixel_features(binary, 1.0), [[0, 1, 1, 0]])
    vectors = np.ones((2, 3))
    assert pixel_features(vectors, 255.0).dtype == np.float32
