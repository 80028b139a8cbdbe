"""The out-of-distribution guard against scipy's Mahalanobis distance and simulations."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats
from scipy.spatial.distance import mahalanobis
from sklearn.decomposition import PCA

from notsure.decisions.ood import (
    OODGuard,
    PixelGuard,
    fit_class_gaussians,
    fit_pixel_pca,
    keep_threshold,
)
from notsure.errors import ConfigError


def gaussian_classes(n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Three classes in 5-D with different means and one shared (non-diagonal) covariance."""
    means = np.array([[0, 0, 0, 0, 0], [6, 0, 0, 0, 0], [0, 6, 3, 0, 0]], float)
    a = np.random.default_rng(100).normal(size=(5, 5))  # the same distribution for every seed
    cov = a @ a.T + np.eye(5)
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    x = means[y] + rng.multivariate_normal(np.zeros(5), cov, n)
    return x, y, cov


def test_distances_match_scipy_with_the_pooled_within_class_covariance():
    x, y, _ = gaussian_classes(2000, 0)
    g = fit_class_gaussians(x, y, 3, ridge=0.0)
    means = np.stack([x[y == c].mean(0) for c in range(3)])
    centred = x - means[y]
    cov = centred.T @ centred / (len(x) - 3)
    np.testing.assert_allclose(g.means, means)
    np.testing.assert_allclose(np.linalg.inv(g.precision), cov, rtol=1e-8)
    probe = np.random.default_rng(1).normal(size=(20, 5)) * 5
    vi = np.linalg.inv(cov)
    want = [min(mahalanobis(p, m, vi) for m in means) for p in probe]
    np.testing.assert_allclose(g.distances(probe), want, rtol=1e-8)


def test_in_distribution_distances_follow_the_chi_distribution():
    """Known truth: for one Gaussian class, squared distances are chi-square with F dof."""
    x, y, _ = gaussian_classes(20000, 2)
    g = fit_class_gaussians(x[y == 0], np.zeros(int(np.sum(y == 0)), int), 1)
    fresh, fy, _ = gaussian_classes(20000, 3)
    d2 = g.distances(fresh[fy == 0]) ** 2
    assert stats.kstest(d2, stats.chi2(5).cdf).statistic < 0.02


def test_threshold_keeps_the_share_asked_for_and_far_points_are_rejected():
    x, y, _ = gaussian_classes(4000, 4)
    members = (fit_class_gaussians(x[:2000], y[:2000], 3),
               fit_class_gaussians(x[2000:], y[2000:], 3))
    held, hy, _ = gaussian_classes(4000, 5)
    scores = np.mean([m.distances(held) for m in members], axis=0)
    threshold = keep_threshold(scores, 0.99)
    assert np.mean(scores <= threshold) >= 0.99
    assert np.mean(scores < threshold) < 0.99  # the smallest such threshold
    guard = OODGuard(members=members, threshold=threshold, keep=0.99)
    fresh, _, _ = gaussian_classes(20000, 6)
    both = np.stack([fresh, fresh])
    assert abs(np.mean(guard.rejects(both)) - 0.01) < 0.005
    far = np.full((2, 10, 5), 50.0)
    assert guard.rejects(far).all()


def test_guard_round_trips_through_json_form():
    x, y, _ = gaussian_classes(500, 7)
    guard = OODGuard(members=(fit_class_gaussians(x, y, 3),), threshold=3.5, keep=0.995)
    back = OODGuard.from_dict(guard.to_dict())
    assert back.threshold == 3.5 and back.keep == 0.995
    np.testing.assert_array_equal(back.score(x[None]), guard.score(x[None]))
    with pytest.raises(ConfigError, match="not a valid guard"):
        OODGuard.from_dict({"format": "something else"})


def test_bad_inputs_name_the_parameter():
    x, y, _ = gaussian_classes(100, 8)
    with pytest.raises(ConfigError, match="class index 2"):
        fit_class_gaussians(x[y < 2], y[y < 2], 3)
    with pytest.raises(ConfigError, match="keep=1.5"):
        keep_threshold(np.ones(3), 1.5)
    guard = OODGuard(members=(fit_class_gaussians(x, y, 3),), threshold=1.0, keep=0.99)
    with pytest.raises(ConfigError, match=r"shape \(1, N, F\)"):
        guard.score(x)


