"""Fit the out-of-distribution guard of a cross-fitted ensemble and measure what it costs and
catches.

Member k's class Gaussians are fitted on features of (a seeded sample of) its own training images;
every pool image is scored by the member that did not train on it, and the threshold keeps
``keep`` of those out-of-fold scores. No test image is involved.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from notsure.constants import NOT_SURE
from notsure.data.outliers import synthetic_outliers
from notsure.decisions.ood import (
    OODGuard,
    PixelGuard,
    fit_class_gaussians,
    fit_ink_guard,
    fit_pixel_pca,
    keep_threshold,
)
from notsure.deploy.predictor import Decisions, SelectivePredictor
from notsure.models.cross_fit import CrossFit

#: Share of in-distribution out-of-fold images the guard keeps.
GUARD_KEEP = 0.995
#: Share the pixel check keeps: it is there for inputs far off (e.g. inverted colours), so it
#: may cost in-distribution coverage only a little.
PIXEL_KEEP = 0.999
#: Synthetic outliers of each kind measured for the report.
N_OUTLIERS = 500


@dataclass
class GuardFit:
    """The fitted guard and the out-of-fold score of every pool image."""

    guard: OODGuard
    oof_scores: np.ndarray  # (N,): distance by the members that did not train on the image
    pixel_oof_scores: np.ndarray  # (N,): reconstruction error by the fold that held it out
    ink_scores: np.ndarray  # (N,): distance of the ink statistics (fitted on fold 0's sample)

    @property
    def oof_rejected(self) -> np.ndarray:
        """(N,) bool: pool images the guard (features, pixels or ink) rejects, out of fold."""
        return ((self.oof_scores > self.guard.threshold)
                | (self.pixel_oof_scores > self.guard.pixels.threshold)
                | (self.ink_scores > self.guard.ink.threshold))


def fit_guard(fit: CrossFit, x: np.ndarray, y: np.ndarray, n_classes: int, *,
              keep: float = GUARD_KEEP, pixel_keep: float = PIXEL_KEEP) -> GuardFit:
    """Guard for the K x M members of ``fit`` (cross-fitted on a pool labelled ``y``): member
    i's class Gaussians from the features of a sample of its own training images; an image's
    score is the mean distance over the members of one fold (the fold that answers it), so the
    out-of-fold scores (fold k's members on fold k) are of the deployed kind and set the
    threshold. The pixel check is fitted the same way: fold k's principal components from
    the training sample of its first member, its threshold from the out-of-fold pool images
    ``x``; the ink check keeps ``pixel_keep`` of the pool images too. No test image is
    involved."""
    per_fold = fit.members
    oof = np.zeros(len(y))
    members = []
    for i in range(len(fit.results)):
        k, m = divmod(i, per_fold)
        gaussians = fit_class_gaussians(fit.train_sample_features[i], y[fit.train_samples[i]],
                                        n_classes)
        held = fit.fold_of == k
        oof[held] += gaussians.distances(fit.oof_member_features[m, held])
        members.append(gaussians)
    oof /= per_fold
    pcas = tuple(fit_pixel_pca(x[fit.train_samples[k * per_fold]]) for k in range(fit.n_folds))
    pixels = PixelGuard(folds=pcas, threshold=0.0, keep=pixel_keep)
    pixel_oof = pixels.score(x, fit.fold_of)
    pixels = replace(pixels, threshold=keep_threshold(pixel_oof, pixel_keep))
    # Four statistics have no room to overfit: their Gaussian comes from the first member's
    # training sample, the threshold from every pool image.
    ink, ink_scores = fit_ink_guard(x[fit.train_samples[0]], x, pixel_keep)
    guard = OODGuard(members=tuple(members), threshold=keep_threshold(oof, keep), keep=keep,
                     pixels=pixels, ink=ink)
    return GuardFit(guard=guard, oof_scores=oof, pixel_oof_scores=pixel_oof,
                    ink_scores=ink_scores)


def guard_summary(predictor: SelectivePredictor, fit: GuardFit, oof_prediction: np.ndarray,
                  test: Decisions, digits: np.ndarray, digit_labels: np.ndarray, seed: int,
                  n: int = N_OUTLIERS) -> dict:
    """What the report shows: threshold, in-distribution coverage cost (on out-of-fold pool data,
    and on the test set's decisions ``test``), and per kind of synthetic outlier the share caught
    by the guard and answered as a class.

    ``oof_prediction`` are the thresholds' decisions on the out-of-fold pool scores (no guard);
    ``digits`` (with ``digit_labels``) are in-distribution images the inverted and shifted
    outliers are made from.
    """
    ood = fit.oof_rejected
    answered = oof_prediction != NOT_SURE
    test_passed = test.confidence > 0  # cleared the class threshold, before the guard
    outliers = {}
    for kind, images in synthetic_outliers(digits, n, seed).items():
        d = predictor.predict(images)
        said = d.prediction != NOT_SURE
        row = {"n": int(len(images)), "caught": float(np.mean(d.out_of_distribution)),
               "answered": float(np.mean(said))}
        if kind in ("inverted", "shifted"):
            row["answered_wrong"] = float(np.mean(said & (d.prediction != digit_labels[:n])))
        outliers[kind] = row
    return {
        "threshold": fit.guard.threshold, "keep": fit.guard.keep,
        "pixel_threshold": fit.guard.pixels.threshold, "pixel_keep": fit.guard.pixels.keep,
        "pool_rejected_features": float(np.mean(fit.oof_scores > fit.guard.threshold)),
        "pool_rejected_pixels": float(np.mean(fit.pixel_oof_scores
                                              > fit.guard.pixels.threshold)),
        "ink_threshold": fit.guard.ink.threshold, "ink_keep": fit.guard.ink.keep,
        "pool_rejected_ink": float(np.mean(fit.ink_scores > fit.guard.ink.threshold)),
        "n_pool": int(len(ood)),
        "pool_rejected": float(np.mean(ood)),
        "coverage_without_guard": float(np.mean(answered)),
        "coverage_cost": float(np.mean(answered & ood)),
        "n_test": int(len(test_passed)),
        "test_rejected": float(np.mean(test.out_of_distribution)),
        "test_coverage_cost": float(np.mean(test_passed & test.out_of_distribution)),
        "outliers": outliers,
    }
