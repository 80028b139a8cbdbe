"""The ambiguity job on small generated images with planted label flips, its leakage guarantee,
its outputs, exclusion files and bad input."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from scipy.special import softmax
from scipy.stats import binomtest
from sklearn.neighbors import KNeighborsClassifier
from test_selective import make_images
from test_selective_runs import kill_when

from notsure.cli.main import main
from notsure.data import load
from notsure.data.exclusions import (
    apply_exclusions,
    read_exclusions,
    write_exclusions,
)
from notsure.data.splits import load_split
from notsure.deploy.predictor import SelectivePredictor
from notsure.errors import DataError
from notsure.jobs.ambiguous.pipeline import count_out_of_sample, knn_opinions
from notsure.jobs.ambiguous.run import scores_from_run
from notsure.models.inference import predict_logits

N_FLIPS = 10
TINY = ["--quick", "--quiet", "--folds", "2", "--epochs", "2"]


def read_csv(path: Path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


@pytest.fixture(scope="module")
def flipped_npz(tmp_path_factory) -> tuple[Path, np.ndarray]:
    """Bars images, train and test parts; ``N_FLIPS`` test labels flipped (test positions)."""
    x, y = make_images(200, seed=4)
    order = np.random.default_rng(5).permutation(len(x))
    a, b = order[:300], order[300:]
    y_test = y[b].copy()
    rng = np.random.default_rng(6)
    flips = np.sort(rng.choice(len(b), N_FLIPS, replace=False))
    y_test[flips] = (y_test[flips] + rng.integers(1, 3, N_FLIPS)) % 3
    path = tmp_path_factory.mktemp("data") / "flipped.npz"
    np.savez(path, x_train=x[a], y_train=y[a], x_test=x[b], y_test=y_test)
    return path, flips


@pytest.fixture(scope="module")
def cross_fit_run(flipped_npz, tmp_path_factory) -> Path:
    path, _ = flipped_npz
    out = tmp_path_factory.mktemp("runs") / "amb"
    excl = out.parent / "exclusions.csv"
    code = main(["ambiguous", "--data", str(path), "--out", str(out), *TINY,
                 "--write-exclusions", str(excl), "--top", "15"])
    assert code == 0
    return out


@pytest.mark.slow
def test_planted_flips_top_the_suspected_list(cross_fit_run, flipped_npz):
    _, flips = flipped_npz
    rows = read_csv(cross_fit_run / "suspected_label_errors.csv")
    top = [int(r["index"]) for r in rows[:10]]
    # At least 8 of the 10 flips are found, and they fill at least 80% of the top 10.
    assert np.isin(flips, top).sum() >= 8
    assert np.isin(top, flips).mean() >= 0.8
    # Flagged first, then the other candidates; each part by label quality, lowest first.
    flagged = [r["cl_flagged"] == "True" for r in rows]
    assert flagged == sorted(flagged, reverse=True) and any(flagged)
    for part in (True, False):
        quality = [float(r["label_quality"]) for r, f in zip(rows, flagged, strict=True)
                   if f == part]
        assert quality == sorted(quality)
    assert all(r["score_source"] == "out_of_fold" for r in rows)
    # Every candidate has a suggested label other than its given one; label quality is the
    # mean of the two opinions' probabilities of the given label, so it lies between them.
    for r in rows:
        assert r["suggested_label"] != r["given_label"]
        lo, hi = sorted((float(r["p_given"]), float(r["knn_p_given"])))
        assert lo - 1e-9 <= float(r["label_quality"]) <= hi + 1e-9


@pytest.mark.slow
def test_rankings_and_images(cross_fit_run, flipped_npz):
    path, _ = flipped_npz
    with np.load(path) as npz:
        x_test, y_test = npz["x_test"], npz["y_test"]
    wrong = read_csv(cross_fit_run / "most_confident_wrong.csv")
    least = read_csv(cross_fit_run / "least_confident.csv")
    assert len(least) == 15
    conf = [float(r["confidence"]) for r in wrong]
    assert conf == sorted(conf, reverse=True)
    assert all(r["given_label"] != r["predicted_label"] for r in wrong)
    margins = [float(r["margin"]) for r in least]
    assert margins == sorted(margins)
    listed = set()
    for name in ("most_confident_wrong", "least_confident", "suspected_label_errors"):
        for r in read_csv(cross_fit_run / f"{name}.csv"):
            i = int(r["index"])
            assert r["id"] == f"test/{i}"
            assert int(r["given_label"]) == y_test[i]
            listed.add(i)
    names = {p.name for p in (cross_fit_run / "imgs").iterdir()}
    assert names == {f"{i}.png" for i in listed}
    for i in list(listed)[:5]:
        img = np.asarray(Image.open(cross_fit_run / "imgs" / f"{i}.png"))
        assert img.shape == (28 * 4, 28 * 4)
        np.testing.assert_array_equal(img[::4, ::4], x_test[i])
    report = (cross_fit_run / "report.md").read_text()
    assert "Suspected label errors" in report and "gallery/" in report
    manifest = json.loads((cross_fit_run / "manifest.json").read_text())
    assert manifest["status"] == "complete" and "leakage_check" in manifest["timings_s"]


@pytest.mark.slow
def test_exclusion_file_round_trips_through_the_data_layer(cross_fit_run, flipped_npz):
    path, flips = flipped_npz
    table = read_exclusions(cross_fit_run.parent / "exclusions.csv")
    suspects = read_csv(cross_fit_run / "suspected_label_errors.csv")
    # The exclusion file lists exactly the flagged candidates, in rank order; the run folder
    # holds the same file.
    assert table.ids.tolist() == [r["id"] for r in suspects if r["cl_flagged"] == "True"]
    assert (cross_fit_run / "exclusions.csv").read_bytes() == \
        (cross_fit_run.parent / "exclusions.csv").read_bytes()
    ds = load(path)
    dropped = apply_exclusions(ds, table, "drop")
    assert len(dropped) == len(ds) - len(table)
    assert not set(dropped.ids) & set(table.ids)
    relabelled = apply_exclusions(ds, table, "relabel")
    at = np.flatnonzero(np.isin(ds.ids, table.ids))
    planted = np.isin(ds.ids[at], [f"test/{i}" for i in flips])
    with np.load(path) as npz:
        truth = np.concatenate([npz["y_train"], make_truth(npz, flips)])
    # Relabelling restores the true label of every planted flip it lists.
    names = np.asarray(ds.class_names)
    assert np.all(names[relabelled.y[at[planted]]].astype(int) == truth[at[planted]])


def make_truth(npz, flips: np.ndarray) -> np.ndarray:
    """The unflipped test labels, rebuilt with the same draws as the fixture."""
    y_test = npz["y_test"].copy()
    rng = np.random.default_rng(6)
    rng.choice(len(y_test), N_FLIPS, replace=False)
    shift = rng.integers(1, 3, N_FLIPS)
    y_test[flips] = (y_test[flips] - shift) % 3
    return y_test


@pytest.fixture(scope="module")
def selective_run(flipped_npz, tmp_path_factory) -> Path:
    path, _ = flipped_npz
    out = tmp_path_factory.mktemp("runs") / "sel"
    # Settings away from the defaults, which --measure-exclusion must carry over.
    assert main(["selective", "--data", str(path), "--out", str(out), *TINY,
                 "--test-per-class", "40", "--target-fpr", "0.02", "--delta", "0.1",
                 "--members", "2", "--strategy", "min-fold", "--fpr-meaning", "rate"]) == 0
    return out


@pytest.mark.slow
def test_run_scores_come_only_from_models_that_never_saw_the_image(selective_run, flipped_npz):
    path, _ = flipped_npz
    ds = load(path)
    split = load_split(selective_run / "split.json", len(ds))
    folds = json.loads((selective_run / "folds.json").read_text())
    fold_of = dict(zip(folds["positions"], folds["fold"], strict=True))
    scores, got_split = scores_from_run(selective_run, ds, quiet=True)
    np.testing.assert_array_equal(got_split.test, split.test)
    assert sorted(scores.positions.tolist()) == list(range(len(ds)))
    assert count_out_of_sample(scores) == len(ds)
    assert set(scores.source) == {"ensemble", "out_of_fold"}
    predictor = SelectivePredictor.load(selective_run)
    for row, pos in enumerate(scores.positions):
        if scores.source[row] == "ensemble":
            assert pos in split.test and pos not in fold_of
        else:
            k = fold_of[pos]  # the fold that held the image out ...
            assert scores.scorer[row] == k
            # ... and its model trained on every other pool image, never this one.
            assert pos not in [p for p, f in fold_of.items() if f != k]
    # The stored scores are those models' outputs on these images.
    oof = scores.source == "out_of_fold"
    rows = np.flatnonzero(oof)[:20]
    for row in rows:
        members = predictor.fold_models(scores.scorer[row])  # the fold's ensemble
        logits = predict_logits(members, ds.x[scores.positions[row]][None],
                                precision=predictor.precision).mean(axis=0)
        np.testing.assert_allclose(softmax(logits[0]), scores.probs[row], atol=2e-2)
    # The k-NN opinion votes among the scorer's own training images, as scikit-learn would.
    knn = knn_opinions(ds, scores, 5, quiet=True)
    x = ds.x.reshape(len(ds), -1).astype(np.float64)
    for row in (*rows[:5], *np.flatnonzero(~oof)[:5]):
        ref = scores.trained_on[int(scores.scorer[row])]
        assert scores.positions[row] not in ref
        clf = KNeighborsClassifier(5, metric="cosine", algorithm="brute").fit(x[ref], ds.y[ref])
        np.testing.assert_allclose(knn[row, clf.classes_],
                                   clf.predict_proba(x[scores.positions[row]][None])[0])
    # A planted leak is caught.
    scores.trained_on[int(scores.scorer[rows[0]])] = np.append(
        scores.trained_on[int(scores.scorer[rows[0]])], scores.positions[rows[0]])
    with pytest.raises(DataError, match="training data"):
        count_out_of_sample(scores)


@pytest.mark.slow
def test_run_without_scores_file_recomputes_the_same_scores(selective_run, flipped_npz, tmp_path):
    ds = load(flipped_npz[0])
    copy = tmp_path / "run"
    shutil.copytree(selective_run, copy)
    (copy / "scores.npz").unlink()
    stored, _ = scores_from_run(selective_run, ds, quiet=True)
    again, _ = scores_from_run(copy, ds, quiet=True)
    np.testing.assert_array_equal(stored.positions, again.positions)
    np.testing.assert_array_equal(stored.source, again.source)
    np.testing.assert_allclose(stored.probs, again.probs, atol=1e-5)


@pytest.mark.slow
def test_cli_with_run_analyses_each_scope_and_measures_exclusion(selective_run, flipped_npz,
                                                                 tmp_path):
    ds = load(flipped_npz[0])
    split = load_split(selective_run / "split.json", len(ds))
    out = tmp_path / "amb"
    code = main(["ambiguous", "--run", str(selective_run), "--out", str(out), "--quiet",
                 "--all", "--measure-exclusion", "--epochs", "1"])
    assert code == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["n"] == summary["n_scored"] == summary["out_of_sample_checked"] == len(ds)
    sources = {r["score_source"] for name in ("least_confident", "most_confident_wrong")
               for r in read_csv(out / f"{name}.csv")}
    assert sources <= {"ensemble", "out_of_fold"}
    flagged = read_exclusions(out / "exclusions.csv")
    assert summary["n_flagged_label_errors"] == len(flagged) > 0
    e = summary["exclusion"]
    runs = {name: Path(e[name]["run"]) for name in ("all_labels", "without_suspected")}
    splits = {name: load_split(run / "split.json") for name, run in runs.items()}
    analysed = json.loads((selective_run / "manifest.json").read_text())["config"]
    for name, run in runs.items():
        manifest = json.loads((run / "manifest.json").read_text())
        assert manifest["status"] == "complete"
        np.testing.assert_array_equal(splits[name].test, split.test)  # the same locked test
        for key in ("members", "strategy", "fpr_meaning", "precision", "test_per_class",
                    "target_fpr", "delta", "folds", "seed", "quick"):  # the analysed run's
            assert manifest["config"][key] == analysed[key], key
        assert manifest["config"]["epochs"] == 1  # --epochs overrides
    in_pool = np.isin(ds.ids[split.train], flagged.ids).sum()
    assert e["all_labels"]["n_train"] - e["without_suspected"]["n_train"] == in_pool
    dropped = np.setdiff1d(splits["all_labels"].train, splits["without_suspected"].train)
    assert sorted(ds.ids[dropped].tolist()) == sorted(set(ds.ids[split.train]) & set(flagged.ids))
    # The image-by-image comparison agrees with each run's own metrics.json, and its p-value is
    # scipy's exact binomial test of the discordant counts.
    p, n_test = e["paired"], len(split.test)
    a, b = e["all_labels"], e["without_suspected"]
    assert p["without_right_only"] - p["all_right_only"] == round(
        (b["accuracy"] - a["accuracy"]) * n_test)
    assert p["accepted_without_only"] - p["accepted_all_only"] == round(
        (b["coverage"] - a["coverage"]) * n_test)
    discordant = p["all_right_only"] + p["without_right_only"]
    expected = (binomtest(min(p["all_right_only"], p["without_right_only"]), discordant).pvalue
                if discordant else 1.0)
    assert p["mcnemar_p"] == pytest.approx(expected)

    # --split analyses exactly the run's test split.
    out2 = tmp_path / "amb-split"
    assert main(["ambiguous", "--run", str(selective_run), "--out", str(out2), "--quiet",
                 "--split"]) == 0
    summary = json.loads((out2 / "summary.json").read_text())
    assert summary["n"] == len(split.test) and summary["scored_by"] == {"ensemble": 120}


def test_not_a_run_folder_is_one_line_and_exit_2(tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["ambiguous", "--run", str(tmp_path), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "not a selective run folder" in err[0]
    assert not out.exists()
    assert main(["ambiguous", "--split", "--out", str(out)]) == 2
    assert "--run" in capsys.readouterr().err


def test_exclusion_reader_and_applier(tmp_path):
    x, y = make_images(4)
    path = tmp_path / "d.npz"
    np.savez(path, x=x, y=y)
    ds = load(path)
    excl = write_exclusions(tmp_path / "e.csv", ["all/1", "all/5"], ["0", "1"], ["2", "0"])
    table = read_exclusions(excl)
    assert table.ids.tolist() == ["all/1", "all/5"]
    dropped = apply_exclusions(ds, table)
    assert dropped.ids.tolist() == [i for i in ds.ids.tolist() if i not in ("all/1", "all/5")]
    relabelled = apply_exclusions(ds, table, "relabel")
    assert relabelled.y[[1, 5]].tolist() == [2, 0]
    assert np.array_equal(np.delete(relabelled.y, [1, 5]), np.delete(ds.y, [1, 5]))
    assert relabelled.fingerprint != ds.fingerprint

    bad = tmp_path / "bad.csv"
    bad.write_text("id,label\n")
    with pytest.raises(DataError, match="line 1"):
        read_exclusions(bad)
    bad.write_text("id,given_label,suggested_label\nall/1,0,2\nall/1,0,1\n")
    with pytest.raises(DataError, match="line 3.*twice"):
        read_exclusions(bad)
    bad.write_text("id,given_label,suggested_label\nall/999,0,2\n")
    with pytest.raises(DataError, match="line 2.*all/999"):
        apply_exclusions(ds, read_exclusions(bad))
    bad.write_text("id,given_label,suggested_label\nall/1,2,0\n")
    with pytest.raises(DataError, match="line 2.*label"):
        apply_exclusions(ds, read_exclusions(bad))
    bad.write_text("id,given_label,suggested_label\nall/1,0,7\n")
    with pytest.raises(DataError, match="suggested label"):
        apply_exclusions(ds, read_exclusions(bad), "relabel")


@pytest.mark.slow
def test_killed_run_resumes_to_the_uninterrupted_outputs(flipped_npz, tmp_path, capsys):
    path, _ = flipped_npz
    args = ["ambiguous", "--data", str(path), *TINY, "--folds", "3", "--top", "15",
            "--executor", "local"]
    reference = tmp_path / "reference"
    assert main([*args, "--out", str(reference)]) == 0

    out = tmp_path / "killed"
    first = out / "checkpoints" / "fold0-member0" / "done.json"
    kill_when(args, out, first)
    assert first.exists(), "the run ended or stalled before its first fold's checkpoint"
    assert json.loads((out / "manifest.json").read_text())["status"] == "running"
    assert not (out / "suspected_label_errors.csv").exists()
    kept = {p.parent.name: p.stat().st_mtime_ns for p in (out / "checkpoints").glob("*/done.json")}
    assert len(kept) < 3, "every fold finished before the kill; nothing left to resume"

    capsys.readouterr()
    assert main([*args, "--top", "16", "--resume", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "setting 'top' was 15, now 16" in err[0]

    assert main([*args, "--resume", str(out)]) == 0
    for name in ("most_confident_wrong.csv", "least_confident.csv",
                 "suspected_label_errors.csv"):
        assert (out / name).read_text() == (reference / name).read_text(), name
    for name, mtime in kept.items():  # finished folds were reused, not trained again
        assert (out / "checkpoints" / name / "done.json").stat().st_mtime_ns == mtime
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["status"] == "complete" and len(manifest["resumed"]) == 1
