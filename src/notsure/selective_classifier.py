"""``SelectiveClassifier``: any scikit-learn classifier, cross-fitted, answering ``not_sure``
so that every class keeps its false positive rate at or below a target.

The rule is the main job's (``notsure selective``): K clones of the estimator are fitted on
stratified folds; each scores the fold it did not train on, and per-class Neyman-Pearson
thresholds are calibrated on those out-of-fold scores
(:class:`~notsure.decisions.NeymanPearsonThresholds`). The K fold models are the deployed
ensemble, decided by the main job's ``min-member`` rule (:mod:`notsure.decisions.rules`): the
candidate class is the arg-max of their mean log-score, answered only if *every* member's margin
for it clears its threshold, so the ensemble's false positives are a subset of each member's and
the certificate carries over.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from scipy.special import softmax
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold
from sklearn.utils.metaestimators import available_if
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, column_or_1d, validate_data

from notsure.constants import NOT_SURE, NOT_SURE_NAME
from notsure.decisions import (
    DEFAULT_DELTA,
    DEFAULT_TARGET_FPR,
    NeymanPearsonThresholds,
    ThresholdStrategy,
    deployed_scores,
    min_negatives,
)
from notsure.decisions.thresholds import json_labels
from notsure.errors import ConfigError, DataError
from notsure.io.atomic import atomic_path, atomic_write_json
from notsure.io.hashing import sha256_file
from notsure.io.run_folder import ESTIMATOR_FILE, RUN_FILES, THRESHOLDS_FILE

MODEL_FORMAT = RUN_FILES[ESTIMATOR_FILE].tag
#: Probabilities are clipped here before the log (a probability of 0 keeps a finite score).
_TINY = np.finfo(np.float64).tiny
#: A class a fold model never saw scores this far below the row's lowest score.
_UNSEEN_GAP = 1000.0


def _estimator_has(method: str):
    return lambda self: hasattr(self.estimator, method)


class SelectiveClassifier(ClassifierMixin, BaseEstimator):
    """Any scikit-learn classifier, cross-fitted, that answers ``not_sure`` where it must.

    A classifier that abstains where it must so that each class's false positive rate (FPR)
    stays <= ``target_fpr``, except with probability at most ``delta`` over the calibration
    data. ``fit(X, y)`` cross-fits ``cv`` clones of ``estimator``; each scores the fold it did
    not train on, and per-class Neyman-Pearson thresholds are calibrated on those out-of-fold
    scores, so no extra calibration set is needed and the guarantee rests on scores the
    members did not train on. ``predict(X)`` answers a class only where the fold models agree
    with enough margin, and the not-sure marker elsewhere.

    Parameters
    ----------
    estimator : classifier object
        The scikit-learn classifier to cross-fit (cloned, never fitted itself). It must have
        ``predict_proba`` (scores are then its log-probabilities) or ``decision_function``
        (scores are then its values); ``fit`` raises ``ConfigError`` otherwise. A
        :class:`~notsure.models.cnn_classifier.CNNClassifier` makes this the main job's model.
    target_fpr : float, default=0.00015
        The highest false positive rate allowed for every class, in (0, 1)
        (:data:`~notsure.decisions.DEFAULT_TARGET_FPR`, the customer's requirement).
    delta : float, default=0.05
        The probability, over the draw of the calibration data, that a class's FPR may exceed
        ``target_fpr`` anyway, in (0, 1) (:data:`~notsure.decisions.DEFAULT_DELTA`).
    cv : int, default=5
        Number of cross-fitting folds (>= 2): the number of members, each trained on
        ``(cv - 1) / cv`` of the data. Folds are ``StratifiedKFold`` with shuffling by
        ``random_state``; ``fit(X, y, groups)`` keeps groups whole (``StratifiedGroupKFold``).
    random_state : int or None, default=None
        Seeds the shuffling of the folds (the estimator's own randomness follows its own
        settings).
    not_sure : object, default=None
        What ``predict`` writes for an abstention; choose a value of the labels' type. None:
        :data:`notsure.NOT_SURE` (-1) when the labels are numbers and
        :data:`notsure.NOT_SURE_NAME` (``"not_sure"``) otherwise. A class label equal to the
        marker (e.g. labels -1 and 1) is refused at ``fit``: pass another ``not_sure``.

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
        The class labels seen in ``fit``, sorted.
    not_sure_ : object
        The not-sure marker ``predict`` writes (``not_sure``, or the default above).
    response_ : str
        ``"predict_proba"`` or ``"decision_function"``: the method the members are scored with.
    estimators_ : list of classifier objects
        The ``cv`` fitted members (the fold models), the deployed ensemble.
    calibrator_ : NeymanPearsonThresholds
        The thresholds calibrated on the members' out-of-fold scores.
    thresholds_ : ndarray of shape (n_classes,)
        Per-class thresholds on the ensemble margin.
    certificates_ : list of ClassCertificate
        ``certificates_[c]`` states class ``classes_[c]``'s guarantee, or why it has none
        (:meth:`certificate_texts` in words).
    n_features_in_ : int
        Number of features seen in ``fit``.
    feature_names_in_ : ndarray of shape (n_features_in_,)
        Names of the features seen in ``fit``; only when ``X`` has string column names.

    See Also
    --------
    NeymanPearsonThresholds : The same certified thresholds for scores of a model trained
        elsewhere.
    CNNClassifier : The project's CNN as a scikit-learn classifier, to wrap in this one.

    Notes
    -----
    The decision is the main job's ``min-member`` rule (:mod:`notsure.decisions.rules`): the
    candidate class is the arg-max of the members' mean log-score, answered only if *every*
    member's margin for it clears its threshold, so the ensemble's false positives are a subset
    of each member's and the certificate carries over.

    ``groups`` (e.g. subject ids) matters when samples of one group are alike: scoring one
    with a member that trained on another would make the calibration scores optimistic.
    A class with fewer than ``cv`` samples is missing from some members' training data; those
    members never vote for it, so it is answered less often, never more.
    ``score(X, y)`` counts ``not_sure`` as wrong. :meth:`save` and :meth:`load` never pickle.

    Examples
    --------
    >>> from sklearn.datasets import make_classification
    >>> from sklearn.linear_model import LogisticRegression
    >>> from sklearn.model_selection import train_test_split
    >>> from notsure import SelectiveClassifier
    >>> X, y = make_classification(n_samples=600, n_features=8, n_informative=5, n_classes=3,
    ...                            random_state=0)
    >>> X_train, X_test, y_train, y_test = train_test_split(X, y, random_state=0)
    >>> clf = SelectiveClassifier(LogisticRegression(), target_fpr=0.05, delta=0.1, cv=5,
    ...                           random_state=0).fit(X_train, y_train)
    >>> clf.classes_, clf.not_sure_, len(clf.estimators_)
    (array([0, 1, 2]), -1, 5)
    >>> clf.predict(X_test[:8])
    array([-1,  0, -1, -1,  1, -1, -1,  2])
    >>> pred = clf.predict(X_test)
    >>> answered = pred != clf.not_sure_
    >>> print(f"coverage {answered.mean():.2f}")
    coverage 0.47
    >>> bool((pred[answered] == y_test[answered]).mean() > clf.score(X_test, y_test))
    True
    """

    def __init__(self, estimator: Any, *, target_fpr: float = DEFAULT_TARGET_FPR,
                 delta: float = DEFAULT_DELTA, cv: int = 5, random_state: int | None = None,
                 not_sure: Any = None) -> None:
        self.estimator = estimator
        self.target_fpr = target_fpr
        self.delta = delta
        self.cv = cv
        self.random_state = random_state
        self.not_sure = not_sure

    def fit(self, X: Any, y: Any, groups: Any = None) -> SelectiveClassifier:
        """Cross-fit the members and calibrate the thresholds on their out-of-fold scores.

        ``groups`` (e.g. subject ids) keeps each group's samples in one fold
        (``StratifiedGroupKFold``): samples of one group are alike, so scoring one with a member
        that trained on another would make the calibration scores optimistic.
        """
        min_negatives(self.target_fpr, self.delta)  # ConfigError naming a rate out of range
        if isinstance(self.cv, bool) or not isinstance(self.cv, (int, np.integer)) \
                or self.cv < 2:
            raise ConfigError(f"cv must be an int >= 2 (cross-fitting folds), got {self.cv!r}")
        if not (hasattr(self.estimator, "predict_proba")
                or hasattr(self.estimator, "decision_function")):
            raise ConfigError("estimator must have predict_proba or decision_function, "
                              f"{type(self.estimator).__name__} has neither")
        X, y = validate_data(self, X, y, allow_nd=True, dtype=None, ensure_all_finite=False)
        y = column_or_1d(y)
        check_classification_targets(y)
        self.classes_, y_idx = np.unique(y, return_inverse=True)
        if len(self.classes_) < 2:
            raise DataError(f"y: one class only ({self.classes_.tolist()}); a classifier needs "
                            "at least two classes")
        self.not_sure_ = _marker(self.not_sure, self.classes_)
        if any(c == self.not_sure_ for c in self.classes_.tolist()):
            raise DataError(f"y: the class label {self.not_sure_!r} is how predict writes "
                            "not_sure; pass not_sure= a value that is not a class label")
        self.response_ = ("predict_proba" if hasattr(self.estimator, "predict_proba")
                          else "decision_function")
        if groups is None:
            folds = StratifiedKFold(self.cv, shuffle=True, random_state=self.random_state)
        else:
            groups = column_or_1d(groups)
            if len(groups) != len(y_idx):
                raise DataError(f"groups: {len(groups)} values for {len(y_idx)} samples")
            folds = StratifiedGroupKFold(self.cv, shuffle=True, random_state=self.random_state)
        members, oof = [], np.empty((len(y_idx), len(self.classes_)))
        for train, held in folds.split(np.zeros(len(y_idx)), y_idx, groups):
            model = clone(self.estimator).fit(X[train], y_idx[train])
            oof[held] = self._scores(model, X[held])
            members.append(model)
        self.estimators_ = members
        self.calibrator_ = NeymanPearsonThresholds(self.target_fpr, self.delta).calibrate(
            oof, y, kind="logits", classes=self.classes_)
        return self

    @property
    def thresholds_(self) -> np.ndarray:
        """Per-class thresholds on the ensemble margin."""
        check_is_fitted(self, "calibrator_")
        return self.calibrator_.thresholds_

    @property
    def certificates_(self) -> list:
        """Per class (in ``classes_`` order): the threshold's guarantee, or why it has none."""
        check_is_fitted(self, "calibrator_")
        return self.calibrator_.certificates_

    def certificate_texts(self) -> list[str]:
        """One sentence per class: its guarantee, or why it has none."""
        check_is_fitted(self, "calibrator_")
        return self.calibrator_.certificate_texts()

    # -- scoring ------------------------------------------------------------------------
    def _scores(self, model: Any, X: Any) -> np.ndarray:
        """One member's ``(n, n_classes)`` log-scores, columns in ``classes_`` order."""
        if self.response_ == "predict_proba":
            raw = np.log(np.clip(np.asarray(model.predict_proba(X), dtype=np.float64), _TINY, 1))
        else:
            raw = np.asarray(model.decision_function(X), dtype=np.float64)
            if raw.ndim == 1:  # binary: d = s_1 - s_0
                raw = np.column_stack([-raw / 2, raw / 2])
        seen = np.asarray(model.classes_)
        if len(seen) == len(self.classes_):
            return raw
        out = np.repeat(raw.min(axis=1, keepdims=True) - _UNSEEN_GAP, len(self.classes_), 1)
        out[:, seen] = raw
        return out

    def _member_scores(self, X: Any) -> np.ndarray:
        check_is_fitted(self, "estimators_")
        X = validate_data(self, X, reset=False, allow_nd=True, dtype=None,
                          ensure_all_finite=False)
        return np.stack([self._scores(m, X) for m in self.estimators_])

    def _decide(self, X: Any) -> tuple[np.ndarray, np.ndarray]:
        """(class index or NOT_SURE, ensemble mean log-scores) for every row of ``X``."""
        members = self._member_scores(X)
        mean, margins = deployed_scores("min-member", members, n_folds=len(members))
        return ThresholdStrategy(self.thresholds_).decide(margins, mean), mean

    def predict_index(self, X: Any) -> np.ndarray:
        """Column of ``classes_`` answered for every row, or :data:`notsure.NOT_SURE`."""
        return self._decide(X)[0]

    def predict(self, X: Any) -> np.ndarray:
        """A label of ``classes_`` for every row, or ``not_sure_`` where the model abstains."""
        index = self.predict_index(X)
        labels = self.classes_[np.maximum(index, 0)]
        if self.classes_.dtype.kind not in "iufU":
            labels = labels.astype(object)
        return np.where(index == NOT_SURE, self.not_sure_, labels)

    @available_if(_estimator_has("predict_proba"))
    def predict_proba(self, X: Any) -> np.ndarray:
        """Softmax of the members' mean log-probability (their normalised geometric mean); its
        arg-max is the candidate class ``predict`` answers or abstains on."""
        return softmax(self._decide(X)[1], axis=1)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        inner = getattr(self.estimator, "__sklearn_tags__", None)
        if inner is not None:
            tags.input_tags.allow_nan = inner().input_tags.allow_nan
        return tags

    # -- files (no unpickling) ----------------------------------------------------------
    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the fitted classifier into folder ``path``: ``selective.json`` (settings,
        classes, members), ``thresholds.json`` and one file per member: our CNNs as safetensors
        + JSON, scikit-learn models with skops (``pip install skops``), else refused."""
        check_is_fitted(self, "estimators_")
        folder = Path(path)
        doc = {"format": MODEL_FORMAT, "classes": json_labels(self.classes_),
               "params": {k: getattr(self, k) for k in
                          ("target_fpr", "delta", "cv", "random_state", "not_sure")},
               "response": self.response_, "n_features_in": self.n_features_in_,
               "estimator": _save_model(self.estimator, folder, "estimator"),
               "members": [_save_model(m, folder, f"members/fold{k}")
                           for k, m in enumerate(self.estimators_)]}
        self.calibrator_.save(folder / THRESHOLDS_FILE)
        # last: a complete file names complete parts
        atomic_write_json(folder / ESTIMATOR_FILE, doc)
        return folder

    @classmethod
    def load(cls, path: str | os.PathLike[str], *, trusted: Sequence[str] = ()
             ) -> SelectiveClassifier:
        """Read a classifier written by :meth:`save`. Never unpickles: CNNs are rebuilt from
        safetensors + JSON; skops files load only if every type in them is trusted by skops'
        defaults or listed in ``trusted``."""
        folder = Path(path)
        file = folder / ESTIMATOR_FILE
        try:
            doc = json.loads(file.read_text(encoding="utf-8"))
            if doc.get("format") != MODEL_FORMAT:
                raise ValueError(f"format tag is not {MODEL_FORMAT!r}")
            clf = cls(None, **doc["params"])
            classes = np.asarray(doc["classes"])
            response, members = doc["response"], list(doc["members"])
            n_features = int(doc["n_features_in"])
        except FileNotFoundError:
            raise ConfigError(f"{file}: not found; give the folder SelectiveClassifier.save "
                              "wrote") from None
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ConfigError(f"{file}: not a saved SelectiveClassifier ({exc})") from None
        if response not in ("predict_proba", "decision_function") or not members:
            raise ConfigError(f"{file}: response {response!r} or members {members!r} invalid")
        clf.estimator = _load_member(folder, doc["estimator"], trusted)
        clf.estimators_ = [_load_member(folder, m, trusted) for m in members]
        clf.calibrator_ = NeymanPearsonThresholds.load(folder / THRESHOLDS_FILE)
        if len(clf.calibrator_.thresholds_) != len(classes):
            raise ConfigError(f"{folder / THRESHOLDS_FILE}: {len(clf.calibrator_.thresholds_)} "
                              f"thresholds but {file.name} names {len(classes)} classes")
        clf.classes_, clf.response_, clf.n_features_in_ = classes, response, n_features
        clf.not_sure_ = _marker(clf.not_sure, classes)
        return clf


def _marker(not_sure: Any, classes: np.ndarray) -> Any:
    """What ``predict`` writes for an abstention: ``not_sure``, else by the labels' type."""
    if not_sure is not None:
        return not_sure
    return NOT_SURE if classes.dtype.kind in "iuf" else NOT_SURE_NAME


def _skops():
    try:
        import skops.io
    except ImportError:
        raise ConfigError("saving or loading scikit-learn models needs skops (pip install "
                          "skops); notsure never pickles them") from None
    return skops.io


def _save_model(model: Any, folder: Path, name: str) -> dict:
    """Write one model beside ``selective.json``; what that file records about it."""
    from notsure.models.cnn_classifier import CNNClassifier

    if isinstance(model, CNNClassifier):
        if not hasattr(model, "model_"):  # the unfitted template: its settings suffice
            return {"kind": "cnn_params", "params": model.get_params()}
        model.save(folder / name)
        return {"kind": "cnn", "file": name}
    file = folder / f"{name}.skops"
    sio = _skops()
    with atomic_path(file) as tmp:
        sio.dump(model, tmp)
    return {"kind": "skops", "file": f"{name}.skops",
            "sha256": sha256_file(file)}


def _load_member(folder: Path, member: dict, trusted: Sequence[str]) -> Any:
    """One saved model: a CNN from safetensors + JSON, or a skops file whose types are all
    trusted (skops' defaults or ``trusted``); ConfigError naming the file otherwise."""
    if not isinstance(member, dict) or member.get("kind") not in ("cnn", "cnn_params", "skops"):
        raise ConfigError(f"{folder / ESTIMATOR_FILE}: member {member!r} is not a saved model")
    if member["kind"] != "skops":
        from notsure.models.cnn_classifier import CNNClassifier

        if member["kind"] == "cnn_params":
            return CNNClassifier(**member.get("params", {}))
        return CNNClassifier.load(folder / str(member.get("file")))
    file = folder / str(member.get("file"))
    sio = _skops()
    if not file.is_file():
        raise ConfigError(f"{file}: saved model not found")
    if sha256_file(file) != member.get("sha256"):
        raise ConfigError(f"{file}: SHA-256 differs from {ESTIMATOR_FILE}: the file was altered")
    untrusted = sorted(set(sio.get_untrusted_types(file=file)) - set(trusted))
    if untrusted:
        raise ConfigError(f"{file}: holds types skops does not trust: {', '.join(untrusted)}; "
                          "load only if you trust its source, passing them as trusted=[...]")
    return sio.load(file, trusted=list(trusted) or None)
