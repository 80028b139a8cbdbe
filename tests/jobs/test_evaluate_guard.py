"""The out-of-distribution guard in a selective run, `predict`'s reason column and `evaluate`."""

from __future__ import annotations

import csv
import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

from notsure import NOT_SURE
from notsure.cli.main import main
from notsure.data import load
from notsure.data.splits import load_split
from notsure.deploy.engine import Engine
from notsure.deploy.evaluate import EvaluateConfig, run_evaluate
from notsure.deploy.predictor import SelectivePredictor

pytestmark = pytest.mark.slow  # one small selective run (~1 min on a busy 2-core machine)

# fp32 on every machine: the ONNX graphs are fp32, so only an fp32 run's figures are reproduced
# exactly by both back ends (a bf16 run, on CPUs with native bf16, keeps torch by default).
RUN_ARGS = ["--quick", "--quiet", "--test-per-class", "20", "--folds", "2", "--epochs", "2",
            "--target-fpr", "0.05", "--delta", "0.2", "--precision", "fp32"]


def save_digits(path: Path, x: np.ndarray, y: np.ndarray) -> Path:
    np.savez(path, x=x, y=y)
    return path


@pytest.fixture(scope="module")
def digits(mnist_dir) -> tuple[np.ndarray, np.ndarray]:
    """80 real MNIST training digits of each class (the name: a tiny stand-in dataset)."""
    ds = load(mnist_dir)
    pick = np.concatenate([np.flatnonzero(ds.y == c)[:80] for c in range(10)])
    return ds.x[pick], ds.y[pick]


