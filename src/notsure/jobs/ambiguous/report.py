"""The ambiguity job's report: the summary document, the ranked tables and galleries, the
confident-learning and exclusion sections, each built from the result it sits next to."""

from __future__ import annotations

import numpy as np

from notsure.analysis.ambiguity import least_confident
from notsure.io.run_folder import RunFolder
from notsure.jobs.ambiguous.pipeline import (
    COLUMNS,
    ENSEMBLE,
    IMAGE_SCALE,
    KNN_METRIC,
    SUSPECT_COLUMNS,
    TABLES,
    AmbiguousResult,
)
from notsure.reports import Report, fmt

TITLES = {
    "most_confident_wrong": "Most confidently wrong",
    "least_confident": "Least confident (smallest top-2 margin)",
    "suspected_label_errors": "Suspected label errors",
}
FORMATS = {"rank": str, "index": str, "confidence": fmt.num, "margin": fmt.num,
           "entropy": fmt.num, "p_given": fmt.num, "knn_p_given": fmt.num,
           "label_quality": fmt.num, "member_agreement": fmt.pct}
OPINION_TITLES = {"cnn": "CNN alone", "knn": "k-NN alone", "both": "CNN + k-NN (used)"}


def top_indices(r: AmbiguousResult, n: int) -> dict[str, list[int]]:
    """The first ``n`` indices of each ranking."""
    return {name: [int(row["index"]) for row in r.tables[name][:n]] for name in TABLES}


def top_by_entropy(r: AmbiguousResult, n: int) -> list[int]:
    """The ``n`` analysed indices of highest entropy (the other reading of "least confident")."""
    return r.index[least_confident(r.scores.probs, by="entropy")[:n]].tolist()


def n_flagged(r: AmbiguousResult) -> int:
    """Label-error candidates that confident learning flags."""
    return sum(1 for row in r.tables["suspected_label_errors"] if row["cl_flagged"])


def summary_document(r: AmbiguousResult) -> dict:
    """``summary.json``: what was analysed, the counts, the top indices, the CL estimates."""
    s = r.scores
    return {
        "analysed": r.analysed,
        "n": int(len(s.positions)),
        "n_scored": r.n_scored,
        "scored_by": {src: int(np.sum(s.source == src)) for src in np.unique(s.source)},
        "out_of_sample_checked": r.leakage_checked,
        "n_wrong": len(r.tables["most_confident_wrong"]),
        "n_label_error_candidates": len(r.tables["suspected_label_errors"]),
        "n_flagged_label_errors": n_flagged(r),
        "flagged_by_opinion": r.flag_counts,
        "knn": {"k": r.config.knn_k, "metric": KNN_METRIC, "features": "raw pixels"},
        "rank_by": r.cl.rank_by,
        "class_thresholds": r.cl.thresholds,
        "confident_joint": r.cl.joint,
        "top": top_indices(r, r.config.top),
        "top_least_confident_by_entropy": top_by_entropy(r, r.config.top),
        "exclusion": r.exclusion,
    }




def _caption(row: dict, name: str) -> str:
    head = f"#{row['index']}: label {row['given_label']}, "
    if name == "suspected_label_errors":
        head += f"suggested {row['suggested_label']}{' (CL)' if row['cl_flagged'] else ''}, "
    agree = (f", agree {row['member_agreement']:.0%}" if row["score_source"] == ENSEMBLE else "")
    return (head + f"CNN {row['predicted_label']} (p {row['confidence']:.3f}, margin "
            f"{row['margin']:.3f}{agree}), k-NN {row['knn_label']}")


def _gallery(report: Report, r: AmbiguousResult, name: str) -> None:
    rows = r.tables[name][:r.config.top]
    if not rows:
        return
    where = dict(zip(r.index.tolist(), r.scores.positions.tolist(), strict=True))
    images = [np.asarray(r.dataset.x[where[int(row["index"])]]) for row in rows]
    report.gallery(images, [_caption(row, name) for row in rows],
                   name_prefix=f"gallery/{name}", scale=IMAGE_SCALE,
                   caption=f"{TITLES[name]}: the first {len(rows)}; full-size files in "
                           "`imgs/<index>.png`.")


