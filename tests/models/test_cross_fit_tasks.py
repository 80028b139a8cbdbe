"""Fold members as tasks: the same members on every executor, checkpointed as they finish and
read back (not trained again) when a run resumes."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch

from notsure.errors import ConfigError
from notsure.models.checkpoints import CheckpointStore
from notsure.models.cross_fit import MemberTask, cross_fit, fold_seed, load_member
from notsure.parallel import Execution


def two_folds(n: int) -> list[tuple[np.ndarray, np.ndarray]]:
    order = np.random.default_rng(0).permutation(n)
    a, b = np.sort(order[: n // 2]), np.sort(order[n // 2:])
    return [(a, b), (b, a)]


@pytest.fixture(scope="module")
def data(strokes28, tiny_config):
    x, y = strokes28
    return x[:240], y[:240], tiny_config.replace(epochs=2)


def same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def assert_same_fit(a, b) -> None:
    np.testing.assert_array_equal(a.oof_member_logits, b.oof_member_logits)
    np.testing.assert_array_equal(a.oof_member_features, b.oof_member_features)
    np.testing.assert_array_equal(a.extra_logits, b.extra_logits)
    for sa, sb in zip(a.train_samples, b.train_samples, strict=True):
        np.testing.assert_array_equal(sa, sb)
    for fa, fb in zip(a.train_sample_features, b.train_sample_features, strict=True):
        np.testing.assert_array_equal(fa, fb)
    assert all(same_weights(ra.model, rb.model)
               for ra, rb in zip(a.results, b.results, strict=True))


@pytest.mark.slow  # starts two worker processes that import torch
def test_processes_train_the_members_local_trains(data):
    x, y, config = data
    folds = two_folds(len(x))
    local = cross_fit(x, y, 3, folds, config, seed=5, members=2, x_extra=x[:20], quiet=True)
    pool = cross_fit(x, y, 3, folds, config, seed=5, members=2, x_extra=x[:20], quiet=True,
                     execution=Execution("processes", workers=2))
    assert_same_fit(local, pool)
    assert len(set(local.oof_logits.argmax(1).tolist())) == 3  # the members learned something


def test_a_resumed_cross_fit_trains_only_the_missing_members(data, tmp_path):
    x, y, config = data
    folds = two_folds(len(x))
    store = CheckpointStore(tmp_path)
    first = cross_fit(x, y, 3, folds, config, seed=1, members=2, x_extra=x[:10], quiet=True,
                      checkpoints=store)
    names = ["fold0-member0", "fold0-member1", "fold1-member0", "fold1-member1"]
    assert store.finished() == names
    kept = {n: (store.root / n / "done.json").stat().st_mtime_ns for n in names[:3]}
    shutil.rmtree(store.root / names[3])  # as if the run was killed while training it

    resumed = cross_fit(x, y, 3, folds, config, seed=1, members=2, x_extra=x[:10], quiet=True,
                        checkpoints=store)
    assert store.finished() == names
    assert kept == {n: (store.root / n / "done.json").stat().st_mtime_ns for n in names[:3]}
    assert_same_fit(first, resumed)
    # Read back with their histories; the retrained member differs only in its timings.
    assert [r.history for r in resumed.results[:3]] == [r.history for r in first.results[:3]]
    untimed = [{k: v for k, v in row.items() if k not in ("seconds", "images_per_s")}
               for row in resumed.results[3].history]
    assert untimed == [{k: v for k, v in row.items() if k not in ("seconds", "images_per_s")}
                       for row in first.results[3].history]

    train, held = folds[0]
    task = MemberTask(0, 0, fold_seed(1, 0, 0), train, held)
    load_member(store, task, config)  # the settings it was trained with
    with pytest.raises(ConfigError, match="another seed or CNN settings"):
        load_member(store, MemberTask(0, 0, task.seed + 1, train, held), config)
    with pytest.raises(ConfigError, match="another seed or CNN settings"):
        load_member(store, task, config.replace(epochs=3))
