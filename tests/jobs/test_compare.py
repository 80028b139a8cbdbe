"""The compare job end to end on small generated letters: the locked test split never reaches
model selection, overlap with the test split is refused, the single-image class is handled, and
the summary matches the saved predictions (notsure.metrics and scikit-learn)."""

from __future__ import annotations

import csv
import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, f1_score

import notsure.cli.main as cli
from notsure import metrics
from notsure.data import load
from notsure.data.letters import make_letters, save_letters
from notsure.data.splits import find_duplicates_across, load_split
from notsure.errors import ConfigError
from notsure.jobs.compare import pipeline as compare
from notsure.jobs.compare import run as compare_run
from notsure.jobs.compare.pipeline import CompareConfig
from notsure.jobs.compare.run import run_compare
from notsure.models import classical
from notsure.models.checkpoints import CheckpointStore
from notsure.models.classical import pixel_features

#: 8 classes of 24-44 images and one single-image class, like the customer's smallest.
COUNTS = {"0": 40, "O": 36, "1": 30, "I": 24, "5": 44, "S": 34, "2": 28, "Z": 26, "Q": 1}
FAST = ("logreg", "knn", "tree")


def run_cli(args: list[str]) -> int:
    return cli.main(args)


def read_csv(path: Path) -> list[dict]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


@pytest.fixture(scope="module")
def letters(tmp_path_factory) -> Path:
    x, y = make_letters(COUNTS, seed=0)
    return save_letters(tmp_path_factory.mktemp("data") / "letters.p", x, y)


class Spy:
    """Records every array a model is fitted on or predicts during the job."""

    def __init__(self):
        self.seen: list[tuple[str, np.ndarray]] = []

    def wrap(self, mp: pytest.MonkeyPatch, owner: object, name: str, arrays: tuple[int, ...]):
        original = getattr(owner, name)

        def spied(*args, **kwargs):
            for i in arrays:
                self.seen.append((name, np.asarray(args[i])))
            return original(*args, **kwargs)

        mp.setattr(owner, name, spied)


@pytest.fixture(scope="module")
def spied_run(letters, tmp_path_factory) -> tuple[Path, Spy]:
    """One quick run through the CLI with every fit and every CV prediction recorded."""
    out = tmp_path_factory.mktemp("runs") / "cmp"
    spy = Spy()
    with pytest.MonkeyPatch.context() as mp:
        # CV: grid_predict(self, x_fit, y_fit, x_eval, ...); fits: fit(self, params, x, y, ...)
        for family in (classical.Family, classical.KNNFamily, classical.TreeFamily):
            spy.wrap(mp, family, "grid_predict", (1, 3))
        spy.wrap(mp, classical.Family, "fit", (2,))
        code = run_cli(["compare", str(letters), "--out", str(out), "--quick", "--quiet",
                        "--executor", "local",  # the spies see only this process
                        "--models", ",".join(FAST), "--cv-folds", "3"])
    assert code == 0
    return out, spy


@pytest.fixture(scope="module")
def run(spied_run) -> Path:
    return spied_run[0]


def test_run_writes_every_artifact(run):
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["status"] == "complete"
    for name in ("report.md", "report.html", "metrics.json", "split.json",
                 "tables/summary.csv", "figures/confusion_best.png", "figures/curve_knn.png",
                 "figures/curve_tree.png", "tables/cv_tree.csv", "tables/confused_pairs.csv"):
        assert (run / name).is_file(), name
    for model in FAST:
        assert (run / f"predictions/{model}.csv").is_file()
        assert (run / f"tables/report_{model}.csv").is_file()
    report = (run / "report.md").read_text()
    assert "Hyperparameter curves" in report and "Most confused class pairs" in report


