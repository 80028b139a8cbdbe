"""Decision strategies: turn class scores into a class or ``NOT_SURE`` with a stated guarantee."""

from notsure.decisions.neyman_pearson import (
    DEFAULT_DELTA,
    DEFAULT_TARGET_FPR,
    MEANING_TEXT,
    MEANINGS,
    ClassCertificate,
    all_classes_pass_probability,
    allowed_exceedances,
    allowed_exceedances_for_test,
    certifiable_fpr,
    certificate_rows,
    choose_thresholds,
    class_delta,
    criterion_pass_probability,
    min_negatives,
    violation_probability,
)
from notsure.decisions.rules import (
    RULE_TEXT,
    RULES,
    calibration_scores,
    check_rule,
    deployed_scores,
)
from notsure.decisions.scores import (
    confidence_scores,
    ensemble_margins,
    fold_mean_logits,
    logit_margins,
    route,
    score_kinds,
)
from notsure.decisions.strategy import ThresholdStrategy
from notsure.decisions.thresholds import NeymanPearsonThresholds, score_margins

__all__ = [
    "MEANINGS",
    "MEANING_TEXT",
    "class_delta",
    "RULES",
    "RULE_TEXT",
    "all_classes_pass_probability",
    "allowed_exceedances_for_test",
    "calibration_scores",
    "check_rule",
    "deployed_scores",
    "fold_mean_logits",
    "route",
    "criterion_pass_probability",
    "DEFAULT_DELTA",
    "DEFAULT_TARGET_FPR",
    "ClassCertificate",
    "NeymanPearsonThresholds",
    "ThresholdStrategy",
    "allowed_exceedances",
    "certifiable_fpr",
    "certificate_rows",
    "confidence_scores",
    "score_kinds",
    "choose_thresholds",
    "ensemble_margins",
    "logit_margins",
    "min_negatives",
    "score_margins",
    "violation_probability",
]
