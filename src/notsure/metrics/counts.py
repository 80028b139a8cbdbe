"""Counting metrics: confusion matrix, per-class rates with exact intervals, accuracy, P/R/F1.

Abstentions (``NOT_SURE`` in ``y_pred``) are never a positive prediction: for its true class an
abstention is a false negative (it lowers TPR/recall), for every other class a true negative (it
never raises FPR). Per-class FPR/TPR *after abstention* is therefore just :func:`per_class_rates`
on predictions that contain ``NOT_SURE``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

import numpy as np

from notsure.constants import NOT_SURE_NAME
from notsure.errors import ConfigError
from notsure.metrics.intervals import clopper_pearson
from notsure.metrics.validation import (
    check_choice,
    check_label_array,
    check_same_length,
    encode,
    resolve_labels,
)

Average = Literal["macro", "micro", "weighted"] | None


def check_pair(y_true: object, y_pred: object) -> tuple[np.ndarray, np.ndarray]:
    """Checked ``(y_true, y_pred)``: 1-D int64, same non-zero length, NOT_SURE only in y_pred."""
    t = check_label_array(y_true, "y_true", allow_not_sure=False)
    p = check_label_array(y_pred, "y_pred", allow_not_sure=True)
    check_same_length(y_true=t, y_pred=p)
    return t, p


def confusion_counts(
    y_true: object, y_pred: object, labels: object | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """``(labels, counts)`` with ``counts`` of shape ``(C, C + 1)``: last column = abstentions."""
    t, p = check_pair(y_true, y_pred)
    labels = resolve_labels(labels, t, p)
    n_labels = len(labels)
    ti = encode(t, labels, "y_true", allow_not_sure=False)
    pi = encode(p, labels, "y_pred", allow_not_sure=True)
    flat = np.bincount(ti * (n_labels + 1) + pi, minlength=n_labels * (n_labels + 1))
    return labels, flat.reshape(n_labels, n_labels + 1).astype(np.int64, copy=False)


def confusion_matrix(
    y_true: object,
    y_pred: object,
    labels: object | None = None,
    *,
    not_sure_column: bool | None = None,
) -> np.ndarray:
    """Counts ``[i, j]`` of samples of true class ``labels[i]`` predicted as ``labels[j]``.

    Columns follow ``labels`` (default: sorted union of ``y_true`` and ``y_pred`` values, without
    ``NOT_SURE``); a final ``not_sure`` column counts abstentions. ``not_sure_column=None`` adds it
    only when ``y_pred`` holds ``NOT_SURE``; ``True`` always adds it; ``False`` leaves abstentions
    out (rows then sum to the answered samples only). Every value must be in ``labels``.
    """
    if not_sure_column not in (None, True, False):
        raise ConfigError(f"not_sure_column must be None, True or False, got {not_sure_column!r}")
    _, counts = confusion_counts(y_true, y_pred, labels)
    keep = bool(counts[:, -1].any()) if not_sure_column is None else not_sure_column
    return counts if keep else np.ascontiguousarray(counts[:, :-1])


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """``num / den`` as float, NaN where ``den == 0`` (an undefined rate)."""
    num = np.asarray(num, dtype=np.float64)
    den = np.asarray(den, dtype=np.float64)
    return np.divide(num, den, out=np.full(np.broadcast(num, den).shape, np.nan), where=den > 0)


@dataclass(frozen=True, eq=False)
class ClassRates:
    """One-vs-rest counts and rates per class (arrays of length C, ``*_ci`` of shape (C, 2)).

    ``tpr = tp / support``, ``fpr = fp / (n - support)`` (over samples of the other classes),
    ``precision = tp / (tp + fp)``; NaN where the denominator is 0. ``not_sure`` counts the
    abstentions among the class's samples (they are part of ``fn``).
    """

    labels: np.ndarray
    tp: np.ndarray
    fp: np.ndarray
    fn: np.ndarray
    tn: np.ndarray
    support: np.ndarray
    not_sure: np.ndarray
    tpr: np.ndarray
    fpr: np.ndarray
    precision: np.ndarray
    tpr_ci: np.ndarray
    fpr_ci: np.ndarray
    precision_ci: np.ndarray
    confidence: float

    def as_rows(self, class_names: object | None = None) -> list[dict]:
        """One dict per class (plain Python values, NaN where undefined) for tables and JSON."""
        names = class_display_names(self.labels, class_names)
        rows = []
        for i, name in enumerate(names):
            row: dict = {"class": name}
            for field in ("support", "tp", "fp", "fn", "tn"):
                row[field] = int(getattr(self, field)[i])
            row[NOT_SURE_NAME] = int(self.not_sure[i])
            for rate in ("tpr", "fpr", "precision"):
                ci = getattr(self, f"{rate}_ci")[i]
                row[rate] = float(getattr(self, rate)[i])
                row[f"{rate}_lo"], row[f"{rate}_hi"] = float(ci[0]), float(ci[1])
            rows.append(row)
        return rows


def class_display_names(labels: np.ndarray, class_names: object | None) -> list[str]:
    """Readable name of each label: ``class_names[label]`` (sequence or mapping) or the value."""
    if class_names is None:
        return [str(v) for v in labels.tolist()]
    problem = "" if isinstance(class_names, Mapping) or labels.min() >= 0 else "negative label"
    if not problem:
        try:
            return [str(class_names[v]) for v in labels.tolist()]  # type: ignore[index]
        except (IndexError, KeyError, TypeError) as exc:
            problem = f"{type(exc).__name__}: {exc}"
    raise ConfigError(
        f"class_names must give a name for every label {labels.tolist()} (a sequence indexed by "
        f"label value, or a mapping), got {type(class_names).__name__} ({problem})"
    )


def per_class_rates(
    y_true: object, y_pred: object, labels: object | None = None, *, confidence: float = 0.95
) -> ClassRates:
    """TP/FP/FN/TN, TPR, FPR and precision per class, each rate with a Clopper-Pearson interval."""
    labels, counts = confusion_counts(y_true, y_pred, labels)
    n = counts.sum()
    tp = np.diag(counts[:, :-1]).copy()
    support = counts.sum(axis=1)
    predicted = counts[:, :-1].sum(axis=0)
    fp = predicted - tp
    fn = support - tp
    tn = n - tp - fp - fn
    negatives = n - support

    def ci(k: np.ndarray, m: np.ndarray) -> np.ndarray:
        return np.stack(clopper_pearson(k, m, confidence), axis=1)

    return ClassRates(
        labels=labels,
        tp=tp,
        fp=fp,
        fn=fn,
        tn=tn,
        support=support,
        not_sure=counts[:, -1].copy(),
        tpr=_ratio(tp, support),
        fpr=_ratio(fp, negatives),
        precision=_ratio(tp, predicted),
        tpr_ci=ci(tp, support),
        fpr_ci=ci(fp, negatives),
        precision_ci=ci(tp, predicted),
        confidence=confidence,
    )


def accuracy(y_true: object, y_pred: object) -> float:
    """Fraction of samples predicted exactly right; an abstention (``NOT_SURE``) counts as wrong.

    For accuracy over answered samples only, see :func:`notsure.metrics.selective_accuracy`.
    """
    t, p = check_pair(y_true, y_pred)
    return float(np.mean(t == p))


def _check_zero_division(zero_division: object) -> float:
    value = zero_division if isinstance(zero_division, (int, float)) else None
    if value is None or not (value in (0, 1) or math.isnan(value)):
        raise ConfigError(f"zero_division must be 0.0, 1.0 or nan, got {zero_division!r}")
    return float(value)


def _divide(num: np.ndarray, den: np.ndarray, zero_division: float) -> np.ndarray:
    out = _ratio(num, den)
    out[np.asarray(den) == 0] = zero_division
    return out


def nanaverage(values: np.ndarray, weights: np.ndarray | None) -> float:
    """Weighted mean ignoring NaN entries (NaN if all are NaN); all-zero weights -> plain mean."""
    keep = ~np.isnan(values)
    if not keep.any():
        return float("nan")
    if weights is None or weights[keep].sum() == 0:
        return float(np.mean(values[keep]))
    return float(np.average(values[keep], weights=weights[keep]))


def precision_recall_f1(
    y_true: object,
    y_pred: object,
    labels: object | None = None,
    *,
    average: Average = None,
    zero_division: float = 0.0,
) -> tuple[np.ndarray | float, np.ndarray | float, np.ndarray | float, np.ndarray | None]:
    """``(precision, recall, f1, support)`` as scikit-learn's ``precision_recall_fscore_support``.

    ``average=None`` gives arrays per label; ``"macro"``, ``"micro"`` or ``"weighted"`` (by
    support) give floats and ``support=None``. A class never predicted has precision 0/0 and one
    never present has recall 0/0: both become ``zero_division`` (0.0, 1.0, or nan = left out of
    averages), as does F1 when the class is neither present nor predicted; every class in
    ``labels=`` counts in the macro average. Abstentions are never a prediction of any class: they
    lower recall only (micro precision is then accuracy over the answered samples).
    """
    check_choice(average, "average", (None, "macro", "micro", "weighted"))
    zero_division = _check_zero_division(zero_division)
    _, counts = confusion_counts(y_true, y_pred, labels)
    tp = np.diag(counts[:, :-1]).copy()
    predicted = counts[:, :-1].sum(axis=0)
    support = counts.sum(axis=1)
    true = support
    if average == "micro":
        tp, predicted, true = (a.sum(keepdims=True) for a in (tp, predicted, true))
    precision = _divide(tp, predicted, zero_division)
    recall = _divide(tp, true, zero_division)
    f1 = _divide(2.0 * tp, true + predicted, zero_division)
    if average is None:
        return precision, recall, f1, support
    weights = support if average == "weighted" else None
    return (
        nanaverage(precision, weights),
        nanaverage(recall, weights),
        nanaverage(f1, weights),
        None,
    )