def test_summary_matches_metrics_recomputed_from_saved_predictions(run, letters):
    ds = load(letters)
    split = load_split(run / "split.json", len(ds))
    summary = {row["name"]: row for row in read_csv(run / "tables/summary.csv")}
    doc = json.loads((run / "metrics.json").read_text())
    for model in FAST:
        rows = read_csv(run / f"predictions/{model}.csv")
        position = np.array([int(r["position"]) for r in rows])
        y_true = np.array([int(r["y_true"]) for r in rows])
        y_pred = np.array([int(r["y_pred"]) for r in rows])
        assert np.array_equal(position, split.test)  # every test image, nothing else
        assert np.array_equal(y_true, ds.y[split.test])
        acc = accuracy_score(y_true, y_pred)
        f1 = f1_score(y_true, y_pred, average="macro")
        assert metrics.accuracy(y_true, y_pred) == pytest.approx(acc, abs=1e-12)
        assert metrics.precision_recall_f1(y_true, y_pred, average="macro")[2] == \
            pytest.approx(f1, abs=1e-12)
        assert float(summary[model]["test_accuracy"]) == pytest.approx(acc, abs=1e-12)
        assert float(summary[model]["test_macro_f1"]) == pytest.approx(f1, abs=1e-12)
        test = doc["models"][model]["test"]
        assert test["accuracy"] == pytest.approx(acc, abs=1e-12)
        assert test["macro_f1"] == pytest.approx(f1, abs=1e-12)
        assert test["accuracy_lo"] <= acc <= test["accuracy_hi"]


def test_cv_summary_is_the_chosen_row_of_the_cv_table(run):
    summary = {row["name"]: row for row in read_csv(run / "tables/summary.csv")}
    for model in ("logreg", "knn", "tree"):
        rows = read_csv(run / f"tables/cv_{model}.csv")
        chosen = [r for r in rows if r["chosen"] == "True"]
        assert len(chosen) == 1
        folds = [float(chosen[0][f"macro_f1_fold{f}"]) for f in range(3)]
        assert float(summary[model]["cv_macro_f1"]) == pytest.approx(np.mean(folds))
        assert float(summary[model]["cv_macro_f1_sd"]) == pytest.approx(np.std(folds, ddof=1))
        best = max(float(r["macro_f1_mean"]) for r in rows)
        assert float(chosen[0]["macro_f1_mean"]) == best


def test_single_image_class_is_kept_in_training_and_listed_not_evaluable(run, letters):
    ds = load(letters)
    split = load_split(run / "split.json", len(ds))
    q = ds.class_names.index("Q")
    assert np.flatnonzero(ds.y == q)[0] in split.train
    assert not np.any(ds.y[split.test] == q)
    doc = json.loads((run / "metrics.json").read_text())
    assert doc["split"]["not_evaluable"] == {"Q": 1}
    assert doc["models"]["tree"]["cv"]["not_evaluable"]["Q"] == 1
    assert "Q (1 image)" in (run / "report.md").read_text()


def test_per_class_test_split_with_tiny_classes_does_not_crash(letters, tmp_path):
    out = run_compare(CompareConfig(data=str(letters), out=str(tmp_path / "r"), quick=True,
                                    quiet=True, models=("knn",), test_per_class=5, cv_folds=5))
    doc = json.loads((out / "metrics.json").read_text())
    assert doc["split"]["test"] == 5 * (len(COUNTS) - 1)
    assert doc["split"]["not_evaluable"] == {"Q": 1}


def test_class_weights_reach_every_weighted_model(letters, tmp_path, monkeypatch):
    made = []
    original = classical.Family.fit

    def record(self, params, x, y, seed, class_weight=None, standardize=False):
        made.append((self.name, class_weight))
        return original(self, params, x, y, seed, class_weight, standardize)

    monkeypatch.setattr(classical.Family, "fit", record)
    out = run_compare(CompareConfig(data=str(letters), out=str(tmp_path / "w"), quick=True,
                                    quiet=True, models=("logreg", "tree"), cv_folds=3,
                                    class_weight="balanced"))
    assert {name for name, _ in made} == {"logreg", "tree"}
    assert all(weight == "balanced" for _, weight in made)
    assert json.loads((out / "metrics.json").read_text())["class_weight"] == "balanced"
    assert "Class weights: balanced" in (out / "report.md").read_text()


