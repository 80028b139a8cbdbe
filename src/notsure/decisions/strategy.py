"""Apply per-class thresholds: answer the arg-max class only when its score clears its threshold."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from notsure.constants import NOT_SURE
from notsure.errors import ConfigError


@dataclass(frozen=True)
class ThresholdStrategy:
    """Answer ``argmax`` of ``rank_scores`` if its score clears its threshold, else abstain.

    ``rank_scores`` picks the candidate class (e.g. mean ensemble logits); ``scores`` are what the
    thresholds were calibrated on (e.g. ensemble margins). A false positive for class c therefore
    requires ``scores[:, c] > thresholds[c]``, the event the calibration bounded.
    """

    thresholds: np.ndarray

    @classmethod
    def from_certificates(cls, certificates: Sequence) -> ThresholdStrategy:
        return cls(np.array([c.threshold for c in certificates], dtype=np.float64))

    def decide(self, scores: np.ndarray, rank_scores: np.ndarray | None = None) -> np.ndarray:
        """Predictions (N,) with class indices or ``NOT_SURE``."""
        scores = np.asarray(scores)
        rank = scores if rank_scores is None else np.asarray(rank_scores)
        n_classes = self.thresholds.shape[0]
        if scores.ndim != 2 or scores.shape[1] != n_classes or rank.shape != scores.shape:
            raise ConfigError(
                f"scores must have shape (N, {n_classes}) matching the thresholds, "
                f"got {scores.shape} (rank scores {rank.shape})"
            )
        candidate = rank.argmax(axis=1)
        passed = scores[np.arange(len(scores)), candidate] > self.thresholds[candidate]
        return np.where(passed, candidate, NOT_SURE).astype(np.int64)

    def confidence(self, scores: np.ndarray, rank_scores: np.ndarray | None = None) -> np.ndarray:
        """How far the candidate's score is above its threshold (>0 means answered)."""
        scores = np.asarray(scores)
        rank = scores if rank_scores is None else np.asarray(rank_scores)
        candidate = rank.argmax(axis=1)
        return scores[np.arange(len(scores)), candidate] - self.thresholds[candidate]
