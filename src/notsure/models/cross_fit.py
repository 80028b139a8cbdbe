"""Cross-fitting: K fold models, each scoring the fold it did not train on.

Every non-test image gets an out-of-fold score from a model that never saw it, so all of them can
serve as calibration data; the K models together form the deployed ensemble.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from notsure.errors import ConfigError
from notsure.io.progress import say
from notsure.models.cnn import CNNConfig
from notsure.models.predict import predict_logits
from notsure.models.train import TrainResult, train_cnn


def fold_seed(seed: int, fold: int) -> int:
    """The training seed of fold ``fold``: derived from the run seed, distinct per fold."""
    return int(np.random.SeedSequence([seed, fold]).generate_state(1)[0])


@dataclass
class CrossFit:
    """Out-of-fold logits for the training pool and every member's logits for extra images."""

    oof_logits: np.ndarray  # (N, C): row i from the model that did not train on i
    fold_of: np.ndarray  # (N,): the fold (= model) that scored row i
    extra_logits: np.ndarray | None  # (K, M, C): each member on the extra images (e.g. test)
    results: list[TrainResult]


def cross_fit(
    x: np.ndarray,
    y: np.ndarray,
    n_classes: int,
    folds: list[tuple[np.ndarray, np.ndarray]],
    config: CNNConfig,
    seed: int,
    *,
    x_extra: np.ndarray | None = None,
    quiet: bool = False,
) -> CrossFit:
    """Train one model per ``(train, held_out)`` fold and score its held-out images.

    ``folds`` must partition ``0..N-1`` with their held-out parts, so every image is scored once.
    """
    n = len(x)
    fold_of = np.full(n, -1, dtype=np.int64)
    for k, (_, held) in enumerate(folds):
        if np.any(fold_of[held] >= 0):
            raise ConfigError("cross-fitting folds overlap: an image is held out twice")
        fold_of[held] = k
    if np.any(fold_of < 0):
        raise ConfigError(
            f"cross-fitting folds leave {int(np.sum(fold_of < 0))} images unscored; "
            "every image must be held out by exactly one fold"
        )
    oof = np.empty((n, n_classes), dtype=np.float32)
    results = []
    for k, (train, held) in enumerate(folds):
        say(f"fold {k + 1}/{len(folds)}: training on {len(train):,} images, "
            f"scoring {len(held):,}", quiet=quiet)
        result = train_cnn(x[train], y[train], n_classes, config, fold_seed(seed, k),
                           x_val=x[held], y_val=y[held], quiet=quiet)
        oof[held] = predict_logits(result.model, x[held], precision=config.precision,
                                   threads=config.threads)
        results.append(result)
    extra = None
    if x_extra is not None:
        extra = predict_logits([r.model for r in results], x_extra,
                               precision=config.precision, threads=config.threads)
    return CrossFit(oof_logits=oof, fold_of=fold_of, extra_logits=extra, results=results)
