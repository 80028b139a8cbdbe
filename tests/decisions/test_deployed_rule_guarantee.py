"""The deployed rules' guarantees, checked by simulation on scores whose true FPR is known.

Fold ensembles give negatives scores from different normal distributions, so the true FPR of a
threshold is a closed form: the routed rule's is the average of the folds' normal tails, the
min-fold rule's at most the smallest. Calibration draws the pooled out-of-fold negatives as
cross-fitting does (n / K from each fold); each repetition checks the stated event.
"""

import numpy as np
import pytest
from scipy import stats

from notsure.decisions import (
    allowed_exceedances_for_test,
    choose_thresholds,
    criterion_pass_probability,
    deployed_scores,
    route,
)

FOLDS = [(0.0, 1.0), (0.4, 1.3)]  # (mean, sd) of negatives' scores under each fold ensemble
ALPHA, DELTA, N_NEG, REPS = 0.01, 0.1, 2_000, 1_500


def _pooled_threshold(rng, meaning: str, test_negatives: int = 0) -> tuple[float, int]:
    """A class-0 threshold from pooled out-of-fold negatives (class 1 rows), and its r."""
    per_fold = N_NEG // len(FOLDS)
    neg = np.concatenate([rng.normal(mu, sd, per_fold) for mu, sd in FOLDS])
    pos = rng.normal(5.0, 1.0, 200)
    scores = np.zeros((N_NEG + 200, 2))
    scores[:, 0] = np.concatenate([neg, pos])
    y = np.r_[np.ones(N_NEG, int), np.zeros(200, int)]
    cert = choose_thresholds(scores, y, ALPHA, DELTA, meaning=meaning,
                             test_negatives=test_negatives or None)[0]
    return cert.threshold, cert.allowed_exceedances


def _true_fpr(t: float, rule: str) -> float:
    tails = [stats.norm.sf(t, mu, sd) for mu, sd in FOLDS]
    return float(np.mean(tails)) if rule == "routed" else float(min(tails))


@pytest.mark.parametrize("rule", ["routed", "min-fold"])
def test_rate_meaning_true_fpr_exceeds_target_at_most_delta_of_the_time(rule):
    rng = np.random.default_rng(11)
    fpr = np.array([_true_fpr(_pooled_threshold(rng, "rate")[0], rule) for _ in range(REPS)])
    share = np.mean(fpr > ALPHA)
    tolerance = 3 * np.sqrt(DELTA * (1 - DELTA) / REPS)
    assert share <= DELTA + tolerance
    if rule == "routed":  # the bound is nearly tight for the exactly calibrated rule
        assert share >= DELTA / 4


def test_a_naive_quantile_threshold_fails_the_same_check():
    # Negative control: the empirical (1 - alpha) quantile (r = n * alpha) breaks the target about
    # half of the time, so the simulation above can detect a wrong rule.
    rng = np.random.default_rng(12)
    fails = []
    for _ in range(300):
        neg = np.concatenate([rng.normal(mu, sd, N_NEG // 2) for mu, sd in FOLDS])
        t = np.sort(neg)[-int(N_NEG * ALPHA) - 1]
        fails.append(_true_fpr(t, "routed") > ALPHA)
    assert np.mean(fails) > 0.3


def test_test_meaning_passes_the_test_criterion_with_stated_probability():
    rng = np.random.default_rng(13)
    m = 1_000  # test negatives; the criterion allows floor(alpha * m) = 10 false positives
    passes, stated = [], []
    for _ in range(REPS):
        t, r = _pooled_threshold(rng, "test", test_negatives=m)
        # A test set routed over the folds by content: half of its negatives to each.
        fp = sum(rng.binomial(m // 2, stats.norm.sf(t, mu, sd)) for mu, sd in FOLDS)
        passes.append(fp <= int(ALPHA * m))
        stated.append(criterion_pass_probability(N_NEG, r, ALPHA, m))
    tolerance = 3 * np.sqrt(DELTA * (1 - DELTA) / REPS)
    assert np.mean(passes) >= 1 - DELTA - tolerance
    assert min(stated) >= 1 - DELTA
    assert allowed_exceedances_for_test(N_NEG, ALPHA, DELTA, m) == r


def test_pass_probability_matches_simulated_uniform_order_statistics():
    # Exact claim: the FPR at the (r+1)-th largest of n continuous negatives is Beta(r+1, n-r).
    rng = np.random.default_rng(14)
    n, r, m, alpha = 500, 2, 400, 0.01
    u = np.sort(rng.random((20_000, n)), axis=1)[:, n - r - 1]  # (r+1)-th largest uniform
    fp = rng.binomial(m, 1 - u)
    assert abs(np.mean(fp <= int(alpha * m)) - criterion_pass_probability(n, r, alpha, m)) < 0.01


def test_routed_rule_answers_from_the_routed_fold_ensemble_only():
    rng = np.random.default_rng(15)
    x = rng.integers(0, 256, (400, 28, 28), dtype=np.uint8)
    routes = route(x, 2)
    assert set(np.unique(routes)) == {0, 1} and abs(routes.mean() - 0.5) < 0.1
    assert np.array_equal(routes, route(x.copy(), 2))  # content decides, not identity
    z = rng.normal(size=(4, 400, 3))  # 2 folds x 2 members
    cand, scores = deployed_scores("routed", z, 2, routes)
    fold_means = z.reshape(2, 2, 400, 3).mean(axis=1)
    assert np.allclose(cand, fold_means[routes, np.arange(400)])
    # min-fold: a pass needs every fold ensemble's margin above the threshold.
    _, min_scores = deployed_scores("min-fold", z, 2, routes)
    assert np.all(min_scores <= scores + 1e-12)
