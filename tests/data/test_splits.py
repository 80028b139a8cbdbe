"""Splits: reproducible, stratified, group-respecting, and checked for exact duplicates."""

from __future__ import annotations

import collections
import gzip
import json
import pickle
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold

from notsure.data import splits
from notsure.data.splits import (
    Split,
    add_calibration,
    content_ids,
    find_duplicates_across,
    leakage_report,
    load_split,
    save_split,
    stratified_fraction_split,
    stratified_kfold,
    stratified_test_split,
)
from notsure.errors import ConfigError, DataError
from notsure.io import RunFolder

MNIST_TRAIN_COUNTS = (5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949)
MNIST_TEST_COUNTS = (980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009)


def imbalanced_labels(seed: int = 0) -> np.ndarray:
    counts = [50, 37, 101, 8, 23]
    y = np.repeat(np.arange(len(counts)), counts)
    return np.random.default_rng(seed).permutation(y)


def group_of(groups: np.ndarray, index: np.ndarray) -> set:
    return set(groups[index].tolist())


# -- test split -------------------------------------------------------------------------------

def test_same_seed_same_split_and_other_seed_differs():
    y = imbalanced_labels()
    a, b = stratified_test_split(y, 5, seed=3), stratified_test_split(y, 5, seed=3)
    c = stratified_test_split(y, 5, seed=4)
    assert a.as_dict() == b.as_dict()
    assert not np.array_equal(a.test, c.test)


def test_test_split_is_disjoint_covering_and_exact_per_class():
    y = imbalanced_labels()
    split = stratified_test_split(y, 7, seed=0)
    assert np.intersect1d(split.train, split.test).size == 0
    assert np.array_equal(np.union1d(split.train, split.test), np.arange(len(y)))
    assert np.bincount(y[split.test]).tolist() == [7] * 5
    assert split.calibration.dtype == np.int64 and len(split.calibration) == 0
    assert all(np.all(np.diff(p) > 0) for p in (split.train, split.test))
    assert split.not_evaluable == {}


def test_too_small_class_error_names_class_counts_and_maximum():
    y = np.array([0] * 10 + [7] * 3 + [9] * 10)
    with pytest.raises(ConfigError) as err:
        stratified_test_split(y, 3, seed=0)
    message = str(err.value)
    assert "class 7 has 3 samples" in message
    assert "per_class=3" in message
    assert "at most 2" in message
    assert "class 0" not in message and "class 9" not in message
    # one fewer works, and keeps one sample of class 7 for training
    split = stratified_test_split(y, 2, seed=0)
    assert (y[split.train] == 7).sum() == 1


def test_allow_small_keeps_small_classes_in_training_and_reports_them():
    y = np.array([0] * 10 + [1] + [2] * 10 + [3] * 2)
    split = stratified_test_split(y, 2, seed=0, allow_small=True)
    assert split.not_evaluable == {1: 1, 3: 2}
    assert not np.isin(y[split.test], [1, 3]).any()
    assert np.bincount(y[split.test], minlength=4).tolist() == [2, 0, 2, 0]


def test_string_labels_are_reported_by_name():
    y = np.array(["cat"] * 5 + ["dog"] * 2)
    with pytest.raises(ConfigError, match="class 'dog' has 2 samples"):
        stratified_test_split(y, 2, seed=0)


@pytest.mark.parametrize("bad", [{"per_class": 0}, {"per_class": 1.5}, {"seed": -1},
                                 {"seed": 1.0}])
def test_bad_arguments_raise_config_error(bad):
    args = {"per_class": 2, "seed": 0} | bad
    with pytest.raises(ConfigError):
        stratified_test_split(imbalanced_labels(), **args)


def test_groups_must_match_labels():
    with pytest.raises(ConfigError, match="one id per sample"):
        stratified_test_split(np.zeros(5, int), 1, 0, groups=np.arange(4))


