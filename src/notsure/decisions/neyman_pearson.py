"""Neyman-Pearson order-statistic thresholds with a finite-sample false positive guarantee.

For class c, let the calibration negatives (samples whose true class is not c) have scores
S_1..S_n, drawn i.i.d. from the score distribution of fresh negatives. Put the threshold at the
(r+1)-th largest of them and predict c only when the score is strictly above it, so at most r
calibration negatives pass. The true false positive rate then exceeds ``alpha`` with probability

    P(FPR > alpha) <= P(Binomial(n, alpha) <= r)

(the threshold is an order statistic of uniforms after the probability integral transform; ties
only make the rule more conservative). We take the largest r whose bound is at most ``delta``.
If even r = 0 fails, n is too small: ``(1 - alpha)^n > delta``, i.e. n < log(delta)/log(1 - alpha)
(about 20,000 for alpha = 0.00015, delta = 0.05). The certificate then says so and gives the
smallest FPR that *can* be certified with these n: ``1 - delta^(1/n)``.

Pooled out-of-fold scores from K fold models are a mixture of K score distributions; the count of
passing negatives is then Poisson-binomial with the mixture's mean rate, whose lower tail is
bounded by the binomial one for r <= n*alpha - 1 (Hoeffding, 1956), so the bound holds for the
mixture's (average) FPR; :func:`notsure.decisions.scores.ensemble_margins` carries it to the
ensemble.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from scipy import stats

from notsure.errors import ConfigError

#: The customer's requirement: every class's false positive rate at most this...
DEFAULT_TARGET_FPR = 0.00015
#: ...except with probability at most this over the draw of the calibration data.
DEFAULT_DELTA = 0.05


def _check_rates(alpha: float, delta: float) -> None:
    if not 0.0 < alpha < 1.0:
        raise ConfigError(f"target FPR must lie in (0, 1), got {alpha}")
    if not 0.0 < delta < 1.0:
        raise ConfigError(f"delta must lie in (0, 1), got {delta}")


def violation_probability(n: int, r: int, alpha: float) -> float:
    """Upper bound on P(FPR > alpha) when at most ``r`` of ``n`` calibration negatives pass."""
    return float(stats.binom.cdf(r, n, alpha))


def allowed_exceedances(n: int, alpha: float, delta: float) -> int:
    """Largest r with ``P(Binomial(n, alpha) <= r) <= delta``; -1 if none (n is too small)."""
    _check_rates(alpha, delta)
    if n <= 0:
        return -1
    # binom.ppf gives the smallest r with cdf(r) >= delta; step back while the bound is violated.
    r = int(stats.binom.ppf(delta, n, alpha))
    while r >= 0 and violation_probability(n, r, alpha) > delta:
        r -= 1
    return r


def min_negatives(target_fpr: float, delta: float) -> int:
    """Fewest calibration negatives a class needs to certify ``target_fpr`` at confidence
    ``1 - delta`` (r = 0: ``(1 - alpha)^n <= delta``); check it before training anything."""
    _check_rates(target_fpr, delta)
    n = max(1, int(np.ceil(np.log(delta) / np.log1p(-target_fpr))))
    while allowed_exceedances(n, target_fpr, delta) < 0:  # guard against rounding
        n += 1
    while n > 1 and allowed_exceedances(n - 1, target_fpr, delta) >= 0:
        n -= 1
    return n


def certifiable_fpr(n: int, delta: float) -> float:
    """Smallest FPR certifiable at confidence 1 - delta from n negatives (r = 0): 1-delta^(1/n)."""
    return float(1.0 - delta ** (1.0 / n)) if n > 0 else 1.0


@dataclass(frozen=True)
class ClassCertificate:
    """How one class's threshold was chosen and what it guarantees."""

    label: int
    n_negatives: int
    n_positives: int
    allowed_exceedances: int
    threshold: float
    calibration_fp: int
    calibration_tpr: float
    violation_bound: float
    certified: bool
    certifiable_fpr: float
    mixture_bound_applies: bool


    def as_dict(self) -> dict:
        return asdict(self)


def choose_thresholds(
    scores: np.ndarray, y: np.ndarray, alpha: float, delta: float
) -> list[ClassCertificate]:
    """Per-class thresholds on ``scores`` (N, C) from calibration labels ``y`` (N,) in 0..C-1.

    Class c is predicted only when ``scores[:, c] > threshold_c``. A class whose negatives are too
    few for the target gets the most conservative threshold the data allow (above every negative,
    r = 0) and ``certified=False``, with the FPR that it does certify.
    """
    _check_rates(alpha, delta)
    scores = np.asarray(scores, dtype=np.float64)
    y = np.asarray(y)
    if scores.ndim != 2 or scores.shape[0] != y.shape[0]:
        raise ConfigError(
            f"scores must have shape (N, C) with N = len(y) = {y.shape[0]}, got {scores.shape}"
        )
    if not np.all(np.isfinite(scores)):
        raise ConfigError("calibration scores contain NaN or inf")
    n_classes = scores.shape[1]
    if y.size and (y.min() < 0 or y.max() >= n_classes):
        raise ConfigError(f"calibration labels must lie in 0..{n_classes - 1}")
    certificates = []
    for c in range(n_classes):
        neg = scores[y != c, c]
        pos = scores[y == c, c]
        n = neg.size
        r = allowed_exceedances(n, alpha, delta)
        certified = r >= 0
        r_used = max(r, 0)
        if n == 0:
            threshold = -np.inf
        else:
            # (r+1)-th largest negative score; predicting only strictly above it lets <= r pass.
            threshold = float(-np.partition(-neg, min(r_used, n - 1))[min(r_used, n - 1)])
        fp = int(np.count_nonzero(neg > threshold))
        tpr = float(np.mean(pos > threshold)) if pos.size else float("nan")
        bound = violation_probability(n, r_used, alpha) if n else 1.0
        certificates.append(ClassCertificate(
            label=c, n_negatives=int(n), n_positives=int(pos.size),
            allowed_exceedances=r, threshold=threshold, calibration_fp=fp,
            calibration_tpr=tpr, violation_bound=bound, certified=certified,
            certifiable_fpr=certifiable_fpr(n, delta),
            # Hoeffding's comparison (pooled out-of-fold scores) needs r <= n * alpha - 1.
            mixture_bound_applies=bool(r_used <= n * alpha - 1),
        ))
    return certificates
