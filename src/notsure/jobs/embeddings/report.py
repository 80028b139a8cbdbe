"""The embeddings job's report (five sections whose sentences come from the computed results),
its tables as CSV and Markdown, its figures, and the ``metrics.json`` document.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np

from notsure.analysis.embedding_cv import CRITERION, METRIC_NAMES, vote_ties
from notsure.io.run_folder import RunFolder
from notsure.jobs.embeddings.pipeline import (
    DISTANCE_NAMES,
    EmbeddingsResult,
    Method,
)
from notsure.metrics import confusion_matrix
from notsure.reports import Report, fmt, render_table_markdown
from notsure.reports import figures as figs

LABELS = {"accuracy": "accuracy", "macro_f1": "macro F1", "weighted_f1": "weighted F1",
          "macro_auc": "macro AUC (OvR)", "top1": "top-1", "top3": "top-3", "top5": "top-5"}
_SIGNIFICANT = 0.05


def _nanmean(values: np.ndarray, axis: int | None = None) -> Any:
    """Mean ignoring NaN (e.g. the AUC of a syndrome in a fold that does not test it); NaN,
    without a warning, where nothing is left."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmean(values, axis=axis)


def _nanstd(values: np.ndarray, axis: int | None = None) -> Any:
    """Sample standard deviation ignoring NaN; NaN, without a warning, where undefined."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanstd(values, axis=axis, ddof=1)




def _p(value: float) -> str:
    """A p-value as the sentences write it."""
    if fmt.is_missing(value):
        return "p undefined (all differences zero)"
    return "p < 0.001" if value < 0.001 else f"p = {value:.3f}"


def _table(report: Report, rows: Sequence[dict[str, Any]], name: str, caption: str,
           **kwargs: Any) -> None:
    """A report table that is also written as ``tables/<name>.csv`` and ``tables/<name>.md``."""
    report.table(rows, caption=caption, csv=f"tables/{name}.csv", **kwargs)
    report.run.write_text(f"tables/{name}.md", f"**{caption}**\n\n"
                          + render_table_markdown(rows, kwargs.get("columns")))


# -- tables ----------------------------------------------------------------------------------

def results_rows(methods: dict[str, Method]) -> list[dict[str, Any]]:
    """One row per metric: mean and standard deviation over the outer folds of each method."""
    rows = []
    for m in METRIC_NAMES:
        row: dict[str, Any] = {"metric": LABELS[m]}
        for method in methods.values():
            row[method.label] = method.mean(m)
            row[f"{method.label} sd"] = method.std(m)
        rows.append(row)
    return rows


def fold_rows(result: EmbeddingsResult) -> list[dict[str, Any]]:
    """Per outer fold: sizes, chosen hyperparameters and the main metrics of each method."""
    rows = []
    for f, (train, test) in enumerate(result.plan.folds):
        row: dict[str, Any] = {"fold": f + 1, "train images": len(train),
                               "test images": len(test),
                               "test subjects": len(np.unique(result.dataset.groups[test]))}
        for method in result.methods.values():
            row[f"{method.key} {method.cv.param}"] = method.cv.chosen[f]
        for m in ("accuracy", "macro_f1", "macro_auc"):
            for method in result.methods.values():
                row[f"{method.key} {LABELS[m]}"] = method.folds[f][m]
        rows.append(row)
    return rows


def paired_rows(paired: list[dict[str, Any]], a: str, b: str) -> list[dict[str, Any]]:
    """One row per metric of a paired comparison of methods ``a`` and ``b`` over the folds."""
    return [{"metric": LABELS[r["metric"]], f"mean {a}": r["mean_a"], f"mean {b}": r["mean_b"],
             "mean difference": r["mean_difference"], "sd of difference": r["std_difference"],
             f"{a} wins": r["a_wins"], f"{b} wins": r["b_wins"], "ties": r["ties"],
             "paired t-test p": r["t_test_p"], "Wilcoxon p": r["wilcoxon_p"]}
            for r in paired]


def k_curve_rows(methods: dict[str, Method]) -> list[dict[str, Any]]:
    """One row per k: outer-fold metrics of each k-NN method and how often k was chosen."""
    knn_methods = [m for m in methods.values() if m.k_curve]
    rows = []
    for i, k in enumerate(knn_methods[0].cv.candidates):
        row: dict[str, Any] = {"k": int(k)}
        for method in knn_methods:
            point = method.k_curve[i]
            for m in ("accuracy", "macro_f1", "macro_auc", "top3"):
                row[f"{method.key} {LABELS[m]}"] = point[m]
            row[f"{method.key} inner {LABELS[CRITERION]}"] = point["inner_" + CRITERION]
            row[f"{method.key} chosen"] = point["times_chosen"]
        rows.append(row)
    return rows


def class_metric_rows(result: EmbeddingsResult) -> list[dict[str, Any]]:
    """Per syndrome: F1, recall and AUC of each method, averaged over the outer folds."""
    ds = result.dataset
    support = np.bincount(ds.y, minlength=ds.n_classes)
    rows = []
    for c, name in enumerate(ds.class_names):
        row: dict[str, Any] = {"syndrome": name, "images": int(support[c])}
        for part in ("f1", "recall", "auc"):
            for method in result.methods.values():
                row[f"{method.key} {part}"] = float(_nanmean(method.classes[part][:, c]))
        rows.append(row)
    return rows


def class_metric_long_rows(result: EmbeddingsResult) -> list[dict[str, Any]]:
    """Per method and syndrome: mean and sd over folds of precision, recall, F1 and AUC."""
    rows = []
    for method in result.methods.values():
        for c, name in enumerate(result.dataset.class_names):
            row: dict[str, Any] = {"method": method.label, "syndrome": name}
            for part in ("precision", "recall", "f1", "auc"):
                values = method.classes[part][:, c]
                row[f"{part} mean"] = float(_nanmean(values))
                row[f"{part} sd"] = float(_nanstd(values))
            rows.append(row)
    return rows


# -- figures ---------------------------------------------------------------------------------

def _roc_figure(methods: dict[str, Method]):
    """The macro one-vs-rest ROC curve of every method."""
    series = []
    for method in methods.values():
        roc = method.roc
        band = method.k_curve != []
        series.append({"x": roc.fpr_grid, "y": roc.mean_tpr,
                       "label": f"{method.label} (macro AUC {method.mean('macro_auc'):.3f} "
                                f"± {method.std('macro_auc'):.3f})",
                       "band_lo": roc.tpr_lo if band else None,
                       "band_hi": roc.tpr_hi if band else None,
                       "linestyle": "-" if band else "--"})
    return figs.curves_figure(series, xlabel="false positive rate", ylabel="true positive rate",
                              title="Macro one-vs-rest ROC, mean over outer folds (band: ±1 sd)",
                              diagonal=True, xlim=(0, 1), ylim=(0, 1.01))


def _class_roc_figure(method: Method, class_names: Sequence[str]):
    """One-vs-rest ROC curve of each syndrome for one method."""
    aucs = _nanmean(method.classes["auc"], axis=0)
    series = [{"x": roc.fpr_grid, "y": roc.mean_tpr, "label": f"{name} ({aucs[c]:.3f})"}
              for c, (name, roc) in enumerate(zip(class_names, method.class_roc, strict=True))
              if roc is not None]
    return figs.curves_figure(series, xlabel="false positive rate", ylabel="true positive rate",
                              title=f"{method.label}: one-vs-rest ROC per syndrome (AUC)",
                              diagonal=True, xlim=(0, 1), ylim=(0, 1.01))


def _k_curve_figure(methods: dict[str, Method]):
    """Accuracy and macro F1 against k on the outer folds."""
    series = []
    for method in methods.values():
        if not method.k_curve:
            continue
        ks = np.array([p["k"] for p in method.k_curve], dtype=float)
        for m, style in (("accuracy", "-"), ("macro_f1", "--")):
            y = np.array([p[m] for p in method.k_curve])
            sd = np.array([p[f"{m}_std"] for p in method.k_curve])
            series.append({"x": ks, "y": y, "band_lo": y - sd, "band_hi": y + sd,
                           "label": f"{method.key} {LABELS[m]}", "linestyle": style})
    return figs.curves_figure(series, xlabel="k (neighbours)", ylabel="outer-fold mean",
                              title="Full k curve on the outer test folds (not for selection)")


def _norm_figure(result: EmbeddingsResult):
    """Histogram of vector norms per syndrome."""
    ds = result.dataset
    norms = result.stats["norm_values"]
    edges = np.linspace(norms.min(), norms.max(), 13)
    centers = (edges[:-1] + edges[1:]) / 2
    series = []
    for c, name in enumerate(ds.class_names):
        counts, _ = np.histogram(norms[ds.y == c], bins=edges)
        series.append({"x": centers, "y": counts / max(counts.sum(), 1), "label": name})
    return figs.curves_figure(series, xlabel="L2 norm of the vector",
                              ylabel="share of the syndrome's images",
                              title="Vector norms per syndrome (12 bins)")


# -- sentences -------------------------------------------------------------------------------

def _paired_sentence(row: dict[str, Any], a: str, b: str, n_folds: int) -> str:
    """Which of ``a`` and ``b`` wins on one metric, in how many folds, and how significantly."""
    d = row["mean_difference"]
    if d > 0:
        lead = f"{a} beats {b}"
        wins = row["a_wins"]
    elif d < 0:
        lead = f"{b} beats {a}"
        wins = row["b_wins"]
    else:
        return f"{a} and {b} tie on {LABELS[row['metric']]} on average."
    lead = lead[0].upper() + lead[1:]
    verdict = ("significant at the 5% level by the t-test" if row["t_test_p"] < _SIGNIFICANT
               else "not significant at the 5% level")
    return (f"{lead} on {LABELS[row['metric']]} in {wins} of {n_folds} folds "
            f"(mean difference {abs(d):.3f}, paired t-test {_p(row['t_test_p'])}, "
            f"Wilcoxon {_p(row['wilcoxon_p'])}; {verdict}).")


def _chosen_sentence(method: Method) -> str:
    """The hyperparameter a method chose in each outer fold."""
    chosen = np.array(method.cv.chosen, dtype=float)
    values, counts = np.unique(chosen, return_counts=True)
    mode = values[np.argmax(counts)]
    show = (lambda v: str(int(v))) if method.cv.param == "k" else (lambda v: f"{v:g}")
    return (f"{method.label}: {method.cv.param} chosen per fold "
            f"{', '.join(show(v) for v in chosen)} (most often {show(mode)}, "
            f"{int(counts.max())} of {len(chosen)} folds).")


def _curve_sentence(method: Method) -> str:
    """How the best single k on the outer folds compares with the nested estimate."""
    accs = np.array([p["accuracy"] for p in method.k_curve])
    inner = np.array([p["inner_" + CRITERION] for p in method.k_curve])
    best = int(np.argmax(accs))
    k = method.k_curve[best]["k"]
    nested = method.mean("accuracy")
    return (f"{method.label}: the best single k on the outer folds would be k = {k} with "
            f"accuracy {accs[best]:.3f}, {accs[best] - nested:+.3f} against the nested "
            f"estimate {nested:.3f}; picking k that way reuses the test folds, so the nested "
            f"figure is the honest one. From k = 5 to {len(accs)} the outer accuracy varies "
            f"within {np.ptp(accs[4:]) if len(accs) > 4 else np.ptp(accs):.3f} and the inner "
            f"{LABELS[CRITERION]} within {np.ptp(inner[4:]) if len(inner) > 4 else 0:.3f}.")


def _class_extremes(method: Method, class_names: Sequence[str]) -> str:
    """A method's hardest and easiest syndromes."""
    f1 = _nanmean(method.classes["f1"], axis=0)
    auc = _nanmean(method.classes["auc"], axis=0)
    lo, hi = int(np.nanargmin(f1)), int(np.nanargmax(f1))
    label = method.label if method.label.startswith("k-NN") else method.label.capitalize()
    return (f"{label}: the hardest syndrome is {class_names[lo]} (F1 {f1[lo]:.3f}, "
            f"AUC {auc[lo]:.3f}), the easiest {class_names[hi]} (F1 {f1[hi]:.3f}, "
            f"AUC {auc[hi]:.3f}).")