@st.composite
def pure_groups(draw):
    """Labels and group ids where every group holds one class, plus a per_class request."""
    y, groups = [], []
    for c in range(draw(st.integers(1, 4))):
        for size in draw(st.lists(st.integers(1, 4), min_size=1, max_size=6)):
            groups += [f"g{len(set(groups))}"] * size
            y += [c] * size
    return np.array(y), np.array(groups), draw(st.integers(1, 6)), draw(st.integers(0, 2**32))


@settings(max_examples=150, deadline=None)
@given(pure_groups(), st.booleans())
def test_grouped_test_split_never_splits_a_group(case, allow_small):
    y, groups, per_class, seed = case
    sizes = collections.Counter(groups.tolist())
    counts = np.bincount(y)
    smallest = np.array([min(sizes[g] for g in set(groups[y == c])) for c in range(len(counts))])
    feasible = counts - smallest >= per_class
    if not feasible.all() and not allow_small:
        with pytest.raises(ConfigError) as err:
            stratified_test_split(y, per_class, seed, groups=groups)
        for c in np.flatnonzero(~feasible):
            assert f"class {c} has {counts[c]} sample" in str(err.value)
        return
    split = stratified_test_split(y, per_class, seed, groups=groups, allow_small=allow_small)
    assert not group_of(groups, split.train) & group_of(groups, split.test)
    assert np.array_equal(np.union1d(split.train, split.test), np.arange(len(y)))
    test_counts = np.bincount(y[split.test], minlength=len(counts))
    largest = np.array([max(sizes[g] for g in set(groups[y == c])) for c in range(len(counts))])
    assert np.all(test_counts[feasible] >= per_class)
    assert np.all(test_counts[feasible] < per_class + largest[feasible])
    assert np.all(test_counts[~feasible] == 0)
    assert split.not_evaluable == {int(c): int(counts[c]) for c in np.flatnonzero(~feasible)}
    assert np.all(np.bincount(y[split.train], minlength=len(counts)) >= 1)


@settings(max_examples=150, deadline=None)
@given(st.integers(2, 60).flatmap(lambda n: st.tuples(
    st.lists(st.integers(0, 3), min_size=n, max_size=n),
    st.lists(st.integers(0, 12), min_size=n, max_size=n),
    st.integers(1, 3), st.integers(0, 1000))))
def test_grouped_test_split_with_mixed_groups_keeps_its_promises(case):
    y, groups, per_class, seed = map(np.asarray, case)
    try:
        split = stratified_test_split(y, int(per_class), int(seed), groups=groups,
                                      allow_small=True)
    except ConfigError as err:  # possible only when groups mix classes
        assert "could be taken" in str(err)
        event("refused: mixed groups")
        return
    assert not group_of(groups, split.train) & group_of(groups, split.test)
    labels = np.unique(y)
    for label in labels:
        in_test = (y[split.test] == label).sum()
        if label in split.not_evaluable:
            assert in_test == 0 and split.not_evaluable[label] == (y == label).sum()
        else:
            assert in_test >= per_class
        assert (y[split.train] == label).sum() >= 1


def test_fraction_split_takes_rounded_fraction_of_each_class():
    y = imbalanced_labels()
    split = stratified_fraction_split(y, 0.2, seed=1)
    expected = np.floor(0.2 * np.bincount(y) + 0.5)
    assert np.array_equal(np.bincount(y[split.test]), expected)
    single = np.append(y, 9)  # a class with one sample cannot be tested
    split = stratified_fraction_split(single, 0.2, seed=1)
    assert split.not_evaluable == {9: 1} and len(single) - 1 in split.train


def test_fraction_split_with_groups_keeps_groups_together():
    rng = np.random.default_rng(0)
    groups = rng.integers(0, 60, size=300)
    y = groups % 3  # one class per group
    split = stratified_fraction_split(y, 0.25, seed=2, groups=groups)
    assert not group_of(groups, split.train) & group_of(groups, split.test)
    assert np.all(np.bincount(y[split.test]) >= np.floor(0.25 * np.bincount(y) + 0.5))


# -- calibration ------------------------------------------------------------------------------

