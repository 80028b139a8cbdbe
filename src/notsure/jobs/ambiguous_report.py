"""The ambiguity job's CSVs, summary JSON and report."""

from __future__ import annotations

import numpy as np

from notsure.io.run_folder import RunFolder
from notsure.jobs.ambiguous import (
    COLUMNS,
    ENSEMBLE,
    IMAGE_SCALE,
    SUSPECT_COLUMNS,
    TABLES,
    AmbiguousResult,
)
from notsure.reports import Report, fmt

TITLES = {
    "most_confident_wrong": "Most confidently wrong",
    "least_confident": "Least confident (smallest top-2 margin)",
    "suspected_label_errors": "Suspected label errors (confident learning)",
}
FORMATS = {"rank": str, "index": str, "confidence": fmt.num, "margin": fmt.num,
           "entropy": fmt.num, "p_given": fmt.num, "member_agreement": fmt.pct}


def top_indices(r: AmbiguousResult, n: int) -> dict[str, list[int]]:
    """The first ``n`` indices of each ranking."""
    return {name: [int(row["index"]) for row in r.tables[name][:n]] for name in TABLES}


def summary_document(r: AmbiguousResult) -> dict:
    """``summary.json``: what was analysed, the counts, the top indices, the CL estimates."""
    s = r.scores
    return {
        "analysed": r.analysed,
        "n": int(len(s.positions)),
        "scored_by": {src: int(np.sum(s.source == src)) for src in np.unique(s.source)},
        "out_of_sample_checked": r.leakage_checked,
        "n_wrong": len(r.tables["most_confident_wrong"]),
        "n_suspected_label_errors": len(r.tables["suspected_label_errors"]),
        "rank_by": r.cl.rank_by,
        "class_thresholds": r.cl.thresholds,
        "confident_joint": r.cl.joint,
        "top": top_indices(r, r.config.top),
        "exclusion": r.exclusion,
    }


def write_outputs(run: RunFolder, r: AmbiguousResult) -> None:
    """Write ``summary.json``, the three CSVs (via the report tables) and the report."""
    run.write_json("summary.json", summary_document(r))
    write_report(run, r)


def _gallery(report: Report, r: AmbiguousResult, name: str) -> None:
    rows = r.tables[name][:r.config.top]
    if not rows:
        return
    where = dict(zip(r.index.tolist(), r.scores.positions.tolist(), strict=True))
    images = [np.asarray(r.dataset.x[where[int(row["index"])]]) for row in rows]
    captions = [
        f"#{row['index']}: label {row['given_label']}, model {row['predicted_label']} "
        f"(p {row['confidence']:.3f}, margin {row['margin']:.3f}"
        + (f", agree {row['member_agreement']:.0%})" if row["score_source"] == ENSEMBLE else ")")
        for row in rows
    ]
    report.gallery(images, captions, name_prefix=f"gallery/{name}", scale=IMAGE_SCALE,
                   caption=f"{TITLES[name]}: the first {len(rows)}; full-size files in "
                           "`imgs/<index>.png`.")


def _source_sentence(r: AmbiguousResult) -> str:
    s = r.scores
    n_ens = int(np.sum(s.source == ENSEMBLE))
    n_oof = len(s.positions) - n_ens
    if r.config.run is None:
        return (f"Scores come from {r.config.folds} CNNs cross-fitted for this job on the whole "
                f"dataset: each analysed image is scored by the one model that held it out.")
    k = int(s.n_members.max()) if n_ens else len(s.trained_on) - 1
    return (f"Scores come from the run `{r.config.run}`: {fmt.count(n_ens)} images in the run's "
            f"test split are scored by its {k}-member ensemble (mean of the members' softmax "
            f"probabilities), and {fmt.count(n_oof)} images in its training pool by the one fold "
            "model that held them out (out-of-fold). Column `score_source` says which.")


