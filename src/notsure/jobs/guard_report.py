"""The selective report's section on the out-of-distribution guard (from ``guard_summary``)."""

from __future__ import annotations

from notsure.reports import Report, fmt

#: How each synthetic outlier kind is described in the report.
KIND_TEXT = {
    "noise": "uniform random noise",
    "blank": "blank (all zero)",
    "inverted": "test digits with inverted colours (white background), not preprocessed",
    "shifted": "test digits moved into a corner",
    "letters": "capital letters in PIL's default font, MNIST-style",
    "strokes": "2-5 random straight strokes",
    "clothing": "garment silhouettes (shirts, trousers, dresses, bags, shoes), grey and textured",
}


def guard_rows(guard: dict) -> list[dict]:
    """One row per outlier kind: caught by the guard, answered with a class, answered wrongly."""
    return [{"outliers": KIND_TEXT.get(kind, kind), "n": row["n"],
             "caught by the guard": row["caught"], "answered a class": row["answered"],
             "answered a wrong class": row.get("answered_wrong")}
            for kind, row in guard["outliers"].items()]


def write_guard_section(rep: Report, guard: dict) -> None:
    """Threshold, in-distribution coverage cost and catch rates of the guard."""
    rep.section("Out-of-distribution guard")
    rep.paragraph(
        "Before the class thresholds, each image's penultimate features (the 64 global-average-"
        "pooled channels) are compared with the training images': for every member, the "
        "Mahalanobis distance to the nearest class mean (class means and a shared covariance "
        "fitted on that member's own training images), averaged over members. Images further "
        f"than {fmt.num(guard['threshold'])} are answered not_sure (reason out_of_distribution). "
        f"The threshold keeps {fmt.pct(guard['keep'], 1)} of the {fmt.count(guard['n_pool'])} "
        "training-pool images scored out of fold (each by the member that did not train on it), "
        "so no test image shapes it. A second check works on the pixels: each fold's 32 "
        "principal components of its training images, and an image's RMS reconstruction error "
        "from the components of its fold; images above "
        f"{fmt.num(guard['pixel_threshold'])} (which keeps {fmt.pct(guard['pixel_keep'], 1)} of "
        "the out-of-fold pool images) are also out_of_distribution. It catches inputs the "
        "features can mistake for digits, such as inverted colours. A third looks at the ink: "
        "its amount, the share of it that is grey rather than full, its mean value and the "
        "share of filled rather than stroke pixels, compared with the training images' by "
        f"Mahalanobis distance; images above {fmt.num(guard['ink_threshold'])} (which keeps "
        f"{fmt.pct(guard['ink_keep'], 1)} of the pool images) are out_of_distribution too, which "
        "catches textured objects such as clothing. The guard only removes answers: the FPR "
        "guarantee holds.")
    rep.paragraph(
        f"Cost on in-distribution data (out-of-fold pool): {fmt.pct(guard['pool_rejected'], 3)} "
        "of the images are rejected by the guard (features "
        f"{fmt.pct(guard['pool_rejected_features'], 3)}, pixels "
        f"{fmt.pct(guard['pool_rejected_pixels'], 3)}, ink "
        f"{fmt.pct(guard['pool_rejected_ink'], 3)}); coverage falls from "
        f"{fmt.pct(guard['coverage_without_guard'], 3)} by {fmt.pct(guard['coverage_cost'], 3)} "
        "(images the thresholds would have answered). On the test set, where every member "
        "scores each image and their mean distance is used: "
        f"{fmt.pct(guard['test_rejected'], 3)} of the {fmt.count(guard['n_test'])} images "
        f"rejected, a coverage cost of {fmt.pct(guard['test_coverage_cost'], 3)}.")
    rep.table(guard_rows(guard), caption="Synthetic outliers (seeded): share caught by the "
              "guard, and share still answered with a class (by the whole decision rule).",
              csv="tables/ood_outliers.csv",
              formats={c: fmt.pct for c in ("caught by the guard", "answered a class",
                                            "answered a wrong class")})