@pytest.fixture(scope="module")
def guarded_run(digits, tmp_path_factory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("guard")
    data = save_digits(folder / "digits.npz", *digits)
    out = folder / "run"
    assert main(["selective", "--data", str(data), "--out", str(out), *RUN_ARGS]) == 0
    return out, data


def test_the_guard_is_saved_and_its_figures_reported(guarded_run):
    run, _ = guarded_run
    doc = json.loads((run / "predictor.json").read_text())
    assert doc["guard"]["keep"] == 0.995
    assert len(doc["guard"]["members"]) == len(doc["members"])  # one per ensemble member
    predictor = SelectivePredictor.load(run)
    assert predictor.guard.threshold == doc["guard"]["threshold"]
    metrics = json.loads((run / "metrics.json").read_text())
    guard = metrics["guard"]
    assert guard["threshold"] == doc["guard"]["threshold"]
    # Each check's threshold keeps at least its share of the out-of-fold pool images.
    assert guard["pool_rejected_features"] <= 0.005
    assert guard["pool_rejected_pixels"] <= 0.001 and guard["pool_rejected_ink"] <= 0.001
    assert guard["pool_rejected"] <= 0.007
    assert 0 <= guard["coverage_cost"] <= guard["pool_rejected"]
    assert set(guard["outliers"]) == {"noise", "blank", "inverted", "shifted", "letters",
                                      "strokes", "clothing"}
    # The pixel check keeps 99.9% of the out-of-fold pool images and is saved with the run.
    assert doc["guard"]["pixels"]["threshold"] == guard["pixel_threshold"]
    assert len(doc["guard"]["pixels"]["folds"]) == doc["n_folds"]
    assert guard["pool_rejected_pixels"] <= 0.001 + 1 / 800
    # Uniform noise is nothing like a digit; inverted digits are far off in pixel space.
    assert guard["outliers"]["noise"]["caught"] == 1.0
    assert guard["outliers"]["inverted"]["caught"] == 1.0
    assert guard["outliers"]["inverted"]["answered"] == 0.0
    assert "out-of-distribution" in (run / "report.md").read_text().lower()


def test_the_guard_threshold_depends_only_on_pool_data(guarded_run, digits, tmp_path):
    """Same data and seed but different test images: the same threshold, to the last bit."""
    run, data = guarded_run
    x, y = digits
    ds = load(data)
    split = load_split(run / "split.json", len(ds))
    x2 = x.copy()
    rng = np.random.default_rng(7)
    x2[split.test] = rng.integers(0, 256, x2[split.test].shape, dtype=np.uint8)
    data2 = save_digits(tmp_path / "digits2.npz", x2, y)
    out2 = tmp_path / "run2"
    assert main(["selective", "--data", str(data2), "--out", str(out2), *RUN_ARGS]) == 0
    assert load_split(out2 / "split.json", len(ds)).test.tolist() == split.test.tolist()
    first = json.loads((run / "predictor.json").read_text())["guard"]
    second = json.loads((out2 / "predictor.json").read_text())["guard"]
    assert first == second
    # ... while the test decisions did change: the perturbed images are rejected as noise.
    m2 = json.loads((out2 / "metrics.json").read_text())
    assert m2["after"]["coverage"] < 0.1


@pytest.mark.parametrize("backend", ["onnx", "torch"])
def test_evaluate_reproduces_the_runs_after_metrics(guarded_run, tmp_path, capsys, backend):
    """Both engines (ONNX, the default where installed, as for `predict` and `serve`) give the
    run's own test figures exactly."""
    if backend == "onnx":
        pytest.importorskip("onnxruntime")
    run, data = guarded_run
    ds = load(data)
    split = load_split(run / "split.json", len(ds))
    test = save_digits(tmp_path / "test.npz", ds.x[split.test], np.asarray(ds.class_names)[
        ds.y[split.test]].astype(int))
    out = tmp_path / "eval.json"
    assert main(["evaluate", str(run), str(test), "--out", str(out), "--quiet",
                 "--backend", backend]) == 0
    captured = capsys.readouterr()
    assert "warning" not in captured.err
    mine = json.loads(out.read_text())
    assert mine["backend"] == backend
    theirs = json.loads((run / "metrics.json").read_text())["after"]
    for key in ("accuracy", "coverage", "selective_accuracy", "n", "n_not_sure", "n_errors",
                "confusion_matrix", "tp", "fp", "fn", "tn", "fpr", "fpr_ci", "tpr", "tpr_ci"):
        assert mine[key] == theirs[key], key
    assert mine["overlap"] == {"checked": True, "dataset": str(data), "n_in_pool": 0,
                               "n_in_test": len(split.test)}


def test_evaluate_warns_about_training_images(guarded_run, capsys):
    run, data = guarded_run
    ds = load(data)
    split = load_split(run / "split.json", len(ds))
    result = run_evaluate(EvaluateConfig(run_dir=str(run), data=str(data), quiet=True))
    assert result.overlap["n_in_pool"] == len(split.train)
    assert result.metrics["n"] == len(ds)
    assert main(["evaluate", str(run), str(data), "--quiet"]) == 0
    err = capsys.readouterr().err
    assert f"warning: {len(split.train):,} of these images are in the run's training pool" in err


def test_evaluate_needs_labels_and_known_classes(guarded_run, tmp_path, capsys):
    run, _ = guarded_run
    np.save(tmp_path / "x.npy", np.zeros((3, 28, 28), np.uint8))
    assert main(["evaluate", str(run), str(tmp_path / "x.npy")]) == 2
    assert "x.npy: has no labels" in capsys.readouterr().err
    save_digits(tmp_path / "other.npz", np.zeros((3, 28, 28), np.uint8), np.array([0, 1, 12]))
    assert main(["evaluate", str(run), str(tmp_path / "other.npz")]) == 2
    assert "class '12' is not one the run was trained on" in capsys.readouterr().err


def test_predict_gives_a_reason_per_image(guarded_run, digits, tmp_path):
    run, _ = guarded_run
    x, _ = digits
    noise = np.random.default_rng(0).integers(0, 256, (5, 28, 28), dtype=np.uint8)
    np.save(tmp_path / "mix.npy", np.concatenate([x[:20], noise]))
    out = tmp_path / "pred.csv"
    assert main(["predict", str(run), str(tmp_path / "mix.npy"), "--out", str(out),
                 "--quiet"]) == 0
    rows = list(csv.DictReader(out.open()))
    assert [r["reason"] for r in rows[20:]] == ["out_of_distribution"] * 5
    d = Engine.load(run).predict(np.concatenate([x[:20], noise]))  # predict's own engine
    expected = np.where(d.out_of_distribution, "out_of_distribution",
                        np.where(d.prediction == NOT_SURE, "below_threshold", "answered"))
    assert [r["reason"] for r in rows] == expected.tolist()
    assert all((r["prediction"] == "not_sure") == (r["reason"] != "answered") for r in rows)


def test_predict_reads_pngs_rgb_and_other_sizes_like_the_original(guarded_run, mnist_dir,
                                                                  tmp_path, capsys):
    """Test digits saved as 64x64 RGB PNGs on white are read, in order, and decided as the
    preprocessed images are (agreement with the 28x28 originals: test_preprocess_and_images)."""
    from PIL import Image

    run, _ = guarded_run
    x = load(mnist_dir).x[-60:]
    folder = tmp_path / "pngs"
    folder.mkdir()
    for i, image in enumerate(x):
        big = np.asarray(Image.fromarray(255 - image).resize((64, 64), Image.Resampling.BICUBIC))
        Image.fromarray(np.repeat(big[..., None], 3, axis=2)).save(folder / f"{i:02d}.png")
    out = tmp_path / "pred.csv"
    assert main(["predict", str(run), str(folder), "--out", str(out), "--quiet"]) == 0
    rows = list(csv.DictReader(out.open()))
    assert [r["id"] for r in rows] == [f"{i:02d}.png" for i in range(60)]
    from notsure.data.images import read_images_for_prediction

    d = SelectivePredictor.load(run).predict(read_images_for_prediction(folder).x)
    assert [r["reason"] for r in rows] == d.reason.tolist()
    # The same float file is refused by predict as by data info, naming the flag.
    np.save(tmp_path / "f.npy", x.astype(np.float32) / 255)
    assert main(["predict", str(run), str(tmp_path / "f.npy"), "--out", str(out)]) == 2
    assert "--scale 1" in capsys.readouterr().err


def test_pixel_checks_done_ahead_give_the_same_decisions(guarded_run, digits):
    """``predict`` computes the pixel and ink checks ahead of scoring (while the networks
    load); given those checks it decides exactly as when it computes them itself, and the
    checks do decide: inverted digits are turned away as out of distribution."""
    predictor = SelectivePredictor.load(guarded_run[0])
    x = digits[0][:300].copy()
    x[:40] = 255 - x[:40]  # white background: far from every training image
    checks = predictor.pixel_checks(x)
    assert checks.off_pixels is not None and checks.off_pixels[:40].any()
    plain = predictor.predict(x)
    ahead = predictor.predict(x, checks=checks)
    np.testing.assert_array_equal(plain.prediction, ahead.prediction)
    np.testing.assert_array_equal(plain.reason, ahead.reason)
    np.testing.assert_array_equal(plain.routes, ahead.routes)
    assert np.any(ahead.reason[:40] == "out_of_distribution")
    # The checks given are the ones used: rejecting every image by pixels rejects them all.
    forced = dataclasses.replace(checks, off_pixels=np.ones(len(x), dtype=bool))
    assert np.all(predictor.predict(x, checks=forced).reason == "out_of_distribution")
