"""The selective job end to end on small generated images, its outputs and its bad-input errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from notsure import NOT_SURE
from notsure.cli.main import main
from notsure.data import load
from notsure.data.splits import load_split
from notsure.metrics import confusion_matrix, per_class_rates


def make_images(n_per_class: int, seed: int = 0, size: int = 28) -> tuple[np.ndarray, np.ndarray]:
    """Three easy classes: a horizontal bar, a vertical bar, a diagonal, with jitter and noise."""
    rng = np.random.default_rng(seed)
    xs, ys = [], []
    for c in range(3):
        for _ in range(n_per_class):
            img = np.zeros((size, size), np.float32)
            o = rng.integers(8, size - 8)
            if c == 0:
                img[o - 2:o + 2, 4:-4] = 1
            elif c == 1:
                img[4:-4, o - 2:o + 2] = 1
            else:
                idx = np.arange(4, size - 4)
                for w in range(-2, 2):
                    img[idx, np.clip(idx + w + o - size // 2, 0, size - 1)] = 1
            img += 0.3 * rng.random((size, size))
            xs.append(np.clip(img * 255, 0, 255).astype(np.uint8))
            ys.append(c)
    return np.stack(xs), np.array(ys)


@pytest.fixture(scope="module")
def small_npz(tmp_path_factory) -> Path:
    x, y = make_images(300)
    path = tmp_path_factory.mktemp("data") / "bars.npz"
    half = len(x) // 2
    order = np.random.default_rng(1).permutation(len(x))
    a, b = order[:half], order[half:]
    np.savez(path, x_train=x[a], y_train=y[a], x_test=x[b], y_test=y[b])
    return path


@pytest.fixture(scope="module")
def small_run(small_npz, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("runs") / "sel"
    code = main(["selective", "--data", str(small_npz), "--out", str(out), "--quick", "--quiet",
                 "--test-per-class", "40", "--folds", "2", "--epochs", "2",
                 "--target-fpr", "0.02", "--delta", "0.1"])
    assert code == 0
    return out


def test_writes_every_artifact(small_run):
    for name in ("manifest.json", "metrics.json", "thresholds.json", "predictor.json", "scores.npz",
                 "split.json", "folds.json", "report.html", "report.md",
                 "models/fold0_member0.safetensors", "models/fold1_member1.safetensors",
                 "tables/certificates.csv", "tables/rates_after.csv",
                 "figures/confusion_before.png", "figures/confusion_after.png",
                 "figures/risk_coverage.png", "figures/training_curves.png"):
        assert (small_run / name).is_file(), name
    manifest = json.loads((small_run / "manifest.json").read_text())
    assert manifest["status"] == "complete"
    assert manifest["seed"] == 0
    assert manifest["data"]["dataset"]["fingerprint"]
    assert {"load", "split", "cross_fit", "calibrate", "evaluate", "report", "total"} <= set(
        manifest["timings_s"])


def test_metrics_are_internally_consistent(small_run, small_npz):
    m = json.loads((small_run / "metrics.json").read_text())
    ds = load(small_npz)
    split = load_split(small_run / "split.json", len(ds))
    y_test = ds.y[split.test]
    assert m["test"]["per_class_count"] == np.bincount(y_test, minlength=3).tolist() == [40] * 3
    for key in ("before", "after"):
        cm = np.array(m[key]["confusion_matrix"])
        assert cm.sum() == len(y_test)
        assert cm.sum(axis=1).tolist() == [40] * 3
        tp = np.diag(cm[:, :3])
        fp = cm[:, :3].sum(axis=0) - tp
        negatives = len(y_test) - cm.sum(axis=1)
        np.testing.assert_allclose(m[key]["fpr"], fp / negatives)
        np.testing.assert_allclose(m[key]["tpr"], tp / cm.sum(axis=1))
        n_not_sure = cm[:, 3].sum() if cm.shape[1] == 4 else 0
        assert m[key]["coverage"] == pytest.approx(1 - n_not_sure / len(y_test))
    assert m["before"]["coverage"] == 1.0
    assert m["target_fpr"] == 0.02 and m["delta"] == 0.1


def test_test_split_never_reaches_training_or_calibration(small_run, small_npz):
    ds = load(small_npz)
    split = load_split(small_run / "split.json", len(ds))
    folds = json.loads((small_run / "folds.json").read_text())
    assert sorted(folds["positions"]) == split.train.tolist()
    assert not set(folds["positions"]) & set(split.test.tolist())


def test_predict_reproduces_the_runs_test_decisions(small_run, small_npz, tmp_path):
    ds = load(small_npz)
    split = load_split(small_run / "split.json", len(ds))
    test_file = tmp_path / "test.npy"
    np.save(test_file, ds.x[split.test])
    out = tmp_path / "pred.csv"
    assert main(["predict", str(small_run), str(test_file), "--out", str(out), "--quiet"]) == 0
    rows = out.read_text().splitlines()
    assert rows[0].split(",")[:2] == ["id", "prediction"]
    said = [r.split(",")[1] for r in rows[1:]]
    pred = np.array([NOT_SURE if s == "not_sure" else ds.class_names.index(s) for s in said])
    m = json.loads((small_run / "metrics.json").read_text())
    after = confusion_matrix(ds.y[split.test], pred, np.arange(3), not_sure_column=True)
    stored = np.array(m["after"]["confusion_matrix"])
    if stored.shape[1] == 3:  # the run had no abstention: no not_sure column
        stored = np.column_stack([stored, np.zeros(3, int)])
    assert after.tolist() == stored.tolist()
    rates = per_class_rates(ds.y[split.test], pred, np.arange(3))
    np.testing.assert_allclose(rates.fpr, m["after"]["fpr"])


@pytest.mark.parametrize("args,message", [
    (["--target-fpr", "0"], "--target-fpr must lie in"),
    (["--target-fpr", "1.5"], "--target-fpr must lie in"),
    (["--delta", "1"], "--delta must lie in"),
    (["--test-per-class", "500"], "--test-per-class"),
    # 80 test negatives per class allow no false positive at 0.01, which 520 calibration
    # negatives cannot make likely enough for every class at once
    (["--test-per-class", "40", "--target-fpr", "0.01"],
     "--fpr-meaning test-all: with --test-per-class 40 (80 test negatives per class, 0 false "
     "positives allowed"),
])
def test_bad_options_fail_cleanly_and_write_nothing(small_npz, tmp_path, capsys, args, message):
    out = tmp_path / "run"
    code = main(["selective", "--data", str(small_npz), "--out", str(out), "--quick", "--quiet",
                 *args])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(err) == 1 and err[0].startswith("notsure: error:") and message in err[0]
    assert not out.exists()


def test_predict_refuses_a_folder_that_is_not_a_run(tmp_path, small_npz, capsys):
    code = main(["predict", str(tmp_path), str(small_npz)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "not a selective run folder" in err[0]


def test_predict_refuses_images_of_the_wrong_size(small_run, tmp_path, capsys):
    bad = tmp_path / "big.npy"
    np.save(bad, np.zeros((4, 32, 32), np.uint8))
    out = tmp_path / "pred.csv"
    code = main(["predict", str(small_run), str(bad), "--out", str(out), "--no-preprocess"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "32x32" in err[0] and "28x28" in err[0]
    assert "big.npy" in err[0] and "--no-preprocess" in err[0]
    assert not out.exists()


def _tampered_copy(run: Path, tmp_path: Path) -> Path:
    import shutil

    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    return copy


def _predict_error(run: Path, small_npz: Path, tmp_path: Path, capsys) -> str:
    ds = load(small_npz)
    x = tmp_path / "x.npy"
    np.save(x, ds.x[:10])
    out = tmp_path / "pred.csv"
    code = main(["predict", str(run), str(x), "--out", str(out), "--quiet"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1, err
    assert not out.exists()
    return err[0]


def _edit_json(path: Path, change) -> None:
    doc = json.loads(path.read_text())
    change(doc)
    path.write_text(json.dumps(doc))


@pytest.mark.parametrize("name,change,reseal,message", [
    ("predictor.json", lambda d: d.__setitem__("thresholds", [-5.0] * 3), False, "altered since"),
    ("predictor.json", lambda d: d["thresholds"].__setitem__(1, float("nan")), True, "finite"),
    ("predictor.json", lambda d: d.__setitem__("rule", "mean"), True, "unknown rule"),
    ("predictor.json", lambda d: d.__setitem__("class_names", ["a", "b"]), True,
     "thresholds for 2"),
    ("manifest.json", lambda d: d.__setitem__("status", "running"), False, "not complete"),
    ("models/fold1_member0.json", lambda d: d.__setitem__("image_shape", [32, 32]), False,
     "altered"),
])
def test_predict_refuses_a_tampered_or_unfinished_run(small_run, small_npz, tmp_path, capsys,
                                                      name, change, reseal, message):
    # reseal: the tamperer also rewrites the SHA-256 sealed in the manifest, so the schema check
    # itself must catch the edit.
    from notsure.io.hashing import sha256_file

    run = _tampered_copy(small_run, tmp_path)
    _edit_json(run / name, change)
    if reseal:
        _edit_json(run / "manifest.json",
                   lambda d: d["sealed_sha256"].__setitem__(name, sha256_file(run / name)))
    error = _predict_error(run, small_npz, tmp_path, capsys)
    assert message in error and "run" in error


def test_predict_refuses_a_member_swapped_for_another_architecture(small_run, small_npz, tmp_path,
                                                                  capsys):
    # A self-consistent model file (weights match its own JSON) of another architecture / class
    # count replaces a member: the hash and shape recorded in predictor.json catch it.
    from notsure.models.cnn import CNNConfig, build_model
    from notsure.models.store import save_model

    for n_classes, stages in ((3, ((8,), (16,))), (7, ((16,), (32, 32), (64, 64)))):
        run = _tampered_copy(small_run, tmp_path / f"c{n_classes}")
        config = CNNConfig.quick().replace(stages=stages)
        save_model(run / "models/fold0_member1", build_model(config, n_classes), config,
                   image_shape=(28, 28))
        error = _predict_error(run, small_npz, tmp_path / f"c{n_classes}", capsys)
        assert "fold0_member1" in error


def test_report_states_the_certificate_comparison_and_pass_probability(small_run):
    """The report carries what a reader needs to audit the decision strategy, with the run's own
    numbers: per-class recall before and after, the deployed rule's certificate, the rules
    compared on calibration data, and the probability that the test set passes."""
    report = (small_run / "report.md").read_text(encoding="utf-8")
    metrics = json.loads((small_run / "metrics.json").read_text())
    for heading in ("## Calibration certificate per class",
                    "## Scores and rules compared on calibration data",
                    "## Test results before abstention", "## Test results after abstention"):
        assert heading in report, heading
    rule = metrics["decision_rule"]
    [line] = [x for x in report.splitlines() if x.startswith("Probability that the test set")]
    assert f"at least {100 * rule['test_pass_probability_all_classes_at_least']:.2f}%" in line
    assert (f"{100 * rule['test_pass_probability_all_classes_if_independent']:.2f}% if classes "
            "failed independently") in line
    for row in metrics["calibration"]["rule_comparison"]:
        assert row["score"] in report
    rates = {when: (small_run / "tables" / f"rates_{when}.csv").read_text().splitlines()
             for when in ("before", "after")}
    for when in ("before", "after"):  # per-class TPR tables equal the metrics
        tpr = [float(line.split(",")[9]) for line in rates[when][1:]]
        assert tpr == pytest.approx(metrics[when]["tpr"])
    certificates = (small_run / "tables" / "certificates.csv").read_text().splitlines()
    assert len(certificates) - 1 == len(metrics["class_names"])
    assert [float(line.split(",")[5]) for line in certificates[1:]] == pytest.approx(
        json.loads((small_run / "predictor.json").read_text())["thresholds"])


def test_every_test_false_positive_and_top_negative_carries_a_label_error_verdict(small_run):
    metrics = json.loads((small_run / "metrics.json").read_text())
    audit = metrics["label_errors"]
    assert len(audit["test_false_positives"]) == sum(metrics["after"]["fp"])
    assert len(audit["top_negatives"]) == 3 * len(metrics["class_names"])
    report = (small_run / "report.md").read_text(encoding="utf-8")
    assert "## Where false positives come from" in report
    assert f"flags {audit['pool_flagged']} as likely label errors" in report

    def caption(image_id: str, gallery: str) -> str:
        """The alt text of ``image_id``'s picture in the gallery whose files start ``gallery``."""
        for alt in report.split("![")[1:]:
            text, _, rest = alt.partition("](")
            if rest.startswith(gallery) and text.startswith(f"{image_id} labelled"):
                return text
        raise AssertionError(f"{image_id} is not in {gallery}")

    for row in audit["top_negatives"]:  # "likely label error" exactly where flagged
        said = caption(row["id"], "gallery/top_negatives")
        assert said.endswith(", likely label error") == row["likely_label_error"], said
    for row in audit["test_false_positives"]:
        verdict = ", likely label error" if row["likely_label_error"] else ", model error"
        assert caption(row["id"], "gallery/remaining_errors").endswith(verdict)