def low_rank_images(n: int, seed: int, rank: int = 5) -> np.ndarray:
    """Images 8x8 on a fixed 5-D subspace plus small noise: known to be low rank."""
    basis = np.random.default_rng(200).normal(size=(rank, 64))  # same subspace for every seed
    rng = np.random.default_rng(seed)
    return (rng.normal(size=(n, rank)) @ basis * 10 + 100
            + rng.normal(size=(n, 64))).reshape(n, 8, 8)


def test_pixel_errors_match_scikit_learn_pca_reconstruction():
    x = low_rank_images(500, 0)
    model = fit_pixel_pca(x, n_components=5)
    ref = PCA(n_components=5).fit(x.reshape(500, -1))
    probe = low_rank_images(50, 1).reshape(50, -1)
    rebuilt = ref.inverse_transform(ref.transform(probe))
    want = np.sqrt(np.mean((probe - rebuilt) ** 2, axis=1))
    np.testing.assert_allclose(model.errors(probe.reshape(50, 8, 8)), want, rtol=1e-8)


def test_pixel_guard_keeps_in_distribution_images_and_rejects_inverted_ones():
    """Two folds, each with its own components; the threshold from out-of-fold images keeps
    about the share asked for on fresh in-distribution images, and inverted images (255 - x)
    are all far off."""
    train = [low_rank_images(400, 10 + k) for k in range(2)]
    held = [low_rank_images(2000, 20 + k) for k in range(2)]
    folds = tuple(fit_pixel_pca(t, n_components=5) for t in train)
    guard = PixelGuard(folds=folds, threshold=0.0, keep=0.99)
    oof = np.concatenate([folds[k].errors(held[k]) for k in range(2)])
    guard = PixelGuard(folds=folds, threshold=keep_threshold(oof, 0.99), keep=0.99)
    fresh = low_rank_images(20000, 30)
    routes = np.arange(len(fresh)) % 2
    rejected = np.mean(guard.score(fresh, routes) > guard.threshold)
    assert rejected == pytest.approx(0.01, abs=0.006)
    inverted = 255 - fresh[:500]
    assert np.all(guard.score(inverted, routes[:500]) > guard.threshold)
    doc = guard.to_dict()
    again = PixelGuard.from_dict(doc)
    np.testing.assert_array_equal(again.score(fresh[:10], routes[:10]),
                                  guard.score(fresh[:10], routes[:10]))


def test_ink_statistics_by_hand():
    from notsure.decisions.ood import ink_statistics

    image = np.zeros((1, 6, 6), dtype=np.uint8)
    image[0, 1:4, 1:4] = 255  # a filled 3x3 square: its centre pixel has four inked neighbours
    image[0, 5, 5] = 100  # one grey pixel
    image[0, 0, 5] = 10  # below the ink level
    n_ink, grey, mean_ink, filled = ink_statistics(image)[0]
    assert n_ink == pytest.approx(np.log1p(10))
    assert grey == pytest.approx(1 / 10)
    assert mean_ink == pytest.approx((9 * 255 + 100) / 10 / 255)
    assert filled == pytest.approx(1 / 10)


def test_ink_guard_matches_scipy_keeps_strokes_and_rejects_clothing():
    from notsure.data.outliers import draw_clothing, draw_strokes
    from notsure.decisions.ood import InkGuard, fit_ink_guard, ink_statistics

    rng = np.random.default_rng(3)
    train, held = draw_strokes(1500, rng), draw_strokes(1500, rng)
    guard, held_scores = fit_ink_guard(train, held, keep=0.99)
    assert np.mean(held_scores <= guard.threshold) >= 0.99
    fresh = draw_strokes(1500, rng)
    assert np.mean(guard.score(fresh) > guard.threshold) == pytest.approx(0.01, abs=0.01)
    clothing = draw_clothing(300, rng)
    assert np.mean(guard.score(clothing) > guard.threshold) > 0.8
    stats_ = ink_statistics(clothing[:5])
    cov = np.cov(ink_statistics(train), rowvar=False)
    want = [mahalanobis(s, ink_statistics(train).mean(axis=0), np.linalg.inv(cov))
            for s in stats_]
    np.testing.assert_allclose(guard.score(clothing[:5]), want, rtol=1e-5)  # a 1e-9 ridge
    again = InkGuard.from_dict(guard.to_dict())
    np.testing.assert_array_equal(again.score(clothing), guard.score(clothing))
