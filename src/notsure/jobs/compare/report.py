"""The compare job's report and ``metrics.json`` document: the summary and per-model tables,
hyperparameter curves, confusions and the sections that explain them.

Every test figure is computed here from the saved test predictions with :mod:`notsure.metrics`,
so anyone can recompute the summary table from ``predictions/<model>.csv``.
"""

from __future__ import annotations

import numpy as np

from notsure import metrics
from notsure.io.run_folder import RunFolder
from notsure.jobs.compare.pipeline import (
    CNN_MODELS,
    CompareResult,
    ModelResult,
    fold_scores,
)
from notsure.models.classical import params_text
from notsure.reports import Report, fmt
from notsure.reports.figures import confusion_matrix_figure, curves_figure

#: The customers' own figures (their splits, not ours): test accuracy, and macro F1 if given.
MNIST_REFERENCE = {"knn": (0.971, None), "tree": (0.873, None), "cnn": (0.990, None)}
LETTERS_REFERENCE = {"logreg": (0.784, 0.679), "rbf_svm": (0.878, 0.744), "cnn": (0.920, 0.790),
                     "pretrained EfficientNet": (0.950, 0.880)}
N_PAIRS = 10
N_PAIR_GALLERY = 6
N_EXAMPLES = 3
#: How the CV scores are written for people.
METRIC_NAMES = {"accuracy": "accuracy", "macro_f1": "macro F1"}


def predictions_name(name: str) -> str:
    """Where a model's test predictions are saved in the run folder."""
    return f"predictions/{name}.csv"


def holdout_scores(r: CompareResult, m: ModelResult) -> dict:
    """Test accuracy (with its 95% Clopper-Pearson interval), macro and weighted F1."""
    y = r.dataset.y[r.split.test]
    n_right = int(np.sum(m.y_pred == y))
    lo, hi = metrics.clopper_pearson(n_right, len(y))
    return {**fold_scores(y, m.y_pred),
            "weighted_f1": float(metrics.precision_recall_f1(y, m.y_pred,
                                                             average="weighted")[2]),
            "accuracy_lo": float(lo), "accuracy_hi": float(hi), "n": int(len(y))}


def scored(r: CompareResult) -> list[ModelResult]:
    """The models that have test predictions (not refused)."""
    return [m for m in r.models if m.y_pred is not None]


def best_model(r: CompareResult) -> ModelResult | None:
    """The scored model with the highest test macro F1 (then accuracy): shown, not selected."""
    ranked = sorted(scored(r), key=lambda m: (-holdout_scores(r, m)["macro_f1"],
                                              -holdout_scores(r, m)["accuracy"]))
    return ranked[0] if ranked else None


def summary_rows(r: CompareResult) -> list[dict]:
    """One row per model: choice, CV mean and spread, test scores, sizes and times."""
    n_test = len(r.split.test)
    rows = []
    for m in r.models:
        row = {"model": m.plan.title, "name": m.name,
               "chosen": params_text(m.params) if m.cv else
               f"fixed, not cross-validated: {params_text(m.params)}",
               "cv_samples": len(m.plan.cv_index) or None}
        for metric in ("accuracy", "macro_f1"):
            row[f"cv_{metric}"] = float(m.cv.mean(metric)[m.cv.chosen]) if m.cv else None
            row[f"cv_{metric}_sd"] = float(m.cv.std(metric)[m.cv.chosen]) if m.cv else None
        test = holdout_scores(r, m) if m.y_pred is not None else {}
        row.update({
            "test_accuracy": test.get("accuracy"), "test_macro_f1": test.get("macro_f1"),
            "train_samples": m.plan.n_trained,
            "cv_s": m.cv.seconds if m.cv else None, "fit_s": m.fit_seconds,
            "predict_s_per_1000": (None if m.predict_seconds is None
                                   else 1000 * m.predict_seconds / n_test),
            "status": "scored" if m.refused is None else f"REFUSED: {m.refused}",
        })
        rows.append(row)
    return rows


