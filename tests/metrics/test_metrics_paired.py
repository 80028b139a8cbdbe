"""The exact McNemar test against the binomial distribution written out by hand."""

from math import comb

import numpy as np
import pytest

from notsure.errors import ConfigError
from notsure.metrics import mcnemar


def _two_sided(k: int, n: int) -> float:
    tail = sum(comb(n, i) for i in range(min(k, n - k) + 1)) / 2**n
    return min(1.0, 2 * tail)


@pytest.mark.parametrize("seed", range(5))
def test_mcnemar_counts_and_p_value(seed):
    rng = np.random.default_rng(seed)
    a = rng.random(300) < 0.9
    b = rng.random(300) < 0.85
    test = mcnemar(a, b)
    only_a, only_b = int(np.sum(a & ~b)), int(np.sum(~a & b))
    assert (test.only_a, test.only_b) == (only_a, only_b)
    assert test.p_value == pytest.approx(_two_sided(only_a, only_a + only_b), rel=1e-9)


def test_mcnemar_known_values():
    # 10 discordant pairs all one way: p = 2 / 2**10
    a = np.array([True] * 10 + [True] * 5)
    b = np.array([False] * 10 + [True] * 5)
    assert mcnemar(a, b).p_value == pytest.approx(2 / 1024)
    assert mcnemar(a, a).p_value == 1.0


def test_mcnemar_refuses_non_boolean_or_mismatched():
    with pytest.raises(ConfigError, match="boolean"):
        mcnemar(np.array([1, 0]), np.array([True, False]))
    with pytest.raises(ConfigError, match=r"\(3,\)"):
        mcnemar(np.ones(3, bool), np.ones(2, bool))
