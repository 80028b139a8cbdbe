"""``notsure selective --quick`` on the real MNIST, end to end, as CI runs it."""

from __future__ import annotations

import json

import numpy as np
import pytest

from notsure.cli.main import main
from notsure.data import load
from notsure.data.splits import load_split
from notsure.metrics import confusion_matrix, per_class_rates

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def quick_run(mnist_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("mnist") / "quick"
    assert main(["selective", "--quick", "--quiet", "--data", str(mnist_dir),
                 "--out", str(out)]) == 0
    return out


def test_quick_run_writes_every_artifact(quick_run):
    manifest = json.loads((quick_run / "manifest.json").read_text())
    assert manifest["status"] == "complete"
    for rel in manifest["artifacts"]:
        assert (quick_run / rel).is_file(), rel
    for name in ("report.html", "report.md", "metrics.json", "predictor.json", "split.json"):
        assert name in manifest["artifacts"]
    html = (quick_run / "report.html").read_text()
    assert 'src="data:image/png;base64,' in html and 'src="figures/' not in html


def test_quick_run_metrics_recompute_from_the_saved_split(quick_run, mnist_dir, tmp_path):
    ds = load(mnist_dir)
    split = load_split(quick_run / "split.json", len(ds))
    m = json.loads((quick_run / "metrics.json").read_text())
    y = ds.y[split.test]
    per_class = json.loads((quick_run / "manifest.json").read_text())["config"]["test_per_class"]
    assert per_class == 1482  # the default: the smallest test set allowing 2 false positives
    assert np.bincount(y, minlength=10).tolist() == m["test"]["per_class_count"] == [per_class] * 10
    # The saved predictor reproduces the after-abstention decisions from the images alone.
    images = tmp_path / "test.npy"
    np.save(images, ds.x[split.test])
    out = tmp_path / "pred.csv"
    assert main(["predict", str(quick_run), str(images), "--out", str(out), "--quiet"]) == 0
    said = [line.split(",")[1] for line in out.read_text().splitlines()[1:]]
    pred = np.array([-1 if s == "not_sure" else int(s) for s in said])
    cm = confusion_matrix(y, pred, np.arange(10), not_sure_column=True)
    stored = np.array(m["after"]["confusion_matrix"])
    if stored.shape[1] == 10:
        stored = np.column_stack([stored, np.zeros(10, int)])
    assert cm.tolist() == stored.tolist()
    rates = per_class_rates(y, pred, np.arange(10))
    np.testing.assert_allclose(rates.fpr, m["after"]["fpr"], atol=0)
    np.testing.assert_allclose(rates.tpr, m["after"]["tpr"], atol=0)
    assert m["after"]["coverage"] == pytest.approx(np.mean(pred != -1))
    # Before abstention every image is answered; rates agree with the confusion matrix.
    before = np.array(m["before"]["confusion_matrix"])
    n = 10 * per_class
    assert before.sum() == n and before.shape == (10, 10)
    tp = np.diag(before)
    np.testing.assert_allclose(m["before"]["tpr"], tp / before.sum(axis=1))
    np.testing.assert_allclose(m["before"]["fpr"], (before.sum(axis=0) - tp) / (n - per_class))
    assert m["before"]["accuracy"] == pytest.approx(tp.sum() / n)


def test_quick_run_thresholds_only_saw_calibration_data(quick_run, mnist_dir):
    ds = load(mnist_dir)
    split = load_split(quick_run / "split.json", len(ds))
    m = json.loads((quick_run / "metrics.json").read_text())
    for cert in m["calibration"]["certificates"]:
        c = cert["label"]
        assert cert["n_negatives"] == int(np.sum(ds.y[split.train] != c))
        assert cert["n_positives"] == int(np.sum(ds.y[split.train] == c))
