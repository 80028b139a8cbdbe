"""``notsure calibrate`` and ``notsure decide`` on score files, and their bad-input errors."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from scipy.special import softmax

from notsure import NOT_SURE, NeymanPearsonThresholds
from notsure.cli.main import main

NAMES = np.array(["cat", "dog", "eel", "fox"])


def make_scores(n: int = 4000, c: int = 4, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, c, n)
    z = rng.normal(size=(n, c))
    z[np.arange(n), y] += 3
    return z, y


def write_csv(path, scores, header=None):
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        if header is not None:
            w.writerow(header)
        w.writerows(scores.tolist())
    return path


@pytest.fixture
def files(tmp_path):
    z, y = make_scores()
    p = softmax(z, axis=1)
    scores = write_csv(tmp_path / "scores.csv", p, NAMES)
    labels = tmp_path / "labels.csv"
    labels.write_text("label\n" + "\n".join(NAMES[y]) + "\n")
    return {"z": z, "y": y, "p": p, "scores": scores, "labels": labels, "tmp": tmp_path}


def read_decisions(path):
    with open(path) as fh:
        return list(csv.DictReader(fh))


def test_calibrate_then_decide_matches_the_python_api(files):
    out = files["tmp"] / "run"
    assert main(["calibrate", str(files["scores"]), "--labels", str(files["labels"]),
                 "--target-fpr", "0.01", "--out", str(out), "-q"]) == 0
    for name in ("thresholds.json", "certificates.csv", "report.html", "report.md",
                 "manifest.json"):
        assert (out / name).is_file()
    reference = NeymanPearsonThresholds(0.01, 0.05).calibrate(files["p"], NAMES[files["y"]],
                                                              classes=NAMES)
    saved = NeymanPearsonThresholds.load(out / "thresholds.json")
    np.testing.assert_allclose(saved.thresholds_, reference.thresholds_, rtol=1e-12)
    assert saved.classes_ == tuple(NAMES) and saved.kind_ == "probabilities"
    rows = list(csv.DictReader(open(out / "certificates.csv")))
    assert [r["class"] for r in rows] == list(NAMES) and all(r["certified"] == "yes"
                                                              for r in rows)

    z_new, _ = make_scores(seed=1)
    new = write_csv(files["tmp"] / "new.csv", softmax(z_new, axis=1), NAMES)
    assert main(["decide", str(out / "thresholds.json"), str(new), "--out",
                 str(files["tmp"] / "d.csv")]) == 0
    got = [r["prediction"] for r in read_decisions(files["tmp"] / "d.csv")]
    expected = reference.predict(softmax(z_new, axis=1))
    assert got == [("not_sure" if e == NOT_SURE else NAMES[e]) for e in expected]
    assert "not_sure" in got and len(set(got)) == 5


def test_npy_and_npz_with_any_number_of_classes(tmp_path):
    z, y = make_scores(n=3000, c=7)
    np.save(tmp_path / "z.npy", z)
    np.save(tmp_path / "y.npy", y)
    assert main(["calibrate", str(tmp_path / "z.npy"), "--labels", str(tmp_path / "y.npy"),
                 "--target-fpr", "0.02", "--out", str(tmp_path / "a"), "-q"]) == 0
    t = NeymanPearsonThresholds.load(tmp_path / "a" / "thresholds.json")
    assert t.classes_ == tuple(range(7)) and t.kind_ == "logits"
    np.savez(tmp_path / "z.npz", scores=z[:50], classes=np.arange(7).astype(str))
    assert main(["decide", str(tmp_path / "a" / "thresholds.json"), str(tmp_path / "z.npz"),
                 "--out", str(tmp_path / "d.csv")]) == 0
    got = [r["prediction"] for r in read_decisions(tmp_path / "d.csv")]
    assert got == [str(v) for v in t.labels_of(t.predict(z[:50]))]


def run_bad(argv, capsys):
    code = main(argv)
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "internal error" not in err
    return err


def test_bad_scores_and_labels_name_the_file_and_place(files, capsys):
    tmp, labels = files["tmp"], str(files["labels"])
    p = files["p"].copy()
    p[5, 2] = np.nan
    nan = write_csv(tmp / "nan.csv", p, NAMES)
    assert "nan.csv: line 7, column 3" in run_bad(["calibrate", str(nan), "--labels", labels,
                                                   "--out", str(tmp / "x")], capsys)
    one = write_csv(tmp / "one.csv", files["p"][:, :1], NAMES[:1])
    assert "one.csv: scores must be numbers of shape" in run_bad(
        ["calibrate", str(one), "--labels", labels, "--out", str(tmp / "x")], capsys)
    short = tmp / "short.csv"
    short.write_text("\n".join(NAMES[files["y"][:-1]]))
    assert "short.csv: 3999 labels for 4000 rows" in run_bad(
        ["calibrate", str(files["scores"]), "--labels", str(short), "--out", str(tmp / "x")],
        capsys)
    unseen = tmp / "unseen.csv"
    unseen.write_text("\n".join(["cow", *NAMES[files["y"][1:]]]))
    assert "unseen.csv: label 1 is 'cow'" in run_bad(
        ["calibrate", str(files["scores"]), "--labels", str(unseen), "--out", str(tmp / "x")],
        capsys)
    np.save(tmp / "z.npy", files["z"])
    np.save(tmp / "y.npy", np.r_[[4], files["y"][1:]])
    assert "y.npy: label 1 is '4', expected a column index 0..3" in run_bad(
        ["calibrate", str(tmp / "z.npy"), "--labels", str(tmp / "y.npy"), "--out",
         str(tmp / "x")], capsys)
    assert "--target-fpr must lie in (0, 1)" in run_bad(
        ["calibrate", str(files["scores"]), "--labels", labels, "--target-fpr", "0"], capsys)
    assert "strict=True: class 'cat': not certified" in run_bad(
        ["calibrate", str(files["scores"]), "--labels", labels, "--strict", "--out",
         str(tmp / "x")], capsys)
    assert not (tmp / "x").exists()


def test_decide_refuses_tampered_thresholds_and_other_columns(files, capsys):
    out = files["tmp"] / "run"
    main(["calibrate", str(files["scores"]), "--labels", str(files["labels"]), "--target-fpr",
          "0.01", "--out", str(out), "-q"])
    path = out / "thresholds.json"
    doc = json.loads(path.read_text())
    doc["thresholds"][1] = -5.0
    path.write_text(json.dumps(doc))
    assert "thresholds.json: not a valid thresholds file" in run_bad(
        ["decide", str(path), str(files["scores"]), "--out", str(files["tmp"] / "d.csv")], capsys)
    main(["calibrate", str(files["scores"]), "--labels", str(files["labels"]), "--target-fpr",
          "0.01", "--out", str(files["tmp"] / "run2"), "-q"])
    other = write_csv(files["tmp"] / "other.csv", files["p"], ["dog", "cat", "eel", "fox"])
    assert "other.csv: columns ['dog', 'cat', 'eel', 'fox'] differ" in run_bad(
        ["decide", str(files["tmp"] / "run2" / "thresholds.json"), str(other), "--out",
         str(files["tmp"] / "d.csv")], capsys)
