"""Exact (Clopper-Pearson) confidence intervals for proportions such as TPR, FPR and precision."""

from __future__ import annotations

import numpy as np
from scipy import special

from notsure.errors import ConfigError


def _check_counts(value: object, name: str) -> np.ndarray:
    arr = np.asarray(value, dtype=np.float64)
    if not np.isfinite(arr).all() or (arr < 0).any() or (arr != np.round(arr)).any():
        raise ConfigError(f"{name} must hold non-negative whole counts, got {value!r}")
    return arr


def clopper_pearson(
    k: object, n: object, confidence: float = 0.95
) -> tuple[np.ndarray, np.ndarray]:
    """Exact two-sided interval ``(lo, hi)`` for a proportion ``k / n``, element-wise.

    ``lo`` is the ``(1 - confidence) / 2`` quantile of Beta(k, n - k + 1) and ``hi`` the upper
    ``(1 - confidence) / 2`` quantile of Beta(k + 1, n - k); ``lo = 0`` when ``k = 0``,
    ``hi = 1`` when ``k = n``, and both are NaN when ``n = 0`` (no trials, nothing known).
    ``k`` and ``n`` broadcast against each other.
    """
    if not isinstance(confidence, (int, float)) or not 0.0 < confidence < 1.0:
        raise ConfigError(f"confidence must be a number in (0, 1), got {confidence!r}")
    k_arr, n_arr = np.broadcast_arrays(_check_counts(k, "k"), _check_counts(n, "n"))
    if (k_arr > n_arr).any():
        raise ConfigError(f"k must not exceed n, got k={k!r}, n={n!r}")
    alpha = (1.0 - confidence) / 2.0
    with np.errstate(invalid="ignore", divide="ignore"):
        lo = special.betaincinv(k_arr, n_arr - k_arr + 1.0, alpha)
        hi = special.betainccinv(k_arr + 1.0, n_arr - k_arr, alpha)
    lo = np.where(k_arr == 0, 0.0, lo)
    hi = np.where(k_arr == n_arr, 1.0, hi)
    empty = n_arr == 0
    return np.where(empty, np.nan, lo), np.where(empty, np.nan, hi)
