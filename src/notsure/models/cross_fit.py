"""Cross-fitting: K folds of M members each, each fold's members scoring the fold they did not
train on.

Every non-test image gets an out-of-fold score from an M-member ensemble that never saw it, so all
of them serve as calibration data for scores of exactly the kind the deployed fold ensembles give.

Each member is an independent task (:func:`fit_member`), seeded from the run seed and its own
fold and member index, so it comes out the same on any executor (:mod:`notsure.parallel`). With a
checkpoint store, every member is saved as soon as it is trained and read back, not trained again,
when a killed run is resumed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from notsure.errors import ConfigError
from notsure.io.progress import say
from notsure.models.checkpoints import CheckpointStore
from notsure.models.cnn import CNNConfig, resolve_threads
from notsure.models.inference import predict_logits
from notsure.models.train import TrainResult, train_cnn
from notsure.parallel import Execution, run_tasks

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


@dataclass(frozen=True)
class MemberTask:
    """Member ``member`` of fold ``fold``: trains on positions ``train``, scores ``held``."""

    fold: int
    member: int
    seed: int
    train: np.ndarray
    held: np.ndarray

    @property
    def name(self) -> str:
        return f"fold{self.fold}-member{self.member}"


@dataclass(frozen=True)
class MemberData:
    """What every member task reads; sent once to each worker, not once per task."""

    x: np.ndarray
    y: np.ndarray
    n_classes: int
    config: CNNConfig
    quiet: bool = True


@dataclass
class Member:
    """A trained member with its logits and penultimate features on its fold's held-out images,
    and the features of a seeded sample of its own training images (``sample``: positions in
    ``x``), which the out-of-distribution guard is fitted on."""

    result: TrainResult
    held_logits: np.ndarray  # (len(held), C)
    held_features: np.ndarray  # (len(held), F)
    sample: np.ndarray
    sample_features: np.ndarray


def cross_fit(
    x: np.ndarray,
    y: np.ndarray,
    n_classes: int,
    folds: list[tuple[np.ndarray, np.ndarray]],
    config: CNNConfig,
    seed: int,
    *,
    members: int = 1,
    execution: Execution | None = None,
    checkpoints: CheckpointStore | None = None,
    x_extra: np.ndarray | None = None,
    quiet: bool = False,
) -> CrossFit:
    """Train ``members`` models per ``(train, held_out)`` fold and score its held-out images.

    ``folds`` must partition ``0..N-1`` with their held-out parts, so every image is scored once
    (by each of its fold's members). Members train as tasks on ``execution`` (default: one after
    another in this process); each depends only on its seed and ``config`` (threads included), so
    it is the same whichever process trains it. One-thread members in parallel processes keep
    training fast when other work shares the machine, where torch's multi-threaded training, which
    waits for every thread after each operation, slows down many-fold. With ``checkpoints``, each
    member is saved as soon as it is trained and reused when the run is resumed.
    """
    if members < 1:
        raise ConfigError(f"members must be >= 1, got {members}")
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
    execution = execution or Execution()
    tasks = [MemberTask(k, m, fold_seed(seed, k, m), train, held)
             for k, (train, held) in enumerate(folds) for m in range(members)]
    say(f"training {len(tasks)} members ({len(folds)} folds x {members}) on the "
        f"{execution.executor} executor", quiet=quiet)
    # Per-epoch bars of several workers would interleave: only local members show theirs.
    data = MemberData(x, y, n_classes, config, quiet=quiet or execution.executor != "local")
    fitted = run_members(tasks, data, execution, checkpoints, quiet)

    oof = np.empty((members, n, n_classes), dtype=np.float32)
    oof_features = np.empty((members, n, fitted[0].held_features.shape[1]), dtype=np.float32)
    for task, member in zip(tasks, fitted, strict=True):
        oof[task.member, task.held] = member.held_logits
        oof_features[task.member, task.held] = member.held_features
    results = [m.result for m in fitted]
    extra = extra_features = None
    if x_extra is not None:
        # Inference splits batches over threads, so its numbers do not depend on the count.
        extra, extra_features = predict_logits([r.model for r in results], x_extra,
                                               precision=config.precision, return_features=True)
    return CrossFit(oof_member_logits=oof, fold_of=fold_of, extra_logits=extra,
                    results=results, members=members, oof_member_features=oof_features,
                    extra_features=extra_features, train_samples=[m.sample for m in fitted],
                    train_sample_features=[m.sample_features for m in fitted])


def fit_member(task: MemberTask, data: MemberData) -> Member:
    """One member (a task): trained on ``x[train]``; then its logits and penultimate features on
    the held-out images, and the features of a seeded sample of ``SAMPLE_FEATURES`` of its own
    training images."""
    config = data.config
    x, y = data.x[task.train], data.y[task.train]
    x_held, y_held = data.x[task.held], data.y[task.held]
    step = max(1, len(x_held) // VAL_CURVE_IMAGES)
    result = train_cnn(x, y, data.n_classes, config, task.seed, x_val=x_held[::step],
                       y_val=y_held[::step], quiet=data.quiet)
    logits, features = predict_logits(result.model, x_held, precision=config.precision,
                                      threads=config.threads, return_features=True)
    rng = np.random.default_rng(np.random.SeedSequence([task.seed, 13]))
    sample = np.sort(rng.choice(len(x), min(SAMPLE_FEATURES, len(x)), replace=False))
    _, train_features = predict_logits(result.model, x[sample], precision=config.precision,
                                       threads=config.threads, return_features=True)
    return Member(result, logits, features, task.train[sample], train_features)


def run_members(tasks: list[MemberTask], data: MemberData, execution: Execution,
                store: CheckpointStore | None = None, quiet: bool = False) -> list[Member]:
    """Every task's member, in task order: checkpointed ones read back, the rest trained on
    ``execution``, each saved to ``store`` as soon as it is trained."""
    done = {}
    if store is not None:
        done = {t.name: load_member(store, t, data.config) for t in tasks if store.has(t.name)}
        if done:
            say(f"resuming: {len(done)} of {len(tasks)} members already trained", quiet=quiet)
    todo = [t for t in tasks if t.name not in done]

    def finished(i: int, member: Member) -> None:
        if store is not None:
            save_member(store, todo[i], member)

    new = run_tasks(fit_member, todo, shared=data, execution=execution,
                    threads=resolve_threads(data.config.threads), names=[t.name for t in todo],
                    on_result=finished, desc="fold members", quiet=quiet)
    done.update((t.name, m) for t, m in zip(todo, new, strict=True))
    return [done[t.name] for t in tasks]


def save_member(store: CheckpointStore, task: MemberTask, member: Member) -> None:
    """Checkpoint a trained member: weights, held-out logits and features, its guard sample,
    seed and training history."""
    res = member.result
    store.save(task.name, models={"model": (res.model, res.config, res.image_shape)},
               arrays={"held_logits": member.held_logits, "held_features": member.held_features,
                       "sample": member.sample, "sample_features": member.sample_features},
               meta={"seed": task.seed, "history": res.history})


def load_member(store: CheckpointStore, task: MemberTask, config: CNNConfig) -> Member:
    """The checkpointed member of ``task``; ConfigError if it was trained differently."""
    saved = store.load(task.name)
    stored = saved.models["model"]
    if saved.meta.get("seed") != task.seed or stored.config != config:
        raise ConfigError(f"{store.root / task.name}: this member was trained with another seed "
                          "or CNN settings than the run asks for; resume with the run's settings")
    result = TrainResult(model=stored.model, config=stored.config,
                         image_shape=stored.image_shape, history=saved.meta.get("history", []))
    a = saved.arrays
    return Member(result, a["held_logits"], a["held_features"], a["sample"], a["sample_features"])