def assert_no_test_image(spy: Spy, test_images: np.ndarray) -> None:
    """By content: no array a model saw holds a test image."""
    for name, x in spy.seen:
        rows = x.reshape(len(x), -1).astype(np.float32)
        both = np.concatenate([rows, test_images])
        shared = find_duplicates_across(both, np.arange(len(rows)),
                                        len(rows) + np.arange(len(test_images)))
        assert shared == [], f"{name} saw test images"


def test_locked_test_split_never_reaches_model_selection(spied_run, letters):
    out, spy = spied_run
    ds = load(letters)
    split = load_split(out / "split.json", len(ds))
    test_images = ds.x[split.test].reshape(len(split.test), -1).astype(np.float32)
    assert {name for name, _ in spy.seen} == {"grid_predict", "fit"}
    assert_no_test_image(spy, test_images)
    # by position: every CV fold and final fit lies in the training part
    config = CompareConfig(quick=True, cv_folds=3, models=FAST)
    plans = compare.plan_models(ds, split, config, compare.leak_groups(ds))
    for plan in plans:
        for fit, val in plan.folds:
            assert not np.isin(np.concatenate([fit, val]), split.test).any()
            assert not np.isin(fit, val).any()
        assert not np.isin(plan.fit_index, split.test).any()
    # locked: drawn from labels and seed alone, whatever the models
    assert np.array_equal(compare.lock_split(ds, config, compare.leak_groups(ds)).test,
                          split.test)


@pytest.mark.slow
def test_cnns_train_on_the_training_part_only(letters, tmp_path, run):
    spy = Spy()
    with pytest.MonkeyPatch.context() as mp:
        spy.wrap(mp, compare, "train_cnn", (0,))
        out = run_compare(CompareConfig(data=str(letters), out=str(tmp_path / "cnn"),
                                        quick=True, quiet=True, models=compare.CNN_MODELS,
                                        epochs=6, cv_folds=3))
    ds = load(letters)
    split = load_split(out / "split.json", len(ds))
    assert np.array_equal(split.test, load_split(run / "split.json").test)  # locked
    assert len(spy.seen) == 2
    assert_no_test_image(spy, ds.x[split.test].reshape(len(split.test), -1).astype(np.float32))
    doc = json.loads((out / "metrics.json").read_text())
    y_true = ds.y[split.test]
    for model in compare.CNN_MODELS:
        rows = read_csv(out / f"predictions/{model}.csv")
        y_pred = np.array([int(r["y_pred"]) for r in rows])
        assert doc["models"][model]["test"]["accuracy"] == pytest.approx(
            accuracy_score(y_true, y_pred), abs=1e-12)
        assert doc["models"][model]["test"]["macro_f1"] == pytest.approx(
            f1_score(y_true, y_pred, average="macro"), abs=1e-12)
        assert doc["models"][model]["cv"] is None  # fixed architecture, not cross-validated


@pytest.fixture
def planted(tmp_path) -> tuple[Path, int]:
    """Letters where one image appears 12 times (an exact duplicate across many rows)."""
    x, y = make_letters(COUNTS, seed=1)
    x[:12] = x[0]
    y[:12] = y[0]
    return save_letters(tmp_path / "dup.p", x, y), 12


def test_duplicates_are_kept_on_one_side_of_the_split(planted, tmp_path):
    path, n_copies = planted
    out = run_compare(CompareConfig(data=str(path), out=str(tmp_path / "ok"), quick=True,
                                    quiet=True, models=("knn",), cv_folds=3))
    doc = json.loads((out / "metrics.json").read_text())
    assert doc["split"]["duplicate_samples_grouped"] == n_copies - 1
    assert doc["models"]["knn"]["status"] == "scored"