def _tsne_sentences(result: EmbeddingsResult) -> list[str]:
    """Neighbour purity and silhouette of each t-SNE map against the original space."""
    out = []
    for key, info in result.tsne.items():
        o = info["overall"]
        dims = result.dataset.shape[0]
        rows = info["clusters"]
        pur2 = [r[f"purity@{o['k']} 2-D"] for r in rows]
        best, worst = int(np.argmax(pur2)), int(np.argmin(pur2))
        out.append(
            f"{key.capitalize()} vectors ({DISTANCE_NAMES[info['metric']]} in {dims}-D): "
            f"{o['k']}-neighbour purity, counting only other subjects, is "
            f"{o['purity_high']:.3f} in {dims}-D and {o['purity_map']:.3f} in the 2-D map "
            f"(chance {o['chance_purity']:.3f}); mean silhouette {o['silhouette_high']:.3f} "
            f"in {dims}-D and {o['silhouette_map']:.3f} in 2-D. Best separated in the map: "
            f"{rows[best]['syndrome']} (purity {pur2[best]:.3f}); least: "
            f"{rows[worst]['syndrome']} ({pur2[worst]:.3f}).")
    return out


# -- report ----------------------------------------------------------------------------------

def _methodology(report: Report, result: EmbeddingsResult) -> None:
    """Methodology: data, folds, nested choice of k, k-NN, metrics, baseline, t-SNE."""
    c = result.config
    ds = result.dataset
    votes = ("uniform votes, the default" if c.weighting == "uniform"
             else "votes weighted by 1/distance")
    report.section("Methodology")
    report.bullets([
        f"Data: `{result.path}` (file SHA-256 `{result.sha256[:16]}…`, the `file-sha256` of "
        f"`notsure data info`; content fingerprint `{ds.fingerprint[:16]}…`, its "
        "`fingerprint`), unpickled with a restricted "
        "unpickler (only containers, numbers, strings and NumPy arrays), checked entry by entry "
        f"(Table 1), then flattened: label = syndrome, group = subject, id = image id; "
        f"{fmt.count(len(ds))} vectors of length {ds.shape[0]}.",
        f"Outer evaluation: {c.n_folds}-fold cross-validation stratified by syndrome and grouped "
        "by subject (all images of a subject in one fold), seed "
        f"{c.seed}. No subject is ever in both the training and the test part of a fold.",
        f"Nested choice of k: inside each outer training part, {c.inner_folds} inner folds "
        f"(also stratified and subject-grouped) score every k = 1..{c.k_max}; the k with the best "
        f"pooled inner out-of-fold {LABELS[CRITERION]} is used on the outer test fold (ties: the "
        "smaller k). Macro F1 is the criterion because every syndrome should count equally "
        "despite the imbalance. The outer test fold never influences k.",
        "k-NN: the distance matrix is computed once per distance (Euclidean: "
        "sqrt(|a|² + |b|² − 2a·b), clipped at 0; cosine: 1 − a·b on L2-normalized vectors); each "
        f"fold reads its block, sorts once to the {c.k_max} nearest training images (stable: "
        "equal distances keep training order), and the votes for every k come from one "
        "cumulative sum.",
        f"Class scores are neighbour vote fractions ({votes}; `--weighting distance` gives "
        "inverse-distance weights, `--weighting uniform` equal votes). The predicted syndrome "
        "has the most votes; a tie goes to the tied syndrome whose nearest neighbour is "
        "closest. AUC uses the vote fractions as they are (ties count half). Top-k accuracy "
        "breaks equal scores as scikit-learn does (a later class column ranks higher), so "
        "with coarse vote fractions top-1 can differ slightly from accuracy.",
        "Metrics (all from `notsure.metrics`): accuracy, macro and weighted F1, macro "
        "one-vs-rest AUC, top-1/3/5 accuracy, per syndrome precision/recall/F1/AUC; reported "
        "as mean and sample standard deviation over the outer folds. Cosine and Euclidean are "
        "compared fold by fold (paired t-test and Wilcoxon signed-rank test, two-sided, "
        "scipy.stats).",
        "ROC: per fold, each syndrome's one-vs-rest curve is interpolated onto 101 FPR points "
        "and averaged (macro curve); the fold curves are averaged, the band is ±1 sd over folds.",
        (f"Baseline: multinomial logistic regression on L2-normalized vectors (scikit-learn, "
         f"class_weight={c.class_weight!r}), C chosen among "
         f"{', '.join(f'{v:g}' for v in c.baseline_cs)} by the same nested inner CV and "
         "criterion, on the same outer folds." if c.baseline else "Baseline: not run."),
        ("t-SNE: 2-D maps of the L2-normalized and of the raw vectors, seed "
         f"{c.seed}, perplexity {c.tsne_perplexity:g}, 250 early-exaggeration + {c.tsne_iter} "
         "iterations, PCA initialization; cluster quality measured by silhouette and by "
         "10-neighbour purity counting only other subjects, in the original space and in the "
         "map." if c.tsne else "t-SNE: not run."),
    ])


