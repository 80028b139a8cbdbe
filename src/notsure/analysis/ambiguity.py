"""Which samples a classifier finds ambiguous, and which look mislabelled.

Pure functions of out-of-sample class probabilities ``p`` ``(N, C)`` and given labels ``y``:
per-sample scores (confidence, top-2 margin, entropy), the three rankings of the ambiguity job,
confident learning (Northcutt, Jiang and Chuang, "Confident Learning: Estimating Uncertainty in
Dataset Labels", JAIR 2021) and the agreement of ensemble members. Ties are broken by position,
so every ranking is deterministic.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import softmax

from notsure.errors import ConfigError

RANK_BY = ("self_confidence", "margin")


def _check_probs(p: np.ndarray) -> np.ndarray:
    p = np.asarray(p, dtype=np.float64)
    if p.ndim != 2 or p.shape[1] < 2:
        raise ConfigError(f"probabilities must have shape (N, C) with C >= 2, got {p.shape}")
    return p


def _check_labels(y: np.ndarray, p: np.ndarray) -> np.ndarray:
    y = np.asarray(y)
    if y.shape != (len(p),) or (y.size and (y.dtype.kind not in "iu" or y.min() < 0
                                            or y.max() >= p.shape[1])):
        raise ConfigError(f"labels must be {len(p)} class indices in 0..{p.shape[1] - 1}, "
                          f"got shape {y.shape} dtype {y.dtype}")
    return y.astype(np.int64)


def ensemble_probabilities(member_logits: np.ndarray) -> np.ndarray:
    """Mean of the members' softmax probabilities, ``(K, N, C)`` logits -> ``(N, C)``."""
    member_logits = np.asarray(member_logits, dtype=np.float64)
    if member_logits.ndim != 3:
        raise ConfigError(f"member logits must have shape (K, N, C), got {member_logits.shape}")
    return softmax(member_logits, axis=2).mean(axis=0)


def confidence(p: np.ndarray) -> np.ndarray:
    """Probability of the predicted (top) class."""
    return _check_probs(p).max(axis=1)


def top2_margin(p: np.ndarray) -> np.ndarray:
    """Top probability minus the runner-up's: near 0 when two classes are equally likely."""
    top2 = np.sort(_check_probs(p), axis=1)[:, -2:]
    return top2[:, 1] - top2[:, 0]


def entropy(p: np.ndarray) -> np.ndarray:
    """Shannon entropy in nats (0: certain; log C: uniform)."""
    p = _check_probs(p)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(p > 0, -p * np.log(p), 0.0)
    return terms.sum(axis=1)


def member_agreement(member_logits: np.ndarray, predicted: np.ndarray) -> np.ndarray:
    """Share of ensemble members whose own top class is ``predicted``, ``(K, N, C)`` -> ``(N,)``."""
    member_logits = np.asarray(member_logits)
    if member_logits.ndim != 3 or member_logits.shape[1] != len(predicted):
        raise ConfigError(f"member logits must have shape (K, {len(predicted)}, C), "
                          f"got {member_logits.shape}")
    return (member_logits.argmax(axis=2) == np.asarray(predicted)[None, :]).mean(axis=0)


# -- rankings ---------------------------------------------------------------------------------

def most_confident_wrong(p: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Positions the top class gets wrong, most confident first."""
    p = _check_probs(p)
    y = _check_labels(y, p)
    wrong = np.flatnonzero(p.argmax(axis=1) != y)
    return wrong[np.lexsort((wrong, -p[wrong].max(axis=1)))]


def least_confident(p: np.ndarray) -> np.ndarray:
    """All positions, smallest top-2 margin first (entropy breaks ties, then position)."""
    p = _check_probs(p)
    return np.lexsort((np.arange(len(p)), -entropy(p), top2_margin(p)))


@dataclass(frozen=True)
class ConfidentLearning:
    """Confident-learning estimates: per-class thresholds, confident joint and label issues.

    ``thresholds[j]`` is the mean of ``p[:, j]`` over samples labelled ``j``; ``confident_label``
    is the most probable class among those whose probability reaches its threshold (-1: none);
    ``joint[i, j]`` counts samples labelled ``i`` confidently counted as ``j``; ``issues`` are
    the off-diagonal samples, ranked most suspicious first.
    """

    thresholds: np.ndarray  # (C,)
    confident_label: np.ndarray  # (N,), -1 where no class reaches its threshold
    joint: np.ndarray  # (C, C) int64
    issues: np.ndarray  # positions of suspected label errors, ranked
    rank_by: str


def confident_learning(p: np.ndarray, y: np.ndarray, *,
                       rank_by: str = "self_confidence") -> ConfidentLearning:
    """Suspected label errors by confident learning on out-of-sample probabilities ``p``.

    A sample is suspected when its confident label differs from its given label. They are ranked
    by the probability of the given label (``"self_confidence"``, lowest first) or by
    ``p[predicted] - p[given]`` (``"margin"``, largest first). ``p`` must come from models that
    never trained on the sample, or a memorised wrong label looks right.
    """
    if rank_by not in RANK_BY:
        raise ConfigError(f"rank_by={rank_by!r}: expected one of {RANK_BY}")
    p = _check_probs(p)
    y = _check_labels(y, p)
    n, c = p.shape
    counts = np.bincount(y, minlength=c)
    sums = np.zeros(c)
    np.add.at(sums, y, p[np.arange(n), y])
    # A class nobody is labelled with has no threshold: nothing can be confidently counted as it.
    thresholds = np.divide(sums, counts, out=np.full(c, np.inf), where=counts > 0)
    above = p >= thresholds[None, :]
    confident = np.where(above.any(axis=1), np.where(above, p, -np.inf).argmax(axis=1), -1)
    counted = confident >= 0
    joint = np.zeros((c, c), dtype=np.int64)
    np.add.at(joint, (y[counted], confident[counted]), 1)
    issues = np.flatnonzero(counted & (confident != y))
    given = p[issues, y[issues]]
    if rank_by == "self_confidence":
        key = given
    else:
        key = -(p[issues].max(axis=1) - given)
    issues = issues[np.lexsort((issues, key))]
    return ConfidentLearning(thresholds=thresholds, confident_label=confident, joint=joint,
                             issues=issues, rank_by=rank_by)