def test_overlap_with_the_test_split_is_refused(planted, tmp_path, monkeypatch):
    path, n_copies = planted
    monkeypatch.setattr(compare_run, "leak_groups", lambda ds: None)  # split blind to duplicates
    out = run_compare(CompareConfig(data=str(path), out=str(tmp_path / "leak"), quick=True,
                                    quiet=True, models=("knn", "tree"), cv_folds=3, seed=3))
    ds = load(path)
    split = load_split(out / "split.json", len(ds))
    copies = np.arange(n_copies)
    assert np.isin(copies, split.test).any() and np.isin(copies, split.train).any()
    doc = json.loads((out / "metrics.json").read_text())
    summary = {row["name"]: row for row in read_csv(out / "tables/summary.csv")}
    for model in ("knn", "tree"):
        entry = doc["models"][model]
        assert entry["status"] == "refused" and "byte-identical" in entry["refused_reason"]
        assert entry["test"] is None and entry["predictions"] is None
        assert summary[model]["test_accuracy"] == "" and summary[model]["status"].startswith(
            "REFUSED")
        assert not (out / f"predictions/{model}.csv").exists()
    assert "**Refused**" in (out / "report.md").read_text()


def test_overlap_reason_by_sample_id_and_by_image(letters):
    ds = load(letters)
    assert compare.overlap_reason(ds, np.arange(0, 50), np.arange(50, 80)) is None
    assert "sample id" in compare.overlap_reason(ds, np.arange(0, 51), np.arange(50, 80))
    x = ds.x.copy()
    x[70] = x[3]
    planted = dataclasses.replace(ds, x=x, fingerprint="")
    assert "byte-identical" in compare.overlap_reason(planted, np.arange(0, 50),
                                                      np.arange(50, 80))


def test_bad_input_writes_nothing(letters, tmp_path, capsys):
    out = tmp_path / "never"
    assert run_cli(["compare", str(letters), "--out", str(out), "--models", "knn,svm"]) == 2
    assert "unknown ['svm']" in capsys.readouterr().err
    assert run_cli(["compare", str(tmp_path / "missing.p"), "--out", str(out)]) == 2
    with pytest.raises(SystemExit) as exc:  # argparse rejects the value itself
        run_cli(["compare", str(letters), "--out", str(out), "--cv-max", "knn=x"])
    assert exc.value.code == 2
    assert not out.exists()


def test_vectors_refuse_cnns_and_compare_classical_models(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(120, 6)).astype(np.float32)
    y = np.repeat(np.arange(3), 40)
    x[:, 0] += 3 * y
    np.savez(tmp_path / "v.npz", x=x, y=y)
    with pytest.raises(ConfigError, match="CNNs need images"):
        run_compare(CompareConfig(data=str(tmp_path / "v.npz"), out=str(tmp_path / "a"),
                                  models=("cnn",), quiet=True))
    assert not (tmp_path / "a").exists()
    out = run_compare(CompareConfig(data=str(tmp_path / "v.npz"), out=str(tmp_path / "b"),
                                    quick=True, quiet=True, models=("logreg", "knn")))
    doc = json.loads((out / "metrics.json").read_text())
    assert doc["models"]["logreg"]["test"]["accuracy"] > 0.8


def test_headerless_csv_with_a_labels_file(tmp_path):
    """The postal customer's layout: a CSV of pixel rows and a CSV of labels."""
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(3), 30)
    x = rng.integers(0, 60, size=(90, 8, 8))
    for c in range(3):
        x[y == c, 2 * c:2 * c + 3, :] = 255  # a bright bar whose row gives the class
    np.savetxt(tmp_path / "pixels.csv", x.reshape(90, -1), fmt="%d", delimiter=",")
    np.savetxt(tmp_path / "digits.csv", y, fmt="%d")
    out = tmp_path / "r"
    assert run_cli(["compare", str(tmp_path / "pixels.csv"), "--labels",
                    str(tmp_path / "digits.csv"), "--out", str(out), "--quick", "--quiet",
                    "--models", "knn,tree", "--cv-folds", "3"]) == 0
    doc = json.loads((out / "metrics.json").read_text())
    assert doc["dataset"]["shape"] == [8, 8] and doc["split"]["test"] == 12
    assert doc["models"]["knn"]["test"]["accuracy"] == 1.0