def _results(report: Report, result: EmbeddingsResult) -> None:
    """Results: integrity, statistics, t-SNE, classification, comparisons, k curve, syndromes."""
    report.section("Results")
    _data_integrity(report, result)
    _dataset_statistics(report, result)
    if result.tsne:
        _tsne_maps(report, result)
    _classification_results(report, result)
    _cosine_versus_euclidean(report, result)
    _full_k_curve(report, result)
    _per_syndrome(report, result)


def _data_integrity(report: Report, result: EmbeddingsResult) -> None:
    """Data integrity: what was found and kept, the checks and the findings."""
    integ = result.integrity
    report.subsection("Data integrity")
    report.paragraph(
        f"Found {fmt.count(integ.found.get('syndromes', 0))} syndromes, "
        f"{fmt.count(integ.found.get('subjects', 0))} subjects and "
        f"{fmt.count(integ.found.get('images', 0))} image entries; kept "
        f"{fmt.count(integ.kept['images'])} images of {fmt.count(integ.kept['subjects'])} subjects "
        f"in {integ.kept['syndromes']} syndromes ({len(integ.dropped)} dropped, "
        f"{len(integ.findings) - len(integ.dropped)} other findings). Expected vector length: "
        f"{integ.dim}.")
    _table(report, integ.check_rows(), "integrity", "Integrity checks")
    if integ.findings:
        _table(report, integ.findings, "integrity_findings",
               "Integrity findings (what was dropped or reported, and why)", max_rows=30)


