"""How big a locked test set should be: simulated from pool data, never from the test split.

The criterion "test FPR <= alpha" allows floor(alpha * m) false positives among a class's m test
negatives, so the test-set size is a design choice: more negatives allow more false positives
relative to their expected number, but leave fewer images to train and calibrate on. Here the
out-of-fold scores of a run's training pool stand in for both parts: each draw locks a stratified
test set of ``size`` images per class out of the pool, calibrates thresholds on the rest, and
counts the test set's false positives per class. The pool is smaller than the whole dataset, so
every draw calibrates on fewer negatives than a real run of that size would: the pass rates are
slightly pessimistic, and the models' strength (trained on the whole pool) is held fixed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from notsure.analysis.ambiguity import confident_learning
from notsure.decisions.neyman_pearson import (
    all_classes_pass_probability,
    allowed_test_fp,
    choose_thresholds,
)
from notsure.decisions.strategy import ThresholdStrategy
from notsure.errors import ConfigError
from notsure.metrics import coverage, per_class_rates


@dataclass(frozen=True)
class SizeOutcome:
    """One test-set size, averaged over the draws."""

    size: int  # test images per class
    allowed_fp: int  # false positives a class may show: floor(alpha * m)
    coverage: float  # mean test coverage
    pass_rate: float  # share of draws in which every class passed
    estimate: float  # mean Bonferroni estimate of that probability from the calibration part
    draws: int

    @property
    def coverage_times_pass(self) -> float:
        return self.coverage * self.pass_rate


def simulate_test_sizes(scores: np.ndarray, rank: np.ndarray, y: np.ndarray,
                        sizes: Sequence[int], *, target_fpr: float, delta: float,
                        meaning: str, draws: int = 100, seed: int = 0,
                        probabilities: np.ndarray | None = None) -> list[SizeOutcome]:
    """Lock ``draws`` test sets of each size in ``sizes`` out of pool rows scored ``scores``
    ``(N, C)`` (the deployed rule's calibration scores; ``rank`` picks the candidate), calibrate on
    the rest with ``meaning``, and count how often every class passes the test criterion.

    With ``probabilities`` (out-of-fold, ``(N, C)``), each draw leaves out of calibration the
    negatives that confident learning on the calibration part flags as label errors: what
    ignoring likely label errors would buy in coverage and cost in passed test sets.
    """
    scores, rank, y = np.asarray(scores), np.asarray(rank), np.asarray(y)
    n_classes = scores.shape[1]
    by_class = [np.flatnonzero(y == c) for c in range(n_classes)]
    rng = np.random.default_rng(seed)
    out = []
    for size in sizes:
        if size < 1 or size >= min(len(ix) for ix in by_class):
            raise ConfigError(f"sizes: {size} per class leaves no calibration images of some "
                              "class; give sizes below the smallest class count")
        m = size * (n_classes - 1)
        allowed = allowed_test_fp(target_fpr, m)
        covered, passed, estimate = [], [], []
        for _ in range(draws):
            test = np.concatenate([rng.choice(ix, size, replace=False) for ix in by_class])
            cal = np.ones(len(y), dtype=bool)
            cal[test] = False
            if probabilities is not None:
                rows = np.flatnonzero(cal)
                cal[rows[confident_learning(probabilities[rows], y[rows]).issues]] = False
            certs = choose_thresholds(scores[cal], y[cal], target_fpr, delta, meaning=meaning,
                                      test_negatives=m)
            pred = ThresholdStrategy.from_certificates(certs).decide(scores[test], rank[test])
            fp = per_class_rates(y[test], pred, np.arange(n_classes)).fp
            covered.append(coverage(pred))
            passed.append(bool(np.all(fp <= allowed)))
            estimate.append(all_classes_pass_probability(
                [c.test_pass_probability for c in certs]))
        out.append(SizeOutcome(size=int(size), allowed_fp=allowed,
                               coverage=float(np.mean(covered)),
                               pass_rate=float(np.mean(passed)),
                               estimate=float(np.mean(estimate)), draws=draws))
    return out
