"""Whole-prediction summaries: the classification report every job renders (one row per class,
then summaries) and the selective metrics (counts, rates, coverage) of a decision rule."""

from __future__ import annotations

import numpy as np

from notsure.constants import NOT_SURE, NOT_SURE_NAME
from notsure.metrics.counts import (
    accuracy,
    class_display_names,
    confusion_matrix,
    nanaverage,
    per_class_rates,
    precision_recall_f1,
)
from notsure.metrics.risk_coverage import coverage, selective_accuracy


def classification_report(
    y_true: object,
    y_pred: object,
    labels: object | None = None,
    class_names: object | None = None,
) -> list[dict]:
    """Rows ``{class, precision, recall, f1, support}`` per class, then summary rows.

    Summary rows, in scikit-learn's order: ``"accuracy"`` (its value in ``f1``, as in
    scikit-learn's text report; abstentions count as wrong), ``"macro avg"``, ``"weighted avg"``
    (weighted by support). When ``y_pred`` holds ``NOT_SURE`` every row also has ``fpr`` and
    ``not_sure`` (abstentions among the class's samples; the total on the accuracy row). Division
    by zero gives 0.0 as in scikit-learn; an undefined FPR is NaN. ``class_names[label]`` names
    each class (default: the label value).
    """
    rates = per_class_rates(y_true, y_pred, labels)
    labels = rates.labels
    precision, recall, f1, support = precision_recall_f1(y_true, y_pred, labels)
    with_abstention = bool(rates.not_sure.any())

    def row(name: str, p: float | None, r: float | None, f: float | None, n: int) -> dict:
        return {"class": name, "precision": p, "recall": r, "f1": f, "support": n}

    rows = []
    for i, name in enumerate(class_display_names(labels, class_names)):
        rows.append(row(name, float(precision[i]), float(recall[i]), float(f1[i]), int(support[i])))
        if with_abstention:
            rows[-1].update({"fpr": float(rates.fpr[i]), NOT_SURE_NAME: int(rates.not_sure[i])})
    n = int(support.sum())
    rows.append(row("accuracy", None, None, accuracy(y_true, y_pred), n))
    if with_abstention:
        rows[-1].update({"fpr": None, NOT_SURE_NAME: int(rates.not_sure.sum())})
    for average in ("macro", "weighted"):
        p, r, f, _ = precision_recall_f1(y_true, y_pred, labels, average=average)
        rows.append(row(f"{average} avg", p, r, f, n))
        if with_abstention:
            weights = support if average == "weighted" else None
            rows[-1].update({"fpr": nanaverage(rates.fpr, weights), NOT_SURE_NAME: None})
    return rows


def selective_metrics(y_true: np.ndarray, y_pred: np.ndarray, labels: np.ndarray) -> dict:
    """Confusion matrix, per-class rates with Clopper-Pearson intervals, accuracy, coverage."""
    rates = per_class_rates(y_true, y_pred, labels)
    abstains = bool(np.any(y_pred == NOT_SURE))
    return {
        "accuracy": accuracy(y_true, y_pred),
        "coverage": coverage(y_pred),
        "selective_accuracy": selective_accuracy(y_true, y_pred),
        "n": int(len(y_true)),
        "n_not_sure": int(np.sum(y_pred == NOT_SURE)),
        "n_errors": int(np.sum((y_pred != y_true) & (y_pred != NOT_SURE))),
        "confusion_matrix": confusion_matrix(y_true, y_pred, labels, not_sure_column=abstains),
        "tp": rates.tp, "fp": rates.fp, "fn": rates.fn, "tn": rates.tn,
        "support": rates.support,
        "fpr": rates.fpr, "fpr_ci": rates.fpr_ci,
        "tpr": rates.tpr, "tpr_ci": rates.tpr_ci,
        "precision": rates.precision,
    }