def _bar(report: Report, labels: list[str], values: list[Any], title: str, ylabel: str,
         path: str) -> None:
    """A bar chart whose caption is its title."""
    report.figure(figs.bar_figure(labels, values, title=title, ylabel=ylabel), path, title)


def _dataset_statistics(report: Report, result: EmbeddingsResult) -> None:
    """Dataset statistics: sizes and imbalance, images per syndrome and subject, norms."""
    s, stats = result.stats["summary"], result.stats
    report.subsection("Dataset statistics")
    report.paragraph(
        f"{s['syndromes']} syndromes, {fmt.count(s['subjects'])} subjects, "
        f"{fmt.count(s['images'])} images. Largest syndrome {s['largest']} "
        f"({s['largest_images']} images), smallest {s['smallest']} ({s['smallest_images']}): "
        f"imbalance ratio {s['imbalance_ratio']:.2f} (images) and "
        f"{s['subject_imbalance_ratio']:.2f} (subjects). Always predicting the largest syndrome "
        f"would be right {fmt.pct(s['majority_share'], 1)} of the time. "
        f"{fmt.count(s['multi_image_subjects'])} subjects have more than one image (up to "
        f"{s['max_images_per_subject']}), holding {fmt.count(s['images_in_multi_image_subjects'])}"
        " images.")
    _table(report, stats["classes"], "syndromes", "Images and subjects per syndrome")
    _bar(report, [r["syndrome"] for r in stats["classes"]],
         [r["images"] for r in stats["classes"]], "Images per syndrome", "images",
         "figures/images_per_syndrome.png")
    _table(report, stats["per_subject"], "images_per_subject", "Images per subject")
    _bar(report, [str(r["images per subject"]) for r in stats["per_subject"]],
         [r["subjects"] for r in stats["per_subject"]], "Subjects by number of images",
         "subjects", "figures/images_per_subject.png")
    _table(report, stats["norms"], "norms", "L2 norms of the vectors per syndrome")
    report.paragraph(f"The syndrome explains {fmt.pct(stats['norm_eta2'], 1)} of the "
                     "variance of the vector norms (between-syndrome over total sum of "
                     "squares).")
    report.figure(_norm_figure(result), "figures/norms.png", "Distribution of vector norms")