def _source_sentence(r: AmbiguousResult) -> str:
    s = r.scores
    n_ens = int(np.sum(s.source == ENSEMBLE))
    n_oof = len(s.positions) - n_ens
    if r.config.run is None:
        cnn = (f"The CNN opinion comes from {r.config.folds} CNNs cross-fitted for this job on "
               "the whole dataset: each image is scored by the one model that held it out.")
    else:
        k = int(s.n_members.max()) if n_ens else len(s.trained_on) - 1
        cnn = (f"The CNN opinion comes from the run `{r.config.run}`: {fmt.count(n_ens)} "
               f"analysed images in the run's test split are scored by its {k}-member ensemble "
               f"(mean of the members' softmax probabilities), {fmt.count(n_oof)} in its "
               "training pool by the one fold model that held them out (out-of-fold); column "
               "`score_source` says which.")
    return (cnn + f" The k-NN opinion is the vote of the {r.config.knn_k} nearest images "
            f"({KNN_METRIC} distance on raw pixels) among exactly the images that image's CNN "
            "was trained on.")


def _explain_columns(report: Report, r: AmbiguousResult) -> None:
    report.bullets([
        "`confidence`: CNN probability of its predicted class; `margin`: top probability minus "
        "the runner-up's; `entropy`: of the CNN probabilities, in nats (max "
        f"{np.log(len(r.dataset.class_names)):.3f}); `p_given`: CNN probability of the given "
        "label.",
        "`knn_label`, `knn_p_given`: the k-NN's majority class and its vote share for the given "
        "label; `member_agreement`: share of ensemble members whose top class is the CNN's "
        "(empty for out-of-fold rows, scored by a single model).",
        "`label_quality`: mean of the CNN and k-NN probabilities of the given label (low: the "
        "label is doubtful); `cl_flagged`: confident learning counts the image as its "
        "`suggested_label`.",
        "`index`: "
        + ("the position in the analysed file (for MNIST t10k, the index in the official test "
           "file)" if r.index_in_file else "the position in the dataset (the analysed images come "
           "from more than one file; `id` names the file and the position in it)")
        + f"; `imgs/<index>.png` is the image, upscaled {IMAGE_SCALE}x.",
        "Telling ambiguous from mislabelled: a flagged image both models place in the same "
        "other class, as confidently as that class's own members on average, looks "
        "mislabelled; an image with a small `margin`, or whose CNN and k-NN disagree, is "
        "ambiguous. A person decides from the images.",
    ])


def write_report(run: RunFolder, r: AmbiguousResult) -> None:
    n = len(r.scores.positions)
    report = Report("Ambiguous images and suspected label errors", run,
                    subtitle=f"Analysed: {r.analysed} of `{r.dataset.source}`.")
    report.section("Summary")
    report.paragraph(_source_sentence(r))
    report.paragraph(
        f"Leakage check: none of the {fmt.count(r.leakage_checked)} analysed images (nor any of "
        f"the {fmt.count(r.n_scored)} scored images) was in the training data of the models "
        "that scored it (checked against the positions each model was trained on).")
    n_wrong = len(r.tables["most_confident_wrong"])
    suspects = r.tables["suspected_label_errors"]
    both = sum(1 for row in suspects if row["knn_label"] == row["suggested_label"])
    report.paragraph(
        f"The CNN's top class is wrong for {fmt.share(n_wrong, n)} analysed images (accuracy "
        f"{fmt.pct(1 - n_wrong / n)}). {fmt.count(len(suspects))} images are label-error "
        f"candidates (the two-model opinion prefers another class, or confident learning "
        f"flags them); the k-NN's majority agrees with the suggested label for "
        f"{fmt.count(both)} of them; confident learning flags {fmt.count(n_flagged(r))}.")
    _explain_columns(report, r)

    for name in TABLES:
        report.section(TITLES[name])
        if name == "suspected_label_errors":
            _confident_learning(report, r)
        if name == "least_confident":
            _entropy_overlap(report, r)
        columns = SUSPECT_COLUMNS if name == "suspected_label_errors" else COLUMNS
        rows = r.tables[name]
        if rows:
            formats = {k: f for k, f in FORMATS.items() if k in columns}
            report.table(rows, columns, csv=f"{name}.csv", formats=formats, max_rows=r.config.top)
            _gallery(report, r, name)
        else:
            run.write_csv(f"{name}.csv", rows, columns)
            report.paragraph(f"No images in this list; `{name}.csv` has the header only.")

    report.section("Top indices")
    report.bullets([f"{TITLES[name]}: " + (", ".join(str(i) for i in idx) or "none")
                    for name, idx in top_indices(r, 20).items()])
    _exclusion(report, r)
    report.run_summary()
    report.write()