def test_decide_applies_a_selective_runs_own_thresholds(small_run, tmp_path, capsys):
    """`notsure decide RUN/thresholds.json` on the answering fold ensemble's logits gives the
    run's own test decisions (where the out-of-distribution guard did not step in)."""
    import csv

    from notsure.decisions import fold_mean_logits

    with np.load(small_run / "scores.npz") as npz:
        member, routes = npz["test_member_logits"], npz["test_routes"]
        prediction = npz["test_prediction"]
    folds = json.loads((small_run / "manifest.json").read_text())["config"]["folds"]
    logits = fold_mean_logits(member, folds)[routes, np.arange(member.shape[1])]
    np.save(tmp_path / "logits.npy", logits)
    out = tmp_path / "decisions.csv"
    assert main(["decide", str(small_run / "thresholds.json"), str(tmp_path / "logits.npy"),
                 "--out", str(out)]) == 0
    with open(out, newline="") as fh:
        said = [row["prediction"] for row in csv.DictReader(fh)]
    names = json.loads((small_run / "metrics.json").read_text())["class_names"]
    expected = ["not_sure" if p == NOT_SURE else names[p] for p in prediction]
    guard = json.loads((small_run / "metrics.json").read_text())["guard"]
    differ = [i for i, (a, b) in enumerate(zip(said, expected, strict=True)) if a != b]
    # only answers the guard took back may differ: answered by the thresholds, not_sure in the run
    assert all(expected[i] == "not_sure" and said[i] != "not_sure" for i in differ)
    assert len(differ) == round(guard["test_coverage_cost"] * len(said))
    assert len(said) == len(expected) > 0
