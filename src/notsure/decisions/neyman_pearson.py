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

What ``alpha`` means is the user's choice (``meaning``):

- ``"rate"``: the true FPR is at most ``alpha`` with probability >= 1 - delta (above).
- ``"test"``: a test set with m negatives of the class will show at most floor(alpha * m) false
  positives (the criterion "test FPR <= alpha") with probability >= 1 - delta. With continuous
  scores the FPR at the (r+1)-th largest of n calibration negatives is exactly Beta(r+1, n-r)
  distributed, so the test count is Beta-binomial(m, r+1, n-r): :func:`test_pass_probability`.
  A test set of 9,000 negatives fails at 2 false positives (2/9000 > 0.00015), so this meaning
  asks for a much lower rate than ``"rate"`` does.
- ``"test-all"``: *every* class passes that test criterion with probability >= 1 - delta: each
  class gets the ``"test"`` rule at delta / C, so the failure probabilities add up to at most
  delta (Bonferroni; no independence between classes assumed). This is the customer's event: a
  report that fails one class fails.

Pooled out-of-fold scores from K fold models are a mixture of K score distributions; the count of
passing negatives is then Poisson-binomial with the mixture's mean rate, whose lower tail is
bounded by the binomial one for r <= n*alpha - 1 (Hoeffding, 1956), so the bound holds for the
mixture's (average) FPR; :func:`notsure.decisions.scores.ensemble_margins` carries it to the
ensemble.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

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
    from scipy import stats  # here: ~1 s to import, and predict/serve never need it

    return float(stats.binom.cdf(r, n, alpha))


def allowed_test_fp(alpha: float, m: int) -> int:
    """False positives a test set with ``m`` negatives of a class may show and still have FPR
    <= ``alpha``: floor(alpha * m) (with a little room for rounding, e.g. 0.00015 * 13,334)."""
    return int(np.floor(alpha * m + 1e-9))


def criterion_pass_probability(n: int, r: int, alpha: float, m: int) -> float:
    """P(a test set with ``m`` negatives shows at most floor(alpha * m) false positives) when the
    threshold lets ``r`` of ``n`` calibration negatives pass (Beta-binomial, exact for continuous
    scores over calibration and test draws)."""
    if n <= 0 or m <= 0:
        return float("nan") if m <= 0 else 0.0
    r = min(max(r, 0), n - 1)
    from scipy import stats

    return float(stats.betabinom.cdf(allowed_test_fp(alpha, m), m, r + 1, n - r))


def allowed_exceedances_for_test(n: int, alpha: float, delta: float, m: int) -> int:
    """Largest r whose :func:`test_pass_probability` is at least 1 - delta; -1 if none."""
    _check_rates(alpha, delta)
    r = -1
    while r + 1 < n and criterion_pass_probability(n, r + 1, alpha, m) >= 1 - delta:
        r += 1
    return r


def all_classes_pass_probability(per_class: Sequence[float]) -> float:
    """Lower bound (Bonferroni) on P(every class passes the test) from per-class probabilities;
    no independence between classes is assumed."""
    values = np.asarray([p for p in per_class if p is not None and np.isfinite(p)],
                        dtype=np.float64)
    return float(max(0.0, 1.0 - np.sum(1.0 - values)))


def allowed_exceedances(n: int, alpha: float, delta: float) -> int:
    """Largest r with ``P(Binomial(n, alpha) <= r) <= delta``; -1 if none (n is too small)."""
    _check_rates(alpha, delta)
    if n <= 0:
        return -1
    # binom.ppf gives the smallest r with cdf(r) >= delta; step back while the bound is violated.
    from scipy import stats

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
    meaning: str = "rate"  # what alpha means: one of MEANINGS
    test_negatives: int = 0  # m: negatives of this class in the test set the "test" meaning uses
    test_pass_probability: float | None = None  # P(test FPR <= alpha) given r, n and m

    def as_dict(self) -> dict:
        return asdict(self)


def certificate_rows(certificates: Sequence[ClassCertificate], class_names: Sequence
                     ) -> list[dict]:
    """One table row per class: counts, threshold, the guarantee and whether it is certified;
    the test-pass probability where it was computed."""
    rows = []
    for c in certificates:
        row = {"class": class_names[c.label], "negatives": c.n_negatives,
               "positives": c.n_positives, "allowed_fp": c.allowed_exceedances,
               "calibration_fp": c.calibration_fp, "threshold": c.threshold,
               "P(FPR>target)<=": c.violation_bound}
        if c.test_pass_probability is not None:
            row["P(test FPR<=target)"] = c.test_pass_probability
        row.update({"certified": "yes" if c.certified else "NO",
                    "certifiable_fpr": c.certifiable_fpr, "calibration_tpr": c.calibration_tpr})
        rows.append(row)
    return rows


MEANINGS = ("rate", "test", "test-all")
#: What each meaning of the target promises, in one line (reports and ``--help``).
MEANING_TEXT = {
    "rate": "the true FPR of every class is <= target with probability >= 1 - delta",
    "test": "a test set of the given size shows each class's FPR <= target with probability "
            ">= 1 - delta",
    "test-all": "a test set of the given size shows every class's FPR <= target at once with "
                "probability >= 1 - delta",
}


def class_delta(meaning: str, delta: float, n_classes: int) -> float:
    """The failure probability each class's threshold is chosen for: ``delta / n_classes`` when
    every class must pass at once (``"test-all"``, Bonferroni), else ``delta``."""
    return delta / n_classes if meaning == "test-all" else delta


def choose_thresholds(
    scores: np.ndarray, y: np.ndarray, alpha: float, delta: float, *,
    meaning: str = "rate", test_negatives: Sequence[int] | int | None = None,
) -> list[ClassCertificate]:
    """Per-class thresholds on ``scores`` (N, C) from calibration labels ``y`` (N,) in 0..C-1.

    Class c is predicted only when ``scores[:, c] > threshold_c``. A class whose negatives are too
    few for the target gets the most conservative threshold the data allow (above every negative,
    r = 0) and ``certified=False``, with the FPR that it does certify. ``meaning="test"`` picks r
    so a test set with ``test_negatives`` negatives of the class (one count, or one per class)
    passes "FPR <= alpha" with probability >= 1 - delta; ``"test-all"`` does so at delta / C, so
    that every class passes at once with probability >= 1 - delta. Each certificate reports its
    class's pass probability whenever ``test_negatives`` is given.
    """
    _check_rates(alpha, delta)
    if meaning not in MEANINGS:
        raise ConfigError(f"meaning must be one of {MEANINGS}, got {meaning!r}")
    if meaning != "rate" and test_negatives is None:
        raise ConfigError(f"meaning={meaning!r} needs test_negatives (negatives per class in the "
                          "test)")
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
    if test_negatives is None:
        m_per_class = np.zeros(n_classes, dtype=np.int64)
    else:
        m_per_class = np.broadcast_to(np.asarray(test_negatives, dtype=np.int64), (n_classes,))
    certificates = []
    delta_c = class_delta(meaning, delta, n_classes)
    for c in range(n_classes):
        neg = scores[y != c, c]
        pos = scores[y == c, c]
        n = neg.size
        m = int(m_per_class[c])
        r = (allowed_exceedances(n, alpha, delta) if meaning == "rate"
             else allowed_exceedances_for_test(n, alpha, delta_c, m))
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
            meaning=meaning, test_negatives=m,
            test_pass_probability=(criterion_pass_probability(n, r_used, alpha, m) if m > 0
                                   else None),
        ))
    return certificates