def test_add_calibration_carves_from_train_only():
    y = imbalanced_labels()
    split = stratified_test_split(y, 4, seed=0)
    with_cal = add_calibration(split, y, 0.25, seed=0)
    assert np.array_equal(with_cal.test, split.test)
    assert np.array_equal(np.union1d(with_cal.train, with_cal.calibration), split.train)
    assert np.intersect1d(with_cal.train, with_cal.calibration).size == 0
    expected = np.floor(0.25 * np.bincount(y[split.train]) + 0.5)
    assert np.array_equal(np.bincount(y[with_cal.calibration]), expected)
    with pytest.raises(ConfigError, match="already has a calibration"):
        add_calibration(with_cal, y, 0.25, seed=0)


def test_add_calibration_keeps_groups_and_not_evaluable_classes():
    rng = np.random.default_rng(1)
    groups = rng.integers(0, 80, size=400)
    y = groups % 4
    y[groups == 5] = 4  # class 4: a single group, not evaluable
    split = stratified_test_split(y, 10, seed=0, groups=groups, allow_small=True)
    assert split.not_evaluable == {4: int((y == 4).sum())}
    cal = add_calibration(split, y, 0.3, seed=0, groups=groups)
    parts = [group_of(groups, p) for p in (cal.train, cal.test, cal.calibration)]
    assert not (parts[0] & parts[1] or parts[0] & parts[2] or parts[1] & parts[2])
    assert np.all(y[cal.calibration] != 4) and cal.not_evaluable == split.not_evaluable
    assert np.all(np.bincount(y[cal.train]) >= 1)


def test_add_calibration_refuses_groups_that_the_split_cut():
    y = np.tile([0, 1], 20)
    groups = np.arange(40) // 4
    split = stratified_test_split(y, 3, seed=0)  # made without groups
    with pytest.raises(ConfigError, match="both train and test"):
        add_calibration(split, y, 0.2, seed=0, groups=groups)


# -- K-fold -----------------------------------------------------------------------------------

def fold_class_counts(y: np.ndarray, folds) -> np.ndarray:
    n_classes = y.max() + 1
    return np.array([np.bincount(y[val], minlength=n_classes) for _, val in folds])


def max_proportion_gap(y: np.ndarray, folds) -> float:
    overall = np.bincount(y) / len(y)
    counts = fold_class_counts(y, folds)
    return float(np.abs(counts / counts.sum(axis=1, keepdims=True) - overall).max())