# -- pieces -------------------------------------------------------------------------------------

def test_leak_groups_join_duplicates_and_given_groups():
    from notsure.data.dataset import Dataset

    x = np.zeros((6, 2, 2), np.uint8)
    x[:, 0, 0] = [1, 2, 1, 3, 4, 5]  # 0 and 2 identical
    ds = Dataset(x=x, y=np.zeros(6, np.int64), class_names=("a",),
                 ids=np.array(list("abcdef")), kind="images", source="t", format="t",
                 groups=np.array(["s1", "s2", "s3", "s3", "s4", "s5"]))
    g = compare.leak_groups(ds)
    assert g[0] == g[2] == g[3]  # 0=2 by content, 2~3 by subject
    assert len(np.unique(g)) == 4
    ds_alone = Dataset(x=x[[0, 1, 3]], y=np.zeros(3, np.int64), class_names=("a",),
                       ids=np.array(list("abc")), kind="images", source="t", format="t")
    assert compare.leak_groups(ds_alone) is None


def test_stratified_subsample_keeps_every_class():
    y = np.repeat(np.arange(4), [500, 300, 30, 1])
    index = np.arange(len(y))[::-1]
    sub = compare.stratified_subsample(y, index, 100, seed=0)
    assert set(y[sub]) == {0, 1, 2, 3}
    assert 95 <= len(sub) <= 105 and np.isin(sub, index).all()
    assert np.array_equal(compare.stratified_subsample(y, index, None, 0), np.sort(index))


def test_balanced_resample_evens_out_classes():
    y = np.repeat(np.arange(3), [900, 90, 10])
    draw = compare.balanced_resample(y, np.arange(len(y)), seed=0)
    share = np.bincount(y[draw], minlength=3) / len(draw)
    assert np.allclose(share, 1 / 3, atol=0.05)


@pytest.mark.slow
def test_terminal_and_report_state_the_same_cnn_training_size(letters, tmp_path, capsys):
    """A quick CNN trains on a capped subsample; the terminal used to print the uncapped count."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(compare, "QUICK_CNN_IMAGES", 50)
        out = run_compare(CompareConfig(data=str(letters), out=str(tmp_path / "cap"),
                                        quick=True, models=("cnn",), epochs=1, cv_folds=3))
    err = capsys.readouterr().err
    doc = json.loads((out / "metrics.json").read_text())
    assert doc["models"]["cnn"]["train_samples"] == 50
    assert "50 final training samples" in err


def test_cv_folds_resume_from_their_checkpoints(letters, tmp_path):
    """Finished CV folds are read back, only missing ones are fitted again, and the fold
    predictions equal those of an uninterrupted run (compare's part of ``--resume``)."""
    ds = load(letters)
    config = CompareConfig(quick=True, cv_folds=3, models=FAST, executor="local", quiet=True)
    groups = compare.leak_groups(ds)
    split = compare.lock_split(ds, config, groups)
    plans = compare.plan_models(ds, split, config, groups)
    features = pixel_features(ds.x, compare.pixel_scale(ds, split.train) or 1.0)
    store = CheckpointStore(tmp_path)
    first = compare.run_cv_folds(plans, features, ds.y, config, False, store)
    names = store.finished()
    assert len(names) == sum(len(p.folds) for p in plans if p.family is not None)
    lost = names[::2]  # as if the run had been killed before these finished
    for name in lost:
        (tmp_path / "checkpoints" / name / "done.json").unlink()
    kept = {n: (tmp_path / "checkpoints" / n / "done.json").stat().st_mtime_ns
            for n in names if n not in lost}
    again = compare.run_cv_folds(plans, features, ds.y, config, False, store)
    assert store.finished() == names
    for name, mtime in kept.items():  # reused, not fitted again
        assert (tmp_path / "checkpoints" / name / "done.json").stat().st_mtime_ns == mtime
    assert first.keys() == again.keys()
    for family, (preds, _) in first.items():
        for a, b in zip(preds, again[family][0], strict=True):
            np.testing.assert_array_equal(a, b)