def _tsne_maps(report: Report, result: EmbeddingsResult) -> None:
    """t-SNE maps: timing, one map per vector kind, and its cluster quality."""
    ds = result.dataset
    report.subsection("t-SNE maps")
    timing = [{"map": key, "backend": info["backend"], "seconds": info["seconds"]}
              for key, info in result.tsne.items()]
    _table(report, timing, "tsne_timing", "t-SNE runs and their wall time")
    for key, info in result.tsne.items():
        report.figure(figs.scatter_figure(info["points"], ds.y, ds.class_names,
                                          title=f"t-SNE of {key} vectors"),
                      f"figures/tsne_{key}.png",
                      f"t-SNE of the {key} vectors, coloured by syndrome")
        o = info["overall"]
        _table(report, info["clusters"], f"clusters_{key}",
               f"Cluster quality of {key} vectors ({DISTANCE_NAMES[info['metric']]} in "
               f"{ds.shape[0]}-D vs the 2-D map); purity counts other subjects only, "
               f"chance {o['chance_purity']:.3f}")
    report.bullets(_tsne_sentences(result))


def _classification_results(report: Report, result: EmbeddingsResult) -> None:
    """Classification results: nested CV results, per fold, chosen k and C, ROC curves."""
    methods, ds = result.methods, result.dataset
    report.subsection("Classification results")
    _table(report, results_rows(methods), "results",
           f"Nested {result.config.n_folds}-fold results, mean and sd over outer folds",
           float_format=".3f")
    _table(report, fold_rows(result), "folds", "Per outer fold: chosen hyperparameters and "
           "metrics", float_format=".3f")
    report.bullets([_chosen_sentence(m) for m in methods.values()])
    report.figure(_roc_figure(methods), "figures/roc_macro.png",
                  "Macro one-vs-rest ROC of both distances (and the baseline, dashed)")
    for key in ("cosine", "euclidean"):
        report.figure(_class_roc_figure(methods[key], ds.class_names),
                      f"figures/roc_per_class_{key}.png",
                      f"{methods[key].label}: ROC per syndrome, mean over outer folds")