def test_kfold_is_as_balanced_as_sklearn():
    y = imbalanced_labels()
    plan = stratified_kfold(y, 5, seed=0)
    ours = fold_class_counts(y, plan.folds)
    reference = list(StratifiedKFold(5, shuffle=True, random_state=0).split(np.zeros(len(y)), y))
    theirs = fold_class_counts(y, reference)
    counts = np.bincount(y)
    for table in (ours, theirs):  # every class spread as evenly as possible over folds
        assert np.all(table >= counts // 5) and np.all(table <= -(-counts // 5))
    sizes = ours.sum(axis=1)
    assert sizes.max() - sizes.min() <= 1
    assert max_proportion_gap(y, plan.folds) <= max_proportion_gap(y, reference) + 1e-12
    for train, val in plan.folds:
        assert np.array_equal(np.union1d(train, val), np.arange(len(y)))
        assert np.intersect1d(train, val).size == 0
    assert np.array_equal(np.sort(np.concatenate([v for _, v in plan.folds])), np.arange(len(y)))


def test_kfold_reproducible_and_seed_dependent():
    y = imbalanced_labels()
    groups = np.arange(len(y)) // 2
    for g in (None, groups):
        a, b = stratified_kfold(y, 4, 7, groups=g), stratified_kfold(y, 4, 7, groups=g)
        assert np.array_equal(a.fold, b.fold)
        assert not np.array_equal(a.fold, stratified_kfold(y, 4, 8, groups=g).fold)


def test_single_sample_class_is_not_evaluable_and_never_validated():
    y = np.array([0] * 20 + [1] * 20 + [2] + [3] * 3)
    plan = stratified_kfold(y, 5, seed=0)
    assert plan.not_evaluable == {2: 1, 3: 3}
    for train, val in plan.folds:
        assert not np.isin(y[val], [2, 3]).any()
        assert 40 in train and {41, 42, 43} <= set(train.tolist())
    assert np.all(plan.fold[40:] == -1)


def test_kfold_with_too_few_samples_raises():
    with pytest.raises(ConfigError, match="n_splits"):
        stratified_kfold(np.array([0, 0, 1, 1]), 3, seed=0)
    with pytest.raises(ConfigError, match="n_splits"):
        stratified_kfold(np.zeros(10, int), 1, seed=0)


def syndrome_like(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Ten imbalanced classes of subjects with one to a few images each."""
    rng = np.random.default_rng(seed)
    y, groups = [], []
    for c, n_subjects in enumerate([180, 170, 120, 100, 85, 75, 65, 60, 55, 55]):
        for _ in range(n_subjects):
            size = 1 + rng.poisson(0.2)
            groups += [len(groups)] * size  # a new id: the position of its first image
            y += [c] * size
    return np.array(y), np.array(groups)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_group_kfold_stratifies_about_as_well_as_sklearn(seed):
    y, groups = syndrome_like(seed)
    plan = stratified_kfold(y, 5, seed, groups=groups)
    reference = list(StratifiedGroupKFold(5, shuffle=True, random_state=seed)
                     .split(np.zeros(len(y)), y, groups))
    ours, theirs = max_proportion_gap(y, plan.folds), max_proportion_gap(y, reference)
    assert ours <= max(0.02, 1.5 * theirs), (ours, theirs)
    sizes = np.bincount(plan.fold)
    assert sizes.max() - sizes.min() <= 0.05 * len(y)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(2, 80).flatmap(lambda n: st.tuples(
    st.lists(st.integers(0, 4), min_size=n, max_size=n),
    st.lists(st.integers(0, 25), min_size=n, max_size=n),
    st.integers(2, 5), st.integers(0, 1000))))
def test_group_kfold_never_splits_a_group(case):
    y, groups, n_splits, seed = map(np.asarray, case)
    try:
        plan = stratified_kfold(y, int(n_splits), int(seed), groups=groups)
    except ConfigError as err:
        assert "empty validation fold" in str(err)
        event("refused: empty fold")
        return
    for g in np.unique(groups):
        assert len(np.unique(plan.fold[groups == g])) == 1
    n_groups = {c: len(np.unique(groups[y == c])) for c in np.unique(y).tolist()}
    small = {c for c, k in n_groups.items() if k < n_splits}
    assert plan.not_evaluable == {c: int((y == c).sum()) for c in small}
    assert np.all(plan.fold[np.isin(y, list(small))] == -1)
    assert np.all(np.bincount(plan.fold[plan.fold >= 0], minlength=int(n_splits)) > 0)
    for train, val in plan.folds:
        assert not group_of(groups, train) & group_of(groups, val)
        assert np.array_equal(np.union1d(train, val), np.arange(len(y)))


# -- duplicates -------------------------------------------------------------------------------

def reference_pairs(x: np.ndarray, a, b) -> list[tuple[int, int]]:
    """Duplicate pairs by a dictionary of each row's bytes: slow but obviously right."""
    where = collections.defaultdict(list)
    for j in b:
        where[x[j].tobytes()].append(int(j))
    return sorted((int(i), j) for i in a for j in where.get(x[i].tobytes(), []))


def planted_images() -> np.ndarray:
    x = np.random.default_rng(0).integers(0, 256, size=(200, 5, 5), dtype=np.uint8)
    x[150] = x[3]
    x[170] = x[3]
    x[160] = x[40]
    x[10] = x[20]  # a duplicate inside one side only
    return x


def test_finds_planted_duplicates_and_matches_reference():
    x = planted_images()
    a, b = np.arange(100), np.arange(100, 200)
    pairs = find_duplicates_across(x, a, b)
    assert pairs == [(3, 150), (3, 170), (40, 160)]
    assert pairs == reference_pairs(x, a, b)


def test_no_duplicates_on_distinct_data():
    x = np.arange(300 * 3, dtype=np.int32).reshape(300, 3)
    assert find_duplicates_across(x, np.arange(150), np.arange(150, 300)) == []


def test_duplicates_are_byte_identical_only():
    x = np.array([[0.0, 1.0], [-0.0, 1.0], [0.0, 1.0]], dtype=np.float32)
    assert find_duplicates_across(x, [0], [1, 2]) == [(0, 2)]


def test_hash_collisions_never_create_false_duplicates(monkeypatch):
    x = np.random.default_rng(1).integers(0, 3, size=(120, 2), dtype=np.uint8)
    monkeypatch.setattr(splits, "_row_hashes", lambda rows: np.zeros(len(rows), np.uint64))
    a, b = np.arange(0, 120, 2), np.arange(1, 120, 2)
    assert find_duplicates_across(x, a, b) == reference_pairs(x, a, b)


@settings(max_examples=100, deadline=None)
@given(st.integers(1, 40), st.integers(1, 13), st.integers(0, 1000))
def test_duplicate_finder_matches_reference(n, width, seed):
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 2, size=(n, width), dtype=np.uint8)  # small alphabet: many duplicates
    a, b = rng.choice(n, size=rng.integers(1, n + 1), replace=False), rng.permutation(n)[: n // 2]
    assert find_duplicates_across(x, a, b) == reference_pairs(x, a, b)
    ids = content_ids(x)
    rows = [r.tobytes() for r in x]
    same = np.equal.outer(ids, ids)
    assert all(same[i, j] == (rows[i] == rows[j]) for i in range(n) for j in range(n))


def test_leakage_report_counts_duplicates_between_parts():
    x = planted_images()
    split = Split(train=np.arange(100), test=np.arange(100, 160),
                  calibration=np.arange(160, 200))
    report = leakage_report(x, split)
    assert report["train_test"] == {"pairs": 1, "samples": {"train": 1, "test": 1},
                                    "examples": [[3, 150]]}
    assert report["train_calibration"]["pairs"] == 2
    assert report["train_calibration"]["examples"] == [[3, 170], [40, 160]]
    assert report["calibration_test"] == {"pairs": 1, "samples": {"calibration": 1, "test": 1},
                                          "examples": [[170, 150]]}


# -- files ------------------------------------------------------------------------------------

def test_save_and_load_round_trip(tmp_path: Path):
    y = imbalanced_labels()
    split = add_calibration(stratified_test_split(np.append(y, 9), 3, 0, allow_small=True),
                            np.append(y, 9), 0.2, 0)
    run = RunFolder("test", tmp_path / "run", argv=["test"])
    path = save_split(run, split)
    assert path == tmp_path / "run" / "split.json"
    assert "split.json" in run.manifest["artifacts"]
    loaded = load_split(path, n_samples=len(y) + 1)
    assert loaded.as_dict() == split.as_dict()
    assert loaded.not_evaluable == {9: 1}
    doc = json.loads(path.read_text())
    assert doc["counts"] == {k: len(v) for k, v in split.as_dict().items()}


def write_split(path: Path, **changes) -> Path:
    doc = {"format": splits.SPLIT_FORMAT, "train": [0, 1, 2], "test": [3], "calibration": [],
           "not_evaluable": []} | changes
    path.write_text(json.dumps(doc))
    return path


@pytest.mark.parametrize(("changes", "message"), [
    ({"test": [2]}, "overlap"),
    ({"test": [5]}, "cover positions 0..3"),
    ({"test": [3, 3]}, "distinct"),
    ({"test": [3.0]}, "integer"),
    ({"test": [True]}, "integer"),
    ({"format": "other"}, "format"),
    ({"not_evaluable": [{"count": 2}]}, "not_evaluable"),
])
def test_load_split_rejects_bad_files(tmp_path: Path, changes, message):
    path = write_split(tmp_path / "bad.json", **changes)
    with pytest.raises(DataError, match=message) as err:
        load_split(path)
    assert str(path) in str(err.value)


def test_load_split_checks_dataset_length(tmp_path: Path):
    path = write_split(tmp_path / "split.json")
    assert load_split(path, n_samples=4).test.tolist() == [3]
    with pytest.raises(DataError, match="another dataset"):
        load_split(path, n_samples=10)
    (tmp_path / "broken.json").write_text("{")
    with pytest.raises(DataError, match="broken.json"):
        load_split(tmp_path / "broken.json")


# -- real data --------------------------------------------------------------------------------

def read_mnist(mnist_dir: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pooled images, labels and official-train mask, via the package loader when it is ready."""
    try:
        from notsure.data.load import load

        data = load(mnist_dir, format="mnist")
        return data.x, data.y, np.char.startswith(data.ids.astype(str), "train/")
    except ImportError:
        pass

    def idx(name: str) -> np.ndarray:
        raw = gzip.decompress((mnist_dir / f"{name}.gz").read_bytes())
        ndim = raw[3]
        shape = np.frombuffer(raw, ">u4", count=ndim, offset=4)
        return np.frombuffer(raw, np.uint8, offset=4 + 4 * ndim).reshape(shape)

    x = np.concatenate([idx("train-images-idx3-ubyte"), idx("t10k-images-idx3-ubyte")])
    y = np.concatenate([idx("train-labels-idx1-ubyte"), idx("t10k-labels-idx1-ubyte")])
    return x, y.astype(np.int64), np.arange(len(y)) < 60_000


def test_mnist_pooled_split_has_1000_per_class_and_duplicates_match_set_count(mnist_dir):
    x, y, official_train = read_mnist(mnist_dir)
    assert np.bincount(y[official_train]).tolist() == list(MNIST_TRAIN_COUNTS)
    assert np.bincount(y[~official_train]).tolist() == list(MNIST_TEST_COUNTS)

    split = stratified_test_split(y, 1000, seed=0)
    assert np.bincount(y[split.test]).tolist() == [1000] * 10
    assert np.bincount(y[split.train]).tolist() == [
        a + b - 1000 for a, b in zip(MNIST_TRAIN_COUNTS, MNIST_TEST_COUNTS, strict=True)]
    assert len(split) == 70_000

    def pairs_by_bytes(a: np.ndarray, b: np.ndarray) -> int:
        seen = collections.Counter(row.tobytes() for row in x[a])
        return sum(seen[row.tobytes()] for row in x[b])

    official = np.flatnonzero(official_train), np.flatnonzero(~official_train)
    assert len(find_duplicates_across(x, *official)) == pairs_by_bytes(*official)
    report = leakage_report(x, split)
    assert report["train_test"]["pairs"] == pairs_by_bytes(split.train, split.test)


def test_syndromes_group_kfold_keeps_subjects_together(syndromes_pickle):
    with open(syndromes_pickle, "rb") as fh:  # the project's own read-only data file
        data = pickle.load(fh)
    y, subjects = [], []
    for syndrome, by_subject in data.items():
        for subject, images in by_subject.items():
            y += [syndrome] * len(images)
            subjects += [subject] * len(images)
    y, subjects = np.array(y), np.array(subjects)
    assert len(y) == 1116 and len(np.unique(subjects)) == 941
    plan = stratified_kfold(y, 10, seed=0, groups=subjects)
    assert plan.not_evaluable == {}
    _, yi = np.unique(y, return_inverse=True)
    reference = list(StratifiedGroupKFold(10, shuffle=True, random_state=0)
                     .split(np.zeros(len(y)), yi, subjects))
    assert max_proportion_gap(yi, plan.folds) <= max(0.02, 1.5 * max_proportion_gap(yi, reference))
    for train, val in plan.folds:
        assert not group_of(subjects, train) & group_of(subjects, val)
        assert len(np.unique(y[val])) == 10
    split = stratified_test_split(y, 10, seed=0, groups=subjects)
    assert not group_of(subjects, split.train) & group_of(subjects, split.test)
    assert np.all(np.unique(y[split.test], return_counts=True)[1] >= 10)
