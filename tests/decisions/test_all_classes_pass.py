"""The ``test-all`` meaning and its all-class pass probability, checked by simulation on scores
whose true FPR is known, and the test-size simulation checked against the same closed form.

Negatives' scores are uniform on (0, 1), so a threshold t has true FPR exactly 1 - t, and a test
set's false positives of a class are Binomial(m, 1 - t): the known truth each estimate is held to.
"""

import numpy as np
from scipy import stats

from notsure.decisions import (
    all_classes_pass_probability,
    allowed_exceedances_for_test,
    choose_thresholds,
    class_delta,
    criterion_pass_probability,
)
from notsure.decisions.test_size import simulate_test_sizes

C, N_PER_CLASS, ALPHA, DELTA, REPS = 4, 1_000, 0.005, 0.2, 1_500
M = 600  # test negatives per class: floor(0.005 * 600) = 3 false positives allowed


def _draw(rng):
    """Calibration scores (N, C) with labels; every column's negatives are i.i.d. uniform."""
    y = np.repeat(np.arange(C), N_PER_CLASS)
    return rng.uniform(size=(len(y), C)), y


def test_every_class_passes_at_least_one_minus_delta_of_the_time_and_as_estimated():
    rng = np.random.default_rng(21)
    passed, estimates, products = [], [], []
    for _ in range(REPS):
        scores, y = _draw(rng)
        certs = choose_thresholds(scores, y, ALPHA, DELTA, meaning="test-all", test_negatives=M)
        true_fpr = np.array([1 - c.threshold for c in certs])
        fp = rng.binomial(M, true_fpr)
        passed.append(np.all(fp <= np.floor(ALPHA * M)))
        per_class = [c.test_pass_probability for c in certs]
        estimates.append(all_classes_pass_probability(per_class))
        products.append(np.prod(per_class))
    share = np.mean(passed)
    se = np.sqrt(share * (1 - share) / REPS)
    assert share >= 1 - DELTA - 3 * se  # the promise
    assert share >= np.mean(estimates) - 3 * se  # the Bonferroni estimate is a lower bound
    assert abs(share - np.mean(products)) <= 3 * se + 0.005  # independent classes: the product
    assert share <= 1 - DELTA / 4  # not vacuous: the thresholds use the failure budget


def test_test_all_spends_delta_over_classes_per_class():
    rng = np.random.default_rng(22)
    scores, y = _draw(rng)
    certs = choose_thresholds(scores, y, ALPHA, DELTA, meaning="test-all", test_negatives=M)
    assert class_delta("test-all", DELTA, C) == DELTA / C
    for c in certs:
        n, r = c.n_negatives, c.allowed_exceedances
        assert criterion_pass_probability(n, r, ALPHA, M) >= 1 - DELTA / C
        assert criterion_pass_probability(n, r + 1, ALPHA, M) < 1 - DELTA / C
        # the Beta-binomial pass probability equals the binomial averaged over the threshold's
        # Beta(r+1, n-r) distribution of true FPRs
        p = stats.beta(r + 1, n - r).rvs(20_000, random_state=1)
        mc = np.mean(stats.binom.cdf(np.floor(ALPHA * M), M, p))
        assert abs(mc - c.test_pass_probability) < 0.01


def test_simulated_pass_rate_matches_the_closed_form_on_known_scores():
    # Margin-like pool scores: each image's candidate is its class 90% of the time, else another;
    # the candidate's column holds a positive score (higher when right), every other column a
    # negative one. Each column's negatives are exchangeable and continuous, so a class passes a
    # simulated test set with the Beta-binomial probability of its r, nearly independently.
    rng = np.random.default_rng(23)
    n_pool = 3_000
    y = np.repeat(np.arange(C), n_pool)
    cand = np.where(rng.uniform(size=len(y)) < 0.9, y,
                    (y + rng.integers(1, C, size=len(y))) % C)
    scores = -rng.uniform(size=(len(y), C))
    scores[np.arange(len(y)), cand] = rng.uniform(size=len(y)) + (cand == y)  # right: higher
    size = 200  # m = 600 test negatives per class, as above
    out = simulate_test_sizes(scores, scores, y, [size], target_fpr=ALPHA, delta=DELTA,
                              meaning="test-all", draws=400, seed=3)[0]
    n_neg = (n_pool - size) * (C - 1)
    r = allowed_exceedances_for_test(n_neg, ALPHA, DELTA / C, M)
    per_class = criterion_pass_probability(n_neg, r, ALPHA, M)
    expected = per_class ** C
    se = np.sqrt(expected * (1 - expected) / out.draws)
    assert out.allowed_fp == 3
    assert abs(out.pass_rate - expected) <= 3 * se + 0.01
    assert abs(out.estimate - all_classes_pass_probability([per_class] * C)) < 1e-9
    assert 0.85 < out.coverage < 0.95  # the right candidates answered, the thresholds above