def _cosine_versus_euclidean(report: Report, result: EmbeddingsResult) -> None:
    """Cosine versus Euclidean, fold by fold: the paired comparison table."""
    report.subsection("Cosine versus Euclidean, fold by fold")
    _table(report, paired_rows(result.paired, "cosine", "euclidean"), "paired",
           "Paired comparison over the outer folds (difference = cosine − Euclidean)",
           float_format=".3f", formats={"paired t-test p": lambda v: f"{v:.3g}",
                                        "Wilcoxon p": lambda v: f"{v:.3g}"})


def _full_k_curve(report: Report, result: EmbeddingsResult) -> None:
    """The full k curve (not for selection): outer-fold metrics for every k."""
    report.subsection("The full k curve (not for selection)")
    report.paragraph("Outer-fold metrics for every k. These use the test folds, so they only "
                     "show how sensitive k-NN is to k; the reported results above use the k "
                     "chosen inside each training part.")
    _table(report, k_curve_rows(result.methods), "k_curve", "Outer-fold means for every k, and "
           "how often the inner CV chose each k", float_format=".3f")
    report.figure(_k_curve_figure(result.methods), "figures/k_curve.png",
                  "Accuracy and macro F1 against k on the outer folds (band: ±1 sd)")


def _per_syndrome(report: Report, result: EmbeddingsResult) -> None:
    """Per syndrome: F1, recall and AUC per method, and out-of-fold confusion matrices."""
    ds = result.dataset
    report.subsection("Per syndrome")
    _table(report, class_metric_rows(result), "per_class",
           "Per syndrome, mean over outer folds (F1, recall, one-vs-rest AUC)",
           float_format=".3f")
    report.run.write_csv("tables/per_class_long.csv", class_metric_long_rows(result))
    for key in ("cosine", "euclidean"):
        m = result.methods[key]
        tested = m.cv.fold >= 0
        cm = confusion_matrix(ds.y[tested], m.cv.pred[tested], np.arange(ds.n_classes))
        report.figure(figs.confusion_matrix_figure(cm, ds.class_names, normalize="true",
                                                   title=f"{m.label}, out-of-fold"),
                      f"figures/confusion_{key}.png",
                      f"{m.label}: out-of-fold confusion matrix (rows: true syndrome)")


def _analysis(report: Report, result: EmbeddingsResult) -> None:
    """Analysis: what the comparisons, curves, syndromes and maps show."""
    methods = result.methods
    n = result.config.n_folds
    report.section("Analysis")
    items = [_paired_sentence(r, "cosine", "Euclidean", n) for r in result.paired
             if r["metric"] in ("accuracy", "macro_f1", "macro_auc", "top3")]
    items += [_curve_sentence(methods[k]) for k in ("cosine", "euclidean")]
    items += [_class_extremes(m, result.dataset.class_names) for m in methods.values()]
    eta2 = result.stats["norm_eta2"]
    better = "beats" if methods["cosine"].mean("accuracy") > methods["euclidean"].mean(
        "accuracy") else "does not beat"
    items.append(f"The syndrome explains {fmt.pct(eta2, 1)} of the variance of vector norms; "
                 f"cosine distance ignores the norm and {better} Euclidean on mean accuracy "
                 f"({methods['cosine'].mean('accuracy'):.3f} vs "
                 f"{methods['euclidean'].mean('accuracy'):.3f}).")
    if result.paired_baseline:
        best = max(("cosine", "euclidean"), key=lambda k: methods[k].mean("accuracy"))
        items += [_paired_sentence(r, "logistic regression", methods[best].label, n)
                  for r in result.paired_baseline
                  if r["metric"] in ("accuracy", "macro_f1", "macro_auc")]
    items += _tsne_sentences(result)
    report.bullets(items)


