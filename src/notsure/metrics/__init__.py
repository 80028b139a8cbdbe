"""Hand-written evaluation core: counts, rates with exact intervals, ROC/AUC, selective metrics.

Pure NumPy, checked against scikit-learn in the tests. ``NOT_SURE`` (-1) may appear in
``y_pred``: an abstention is never a positive prediction (it lowers TPR/recall, never raises
FPR) and counts as wrong in :func:`accuracy`. Bad input raises
:class:`notsure.errors.ConfigError` naming the argument and its shape or value.
"""

from notsure.metrics.classification import classification_report, selective_metrics
from notsure.metrics.counts import (
    ClassRates,
    accuracy,
    confusion_matrix,
    per_class_rates,
    precision_recall_f1,
)
from notsure.metrics.intervals import clopper_pearson
from notsure.metrics.paired import McNemar, mcnemar
from notsure.metrics.ranking import (
    MeanRoc,
    interpolate_roc,
    macro_roc,
    mean_roc,
    roc_auc,
    roc_auc_ovr,
    roc_curve,
    top_k_accuracy,
)
from notsure.metrics.risk_coverage import (
    RiskCoverage,
    aurc,
    coverage,
    risk_coverage_curve,
    selective_accuracy,
    selective_risk,
)

__all__ = [
    "ClassRates",
    "McNemar",
    "MeanRoc",
    "RiskCoverage",
    "accuracy",
    "aurc",
    "classification_report",
    "clopper_pearson",
    "confusion_matrix",
    "coverage",
    "interpolate_roc",
    "macro_roc",
    "mcnemar",
    "mean_roc",
    "per_class_rates",
    "precision_recall_f1",
    "risk_coverage_curve",
    "roc_auc",
    "selective_metrics",
    "roc_auc_ovr",
    "roc_curve",
    "selective_accuracy",
    "selective_risk",
    "top_k_accuracy",
]
