"""Nested, subject-grouped cross-validation of k-NN (every k at once) and a logistic baseline.

The outer folds give the reported scores. Inside each outer training part, inner folds (also
stratified by class and grouped by subject) choose the hyperparameter (k, or C for the
baseline) by the pooled inner out-of-fold macro F1; ties go to the smaller value. So no
reported score comes from data that helped choose the hyperparameter. The k-NN distance matrix
is computed once per metric; every fold, outer or inner, reads its block of it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits

from notsure import metrics
from notsure.analysis import knn
from notsure.data.splits import KFoldPlan, stratified_kfold
from notsure.parallel import Execution, run_tasks

#: Fold metrics reported for every method, in table order.
METRIC_NAMES: tuple[str, ...] = ("accuracy", "macro_f1", "weighted_f1", "macro_auc",
                                 "top1", "top3", "top5")
#: The inner-CV criterion that chooses k (and C): macro F1 weighs every syndrome equally.
CRITERION = "macro_f1"


@dataclass
class CvResult:
    """Out-of-fold results of one method over the outer folds.

    ``scores`` (N, C) and ``pred`` (N,) come from the hyperparameter chosen in each fold;
    ``fold[i]`` is the outer fold that tested sample ``i`` (-1: never tested). For k-NN,
    ``curve_scores`` (k_max, N, C) and ``curve_pred`` (k_max, N) hold every k, for the k curve.
    ``inner_curves[f]`` is the inner criterion of each candidate in outer fold ``f``.
    """

    name: str
    param: str
    candidates: list[float]
    chosen: list[float]
    scores: np.ndarray
    pred: np.ndarray
    fold: np.ndarray
    inner_curves: list[np.ndarray]
    curve_scores: np.ndarray | None = None
    curve_pred: np.ndarray | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def n_folds(self) -> int:
        return len(self.chosen)


def _present(y_true: np.ndarray, n_classes: int) -> np.ndarray:
    """Classes with at least one sample in ``y_true``: the only ones with a defined ROC curve."""
    return np.flatnonzero(np.bincount(y_true, minlength=n_classes))


def fold_metrics(y_true: np.ndarray, scores: np.ndarray, pred: np.ndarray,
                 n_classes: int) -> dict[str, float]:
    """Accuracy, macro/weighted F1, macro one-vs-rest AUC and top-1/3/5 accuracy.

    F1 averages count every class; the macro AUC averages the classes present in ``y_true``
    (a class's one-vs-rest AUC uses only its own score column, so leaving out an absent class
    changes nothing else).
    """
    labels = np.arange(n_classes)
    out = {"accuracy": metrics.accuracy(y_true, pred)}
    for average in ("macro", "weighted"):
        out[f"{average}_f1"] = metrics.precision_recall_f1(y_true, pred, labels,
                                                           average=average)[2]
    present = _present(y_true, n_classes)
    out["macro_auc"] = metrics.roc_auc_ovr(y_true, scores[:, present], present,
                                           average="macro")
    for k in (1, 3, 5):
        out[f"top{k}"] = metrics.top_k_accuracy(y_true, scores, min(k, n_classes), labels)
    return out


def class_metrics(y_true: np.ndarray, scores: np.ndarray, pred: np.ndarray,
                  n_classes: int) -> dict[str, np.ndarray]:
    """Per class: precision, recall, F1 and one-vs-rest AUC (arrays of length ``n_classes``)."""
    labels = np.arange(n_classes)
    precision, recall, f1, support = metrics.precision_recall_f1(y_true, pred, labels)
    auc = metrics.roc_auc_ovr(y_true, scores, labels, average=None)
    return {"precision": precision, "recall": recall, "f1": f1, "auc": auc, "support": support}


def _criterion(y_true: np.ndarray, pred: np.ndarray, n_classes: int) -> float:
    return metrics.precision_recall_f1(y_true, pred, np.arange(n_classes), average="macro")[2]


def inner_folds(y: np.ndarray, groups: np.ndarray, train: np.ndarray, n_inner: int,
                seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Inner ``(train, validation)`` folds of an outer training part, as dataset positions.

    Stratified by class and grouped like the outer folds; samples of classes too small for
    ``n_inner`` folds stay in every inner training part and are never validated.
    """
    plan = stratified_kfold(y[train], n_inner, seed, groups=groups[train])
    return [(train[a], train[b]) for a, b in plan.folds]


