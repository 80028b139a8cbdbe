"""Per-class scores to threshold: logit margins, and their conservative ensemble version.

The margin of class c is ``z_c - max_{j != c} z_j``: positive only for the arg-max class, and unlike
the softmax probability it does not saturate at 1.0 in float32, so thresholds stay resolvable at the
extreme tail that a 0.00015 false positive rate needs.
"""

from __future__ import annotations

import hashlib

import numpy as np

from notsure.errors import ConfigError


def logit_margins(logits: np.ndarray) -> np.ndarray:
    """Margins ``z_c - max_{j != c} z_j`` for logits of shape ``(..., N, C)``, same shape."""
    z = np.asarray(logits, dtype=np.float64)
    if z.ndim < 2 or z.shape[-1] < 2:
        raise ConfigError(f"logits must have shape (..., N, C) with C >= 2, got {z.shape}")
    if not np.all(np.isfinite(z)):
        raise ConfigError("logits contain NaN or inf; the model output is broken")
    top2 = -np.partition(-z, 1, axis=-1)[..., :2]  # largest and second largest per row
    best_other = np.where(z == top2[..., :1], top2[..., 1:2], top2[..., :1])
    return z - best_other


def ensemble_margins(logits: np.ndarray) -> np.ndarray:
    """Per-class margin that every ensemble member agrees on: the minimum over members.

    ``logits`` has shape ``(K, N, C)``. Class c passes a threshold t only if *each* member's
    margin exceeds t, so the ensemble's false positives are a subset of every member's: a threshold
    certified for the members (from their out-of-fold scores) holds for the ensemble too.
    """
    z = np.asarray(logits)
    if z.ndim != 3:
        raise ConfigError(f"ensemble logits must have shape (K, N, C), got {z.shape}")
    return logit_margins(z).min(axis=0)


def fold_mean_logits(member_logits: np.ndarray, n_folds: int) -> np.ndarray:
    """Mean logits of each fold's members: ``(K*M, N, C)`` in fold-major order -> ``(K, N, C)``."""
    z = np.asarray(member_logits)
    if z.ndim != 3 or n_folds < 1 or z.shape[0] % n_folds:
        raise ConfigError(f"member logits of shape {z.shape} do not split into {n_folds} folds")
    return z.reshape(n_folds, z.shape[0] // n_folds, *z.shape[1:]).mean(axis=1)


def route(x: np.ndarray, n_folds: int) -> np.ndarray:
    """The fold ensemble that answers each image: BLAKE2b of its uint8 pixels, modulo ``n_folds``.

    A hash of the content is deterministic (the same image always gets the same answer) and, for
    any distribution of images, spreads them evenly over the folds independently of their class,
    so the routed predictor's false positive rate is the average of the fold ensembles' rates:
    exactly what pooled out-of-fold calibration certifies.
    """
    x = np.ascontiguousarray(x)
    if x.dtype != np.uint8:
        x = np.ascontiguousarray(np.clip(np.rint(x), 0, 255).astype(np.uint8))
    flat = x.reshape(len(x), -1)
    out = np.empty(len(x), dtype=np.int64)
    for i, row in enumerate(flat):
        out[i] = int.from_bytes(hashlib.blake2b(row.tobytes(), digest_size=4).digest(), "little")
    return out % n_folds


def confidence_scores(confidence: np.ndarray, candidate: np.ndarray, n_classes: int
                       ) -> np.ndarray:
    """Per-class score matrix of a class-free confidence: the candidate's column holds it, the
    others a value below any confidence (never answered), so class-wise thresholds apply to any
    confidence measure."""
    out = np.full((len(candidate), n_classes), np.min(confidence, initial=0.0) - 1.0)
    out[np.arange(len(candidate)), candidate] = confidence
    return out


def score_kinds(oof_member_logits: np.ndarray) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Candidate scores to compare on calibration data: name -> (scores (N, C), rank logits)."""
    z = np.asarray(oof_member_logits, dtype=np.float64)
    mean = z.mean(axis=0)
    shifted = z - z.max(axis=2, keepdims=True)
    probs = np.exp(shifted) / np.exp(shifted).sum(axis=2, keepdims=True)
    p = probs.mean(axis=0)  # the ensemble's mean softmax
    cand = p.argmax(axis=1)
    n_classes = z.shape[2]
    kinds = {
        "fold-ensemble margin of mean logits (routed, min-fold)": (logit_margins(mean), mean),
        "single member margin (min-member)": (logit_margins(z[0]), z[0]),
        "fold-ensemble mean softmax (softmax response)": (p, p),
        "fold-ensemble Gini / DOCTOR, 1 - sum p^2": (
            confidence_scores(-(1.0 - np.sum(p ** 2, axis=1)), cand, n_classes), p),
    }
    if z.shape[0] > 1:
        kinds["fold-ensemble member agreement, min softmax of candidate"] = (
            confidence_scores(probs[:, np.arange(len(cand)), cand].min(axis=0), cand,
                               n_classes), p)
    return kinds
