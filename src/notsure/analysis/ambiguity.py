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


def least_confident(p: np.ndarray, by: str = "margin") -> np.ndarray:
    """All positions, least confident first: smallest top-2 margin (``"margin"``; entropy breaks
    ties) or highest entropy (``"entropy"``; margin breaks ties); then position."""
    p = _check_probs(p)
    if by not in ("margin", "entropy"):
        raise ConfigError(f"by={by!r}: expected 'margin' or 'entropy'")
    keys = (top2_margin(p), -entropy(p)) if by == "margin" else (-entropy(p), top2_margin(p))
    return np.lexsort((np.arange(len(p)), keys[1], keys[0]))


@dataclass(frozen=True)
class ConfidentLearning:
    """Confident-learning estimates: per-class thresholds, confident joint and label issues.

    ``thresholds[j]`` is the mean of ``p[:, j]`` over samples labelled ``j`` (possibly of a larger
    reference set, see :func:`class_thresholds`); ``confident_label`` is the most probable class
    among those whose probability reaches its threshold (-1: none); ``joint[i, j]`` counts
    samples labelled ``i`` confidently counted as ``j``; ``issues`` are the off-diagonal samples,
    ranked most suspicious first.
    """

    thresholds: np.ndarray  # (C,)
    confident_label: np.ndarray  # (N,), -1 where no class reaches its threshold
    joint: np.ndarray  # (C, C) int64
    issues: np.ndarray  # positions of suspected label errors, ranked
    rank_by: str

    @property
    def flagged(self) -> np.ndarray:
        """(N,) bool: True at the suspected label errors (``issues``)."""
        mask = np.zeros(len(self.confident_label), dtype=bool)
        mask[self.issues] = True
        return mask


def class_thresholds(p: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Per-class confident-learning thresholds: the mean probability of class ``j`` over the
    samples labelled ``j`` (its expected self-confidence); ``inf`` for a class nobody has."""
    p = _check_probs(p)
    y = _check_labels(y, p)
    c = p.shape[1]
    counts = np.bincount(y, minlength=c)
    sums = np.bincount(y, weights=p[np.arange(len(p)), y], minlength=c)
    # A class nobody is labelled with has no threshold: nothing can be confidently counted as it.
    return np.divide(sums, counts, out=np.full(c, np.inf), where=counts > 0)


def suspicion_order(p: np.ndarray, y: np.ndarray, rows: np.ndarray,
                    rank_by: str = "self_confidence") -> np.ndarray:
    """``rows`` most suspicious first: lowest probability of the given label
    (``"self_confidence"``) or largest ``p[top] - p[given]`` (``"margin"``); ties by position."""
    if rank_by not in RANK_BY:
        raise ConfigError(f"rank_by={rank_by!r}: expected one of {RANK_BY}")
    rows = np.asarray(rows, dtype=np.int64)
    given = p[rows, y[rows]]
    key = given if rank_by == "self_confidence" else -(p[rows].max(axis=1) - given)
    return rows[np.lexsort((rows, key))]


def confident_learning(p: np.ndarray, y: np.ndarray, *, thresholds: np.ndarray | None = None,
                       rank_by: str = "self_confidence") -> ConfidentLearning:
    """Suspected label errors by confident learning on out-of-sample probabilities ``p``.

    A sample is suspected when its confident label differs from its given label; issues are
    ordered by :func:`suspicion_order`. ``thresholds`` default to :func:`class_thresholds` of
    ``(p, y)``; pass those of a larger out-of-sample set to judge a subset by the whole
    dataset's standard. ``p`` must come from models that never trained on the sample, or a
    memorised wrong label looks right.
    """
    if rank_by not in RANK_BY:
        raise ConfigError(f"rank_by={rank_by!r}: expected one of {RANK_BY}")
    p = _check_probs(p)
    y = _check_labels(y, p)
    c = p.shape[1]
    if thresholds is None:
        thresholds = class_thresholds(p, y)
    thresholds = np.asarray(thresholds, dtype=np.float64)
    if thresholds.shape != (c,):
        raise ConfigError(f"thresholds must have shape ({c},), got {thresholds.shape}")
    above = p >= thresholds[None, :]
    confident = np.where(above.any(axis=1), np.where(above, p, -np.inf).argmax(axis=1), -1)
    counted = confident >= 0
    joint = np.zeros((c, c), dtype=np.int64)
    np.add.at(joint, (y[counted], confident[counted]), 1)
    issues = suspicion_order(p, y, np.flatnonzero(counted & (confident != y)), rank_by)
    return ConfidentLearning(thresholds=thresholds, confident_label=confident, joint=joint,
                             issues=issues, rank_by=rank_by)


def label_error_candidates(p: np.ndarray, y: np.ndarray,
                           cl: ConfidentLearning) -> tuple[np.ndarray, np.ndarray]:
    """Every sample confident learning flags or whose most probable class is not its label:
    the flagged first (in ``cl.issues`` order), then the rest by :func:`suspicion_order`.

    Returns the ranked positions and the suggested label of every sample (the confident label
    where one differs from the given label, else the most probable class).
    """
    p = _check_probs(p)
    y = _check_labels(y, p)
    top = p.argmax(axis=1)
    flagged = cl.flagged
    rest = suspicion_order(p, y, np.flatnonzero((top != y) & ~flagged), cl.rank_by)
    suggested = np.where(flagged, cl.confident_label, top)
    return np.concatenate([cl.issues, rest]), suggested
