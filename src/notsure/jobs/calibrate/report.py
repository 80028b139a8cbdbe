"""The calibrate job's report: each class's threshold and what its certificate guarantees."""

from __future__ import annotations

from notsure.decisions import (
    NeymanPearsonThresholds,
    certificate_rows,
    min_negatives,
)
from notsure.io.run_folder import CERTIFICATES_FILE, RunFolder
from notsure.reports import Report, fmt


def write_report(run: RunFolder, t: NeymanPearsonThresholds, shape: tuple[int, int]) -> None:
    """The short report: what was certified, per-class table (also as CSV), provenance."""
    rep = Report("Per-class thresholds with a false positive guarantee", run,
                 subtitle=f"{fmt.count(shape[0])} calibration rows, {shape[1]} classes, "
                          f"scores read as {t.kind_}")
    weak = [c for c in t.certificates_ if not c.certified]
    rep.section("Result")
    rep.paragraph(
        f"Target: every class's false positive rate at most {t.target_fpr:g}, except with "
        f"probability at most {t.delta:g} over the calibration data. Each class needs at least "
        f"{fmt.count(min_negatives(t.target_fpr, t.delta))} calibration negatives for that; "
        f"{len(t.certificates_) - len(weak)} of {len(t.certificates_)} classes are certified.")
    if weak:
        rep.bullets([text for c, text in zip(t.certificates_, t.certificate_texts(), strict=True)
                     if not c.certified])
    rep.paragraph(
        "A class is answered only when its margin (its score minus the best other class's; for "
        "probabilities, of their logarithms) is above its threshold. The guarantee holds for new "
        "rows drawn like these and scored by the same model, provided that model did not train "
        "on these rows. `notsure decide THRESHOLDS SCORES --out FILE` applies the thresholds.")
    rep.table(certificate_rows(t.certificates_, t.classes_), caption="Per-class certificates.",
              csv=CERTIFICATES_FILE,
              formats={"calibration_tpr": fmt.pct, "P(FPR>target)<=": lambda v: f"{v:.4f}"})
    rep.run_summary()
    rep.write()