def _challenges(report: Report, result: EmbeddingsResult) -> None:
    """Challenges: imbalance, subjects, small folds, vote ties, integrity, t-SNE cost."""
    s = result.stats["summary"]
    methods = result.methods
    fold_sizes = [len(test) for _, test in result.plan.folds]
    smallest = np.bincount(result.dataset.y).min()
    f1_sd = _nanmean([_nanstd(methods[k].classes["f1"], axis=0).mean()
                        for k in ("cosine", "euclidean")])
    report.section("Challenges")
    items = [
        f"Imbalance: the largest syndrome has {s['imbalance_ratio']:.2f} times the images of "
        f"the smallest; accuracy alone would favour the large syndromes, so macro F1 chooses k "
        "and macro AUC and per-syndrome figures are reported.",
        f"Subjects with several images: {fmt.count(s['multi_image_subjects'])} subjects hold "
        f"{fmt.count(s['images_in_multi_image_subjects'])} images. Splitting by image would put "
        "near-identical images of one person on both sides and inflate the scores, so every "
        "fold, outer and inner, is grouped by subject.",
        f"Small test folds: {min(fold_sizes)}–{max(fold_sizes)} images per outer fold and about "
        f"{smallest / result.config.n_folds:.1f} images of the smallest syndrome per fold, so "
        f"per-syndrome F1 varies by {f1_sd:.3f} (mean sd over folds) from fold to fold.",
        "Vote ties: at the chosen k, "
        + " and ".join(f"{fmt.pct(vote_ties(methods[k].cv), 1)} of {DISTANCE_NAMES[k]} "
                       "predictions"
                       for k in ("cosine", "euclidean"))
        + " had two syndromes tied on the top vote fraction; they are resolved by the nearest "
        "neighbour, and vote fractions take few distinct values, which coarsens ROC curves.",
    ]
    if result.plan.not_evaluable:
        names = result.dataset.class_names
        small = ", ".join(f"{names[int(k)]} ({v} images)"
                          for k, v in result.plan.not_evaluable.items())
        items.append(f"Syndromes with fewer subjects than folds are never in a test fold (they "
                     f"only train): {small}. Their F1 counts as 0 in macro averages and they "
                     "are left out of the macro AUC.")
    integ = result.integrity
    items.append(f"Data integrity: {len(integ.findings)} findings, {len(integ.dropped)} entries "
                 "dropped (Table 1)." if integ.findings else
                 "Data integrity: every check passed; nothing was dropped.")
    if result.tsne:
        times = ", ".join(f"{k} {info['seconds']:.1f} s with {info['backend']}"
                          for k, info in result.tsne.items())
        items.append(f"t-SNE cost: {times}. A 2-D map distorts distances; the cluster "
                     "measures compare it with the original space rather than trust it.")
    report.bullets(items)


def _recommendations(report: Report, result: EmbeddingsResult) -> None:
    """Recommendations: the distance and k to use, the baseline, what to do next."""
    methods = result.methods
    report.section("Recommendations")
    best = max(("cosine", "euclidean"), key=lambda k: methods[k].mean("macro_f1"))
    other = "euclidean" if best == "cosine" else "cosine"
    chosen = np.array(methods[best].cv.chosen)
    f1_row = next(r for r in result.paired if r["metric"] == "macro_f1")
    items = [
        f"Use {DISTANCE_NAMES[best]} distance: its nested macro F1 is "
        f"{methods[best].mean('macro_f1'):.3f} against {methods[other].mean('macro_f1'):.3f} for "
        f"{DISTANCE_NAMES[other]} (paired t-test {_p(f1_row['t_test_p'])} "
        f"over {result.config.n_folds} folds). k between {chosen.min()} and {chosen.max()} was "
        f"chosen; k = {int(np.median(chosen))} (the median) is a reasonable fixed value.",
    ]
    if "logreg" in methods:
        lr, kn = methods["logreg"], methods[best]
        gain = lr.mean("macro_f1") - kn.mean("macro_f1")
        p_gain = next(r for r in result.paired_baseline if r["metric"] == "macro_f1")["t_test_p"]
        if gain > 0:
            items.append(f"The logistic-regression baseline gains {gain:.3f} macro F1 (paired "
                         f"t-test {_p(p_gain)}) and "
                         f"{lr.mean('macro_auc') - kn.mean('macro_auc'):+.3f} macro AUC over "
                         f"{kn.label} on the same folds: prefer it, or a similar linear probe, "
                         "when the best classifier is wanted; keep k-NN for explanations by "
                         "nearest examples.")
        else:
            items.append(f"The logistic-regression baseline does not beat {kn.label} "
                         f"({gain:+.3f} macro F1): k-NN is a sound choice for these embeddings.")
    worst = np.argsort(_nanmean(methods[best].classes["f1"], axis=0))[:3]
    names = ", ".join(result.dataset.class_names[c] for c in worst)
    items.append(f"The weakest syndromes for {methods[best].label} are {names}: more subjects "
                 "of these would help most; report per-syndrome figures, not only accuracy.")
    items.append("Keep splitting by subject in any future evaluation, and choose "
                 "hyperparameters inside the training folds, as done here.")
    items.append("Vote fractions are coarse probabilities; if calibrated probabilities or an "
                 "abstention rule are needed, calibrate the scores on held-out subjects.")
    report.bullets(items)


