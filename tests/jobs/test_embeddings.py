"""The embeddings job on synthetic pickles whose right answers are known."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest

from notsure.analysis import embedding_cv, knn
from notsure.analysis.embedding_integrity import check_embeddings
from notsure.cli.main import main
from notsure.data.load import load
from notsure.data.splits import stratified_kfold
from notsure.errors import ConfigError, DataError
from notsure.jobs.embeddings.pipeline import EmbeddingsConfig, load_embeddings

DIM = 24
BIG_SUBJECT = ("B", "subj-b-0")  # syndrome, subject with several images


def clean_embeddings(seed: int = 0, n_classes: int = 4, subjects: int = 12
                     ) -> dict[str, dict[str, dict[str, np.ndarray]]]:
    """Well separated clusters: one random direction per syndrome, small noise. Subject
    ``subj-b-0`` of syndrome B owns five images; every other subject one or two."""
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(n_classes, DIM)) * 4.0
    data: dict[str, dict[str, dict[str, np.ndarray]]] = {}
    image = 0
    for c in range(n_classes):
        name = "ABCDEFGH"[c]
        data[name] = {}
        for s in range(subjects):
            subject = f"subj-{name.lower()}-{s}"
            n_images = 5 if (name, subject) == BIG_SUBJECT else 1 + s % 2
            data[name][subject] = {}
            for _ in range(n_images):
                vec = centers[c] + rng.normal(scale=0.5, size=DIM)
                data[name][subject][f"img{image}"] = vec.astype(np.float32)
                image += 1
    return data


def dirty_embeddings() -> dict:
    """The clean data plus one example of every integrity problem."""
    data = clean_embeddings()
    good = data["A"]["subj-a-0"]["img0"]
    data["A"]["subj-a-0"]["nan-img"] = np.full(DIM, np.nan, dtype=np.float32)
    data["A"]["subj-a-1"]["short-img"] = np.ones(DIM - 3, dtype=np.float32)
    data["B"]["subj-b-1"]["none-img"] = None
    data["B"]["subj-b-2"]["text-img"] = "not a vector"
    data["C"]["subj-c-0"]["img0"] = np.ones(DIM, dtype=np.float32)  # image id used in A
    data["C"]["subj-c-1"]["copy-img"] = good.copy()  # same vector as A / subj-a-0 / img0
    data["D"]["subj-d-0"]["twin-img"] = data["D"]["subj-d-0"][
        next(iter(data["D"]["subj-d-0"]))].copy()  # duplicate inside one subject
    data["D"]["empty-subject"] = {}
    data["E"] = {}
    return data


def write_pickle(tmp_path: Path, data: dict, name: str = "emb.p") -> Path:
    path = tmp_path / name
    with open(path, "wb") as fh:
        pickle.dump(data, fh)
    return path


def flat(data: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    path_free = check_embeddings(data, "synthetic")
    x, y, g = [], [], []
    names = sorted(path_free.clean)
    for syndrome, subjects in path_free.clean.items():
        for subject, images in subjects.items():
            for vec in images.values():
                x.append(vec)
                y.append(names.index(syndrome))
                g.append(subject)
    return np.array(x, dtype=np.float64), np.array(y), np.array(g), len(names)


# -- integrity --------------------------------------------------------------------------------

def test_integrity_finds_drops_and_reports_every_problem():
    data = dirty_embeddings()
    report = check_embeddings(data, "synthetic")
    by_check = {}
    for f in report.findings:
        by_check.setdefault(f["check"], []).append(f)
    assert report.dim == DIM
    assert [f["image"] for f in by_check["non-finite values"]] == ["nan-img"]
    assert [f["image"] for f in by_check["wrong dimension"]] == ["short-img"]
    assert [f["image"] for f in by_check["missing vector (None)"]] == ["none-img"]
    assert [f["image"] for f in by_check["not a 1-D numeric vector"]] == ["text-img"]
    dup_id = by_check["duplicate image id"]
    assert [(f["syndrome"], f["subject"], f["image"]) for f in dup_id] == [
        ("C", "subj-c-0", "img0")]
    across = by_check["identical vector under another subject"]
    assert [(f["subject"], f["image"]) for f in across] == [("subj-c-1", "copy-img")]
    assert "img0" in across[0]["detail"] and "subj-a-0" in across[0]["detail"]
    assert [f["image"] for f in by_check["identical vector within one subject"]] == ["twin-img"]
    assert [(f["syndrome"], f["subject"]) for f in by_check["empty subject"]] == [
        ("D", "empty-subject")]
    assert [f["syndrome"] for f in by_check["empty syndrome"]] == ["E"]

    dropped = {f["image"] for f in report.dropped}
    assert dropped == {"nan-img", "short-img", "none-img", "text-img", "img0", "copy-img"}
    clean_ids = {i for s in report.clean.values() for p in s.values() for i in p}
    assert not dropped - {"img0"} & clean_ids
    assert report.clean["A"]["subj-a-0"]["img0"] is not None  # the first img0 is kept
    assert "img0" not in report.clean["C"]["subj-c-0"]
    assert "twin-img" in report.clean["D"]["subj-d-0"]  # reported, kept
    n_clean = sum(len(p) for s in clean_embeddings().values() for p in s.values())
    assert report.found["images"] == n_clean + 7
    assert report.kept["images"] == n_clean + 1  # the twin stays
    assert report.kept["syndromes"] == 4
    counts = {r["check"]: r["found"] for r in report.check_rows()}
    assert counts["subject under more than one syndrome"] == 0
    assert sum(counts.values()) == len(report.findings)


def test_subject_under_two_syndromes_is_reported():
    data = clean_embeddings()
    data["A"]["subj-b-1"] = {"extra": np.zeros(DIM, dtype=np.float32) + 3.0}
    report = check_embeddings(data, "synthetic")
    found = [f for f in report.findings if f["check"] == "subject under more than one syndrome"]
    assert [(f["syndrome"], f["subject"]) for f in found] == [("A, B", "subj-b-1")]


def test_integrity_refuses_non_dict_and_empty_input():
    with pytest.raises(DataError, match="expected a dict"):
        check_embeddings([1, 2], "x.p")
    with pytest.raises(DataError, match="no usable image vector"):
        check_embeddings({"A": {"s": {"i": None}}}, "x.p")


def test_clean_file_loads_exactly_as_the_data_layer_loads_it(tmp_path):
    path = write_pickle(tmp_path, clean_embeddings())
    ours, report = load_embeddings(path)
    theirs = load(path, format="embeddings")
    assert not report.findings
    assert ours.fingerprint == theirs.fingerprint
    np.testing.assert_array_equal(ours.ids, theirs.ids)
    np.testing.assert_array_equal(ours.groups, theirs.groups)
    assert ours.class_names == theirs.class_names


def test_dirty_file_loads_without_the_dropped_entries(tmp_path):
    path = write_pickle(tmp_path, dirty_embeddings())
    with pytest.raises(DataError):
        load(path, format="embeddings")  # the strict loader refuses the file
    ds, report = load_embeddings(path)
    assert len(ds) == report.kept["images"]
    assert ds.class_names == ("A", "B", "C", "D")
    assert len(np.unique(ds.ids)) == len(ds)


# -- cross-validation -------------------------------------------------------------------------

@pytest.fixture(scope="module")
def synthetic():
    return flat(clean_embeddings())


def test_well_separated_clusters_are_classified_almost_perfectly(synthetic):
    x, y, g, n_classes = synthetic
    plan = stratified_kfold(y, 4, 0, groups=g)
    for metric in knn.METRICS:
        dist = knn.pairwise_distances(x, x, metric)
        result = embedding_cv.knn_cv(dist, y, g, n_classes, plan, k_max=7, n_inner=3)
        assert (result.fold >= 0).all()
        assert np.mean(result.pred == y) >= 0.97
        assert all(1 <= k <= 7 for k in result.chosen)
        folds = embedding_cv.per_fold(result, y, n_classes)
        assert min(f["macro_auc"] for f in folds) >= 0.99
    lr = embedding_cv.logreg_cv(x, y, g, n_classes, plan, cs=(1.0,), n_inner=3)
    assert np.mean(lr.pred == y) >= 0.97


def test_no_subject_is_on_both_sides_of_any_outer_or_inner_fold(synthetic, monkeypatch):
    x, y, g, n_classes = synthetic
    plan = stratified_kfold(y, 4, 0, groups=g)
    seen = []
    real = embedding_cv.inner_folds

    def spy(y_, groups_, train, n_inner, seed):
        folds = real(y_, groups_, train, n_inner, seed)
        seen.append((train, folds))
        return folds

    monkeypatch.setattr(embedding_cv, "inner_folds", spy)
    embedding_cv.knn_cv(knn.pairwise_distances(x, x, "cosine"), y, g, n_classes, plan,
                        k_max=5, n_inner=3)
    embedding_cv.logreg_cv(x, y, g, n_classes, plan, cs=(1.0,), n_inner=3)
    assert len(seen) == 2 * len(plan.folds)
    for train, test in plan.folds:
        assert not set(g[train]) & set(g[test])
    for train, folds in seen:
        assert any(np.array_equal(train, t) for t, _ in plan.folds)
        for itrain, ival in folds:
            assert set(itrain) | set(ival) <= set(train)
            assert not set(g[itrain]) & set(g[ival])
    # the subject with five images sits in a single outer test fold
    big = np.flatnonzero(g == BIG_SUBJECT[1])
    assert len(big) == 5
    assert len({int(plan.fold[i]) for i in big}) == 1


def test_chosen_k_never_depends_on_the_outer_test_fold(synthetic):
    x, y, g, n_classes = synthetic
    plan = stratified_kfold(y, 4, 0, groups=g)
    dist = knn.pairwise_distances(x, x, "euclidean")
    before = embedding_cv.knn_cv(dist, y, g, n_classes, plan, k_max=9, n_inner=3)
    _, test = plan.folds[0]
    scrambled = y.copy()
    scrambled[test] = np.random.default_rng(1).permutation(n_classes)[y[test]]
    after = embedding_cv.knn_cv(dist, scrambled, g, n_classes, plan, k_max=9, n_inner=3)
    assert after.chosen[0] == before.chosen[0]
    np.testing.assert_array_equal(after.inner_curves[0], before.inner_curves[0])
    # ... while the scores of that fold's test images are exactly the same
    np.testing.assert_array_equal(after.scores[test], before.scores[test])


def test_knn_cv_scores_are_the_vote_fractions_of_the_chosen_k(synthetic):
    x, y, g, n_classes = synthetic
    plan = stratified_kfold(y, 4, 0, groups=g)
    dist = knn.pairwise_distances(x, x, "cosine")
    result = embedding_cv.knn_cv(dist, y, g, n_classes, plan, k_max=9, n_inner=3)
    for f, (train, test) in enumerate(plan.folds):
        k = result.chosen[f]
        order = np.argsort(dist[np.ix_(test, train)], axis=1, kind="stable")[:, :k]
        votes = (y[train][order][:, :, None] == np.arange(n_classes)).mean(axis=1)
        np.testing.assert_allclose(result.scores[test], votes, atol=1e-12)


def test_paired_comparison_matches_scipy():
    from scipy import stats

    a = [{"accuracy": v} for v in (0.8, 0.7, 0.9, 0.85, 0.75)]
    b = [{"accuracy": v} for v in (0.7, 0.72, 0.8, 0.8, 0.7)]
    row = embedding_cv.paired_comparison(a, b, ["accuracy"])[0]
    xa, xb = [r["accuracy"] for r in a], [r["accuracy"] for r in b]
    assert row["t_test_p"] == pytest.approx(stats.ttest_rel(xa, xb).pvalue)
    assert row["wilcoxon_p"] == pytest.approx(stats.wilcoxon(xa, xb).pvalue)
    assert (row["a_wins"], row["b_wins"], row["ties"]) == (4, 1, 0)
    assert row["mean_difference"] == pytest.approx(np.mean(np.subtract(xa, xb)))


@pytest.mark.parametrize("bad, named", [
    ({"n_folds": 1}, "--folds"), ({"k_max": 0}, "--k-max"), ({"weighting": "gauss"}, "--weighting"),
    ({"seed": -1}, "--seed"), ({"tsne_backend": "umap"}, "--tsne-backend"),
    ({"inner_folds": 1}, "--inner-folds"), ({"dim": 0}, "--dim"),
    # Settings without a command-line flag are named as the config's fields.
    ({"baseline_cs": ()}, "baseline C"), ({"tsne_perplexity": 0.0}, "tsne_perplexity"),
    ({"class_weight": "auto"}, "class_weight"),
])
def test_config_refuses_bad_settings_naming_them(bad, named):
    with pytest.raises(ConfigError, match=named):
        EmbeddingsConfig(**bad).validate()


# -- the whole job through the CLI ------------------------------------------------------------

def test_cli_writes_report_metrics_manifest_and_figures(tmp_path):
    path = write_pickle(tmp_path, dirty_embeddings())
    out = tmp_path / "run"
    code = main(["embeddings", str(path), "--out", str(out), "--folds", "4",
                 "--inner-folds", "3", "--k-max", "9", "--seed", "3", "-q"])
    assert code == 0
    for name in ("report.html", "report.md", "metrics.json", "manifest.json", "subject_folds.json",
                 "predictions.csv", "oof_scores.npz", "tables/results.csv",
                 "tables/results.md", "tables/integrity.csv", "tables/k_curve.csv",
                 "figures/roc_macro.png", "figures/roc_per_class_cosine.png",
                 "figures/roc_per_class_euclidean.png", "figures/tsne_normalized.png",
                 "figures/tsne_raw.png", "figures/images_per_syndrome.png"):
        assert (out / name).is_file(), name
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["status"] == "complete"
    assert manifest["seed"] == 3
    for stage in ("load_and_integrity", "statistics", "tsne", "knn", "baseline", "report"):
        assert stage in manifest["timings_s"]
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics["methods"]) == {"cosine", "euclidean", "logreg"}
    assert metrics["methods"]["cosine"]["mean"]["accuracy"] >= 0.95
    assert len(metrics["methods"]["cosine"]["chosen"]) == 4
    assert metrics["integrity"]["kept"]["images"] < metrics["integrity"]["found"]["images"]
    folds = json.loads((out / "subject_folds.json").read_text())
    fold, subjects = np.array(folds["fold"]), np.array(folds["subjects"])
    for subject in np.unique(subjects):
        assert len(set(fold[subjects == subject])) == 1
    report = (out / "report.md").read_text()
    for section in ("## Methodology", "## Results", "## Analysis", "## Challenges",
                    "## Recommendations"):
        assert section in report
    assert "copy-img" in report  # the duplicated vector is named in the integrity findings
    html = (out / "report.html").read_text()
    assert html.count("data:image/png;base64,") >= 10


def test_cli_bad_file_is_one_line_error(tmp_path, capsys):
    path = tmp_path / "bad.p"
    path.write_bytes(b"not a pickle at all")
    code = main(["embeddings", str(path), "--out", str(tmp_path / "run"), "-q"])
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(path) in err[0]
    assert not (tmp_path / "run").exists()


def _without_timings(obj):
    if isinstance(obj, dict):
        return {k: _without_timings(v) for k, v in obj.items() if k != "seconds"}
    if isinstance(obj, list):
        return [_without_timings(v) for v in obj]
    return obj


def test_same_seed_same_results_and_small_syndrome_is_reported(tmp_path):
    data = clean_embeddings(seed=5)
    data["Z"] = {"subj-z-0": {"z0": np.full(DIM, 9.0, dtype=np.float32)},
                 "subj-z-1": {"z1": np.full(DIM, 9.5, dtype=np.float32)}}  # 2 subjects < 4 folds
    path = write_pickle(tmp_path, data)
    docs = []
    for name in ("a", "b"):
        out = tmp_path / name
        assert main(["embeddings", str(path), "--out", str(out), "--folds", "4",
                     "--inner-folds", "3", "--k-max", "7", "-q"]) == 0
        docs.append(json.loads((out / "metrics.json").read_text()))
    assert _without_timings(docs[0]) == _without_timings(docs[1])  # t-SNE included
    assert docs[0]["cv"]["not_evaluable"] == {"Z": 2}
    cosine = docs[0]["methods"]["cosine"]
    assert all(np.isfinite(f["macro_auc"]) for f in cosine["folds"])
    assert "Z (2 images)" in (tmp_path / "a" / "report.md").read_text()
    # the never-tested images get no prediction
    with np.load(tmp_path / "a" / "oof_scores.npz") as npz:
        untested = npz["fold"] < 0
        assert untested.sum() == 2
        assert (npz["cosine_pred"][untested] == -1).all()