def cv_rows(m: ModelResult) -> list[dict]:
    """Every candidate of a family with its CV scores per fold, mean and spread."""
    rows = []
    for c, params in enumerate(m.cv.candidates):
        row = {**params, "chosen": c == m.cv.chosen}
        for metric in ("accuracy", "macro_f1"):
            row[f"{metric}_mean"] = float(m.cv.mean(metric)[c])
            row[f"{metric}_sd"] = float(m.cv.std(metric)[c])
            for f, v in enumerate(m.cv.scores[metric][c]):
                row[f"{metric}_fold{f}"] = float(v)
        rows.append(row)
    return rows


def confused_pairs(cm: np.ndarray, labels: np.ndarray, names: tuple[str, ...],
                   limit: int = N_PAIRS) -> list[dict]:
    """The class pairs most often mistaken for each other (both directions), most errors first."""
    i, j = np.triu_indices(len(labels), k=1)
    both = cm[i, j] + cm[j, i]
    support = cm.sum(axis=1)
    order = [k for k in np.lexsort((i, -both)) if both[k] > 0][:limit]
    return [{"pair": f"{names[labels[i[k]]]} / {names[labels[j[k]]]}",
             "a": int(labels[i[k]]), "b": int(labels[j[k]]),
             "a_as_b": int(cm[i[k], j[k]]), "b_as_a": int(cm[j[k], i[k]]),
             "errors": int(both[k]),
             "share_of_pair": float(both[k] / (support[i[k]] + support[j[k]]))} for k in order]


def paired_rows(r: CompareResult, best: ModelResult) -> list[dict]:
    """Each other model against the best on the same test images: exact McNemar test."""
    y = r.dataset.y[r.split.test]
    right = best.y_pred == y
    rows = []
    for m in scored(r):
        if m is best:
            continue
        test = metrics.mcnemar(right, m.y_pred == y)
        rows.append({"model": m.plan.title, "best right, model wrong": test.only_a,
                     "model right, best wrong": test.only_b, "McNemar p": test.p_value})
    return rows


def metrics_document(r: CompareResult) -> dict:
    """The content of ``metrics.json``."""
    ds, split, cfg = r.dataset, r.split, r.config
    best = best_model(r)
    models = {}
    for m, row in zip(r.models, summary_rows(r), strict=True):
        models[m.name] = {
            "title": m.plan.title, "status": "scored" if m.refused is None else "refused",
            "refused_reason": m.refused, "params": m.params,
            "cv": None if m.cv is None else {
                "samples": len(m.plan.cv_index), "folds": len(m.plan.folds),
                "select_by": m.cv.select_by, "not_evaluable": m.plan.cv_not_evaluable,
                "accuracy_mean": row["cv_accuracy"], "accuracy_sd": row["cv_accuracy_sd"],
                "macro_f1_mean": row["cv_macro_f1"], "macro_f1_sd": row["cv_macro_f1_sd"],
                "seconds": m.cv.seconds, "table": f"tables/cv_{m.name}.csv"},
            "train_samples": m.plan.n_trained,
            "fit_seconds": m.fit_seconds, "predict_seconds": m.predict_seconds,
            "predict_seconds_per_1000": row["predict_s_per_1000"],
            "test": holdout_scores(r, m) if m.y_pred is not None else None,
            "predictions": predictions_name(m.name) if m.y_pred is not None else None,
        }
    return {
        "dataset": {"source": ds.source, "format": ds.format, "fingerprint": ds.fingerprint,
                    "n": len(ds), "shape": list(ds.shape), "class_names": list(ds.class_names),
                    "class_counts": ds.class_counts()},
        "split": {"train": len(split.train), "test": len(split.test),
                  "test_fraction": None if cfg.test_per_class else cfg.test_fraction,
                  "test_per_class": cfg.test_per_class,
                  "not_evaluable": {ds.class_names[c]: n for c, n in split.not_evaluable.items()},
                  "duplicate_samples_grouped": r.n_duplicate_groups},
        "cv_folds": cfg.cv_folds, "select_by": cfg.select_by, "class_weight": cfg.class_weight,
        "models": models,
        "best_model_on_test": None if best is None else best.name,
    }






# -- the report ---------------------------------------------------------------------------------