def _closing_note(report: Report, result: EmbeddingsResult) -> None:
    """Closing note: the summary table of every method."""
    rows = []
    for method in result.methods.values():
        row: dict[str, Any] = {"method": method.label}
        for m in ("accuracy", "macro_f1", "weighted_f1", "macro_auc", "top3", "top5"):
            row[LABELS[m]] = f"{method.mean(m):.3f} ± {method.std(m):.3f}"
        rows.append(row)
    report.paragraph("Summary (mean ± sd over the outer folds, nested choice of k and C):")
    _table(report, rows, "summary", "Results for both distances and the baseline")


def write_report(run: RunFolder, result: EmbeddingsResult) -> None:
    """The report: methodology, results, analysis, challenges, recommendations, closing note."""
    report = Report("Syndrome embeddings: k-NN with cosine and Euclidean distance", run,
                    subtitle=f"{fmt.count(len(result.dataset))} images, "
                             f"{result.config.n_folds}-fold subject-grouped nested "
                             "cross-validation")
    _methodology(report, result)
    _results(report, result)
    _analysis(report, result)
    _challenges(report, result)
    _recommendations(report, result)
    _closing_note(report, result)
    report.run_summary()
    report.write()


def metrics_document(result: EmbeddingsResult) -> dict[str, Any]:
    """Everything measured, as plain JSON values."""
    ds = result.dataset
    integ = result.integrity
    methods = {}
    for key, m in result.methods.items():
        methods[key] = {
            "label": m.label, "param": m.cv.param, "candidates": m.cv.candidates,
            "chosen": m.cv.chosen,
            "mean": {x: m.mean(x) for x in METRIC_NAMES},
            "std": {x: m.std(x) for x in METRIC_NAMES},
            "folds": m.folds, "pooled": m.pooled,
            "per_class": {part: {"mean": _nanmean(v, axis=0), "by_fold": v}
                          for part, v in m.classes.items()},
            "inner_curves": m.cv.inner_curves,
            "k_curve": m.k_curve,
            "roc": {"fpr_grid": m.roc.fpr_grid, "mean_tpr": m.roc.mean_tpr,
                    "std_tpr": m.roc.std_tpr, "curve_auc_mean": m.roc.mean_auc,
                    "curve_auc_std": m.roc.std_auc},
            "seconds": m.seconds,
            **({"vote_ties": vote_ties(m.cv)} if m.cv.param == "k" else {}),
            **m.cv.extra,
        }
    return {
        "data": {"source": str(result.path), "sha256": result.sha256, "n": len(ds),
                 "dim": ds.shape[0], "classes": list(ds.class_names),
                 "fingerprint": ds.fingerprint},
        "integrity": {"found": integ.found, "kept": integ.kept, "dim": integ.dim,
                      "checks": integ.check_rows(), "findings": integ.findings},
        "statistics": {**result.stats["summary"], "norm_eta2": result.stats["norm_eta2"],
                       "classes": result.stats["classes"],
                       "images_per_subject": result.stats["per_subject"],
                       "norms": result.stats["norms"]},
        "tsne": {key: {"backend": info["backend"], "seconds": info["seconds"],
                       "metric": info["metric"], **info["overall"],
                       "per_class": info["clusters"]} for key, info in result.tsne.items()},
        "cv": {"n_folds": result.config.n_folds, "inner_folds": result.config.inner_folds,
               "criterion": CRITERION, "seed": result.config.seed,
               "weighting": result.config.weighting,
               "fold_sizes": [len(t) for _, t in result.plan.folds],
               "not_evaluable": {ds.class_names[int(k)]: v
                                 for k, v in result.plan.not_evaluable.items()}},
        "methods": methods,
        "paired": {"cosine_vs_euclidean": result.paired,
                   "logreg_vs_best_knn": result.paired_baseline},
    }






