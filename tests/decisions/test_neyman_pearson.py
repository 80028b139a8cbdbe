"""The threshold rule's guarantee, checked by simulation and against direct binomial sums."""

import numpy as np
import pytest
from scipy import stats

from notsure import NOT_SURE
from notsure.decisions import (
    ThresholdStrategy,
    allowed_exceedances,
    certifiable_fpr,
    choose_thresholds,
    ensemble_margins,
    logit_margins,
)
from notsure.errors import ConfigError


@pytest.mark.parametrize("n", [100, 19_000, 20_000, 54_000])
@pytest.mark.parametrize("alpha,delta", [(0.00015, 0.05), (0.01, 0.1), (0.05, 0.05)])
def test_allowed_exceedances_is_largest_r_with_bound_below_delta(n, alpha, delta):
    r = allowed_exceedances(n, alpha, delta)
    cdf = stats.binom.cdf(np.arange(0, n + 1), n, alpha)
    expected = int(np.flatnonzero(cdf <= delta).max()) if cdf[0] <= delta else -1
    assert r == expected


def test_about_twenty_thousand_negatives_are_needed_for_the_target():
    # (1 - alpha)^n <= delta  <=>  n >= log(delta) / log(1 - alpha)
    n_min = int(np.ceil(np.log(0.05) / np.log1p(-0.00015)))
    assert allowed_exceedances(n_min - 1, 0.00015, 0.05) == -1
    assert allowed_exceedances(n_min, 0.00015, 0.05) == 0
    assert certifiable_fpr(n_min, 0.05) <= 0.00015 < certifiable_fpr(n_min - 1, 0.05)


def test_guarantee_holds_in_simulation():
    """Negatives ~ N(0,1): the true FPR of the chosen threshold is norm.sf(t)."""
    rng = np.random.default_rng(0)
    alpha, delta, n, trials = 0.004, 0.1, 5_000, 2_000
    neg = rng.standard_normal((trials, n))
    r = allowed_exceedances(n, alpha, delta)
    assert r > 0
    t = -np.partition(-neg, r, axis=1)[:, r]
    true_fpr = stats.norm.sf(t)
    violation_rate = np.mean(true_fpr > alpha)
    # Exact violation probability is binom.cdf(r, n, alpha) <= delta; allow Monte Carlo error.
    exact = stats.binom.cdf(r, n, alpha)
    se = np.sqrt(exact * (1 - exact) / trials)
    assert violation_rate <= exact + 4 * se
    assert exact <= delta


def test_choose_thresholds_counts_and_certificate():
    rng = np.random.default_rng(1)
    n, c = 60_000, 3
    y = rng.integers(0, c, n)
    scores = rng.standard_normal((n, c)) + 4.0 * np.eye(c)[y]
    certs = choose_thresholds(scores, y, 0.00015, 0.05)
    for cert in certs:
        neg = scores[y != cert.label, cert.label]
        assert cert.n_negatives == neg.size
        assert cert.calibration_fp == np.count_nonzero(neg > cert.threshold)
        assert cert.calibration_fp <= cert.allowed_exceedances
        assert cert.certified and cert.violation_bound <= 0.05
        assert cert.mixture_bound_applies


def test_too_few_negatives_is_reported_not_pretended():
    rng = np.random.default_rng(2)
    y = rng.integers(0, 2, 1_000)
    scores = rng.standard_normal((1_000, 2))
    certs = choose_thresholds(scores, y, 0.00015, 0.05)
    for cert in certs:
        assert not cert.certified
        assert cert.allowed_exceedances == -1
        assert cert.calibration_fp == 0  # most conservative threshold: above every negative
        assert cert.certifiable_fpr > 0.00015


@pytest.mark.parametrize("alpha,delta", [(0.0, 0.05), (1.0, 0.05), (0.1, 0.0), (-1, 0.5)])
def test_rates_out_of_range_are_refused(alpha, delta):
    with pytest.raises(ConfigError, match="must lie in"):
        choose_thresholds(np.zeros((2, 2)), np.array([0, 1]), alpha, delta)


def test_scores_shape_mismatch_names_shapes():
    with pytest.raises(ConfigError, match=r"\(5, 2\)"):
        choose_thresholds(np.zeros((5, 2)), np.zeros(4, dtype=int), 0.1, 0.1)


def test_logit_margins_by_hand():
    z = np.array([[2.0, 1.0, -1.0], [0.0, 0.0, 3.0]])
    expected = np.array([[1.0, -1.0, -3.0], [-3.0, -3.0, 3.0]])
    np.testing.assert_allclose(logit_margins(z), expected)


def test_ensemble_margin_passes_only_if_every_member_passes():
    rng = np.random.default_rng(3)
    logits = rng.standard_normal((4, 500, 5)) * 3
    ens = ensemble_margins(logits)
    per_member = logit_margins(logits)
    t = 0.5
    assert np.array_equal(ens > t, np.all(per_member > t, axis=0))


def test_strategy_decides_by_hand():
    strategy = ThresholdStrategy(np.array([1.0, 2.0, 0.5]))
    scores = np.array([[1.5, -1.5, -3.0], [0.9, -0.9, -2.0], [-4.0, 2.5, -2.5], [-1.0, -2.0, 0.4]])
    assert strategy.decide(scores).tolist() == [0, NOT_SURE, 1, NOT_SURE]
    np.testing.assert_allclose(strategy.confidence(scores), [0.5, -0.1, 0.5, -0.1])