def _choose(values: np.ndarray) -> int:
    """Index of the best candidate; ties go to the first (smallest) one."""
    return int(np.flatnonzero(values == np.nanmax(values))[0])


@dataclass(frozen=True)
class OuterFold:
    """One outer fold as an independent task: choose the hyperparameter on inner folds of
    ``train``, then score ``test``."""

    fold: int
    train: np.ndarray
    test: np.ndarray
    settings: dict[str, Any]  # k_max/weighting or cs/class_weight, n_inner, seed, n_classes


def knn_outer_fold(task: OuterFold, data: tuple[np.ndarray, np.ndarray, np.ndarray]
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Inner criterion of every k, and the test rows' scores and predictions for every k
    (``data``: the all-by-all distances, labels, groups)."""
    dist, y, groups = data
    s = task.settings
    n, k_max, n_classes = len(y), s["k_max"], s["n_classes"]
    inner_pred = np.full((k_max, n), -1, dtype=np.int64)
    for itrain, ival in inner_folds(y, groups, task.train, s["n_inner"], s["seed"]):
        block = dist[np.ix_(ival, itrain)]
        _, inner_pred[:, ival] = knn.knn_all_k(block, y[itrain], n_classes, k_max,
                                               s["weighting"])
    tested = inner_pred[0] >= 0
    values = np.array([_criterion(y[tested], p[tested], n_classes) for p in inner_pred])
    block = dist[np.ix_(task.test, task.train)]
    scores, pred = knn.knn_all_k(block, y[task.train], n_classes, k_max, s["weighting"])
    return values, scores, pred


def _outer_folds(fn: Callable, plan: KFoldPlan, settings: dict[str, Any], shared: tuple,
                 name: str, desc: str, execution: Execution | None,
                 quiet: bool) -> tuple[list[OuterFold], list]:
    """Run ``fn`` on every outer fold of ``plan`` as an independent task; its tasks and outputs."""
    tasks = [OuterFold(f, train, test, settings) for f, (train, test) in enumerate(plan.folds)]
    outs = run_tasks(fn, tasks, shared=shared, execution=execution,
                     names=[f"{name} outer fold {t.fold}" for t in tasks], desc=desc, quiet=quiet)
    return tasks, outs


def knn_cv(dist: np.ndarray, y: np.ndarray, groups: np.ndarray, n_classes: int,
           plan: KFoldPlan, *, k_max: int = 15, n_inner: int = 5, seed: int = 0,
           weighting: knn.Weighting = "uniform", name: str = "",
           execution: Execution | None = None, quiet: bool = True) -> CvResult:
    """Nested CV of k-NN on a precomputed all-by-all ``dist`` matrix, k chosen in 1..k_max;
    outer folds run as independent tasks on ``execution``."""
    n = len(y)
    curve_scores = np.full((k_max, n, n_classes), np.nan)
    curve_pred = np.full((k_max, n), -1, dtype=np.int64)
    fold = np.full(n, -1, dtype=np.int64)
    settings = {"k_max": k_max, "n_inner": n_inner, "seed": seed, "weighting": weighting,
                "n_classes": n_classes}
    tasks, outs = _outer_folds(knn_outer_fold, plan, settings, (dist, y, groups), name,
                               f"k-NN {name} outer folds", execution, quiet)
    chosen, inner_curves = [], []
    for task, (values, scores, pred) in zip(tasks, outs, strict=True):
        chosen.append(_choose(values) + 1)
        inner_curves.append(values)
        curve_scores[:, task.test], curve_pred[:, task.test] = scores, pred
        fold[task.test] = task.fold
    rows = np.arange(n)
    k_of = np.zeros(n, dtype=np.int64)
    for f, k in enumerate(chosen):
        k_of[fold == f] = k - 1
    return CvResult(name=name, param="k", candidates=list(range(1, k_max + 1)), chosen=chosen,
                    scores=curve_scores[k_of, rows], pred=curve_pred[k_of, rows], fold=fold,
                    inner_curves=inner_curves, curve_scores=curve_scores,
                    curve_pred=curve_pred)


def _logreg_fit_predict(x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray,
                        n_classes: int, c: float, class_weight: str | None,
                        seed: int) -> np.ndarray:
    """Class probabilities (columns 0..n_classes-1) of a multinomial logistic regression."""
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression(C=c, class_weight=class_weight, max_iter=5000, random_state=seed)
    with threadpool_limits(1):  # one thread: faster than two on a shared, busy machine
        model.fit(x_train, y_train)
        proba = model.predict_proba(x_test)
    out = np.zeros((len(x_test), n_classes))
    out[:, model.classes_] = proba
    return out


def logreg_outer_fold(task: OuterFold, data: tuple[np.ndarray, np.ndarray, np.ndarray]
                      ) -> tuple[np.ndarray, np.ndarray]:
    """Inner criterion of every C, and the test rows' class probabilities at the chosen C
    (``data``: L2-normalized vectors, labels, groups)."""
    xn, y, groups = data
    s = task.settings
    n, n_classes = len(y), s["n_classes"]
    inner = inner_folds(y, groups, task.train, s["n_inner"], s["seed"])
    values = []
    for c in s["cs"]:
        inner_pred = np.full(n, -1, dtype=np.int64)
        for itrain, ival in inner:
            proba = _logreg_fit_predict(xn[itrain], y[itrain], xn[ival], n_classes, c,
                                        s["class_weight"], s["seed"])
            inner_pred[ival] = np.argmax(proba, axis=1)
        tested = inner_pred >= 0
        values.append(_criterion(y[tested], inner_pred[tested], n_classes))
    values = np.array(values)
    c = float(s["cs"][_choose(values)])
    scores = _logreg_fit_predict(xn[task.train], y[task.train], xn[task.test], n_classes, c,
                                 s["class_weight"], s["seed"])
    return values, scores


def logreg_cv(x: np.ndarray, y: np.ndarray, groups: np.ndarray, n_classes: int,
              plan: KFoldPlan, *, cs: Sequence[float] = (0.3, 1.0, 3.0, 10.0),
              n_inner: int = 5, seed: int = 0, class_weight: str | None = "balanced",
              name: str = "logistic regression", execution: Execution | None = None,
              quiet: bool = True) -> CvResult:
    """Nested CV of logistic regression on L2-normalized ``x``; C chosen among ``cs``; outer
    folds run as independent tasks on ``execution``."""
    xn = knn.l2_normalize(x)
    n = len(y)
    scores = np.full((n, n_classes), np.nan)
    fold = np.full(n, -1, dtype=np.int64)
    settings = {"cs": tuple(cs), "n_inner": n_inner, "seed": seed, "n_classes": n_classes,
                "class_weight": class_weight}
    tasks, outs = _outer_folds(logreg_outer_fold, plan, settings, (xn, y, groups), name,
                               f"{name} outer folds", execution, quiet)
    chosen, inner_curves = [], []
    for task, (values, fold_scores) in zip(tasks, outs, strict=True):
        chosen.append(float(cs[_choose(values)]))
        inner_curves.append(values)
        scores[task.test] = fold_scores
        fold[task.test] = task.fold
    pred = np.full(n, -1, dtype=np.int64)
    tested = fold >= 0
    pred[tested] = np.argmax(scores[tested], axis=1)
    return CvResult(name=name, param="C", candidates=[float(c) for c in cs], chosen=chosen,
                    scores=scores, pred=pred, fold=fold, inner_curves=inner_curves,
                    extra={"class_weight": class_weight})


def per_fold(result: CvResult, y: np.ndarray, n_classes: int) -> list[dict[str, float]]:
    """The fold metrics of each outer fold."""
    rows = []
    for f in range(result.n_folds):
        sel = result.fold == f
        rows.append(fold_metrics(y[sel], result.scores[sel], result.pred[sel], n_classes))
    return rows


def k_curve(result: CvResult, y: np.ndarray, n_classes: int) -> list[dict[str, Any]]:
    """For every k: outer-fold metrics averaged over folds (mean and std). Not for selection:
    these numbers use the test folds, so picking the best k from them would be optimistic."""
    assert result.curve_scores is not None and result.curve_pred is not None
    rows = []
    for i, k in enumerate(result.candidates):
        per = []
        for f in range(result.n_folds):
            sel = result.fold == f
            per.append(fold_metrics(y[sel], result.curve_scores[i][sel],
                                    result.curve_pred[i][sel], n_classes))
        row: dict[str, Any] = {"k": int(k)}
        for m in METRIC_NAMES:
            values = np.array([p[m] for p in per])
            row[m] = float(values.mean())
            row[f"{m}_std"] = float(values.std(ddof=1)) if len(values) > 1 else float("nan")
        row["inner_" + CRITERION] = float(np.mean([c[i] for c in result.inner_curves]))
        row["times_chosen"] = int(sum(1 for c in result.chosen if c == k))
        rows.append(row)
    return rows


def fold_class_metrics(result: CvResult, y: np.ndarray,
                       n_classes: int) -> dict[str, np.ndarray]:
    """Per-class metrics of each fold stacked: each value is ``(n_folds, n_classes)``."""
    per = []
    for f in range(result.n_folds):
        sel = result.fold == f
        per.append(class_metrics(y[sel], result.scores[sel], result.pred[sel], n_classes))
    return {m: np.stack([p[m] for p in per]).astype(float) for m in per[0]}


def fold_macro_rocs(result: CvResult, y: np.ndarray, n_classes: int,
                    grid: np.ndarray | None = None) -> metrics.MeanRoc:
    """The macro one-vs-rest ROC curve of each fold on a common grid (classes present in the
    fold), averaged over folds."""
    curves = []
    for f in range(result.n_folds):
        sel = result.fold == f
        present = _present(y[sel], n_classes)
        curves.append(metrics.macro_roc(y[sel], result.scores[sel][:, present], present, grid))
    return metrics.mean_roc(curves, grid)


def class_rocs(result: CvResult, y: np.ndarray, n_classes: int,
               grid: np.ndarray | None = None) -> list[metrics.MeanRoc | None]:
    """Per class, its one-vs-rest ROC curve averaged over the folds that test it (None if
    no fold does)."""
    out: list[metrics.MeanRoc | None] = []
    for c in range(n_classes):
        curves = []
        for f in range(result.n_folds):
            sel = result.fold == f
            if (y[sel] == c).any():
                curves.append(metrics.roc_curve(y[sel] == c, result.scores[sel][:, c]))
        out.append(metrics.mean_roc(curves, grid) if curves else None)
    return out


def vote_ties(result: CvResult) -> float:
    """Share of tested samples whose top score (at the chosen k) is shared by two classes."""
    tested = result.fold >= 0
    top2 = np.sort(result.scores[tested], axis=1)[:, -2:]
    return float(np.mean(top2[:, 0] == top2[:, 1]))


def paired_comparison(a: Sequence[dict[str, float]], b: Sequence[dict[str, float]],
                      names: Sequence[str] = METRIC_NAMES) -> list[dict[str, Any]]:
    """Per metric: fold-wise differences a - b, wins, mean difference, paired t-test and
    Wilcoxon signed-rank p-values (two-sided; NaN when every difference is zero)."""
    from scipy import stats

    rows = []
    for m in names:
        x = np.array([r[m] for r in a])
        z = np.array([r[m] for r in b])
        d = x - z
        if np.allclose(d, 0.0):
            t_p = w_p = float("nan")
        else:
            t_p = float(stats.ttest_rel(x, z).pvalue)
            w_p = float(stats.wilcoxon(x, z).pvalue)
        rows.append({"metric": m, "mean_a": float(x.mean()), "mean_b": float(z.mean()),
                     "mean_difference": float(d.mean()),
                     "std_difference": float(d.std(ddof=1)) if len(d) > 1 else float("nan"),
                     "a_wins": int((d > 0).sum()), "b_wins": int((d < 0).sum()),
                     "ties": int((d == 0).sum()), "t_test_p": t_p, "wilcoxon_p": w_p,
                     "differences": d.tolist()})
    return rows
