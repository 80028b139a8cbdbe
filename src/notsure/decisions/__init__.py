"""Decision strategies: turn class scores into a class or ``NOT_SURE`` with a stated guarantee."""

from notsure.decisions.neyman_pearson import (
    DEFAULT_DELTA,
    DEFAULT_TARGET_FPR,
    ClassCertificate,
    allowed_exceedances,
    certifiable_fpr,
    choose_thresholds,
    min_negatives,
    violation_probability,
)
from notsure.decisions.scores import ensemble_margins, logit_margins
from notsure.decisions.strategy import ThresholdStrategy
from notsure.decisions.thresholds import NeymanPearsonThresholds, score_margins

__all__ = [
    "DEFAULT_DELTA",
    "DEFAULT_TARGET_FPR",
    "ClassCertificate",
    "NeymanPearsonThresholds",
    "ThresholdStrategy",
    "allowed_exceedances",
    "certifiable_fpr",
    "choose_thresholds",
    "ensemble_margins",
    "logit_margins",
    "min_negatives",
    "score_margins",
    "violation_probability",
]