def write_report(run: RunFolder, r: AmbiguousResult) -> None:
    names = r.dataset.class_names
    n = len(r.scores.positions)
    report = Report("Ambiguous images and suspected label errors", run,
                    subtitle=f"Analysed: {r.analysed} of `{r.dataset.source}`.")
    report.section("Summary")
    report.paragraph(_source_sentence(r))
    report.paragraph(
        f"Leakage check: none of the {fmt.count(r.leakage_checked)} analysed images was in the "
        "training data of the model that scored it (checked against the positions each model "
        "was trained on).")
    n_wrong = len(r.tables["most_confident_wrong"])
    wrong_ids = {row["id"] for row in r.tables["most_confident_wrong"]}
    suspect_ids = {row["id"] for row in r.tables["suspected_label_errors"]}
    report.paragraph(
        f"The top class is wrong for {fmt.share(n_wrong, n)} images (accuracy "
        f"{fmt.pct(1 - n_wrong / n)}); {fmt.count(len(suspect_ids))} images are suspected label "
        f"errors, {fmt.count(len(wrong_ids & suspect_ids))} of them among the wrong ones.")
    report.bullets([
        "`confidence`: probability of the predicted class; `margin`: top probability minus "
        "the runner-up's; `entropy`: of the class probabilities, in nats (max "
        f"{np.log(len(names)):.3f}); `p_given`: probability of the given label.",
        "`member_agreement`: share of ensemble members whose top class is the predicted one "
        "(empty for out-of-fold rows, scored by a single model).",
        "`index`: position in the analysed file (for MNIST t10k, the index in the official "
        "test file); `imgs/<index>.png` is the image, upscaled "
        f"{IMAGE_SCALE}x.",
        "Ambiguous or mislabelled? An image the model is unsure of (small margin, high "
        "entropy) is ambiguous; one it confidently assigns to another class, above that class's "
        "confident-learning threshold, is more likely mislabelled. A person decides.",
    ])

    for name in TABLES:
        report.section(TITLES[name])
        if name == "suspected_label_errors":
            _confident_learning(report, r)
        columns = SUSPECT_COLUMNS if name == "suspected_label_errors" else COLUMNS
        rows = r.tables[name]
        if rows:
            report.table(rows, columns, csv=f"{name}.csv", formats=FORMATS, max_rows=r.config.top)
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


def _confident_learning(report: Report, r: AmbiguousResult) -> None:
    names = r.dataset.class_names
    cl = r.cl
    report.paragraph(
        "Confident learning (Northcutt et al., 2021) on the out-of-sample probabilities: the "
        "threshold of class j is the mean probability of j over images labelled j; an image is "
        "confidently counted as the most probable class whose probability reaches its "
        "threshold; images labelled i but counted as j != i (off-diagonal of the confident "
        "joint) are suspected label errors, ranked by "
        + ("the probability of the given label, lowest first." if cl.rank_by == "self_confidence"
           else "p(predicted) - p(given), largest first."))
    wrong = r.tables["most_confident_wrong"]
    if wrong and len(r.tables["suspected_label_errors"]) < len(wrong) / 4:
        close = max(wrong, key=lambda row: row["confidence"]
                    - cl.thresholds[names.index(row["predicted_label"])])
        report.paragraph(
            f"Few images are flagged: the thresholds ({cl.thresholds.min():.4f} to "
            f"{cl.thresholds.max():.4f}) are set by how sure the model is of typical images, "
            "and a wrong answer rarely reaches them (the closest, index "
            f"{close['index']}, is at {close['confidence']:.4f} for class "
            f"{close['predicted_label']}, threshold "
            f"{cl.thresholds[names.index(close['predicted_label'])]:.4f}). For a model this "
            "accurate, mislabelled images are most likely among the most confidently wrong; "
            "a person must look at them.")
    report.table([{"class": c, "threshold": t, "labelled": int(cl.joint[i].sum()),
                   "suspected": int(cl.joint[i].sum() - cl.joint[i, i])}
                  for i, (c, t) in enumerate(zip(names, cl.thresholds, strict=True))],
                 caption="Per-class thresholds; `labelled`: images of that given label counted "
                         "confidently; `suspected`: of those, counted as another class.")
    report.table([{"given \\ confident": names[i], **{names[j]: int(cl.joint[i, j])
                                                      for j in range(len(names))}}
                  for i in range(len(names))], caption="Confident joint.")


def _exclusion(report: Report, r: AmbiguousResult) -> None:
    report.section("Excluding suspected label errors from training")
    if r.exclusion is None:
        report.paragraph(
            "Not measured in this run. `notsure ambiguous --measure-exclusion` trains the "
            "selective job twice on the quick preset, same seed and same locked test split, "
            "with and without the suspected images in training, and reports both here; "
            "`--write-exclusions FILE` writes them as `id,given_label,suggested_label` for "
            "`notsure.data.exclusions.apply_exclusions`.")
        return
    e = r.exclusion
    report.paragraph(
        f"{fmt.count(e['excluded'])} suspected images: {fmt.count(e['dropped_from_training'])} "
        f"dropped from the training pool, {fmt.count(e['kept_in_test'])} are in the locked test "
        "split and stay there with their given labels. Quick preset, same seed, same test split.")
    report.table([{"training labels": name, **{k: e[name][k] for k in
                   ("n_train", "n_test", "accuracy", "coverage", "max_fpr", "run")}}
                  for name in ("all_labels", "without_suspected")],
                 formats={"accuracy": fmt.pct, "coverage": fmt.pct, "max_fpr": fmt.num},
                 caption="Accuracy before abstention and coverage at the target FPR.")
