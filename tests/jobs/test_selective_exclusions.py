"""``notsure selective --exclusions``: listed training-pool samples are dropped or relabelled, the
locked test split stays the one of a run without exclusions, bad files fail before any output."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from test_selective import make_images

import notsure.jobs.selective.pipeline as selective
from notsure.cli.main import main
from notsure.data import load
from notsure.data.exclusions import write_exclusions
from notsure.data.splits import load_split, stratified_test_split
from notsure.errors import ConfigError
from notsure.jobs.selective.pipeline import SelectiveConfig

TINY = ["--quick", "--quiet", "--test-per-class", "20", "--folds", "2", "--epochs", "1",
        "--target-fpr", "0.05", "--delta", "0.2"]
N_POOL, N_TEST = 12, 4


def read_json(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> dict:
    """Bars images with two planted train/test duplicates, and an exclusion file listing
    ``N_POOL`` pool samples (one of them a duplicate of a test image) and ``N_TEST`` test ones."""
    x, y = make_images(90, seed=7)
    # The job's split depends on the labels and the seed alone: plant duplicates across it.
    split = stratified_test_split(y, 20, 0)
    rng = np.random.default_rng(8)
    test = rng.choice(split.test[y[split.test] == 0], 2, replace=False)
    pool = rng.choice(split.train[y[split.train] == 0], 2, replace=False)
    x[pool] = x[test]
    folder = tmp_path_factory.mktemp("data")
    npz = folder / "bars.npz"
    np.savez(npz, x_train=x, y_train=y)
    ds = load(npz)
    others = np.setdiff1d(split.train, pool)
    listed_pool = np.sort(np.append(rng.choice(others, N_POOL - 1, replace=False), pool[0]))
    listed_test = np.sort(rng.choice(np.setdiff1d(split.test, test), N_TEST, replace=False))
    listed = np.concatenate([listed_pool, listed_test])
    names = np.asarray(ds.class_names)
    suggested = (ds.y[listed] + 1) % ds.n_classes
    excl = write_exclusions(folder / "exclusions.csv", ds.ids[listed], names[ds.y[listed]],
                            names[suggested])
    return {"npz": npz, "ds": ds, "excl": excl, "listed_pool": listed_pool,
            "listed_test": listed_test, "suggested_pool": suggested[:N_POOL],
            "dup_dropped": (int(pool[0]), int(test[0])), "dup_kept": (int(pool[1]), int(test[1]))}


def run(data: dict, out: Path, *extra: str) -> Path:
    assert main(["selective", "--data", str(data["npz"]), "--out", str(out), *TINY, *extra]) == 0
    return out


@pytest.fixture(scope="module")
def plain_run(data, tmp_path_factory) -> Path:
    return run(data, tmp_path_factory.mktemp("runs") / "plain")


@pytest.fixture(scope="module")
def drop_run(data, tmp_path_factory) -> Path:
    return run(data, tmp_path_factory.mktemp("runs") / "drop", "--exclusions", str(data["excl"]))


@pytest.fixture(scope="module")
def relabel_run(data, tmp_path_factory) -> tuple[Path, list[np.ndarray]]:
    """The relabel run, and the label vectors cross-fitting was given (spied on)."""
    seen = []
    real = selective.cross_fit

    def spy(x, y, *args, **kwargs):
        seen.append(np.array(y))
        return real(x, y, *args, **kwargs)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(selective, "cross_fit", spy)
        out = run(data, tmp_path_factory.mktemp("runs") / "relabel", "--exclusions",
                  str(data["excl"]), "--exclusion-mode", "relabel")
    return out, seen


def test_drop_removes_exactly_the_listed_pool_samples(data, plain_run, drop_run):
    plain, drop = read_json(plain_run / "split.json"), read_json(drop_run / "split.json")
    assert drop["test"] == plain["test"]
    assert np.isin(data["listed_test"], drop["test"]).all()
    assert drop["train"] == np.setdiff1d(plain["train"], data["listed_pool"]).tolist()
    assert len(plain["train"]) + len(plain["test"]) == len(data["ds"])
    # Dropped samples sit in the split's "excluded" part: every position is still accounted for.
    assert drop["excluded"] == np.sort(data["listed_pool"]).tolist() and plain["excluded"] == []
    assert len(load_split(drop_run / "split.json", len(data["ds"])).excluded) == \
        len(data["listed_pool"])
    folds = read_json(drop_run / "folds.json")
    assert sorted(folds["positions"]) == drop["train"]
    with np.load(drop_run / "scores.npz") as scores:
        assert scores["pool_positions"].tolist() == drop["train"]
        assert scores["test_positions"].tolist() == plain["test"]
    # The test set is scored against its original labels, listed ones included.
    metrics = read_json(drop_run / "metrics.json")
    y_test = data["ds"].y[plain["test"]]
    assert metrics["test"]["per_class_count"] == np.bincount(y_test, minlength=3).tolist()
    assert np.array(metrics["after"]["confusion_matrix"]).sum(axis=1).tolist() == [20] * 3


def test_dropped_duplicates_are_no_leak(data, plain_run, drop_run):
    plain = read_json(plain_run / "metrics.json")["leakage"]["train_test"]
    drop = read_json(drop_run / "metrics.json")["leakage"]["train_test"]
    assert plain["pairs"] == 2
    assert sorted(map(tuple, plain["examples"])) == sorted([data["dup_dropped"],
                                                            data["dup_kept"]])
    assert drop["pairs"] == 1 and drop["examples"] == [list(data["dup_kept"])]


def test_manifest_and_report_record_the_exclusions(data, plain_run, drop_run):
    info = read_json(drop_run / "manifest.json")["data"]["exclusions"]
    assert info == {"file": str(data["excl"]),
                    "sha256": hashlib.sha256(data["excl"].read_bytes()).hexdigest(),
                    "mode": "drop", "n_listed": N_POOL + N_TEST, "n_pool": N_POOL,
                    "n_test": N_TEST}
    assert read_json(drop_run / "metrics.json")["exclusions"] == info
    report = (drop_run / "report.md").read_text(encoding="utf-8")
    assert (f"of the {N_POOL + N_TEST} listed samples, {N_POOL} in the training pool were "
            f"dropped" in report)
    assert f"{N_TEST} in the locked test split kept their given labels" in report
    assert "exclusions" not in read_json(plain_run / "manifest.json")["data"]
    assert "exclusions" not in read_json(plain_run / "metrics.json")
    assert "Exclusions from" not in (plain_run / "report.md").read_text(encoding="utf-8")


def test_relabel_trains_and_calibrates_on_the_suggested_labels(data, plain_run, relabel_run):
    out, seen = relabel_run
    ds = data["ds"]
    plain, split = read_json(plain_run / "split.json"), read_json(out / "split.json")
    assert split == plain
    pool = np.asarray(split["train"])
    y_train = ds.y.copy()
    y_train[data["listed_pool"]] = data["suggested_pool"]
    assert len(seen) == 1 and seen[0].tolist() == y_train[pool].tolist()
    assert (y_train[pool] != ds.y[pool]).sum() == N_POOL
    # Calibration positives per class move by the relabelled samples, in and out.
    positives = lambda run: [c["n_positives"]  # noqa: E731
                             for c in read_json(run / "thresholds.json")["certificates"]]
    moved = (np.bincount(data["suggested_pool"], minlength=3)
             - np.bincount(ds.y[data["listed_pool"]], minlength=3))
    assert np.array_equal(positives(out), np.array(positives(plain_run)) + moved)
    assert positives(out) == np.bincount(y_train[pool], minlength=3).tolist()
    # Test labels stay as given.
    metrics = read_json(out / "metrics.json")
    assert np.array(metrics["before"]["confusion_matrix"]).sum(axis=1).tolist() == [20] * 3
    info = read_json(out / "manifest.json")["data"]["exclusions"]
    assert (info["mode"], info["n_pool"], info["n_test"]) == ("relabel", N_POOL, N_TEST)
    assert "used for training and calibration with their suggested labels" in (
        out / "report.md").read_text(encoding="utf-8")


def bad_file(data: dict, path: Path, row: int, column: int, value: str) -> Path:
    lines = data["excl"].read_text(encoding="utf-8").splitlines()
    cells = lines[row - 1].split(",")
    cells[column] = value
    lines[row - 1] = ",".join(cells)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.mark.parametrize("row,column,value,mode,words", [
    (3, 0, "train/999999", "drop", ("train/999999", "is not in")),
    (4, 1, "nine", "drop", ("has label", "'nine'")),
    (5, 2, "nine", "relabel", ("suggested label", "'nine'", "is not a class")),
])
def test_bad_exclusion_file_fails_cleanly_and_writes_nothing(data, tmp_path, capsys, row, column,
                                                             value, mode, words):
    path = bad_file(data, tmp_path / "bad.csv", row, column, value)
    out = tmp_path / "run"
    code = main(["selective", "--data", str(data["npz"]), "--out", str(out), *TINY,
                 "--exclusions", str(path), "--exclusion-mode", mode])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(err) == 1 and err[0].startswith("notsure: error:")
    assert f"{path}: line {row}:" in err[0] and all(w in err[0] for w in words)
    assert not out.exists()


def test_missing_exclusion_file_fails_cleanly(data, tmp_path, capsys):
    out = tmp_path / "run"
    code = main(["selective", "--data", str(data["npz"]), "--out", str(out), *TINY,
                 "--exclusions", str(tmp_path / "none.csv")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "none.csv: exclusion file not found" in err[0]
    assert not out.exists()


def test_unknown_exclusion_mode_is_refused():
    with pytest.raises(ConfigError, match="--exclusion-mode"):
        SelectiveConfig(exclusions="x.csv", exclusion_mode="fix").validate()