def _display(image: np.ndarray, pixel_max: float | None) -> np.ndarray:
    """uint8 0..255 for the report, binary 0/1 images stretched."""
    return (image * (255 // int(pixel_max or 255))).astype(np.uint8)


def _reference(r: CompareResult) -> tuple[str, dict] | None:
    """The customer's write-up and figures for this dataset, if it is one of theirs."""
    ds = r.dataset
    if ds.n_classes == 10 and ds.shape == (28, 28):
        return ("the postal customer's MNIST write-up (their own split; the 99.89% they also "
                "claimed came from a model trained on part of its test set)", MNIST_REFERENCE)
    if ds.n_classes == 36 and ds.shape == (56, 56):
        return ("the letters customer's write-up (their own data and split; ours is a generated "
                "stand-in, so only the ordering of the families is comparable)", LETTERS_REFERENCE)
    return None


def _sample_rows(r: CompareResult) -> list[dict]:
    """One row per model: the CV and final training samples it used."""
    n_train = len(r.split.train)
    rows = []
    for m in r.models:
        rows.append({
            "model": m.plan.title,
            "CV samples": len(m.plan.cv_index) if m.cv else None,
            "CV folds": len(m.plan.folds) if m.cv else None,
            "candidates": len(m.cv.candidates) if m.cv else None,
            "final training samples": m.plan.n_trained,
            "share of training part": m.plan.n_trained / n_train,
        })
    return rows


def _summary_bullets(r: CompareResult, best: ModelResult | None) -> list[str]:
    """The summary's findings: best model, runner-up, refusals, subsamples, small classes."""
    cfg = r.config
    out = []
    if best is not None:
        t = holdout_scores(r, best)
        out.append(
            f"Best on the test split: **{best.plan.title}** with accuracy "
            f"{fmt.interval(t['accuracy'], t['accuracy_lo'], t['accuracy_hi'])} (95% "
            f"Clopper-Pearson) and macro F1 {fmt.num(t['macro_f1'])} on "
            f"{fmt.count(t['n'])} test images. It is named best for display only; nothing was "
            "chosen on the test split.")
        ranked = sorted(scored(r), key=lambda m: -holdout_scores(r, m)["macro_f1"])
        paired = {row["model"]: row for row in paired_rows(r, best)}
        if len(ranked) > 1:
            p = paired[ranked[1].plan.title]
            out.append(
                f"Runner-up: {p['model']} (exact McNemar p = {fmt.num(p['McNemar p'], 3)} "
                f"on the {p['best right, model wrong'] + p['model right, best wrong']} test "
                "images exactly one of the two gets right); "
                + ("the difference could be chance." if p["McNemar p"] >= 0.05 else
                   "the difference is unlikely to be chance (p < 0.05)."))
    refused = [m for m in r.models if m.refused]
    if refused:
        out.append("**Refused** to report test scores (training data overlaps the test split): "
                   + "; ".join(f"{m.plan.title}: {m.refused}" for m in refused) + ".")
    sub = [m for m in r.models if m.plan.n_trained < len(r.split.train)]
    if sub:
        out.append("Trained on a stated subsample of the training part (time budget; "
                   "stratified, except the CNN presets' random cap): "
                   + ", ".join(f"{m.plan.title} {fmt.count(m.plan.n_trained)}" for m in sub)
                   + f" of {fmt.count(len(r.split.train))} images.")
    ne = r.split.not_evaluable
    if ne:
        names = r.dataset.class_names
        out.append(f"{len(ne)} class(es) too small to split are kept wholly in training and are "
                   "not evaluable: " + ", ".join(f"{names[c]} ({n} image{'s' * (n != 1)})"
                                                 for c, n in ne.items()) + ".")
    if cfg.quick:
        out.append("This is a `--quick` run: small CV samples and small CNNs; the figures are "
                   "a smoke test, not the comparison.")
    return out


def _curve_figure(m: ModelResult, select_by: str):
    """A family's mean CV score against its main hyperparameter, with a ±1 sd band."""
    fam = m.plan.family
    groups = dict.fromkeys(p.get(fam.curve_by) for p in m.cv.candidates)
    mean, sd = m.cv.mean(select_by), m.cv.std(select_by)
    series = []
    for g in groups:
        idx = [i for i, p in enumerate(m.cv.candidates) if p.get(fam.curve_by) == g]
        x = [m.cv.candidates[i][fam.curve_x] for i in idx]
        series.append({"x": x, "y": mean[idx], "band_lo": mean[idx] - sd[idx],
                       "band_hi": mean[idx] + sd[idx],
                       "label": f"{fam.curve_by}={g}" if fam.curve_by else fam.title})
    label = METRIC_NAMES[select_by]
    return curves_figure(series, xlabel=fam.curve_x, ylabel=f"CV {label}", logx=fam.log_x,
                         title=f"{fam.title}: CV {label} (band: ±1 sd over folds)")


def _summary(rep: Report, r: CompareResult, best: ModelResult | None) -> None:
    """Summary: the findings, one row per model, and the customer's reference figures."""
    rep.section("Summary")
    rep.bullets(_summary_bullets(r, best))
    rep.table(summary_rows(r), caption="One row per model. CV columns: mean and standard "
              "deviation over the folds of the chosen candidate; test columns: the single "
              "evaluation on the locked test split; times in seconds (predict: per 1,000 test "
              "images).", csv="tables/summary.csv",
              formats={"test_accuracy": fmt.pct, "cv_accuracy": fmt.pct, "cv_accuracy_sd": fmt.pct,
                       "cv_s": fmt.duration, "fit_s": fmt.duration,
                       "predict_s_per_1000": fmt.duration})
    _reference_table(rep, r)


def _reference_table(rep: Report, r: CompareResult) -> None:
    """The customer's own figures next to ours, where the data is theirs."""
    ref = _reference(r)
    if ref is None:
        return
    source, table = ref
    ours = {m.name: holdout_scores(r, m) for m in scored(r)}
    rep.table([{"model": name, "their accuracy": acc, "their macro F1": f1,
                "our accuracy": ours.get(name, {}).get("accuracy"),
                "our macro F1": ours.get(name, {}).get("macro_f1")}
               for name, (acc, f1) in table.items()],
              caption=f"Reference figures from {source}.",
              formats={"their accuracy": fmt.pct, "our accuracy": fmt.pct})


def _approach(rep: Report, r: CompareResult) -> None:
    """Approach: locked split, cross-validation, features, CNNs, class weights, samples."""
    cfg, split = r.config, r.split
    rep.section("Approach")
    split_text = (f"{cfg.test_per_class} images of every class" if cfg.test_per_class else
                  f"{fmt.pct(cfg.test_fraction)} of every class")
    rep.paragraph(
        f"A test split of {split_text} ({fmt.count(len(split.test))} images) is drawn first, "
        f"stratified, from the labels and the seed {cfg.seed} alone, and locked. "
        + (f"Exact-duplicate images ({fmt.count(r.n_duplicate_groups)} extra copies) "
           if r.n_duplicate_groups else "Exact duplicates (none found here) ")
        + "are kept on one side of every split and fold. All model selection is stratified "
        f"{cfg.cv_folds}-fold cross-validation on the training part only; each family's best "
        f"candidate by mean CV {METRIC_NAMES[cfg.select_by]} (ties: the simpler one) is "
        "refit on its training samples and evaluated once on the test split. Before that "
        "evaluation every model's training samples are checked against the test split, by "
        "sample id and by exact-duplicate image; a model that overlaps is refused a test score.")
    _classical_paragraph(rep, r)
    _cnn_paragraph(rep, r)
    _weights_and_samples(rep, r)


def _classical_paragraph(rep: Report, r: CompareResult) -> None:
    """The classical models' features, and how their grids are scored."""
    feat = ("pixels flattened and scaled to [0, 1] "
            f"(divided by {fmt.num(r.pixel_max)})" if r.pixel_max else
            "the vectors as given, standardized inside the linear and RBF models")
    rep.paragraph(
        f"Classical models use {feat}. Grids are scored cheaply but exactly: k-NN searches the "
        "20 nearest neighbours once per metric and votes for every k (cosine = Euclidean on "
        "unit-length rows); the random forest's first m trees are exactly the forest of m trees; "
        "the decision tree's depth-d candidates are the depth-d prefixes of one fully grown tree "
        "per criterion, the same greedy splits as a tree grown with max_depth=d except where "
        "two splits tie exactly (broken by a random feature order in both), and the chosen depth "
        "is refit with max_depth.")


def _cnn_paragraph(rep: Report, r: CompareResult) -> None:
    """The CNNs' fixed architectures and training, if any CNN is compared."""
    cnn_names = [m for m in r.models if m.name in CNN_MODELS]
    if not cnn_names:
        return
    rep.paragraph(
        "The CNNs have fixed architectures (the selective job's preset and one deeper net "
        "with an extra stage) and are not cross-validated: they are trained once on the "
        "training part, which never includes a test image, and evaluated once. "
        + "; ".join(f"{m.plan.title}: stages {m.plan.cnn.stages}, {m.plan.cnn.epochs} "
                    f"epochs, augmentation {'on' if m.plan.cnn.augment else 'off'}"
                    + (f", a random {fmt.count(m.plan.cnn.max_train)} of its training "
                       "images" if m.plan.cnn.max_train else "")
                    for m in cnn_names) + ".")


def _weights_and_samples(rep: Report, r: CompareResult) -> None:
    """Class weights, macro F1, and the samples each model used."""
    rep.paragraph(
        "Class weights: " + ("none (every image counts once)." if r.config.class_weight is None
                             else "balanced (each class weighs the same in the loss; k-NN has no "
                             "weights; the CNNs draw their training images with replacement, "
                             "each class equally likely).")
        + " Macro F1 (every class present in the test split or predicted counts equally) sits "
          "next to accuracy everywhere.")
    rep.table(_sample_rows(r), caption="Samples each model used. Families with fewer CV or "
              "final training samples than the training part use a stratified subsample of it "
              "(every class kept) to fit the time budget.", csv="tables/samples.csv",
              formats={"share of training part": fmt.pct})


def _data_and_split(rep: Report, r: CompareResult) -> None:
    """Data and split: the dataset and its images per class and split."""
    ds, split = r.dataset, r.split
    y_test = ds.y[split.test]
    rep.section("Data and split")
    counts = ds.class_counts()
    rep.paragraph(f"{fmt.count(len(ds))} {ds.kind} of shape {ds.shape} in {ds.n_classes} classes "
                  f"from `{ds.source}` (format {ds.format}, fingerprint "
                  f"`{ds.fingerprint[:16]}`).")
    rep.table([{"class": n, "all": int(counts[c]), "train": int(np.sum(ds.y[split.train] == c)),
                "test": int(np.sum(y_test == c)),
                "evaluable": "no" if c in split.not_evaluable else "yes"}
               for c, n in enumerate(ds.class_names)], caption="Images per class and split.",
              csv="tables/split_counts.csv")


def _hyperparameter_curves(rep: Report, r: CompareResult) -> None:
    """Hyperparameter curves: each family's CV curve and best candidates, then CNN training."""
    select_by = r.config.select_by
    rep.section("Hyperparameter curves")
    for m in r.models:
        if m.cv is None:
            continue
        rep.subsection(m.plan.title)
        rep.figure(_curve_figure(m, select_by), f"figures/curve_{m.name}.png",
                   f"{m.plan.title}: chosen {params_text(m.params)}; "
                   f"{len(m.plan.cv_index):,} CV samples.")
        rows = sorted(cv_rows(m), key=lambda row: -row[f"{select_by}_mean"])
        shown = [{k: v for k, v in row.items() if "_fold" not in k} for row in rows]
        rep.table(shown, caption=f"{m.plan.title}: best CV candidates (all candidates and folds "
                  f"in tables/cv_{m.name}.csv).", max_rows=5)
        if m.plan.cv_not_evaluable:
            rep.paragraph("Never in a validation fold (fewer samples than folds): "
                          + ", ".join(f"{k} ({v})" for k, v in m.plan.cv_not_evaluable.items())
                          + ".")
    _cnn_training(rep, r)


def _cnn_training(rep: Report, r: CompareResult) -> None:
    """CNN training: training error per epoch of each CNN trained."""
    cnn_done = [m for m in r.models if m.history]
    if not cnn_done:
        return
    rep.subsection("CNN training")
    series = [{"x": [h["epoch"] for h in m.history],
               "y": [1 - h["train_acc"] for h in m.history], "label": m.plan.title}
              for m in cnn_done]
    rep.figure(curves_figure(series, xlabel="epoch", ylabel="training error", logy=True,
                             title="CNN training error per epoch (augmented images)"),
               "figures/cnn_training.png", "Training error per epoch; no test image used.")


def _paired_comparison(rep: Report, r: CompareResult, best: ModelResult) -> None:
    """Is the best model really better? Every other model against it, McNemar test."""
    paired = paired_rows(r, best)
    if not paired:
        return
    rep.section("Is the best model really better?")
    rep.table(paired, caption=f"Every model against {best.plan.title} on the same test "
              "images: counts where exactly one is right, and the exact McNemar test "
              "(two-sided binomial on those counts).", csv="tables/paired.csv",
              formats={"McNemar p": lambda v: fmt.num(v, 3)})


def _classification_reports(rep: Report, r: CompareResult) -> None:
    """Classification report per model: per-class precision, recall and F1 on the test split."""
    names, y_test = r.dataset.class_names, r.dataset.y[r.split.test]
    rep.section("Classification report per model")
    for m in r.models:
        rep.subsection(m.plan.title)
        if m.y_pred is None:
            rep.paragraph(f"**Refused**: {m.refused}. No test figure is reported for this model.")
            continue
        rows = metrics.classification_report(y_test, m.y_pred, class_names=names)
        rep.table(rows, caption=f"{m.plan.title} on the test split.",
                  csv=f"tables/report_{m.name}.csv")


def write_report(run: RunFolder, r: CompareResult) -> None:
    """The report: summary, approach, data, curves, per-class reports, confusions."""
    cfg, split = r.config, r.split
    best = best_model(r)
    rep = Report(f"Model comparison on {r.dataset.source}", run,
                 subtitle=f"{len(r.models)} model families, {cfg.cv_folds}-fold CV by "
                          f"{METRIC_NAMES[cfg.select_by]}, locked test split of "
                          f"{fmt.count(len(split.test))} images")
    _summary(rep, r, best)
    _approach(rep, r)
    _data_and_split(rep, r)
    _hyperparameter_curves(rep, r)
    if best is not None:
        _paired_comparison(rep, r, best)
    _classification_reports(rep, r)
    if best is not None:
        _best_model_section(rep, r, best)
    rep.run_summary()
    rep.write()


def _best_model_section(rep: Report, r: CompareResult, best: ModelResult) -> None:
    """Confusions of the best model: matrix, most confused pairs and their images."""
    ds, test = r.dataset, r.split.test
    names = ds.class_names
    y_test = ds.y[test]
    rep.section(f"Confusions of the best model ({best.plan.title})")
    labels = np.union1d(y_test, best.y_pred)
    cm = metrics.confusion_matrix(y_test, best.y_pred, labels)
    shown = tuple(names[c] for c in labels)
    rep.figure(confusion_matrix_figure(cm, shown, normalize="true",
                                       title=f"{best.plan.title} on the test split"),
               "figures/confusion_best.png",
               "Row-normalized confusion matrix: each row is a true class, in % of its test "
               "images.")
    pairs = confused_pairs(cm, labels, names)
    if not pairs:
        rep.paragraph("No test image was misclassified.")
        return
    rep.table([{k: v for k, v in p.items() if k not in ("a", "b")} for p in pairs],
              caption="Most confused class pairs (a / b: a_as_b = images of a predicted b).",
              csv="tables/confused_pairs.csv", formats={"share_of_pair": fmt.pct})
    if ds.kind != "images":
        return
    images, captions = [], []
    for p in pairs[:N_PAIR_GALLERY]:
        for true, said in ((p["a"], p["b"]), (p["b"], p["a"])):
            hits = np.flatnonzero((y_test == true) & (best.y_pred == said))[:N_EXAMPLES]
            for i in hits:
                images.append(_display(ds.x[test[i]], r.pixel_max))
                captions.append(f"{ds.ids[test[i]]}: {names[true]} read as {names[said]}")
    rep.gallery(images, captions, name_prefix="gallery/confused", scale=2,
                caption=f"Up to {N_EXAMPLES} test images for each direction of the "
                        f"{min(len(pairs), N_PAIR_GALLERY)} most confused pairs.")


