"""Paired comparison of two classifiers on the same items: the exact McNemar test.

Only the discordant items carry information: ``only_a`` (A right, B wrong) and ``only_b``
(B right, A wrong). Under "equally accurate" each discordant item is a fair coin, so the
two-sided p-value is an exact binomial test of ``min(only_a, only_b)`` in ``only_a + only_b``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.stats import binomtest

from notsure.errors import ConfigError


@dataclass(frozen=True)
class McNemar:
    """Discordant counts and the exact two-sided p-value (1.0 when nothing is discordant)."""

    only_a: int
    only_b: int
    p_value: float


def mcnemar(correct_a: np.ndarray, correct_b: np.ndarray) -> McNemar:
    """Exact McNemar test of two boolean "was right" vectors over the same items."""
    a = np.asarray(correct_a)
    b = np.asarray(correct_b)
    if a.ndim != 1 or a.shape != b.shape or a.dtype != bool or b.dtype != bool:
        raise ConfigError(f"mcnemar needs two boolean vectors of one length, got "
                          f"{a.dtype}{a.shape} and {b.dtype}{b.shape}")
    only_a, only_b = int(np.sum(a & ~b)), int(np.sum(~a & b))
    n = only_a + only_b
    p = binomtest(min(only_a, only_b), n, 0.5).pvalue if n else 1.0
    return McNemar(only_a=only_a, only_b=only_b, p_value=float(p))
