"""Decision rules of a cross-fitted ensemble: which score is thresholded, and why it is certified.

The ensemble has K folds of M members each (fold-major order). Fold k's members never saw fold k,
so every training-pool image has an out-of-fold score from its fold's M-member ensemble: pooled,
these certify the *average* false positive rate of the K fold ensembles (see
:mod:`notsure.decisions.neyman_pearson`). Each rule below is covered by that certificate:

- ``routed``: each image is answered by one fold ensemble, picked by a hash of its pixels
  (:func:`notsure.decisions.scores.route`). Its score is exactly of the calibrated kind and its
  false positive rate *is* the fold ensembles' average; calibration-data coverage estimates the
  deployed coverage. Needs only M members per image at inference.
- ``min-fold``: every fold ensemble's margin must clear the threshold, so its false positives are a
  subset of each fold ensemble's (rate <= the smallest, <= the average). Needs all K*M members.
- ``min-member``: every single member's margin must clear thresholds calibrated on single members'
  out-of-fold margins (member 0 of each fold): the rule of earlier versions (M = 1).
"""

from __future__ import annotations

import numpy as np

from notsure.decisions.scores import ensemble_margins, fold_mean_logits, logit_margins
from notsure.errors import ConfigError

RULES = ("routed", "min-fold", "min-member")

RULE_TEXT = {
    "routed": "margin z_c - max_{j!=c} z_j of the mean logits of one fold ensemble, chosen by a "
              "hash of the image's pixels; candidate = that ensemble's arg-max",
    "min-fold": "minimum over the fold ensembles of their mean-logit margin; candidate = arg-max "
                "of the mean logits of all members",
    "min-member": "minimum over all members of their logit margin; candidate = arg-max of the "
                  "mean logits of all members",
}

#: Why each rule's thresholds certify the deployed predictor's false positive rate.
RULE_GUARANTEE = {
    "routed": "The hash does not depend on the class, so the deployed false positive rate is the "
              "average of the fold ensembles' rates, which is exactly what the pooled "
              "out-of-fold scores calibrate: the certificate is for the predictor actually "
              "deployed, and the calibration coverage below estimates its coverage. Each image "
              "needs only one fold's members at inference.",
    "min-fold": "A false positive needs every fold ensemble's margin above the threshold, so its "
                "false positives are a subset of each fold ensemble's and their certificate "
                "carries over (conservatively).",
    "min-member": "A false positive needs every member's margin above the threshold, so the "
                  "ensemble's false positives are a subset of each member's; the thresholds are "
                  "calibrated on single members' out-of-fold margins.",
}


def check_rule(rule: str) -> str:
    """``rule`` if known, else ConfigError naming the choices."""
    if rule not in RULES:
        raise ConfigError(f"strategy must be one of {', '.join(RULES)}, got {rule!r}")
    return rule


def calibration_scores(rule: str, oof_member_logits: np.ndarray) -> np.ndarray:
    """Out-of-fold scores (N, C) to calibrate ``rule`` on, from ``(M, N, C)`` out-of-fold member
    logits (row i from the members of the fold that held image i out)."""
    check_rule(rule)
    z = np.asarray(oof_member_logits)
    if rule == "min-member":
        return logit_margins(z[0])
    return logit_margins(z.mean(axis=0))


def deployed_scores(rule: str, member_logits: np.ndarray, n_folds: int,
                    routes: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(candidate logits, thresholded scores), both (N, C), of ``rule`` on every member's logits
    ``(K*M, N, C)``; ``routes`` (N,) gives the answering fold of each image for ``routed``."""
    check_rule(rule)
    z = np.asarray(member_logits)
    if rule == "routed":
        if routes is None:
            raise ConfigError("the routed rule needs the route (answering fold) of each image")
        folds = fold_mean_logits(z, n_folds)
        chosen = folds[np.asarray(routes), np.arange(z.shape[1])]
        return chosen, logit_margins(chosen)
    mean = z.mean(axis=0)
    if rule == "min-fold":
        return mean, logit_margins(fold_mean_logits(z, n_folds)).min(axis=0)
    return mean, ensemble_margins(z)
