"""Cross-fitting: K folds of M members each, each fold's members scoring the fold they did not
train on.

Every non-test image gets an out-of-fold score from an M-member ensemble that never saw it, so all
of them serve as calibration data for scores of exactly the kind the deployed fold ensembles give.
"""

from __future__ import annotations

import multiprocessing
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass

import numpy as np

from notsure.errors import ConfigError
from notsure.io.progress import progress, say
from notsure.models.cnn import CNNConfig
from notsure.models.predict import predict_logits
from notsure.models.train import TrainResult, train_cnn

VAL_CURVE_IMAGES = 5_000  # held-out images per epoch for the training curves (cost, not accuracy)
SAMPLE_FEATURES = 5_000  # training images per member whose features the guard is fitted on


def fold_seed(seed: int, fold: int, member: int = 0) -> int:
    """The training seed of member ``member`` of fold ``fold``, derived from the run seed; member 0
    keeps the seed of one-member folds, so M = 1 reproduces earlier runs."""
    key = [seed, fold] if member == 0 else [seed, fold, member]
    return int(np.random.SeedSequence(key).generate_state(1)[0])


@dataclass
class CrossFit:
    """Out-of-fold logits for the training pool and every member's logits for extra images."""

    oof_member_logits: np.ndarray  # (M, N, C): row i from the members of the fold that held i out
    fold_of: np.ndarray  # (N,): the fold whose members scored row i
    extra_logits: np.ndarray | None  # (K*M, N_extra, C): each member (fold-major) on extra images
    results: list[TrainResult]  # K*M, fold-major: results[k * M + m]
    members: int = 1  # M, members per fold
    # Penultimate features from the same forward passes, for the out-of-distribution guard:
    oof_member_features: np.ndarray | None = None  # (M, N, F), like oof_member_logits
    extra_features: np.ndarray | None = None  # (K*M, N_extra, F)
    train_samples: list[np.ndarray] | None = None  # per member: positions (in x) of a sample...
    train_sample_features: list[np.ndarray] | None = None  # ...of its training images, features

    @property
    def oof_logits(self) -> np.ndarray:
        """(N, C): mean logits of the fold ensemble that held each image out."""
        return self.oof_member_logits.mean(axis=0)

    @property
    def n_folds(self) -> int:
        return len(self.results) // self.members


def cross_fit(
    x: np.ndarray,
    y: np.ndarray,
    n_classes: int,
    folds: list[tuple[np.ndarray, np.ndarray]],
    config: CNNConfig,
    seed: int,
    *,
    members: int = 1,
    workers: int = 1,
    x_extra: np.ndarray | None = None,
    quiet: bool = False,
) -> CrossFit:
    """Train ``members`` models per ``(train, held_out)`` fold and score its held-out images.

    ``folds`` must partition ``0..N-1`` with their held-out parts, so every image is scored once
    (by each of its fold's members). ``workers`` > 1 trains members in that many processes at
    once; each member's result depends only on its seed and ``config`` (threads included), so it
    is the same whichever process trains it. One-thread members in parallel processes keep
    training fast when other work shares the machine, where torch's multi-threaded training, which
    waits for every thread after each operation, slows down many-fold.
    """
    if members < 1:
        raise ConfigError(f"members must be >= 1, got {members}")
    if workers < 1:
        raise ConfigError(f"workers must be >= 1, got {workers}")
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
    oof = np.empty((members, n, n_classes), dtype=np.float32)
    oof_features: np.ndarray | None = None
    tasks = [(k, m) for k in range(len(folds)) for m in range(members)]
    results: list[TrainResult | None] = [None] * len(tasks)
    samples: list[np.ndarray | None] = [None] * len(tasks)
    sample_features: list[np.ndarray | None] = [None] * len(tasks)

    def task_args(k: int, m: int) -> tuple:
        train, held = folds[k]
        return (x[train], y[train], x[held], y[held], n_classes, config, fold_seed(seed, k, m))

    def collect(i: int, out: tuple) -> None:
        nonlocal oof_features
        k, m = tasks[i]
        train, held = folds[k]
        results[i], oof[m, held], held_features, sample, sample_features[i] = out
        samples[i] = train[sample]
        if oof_features is None:
            oof_features = np.empty((members, n, held_features.shape[1]), dtype=np.float32)
        oof_features[m, held] = held_features

    if workers == 1:
        for i, (k, m) in enumerate(tasks):
            say(f"fold {k + 1}/{len(folds)}, member {m + 1}/{members}: training on "
                f"{len(folds[k][0]):,} images, scoring {len(folds[k][1]):,}", quiet=quiet)
            collect(i, _fit_member(*task_args(k, m), quiet=quiet))
    else:
        say(f"training {len(tasks)} members ({len(folds)} folds x {members}) in {workers} "
            "processes", quiet=quiet)
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
            futures = {pool.submit(_fit_member, *task_args(k, m), quiet=True): i
                       for i, (k, m) in enumerate(tasks)}
            for future in progress(as_completed(futures), total=len(futures),
                                   desc="fold members", quiet=quiet):
                collect(futures[future], future.result())
    extra = extra_features = None
    if x_extra is not None:
        # Inference splits batches over threads, so its numbers do not depend on the count.
        extra, extra_features = predict_logits([r.model for r in results if r is not None],
                                               x_extra, precision=config.precision,
                                               return_features=True)
    return CrossFit(oof_member_logits=oof, fold_of=fold_of, extra_logits=extra,
                    results=list(results), members=members, oof_member_features=oof_features,
                    extra_features=extra_features, train_samples=list(samples),
                    train_sample_features=list(sample_features))


def _fit_member(x: np.ndarray, y: np.ndarray, x_held: np.ndarray, y_held: np.ndarray,
                n_classes: int, config: CNNConfig, seed: int, *, quiet: bool
                ) -> tuple[TrainResult, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """One member (a process task): trained on ``x``; then its logits and penultimate features
    on the held-out images, and the features of a seeded sample of ``SAMPLE_FEATURES`` of its
    own training images (positions in ``x``), which the out-of-distribution guard is fitted on."""
    step = max(1, len(x_held) // VAL_CURVE_IMAGES)
    result = train_cnn(x, y, n_classes, config, seed, x_val=x_held[::step], y_val=y_held[::step],
                       quiet=quiet)
    logits, features = predict_logits(result.model, x_held, precision=config.precision,
                                      threads=config.threads, return_features=True)
    rng = np.random.default_rng(np.random.SeedSequence([seed, 13]))
    sample = np.sort(rng.choice(len(x), min(SAMPLE_FEATURES, len(x)), replace=False))
    _, train_features = predict_logits(result.model, x[sample], precision=config.precision,
                                       threads=config.threads, return_features=True)
    return result, logits, features, sample, train_features