def _entropy_overlap(report: Report, r: AmbiguousResult) -> None:
    top = r.config.top
    by_margin = [int(row["index"]) for row in r.tables["least_confident"]]
    by_entropy = top_by_entropy(r, top)
    report.paragraph(
        f"Ranked by entropy instead of margin, {len(set(by_margin) & set(by_entropy))} of the "
        f"first {top} are the same images; the entropy top {top}: "
        f"{', '.join(map(str, by_entropy))} (also in `summary.json`).")


def _confident_learning(report: Report, r: AmbiguousResult) -> None:
    names = r.dataset.class_names
    cl = r.cl
    report.paragraph(
        "Confident learning (Northcutt, Jiang and Chuang, JAIR 2021) on the mean of the CNN "
        "and k-NN out-of-sample probabilities. The threshold of class j is the mean "
        f"probability of j over the {fmt.count(r.n_scored)} scored images labelled j; an "
        "image is confidently counted as the most probable class whose probability reaches "
        "its threshold; one labelled i but counted as j != i is flagged. The list shows the "
        "flagged images first, then every other image whose most probable class is not its "
        "label, each part ranked by "
        + ("`label_quality`, lowest first." if cl.rank_by == "self_confidence"
           else "probability of the top class minus that of the given label, largest first."))
    report.table([{"opinion": OPINION_TITLES[k], "flagged among scored": v["scored"],
                   "flagged among analysed": v["analysed"]}
                  for k, v in r.flag_counts.items()],
                 caption="How many images confident learning flags with each opinion, each "
                         "with its own per-class thresholds from every scored image. Two "
                         "independent models must both place an image in another class for "
                         "the combined opinion to flag it.")
    report.table([{"class": c, "threshold": t, "counted": int(cl.joint[i].sum()),
                   "flagged": int(cl.joint[i].sum() - cl.joint[i, i])}
                  for i, (c, t) in enumerate(zip(names, cl.thresholds, strict=True))],
                 caption="Per-class thresholds (combined opinion) and, among analysed images "
                         "of that given label, those counted confidently and those counted as "
                         "another class.")
    report.table([{"given \\ confident": names[i], **{names[j]: int(cl.joint[i, j])
                                                      for j in range(len(names))}}
                  for i in range(len(names))], caption="Confident joint of the analysed images.")


def _exclusion(report: Report, r: AmbiguousResult) -> None:
    report.section("Excluding flagged label errors from training")
    flagged = n_flagged(r)
    report.paragraph(
        f"`exclusions.csv` lists the {fmt.count(flagged)} flagged images as "
        "`id,given_label,suggested_label`; `notsure selective --exclusions exclusions.csv` "
        "trains without them (`--exclusion-mode relabel`: with the suggested labels).")
    if r.exclusion is None:
        report.paragraph(
            "Not measured in this run"
            + (": nothing is flagged." if r.config.measure_exclusion else
               ". `notsure ambiguous --measure-exclusion` trains the selective job twice (the "
               "analysed run's settings, hence the same locked test split), with and without "
               "the flagged images in training, and compares them here image by image."))
        return
    e = r.exclusion
    rows = []
    for name, title in (("all_labels", "every label"), ("without_suspected", "without flagged")):
        m = e[name]
        info = m.get("exclusions") or {}
        rows.append({"training": title, "train images": m["n_train"], "test images": m["n_test"],
                     "accuracy": m["accuracy"], "coverage": m["coverage"],
                     "errors after": m["n_errors_after"], "max class FPR": m["max_fpr"],
                     "dropped": info.get("n_pool", 0), "run": m["run"]})
    report.table(rows, formats={"accuracy": fmt.pct, "coverage": fmt.pct,
                                "max class FPR": fmt.num},
                 caption=f"{e['preset'].capitalize()} preset"
                 + (f", {e['epochs']} epochs" if e.get("epochs") else "")
                 + ", same seed and test split. Accuracy before abstention; coverage and errors "
                   "at the target FPR.")
    p = e["paired"]
    report.paragraph(
        f"Paired on the same {fmt.count(e['all_labels']['n_test'])} test images: excluding "
        f"changes accuracy by {p['accuracy_change'] * 100:+.2f} points ({p['all_right_only']} "
        f"images right only with every label, {p['without_right_only']} right only without "
        f"the flagged ones; exact McNemar p = {p['mcnemar_p']:.3g}); "
        f"{p['accepted_all_only']} images answered only with every label, "
        f"{p['accepted_without_only']} only without the flagged ones. Each arm is one "
        "training run, so these differences include the run-to-run variation of training "
        "(other images in each batch, other minima), which this comparison does not separate "
        "from the effect of the exclusion.")








