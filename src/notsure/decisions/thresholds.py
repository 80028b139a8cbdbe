"""Certified per-class thresholds for any model's scores: calibrate, predict, save, load.

:class:`NeymanPearsonThresholds` wraps :func:`~notsure.decisions.choose_thresholds` (the
threshold rule and its guarantee), :func:`~notsure.decisions.logit_margins` (the score it
thresholds) and :class:`~notsure.decisions.ThresholdStrategy` (the decision rule), so a model
that was not trained here gets the same certified ``not_sure`` as ``notsure selective``.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Hashable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from notsure.constants import NOT_SURE
from notsure.decisions.neyman_pearson import (
    DEFAULT_DELTA,
    DEFAULT_TARGET_FPR,
    ClassCertificate,
    choose_thresholds,
    min_negatives,
)
from notsure.decisions.scores import logit_margins
from notsure.decisions.strategy import ThresholdStrategy
from notsure.errors import ConfigError, DataError
from notsure.io.atomic import atomic_write_json, to_jsonable
from notsure.io.run_folder import RUN_FILES, THRESHOLDS_FILE

#: The format tag of a saved thresholds file.
THRESHOLDS_FORMAT = RUN_FILES[THRESHOLDS_FILE].tag
#: What ``calibrate(kind=...)`` accepts; the file's name in a folder is
#: :data:`notsure.io.run_folder.THRESHOLDS_FILE`.
SCORE_KINDS = ("auto", "logits", "probabilities")
#: Probabilities are clipped here before the log, so a probability of 0 has a finite margin.
_TINY = np.finfo(np.float64).tiny


def check_scores(scores: np.ndarray, name: str = "scores") -> np.ndarray:
    """``scores`` as float64 ``(n_samples, n_classes >= 2)``; ConfigError naming ``name`` and
    the first bad cell otherwise."""
    s = np.asarray(scores)
    if s.ndim != 2 or s.shape[1] < 2 or s.dtype.kind not in "iuf":
        raise ConfigError(f"{name}: expected a numeric array of shape (n_samples, n_classes) "
                          f"with n_classes >= 2, got {s.dtype} {s.shape}")
    s = s.astype(np.float64)
    bad = np.argwhere(~np.isfinite(s))
    if bad.size:
        raise ConfigError(f"{name}: row {bad[0][0]}, column {bad[0][1]} is {s[tuple(bad[0])]}; "
                          "scores must be finite")
    return s


def score_kind(scores: np.ndarray) -> str:
    """``"probabilities"`` if every row lies in [0, 1] and sums to 1 (within 1e-4), else
    ``"logits"``: what ``kind="auto"`` takes the scores to be."""
    s = check_scores(scores)
    in_range = bool(np.all((s >= 0) & (s <= 1)))
    return "probabilities" if in_range and np.allclose(s.sum(axis=1), 1.0, atol=1e-4) \
        else "logits"


def score_margins(scores: np.ndarray, kind: str, name: str = "scores") -> np.ndarray:
    """Margins ``s_c - max_{j != c} s_j`` of logits, or of log-probabilities for
    ``kind="probabilities"``; ConfigError naming ``name`` for a wrong shape, NaN or inf."""
    s = check_scores(scores, name)
    if kind == "probabilities":
        if s.min() < 0 or s.max() > 1:
            raise ConfigError(f"{name}: probabilities must lie in [0, 1], found "
                              f"{s.min():.6g}..{s.max():.6g}; use kind='logits' for other scores")
        s = np.log(np.clip(s, _TINY, 1.0))
    elif kind != "logits":
        raise ConfigError(f"kind must be one of {SCORE_KINDS}, got {kind!r}")
    return logit_margins(s)


def certificate_text(cert: ClassCertificate, name: Any, target_fpr: float, delta: float) -> str:
    """One sentence: what class ``name``'s threshold guarantees, or why it guarantees less."""
    name = plain_label(name)  # 'cat', not np.str_('cat')
    if cert.meaning != "rate" and cert.test_pass_probability is not None:
        return (f"class {name!r}: a test set with {cert.test_negatives:,} negatives shows FPR <= "
                f"{target_fpr:g} with probability {cert.test_pass_probability:.4g}, from "
                f"{cert.n_negatives:,} calibration negatives"
                + ("" if cert.certified else f" (short of the {cert.meaning} target)"))
    if cert.certified:
        return (f"class {name!r}: P(FPR > {target_fpr:g}) <= {cert.violation_bound:.4g} "
                f"(<= delta {delta:g}) from {cert.n_negatives:,} calibration negatives")
    return (f"class {name!r}: not certified: {cert.n_negatives:,} calibration negatives, but "
            f"target FPR {target_fpr:g} at delta {delta:g} needs at least "
            f"{min_negatives(target_fpr, delta):,}; these certify FPR <= "
            f"{cert.certifiable_fpr:.3g} (threshold above every negative)")


def plain_label(label: Any) -> Any:
    """A numpy scalar label as the Python value it holds (np.str_('a') -> 'a'); others as is."""
    return label.item() if isinstance(label, np.generic) else label


def json_labels(classes: Sequence[Hashable], name: str = "classes_") -> list:
    """Class labels as JSON values (str or int); ConfigError for labels JSON cannot hold."""
    labels = [plain_label(c) for c in classes]
    if not all(isinstance(c, (str, int)) and not isinstance(c, bool) for c in labels):
        raise ConfigError(f"{name}: only str or int class labels can be saved, got "
                          f"{sorted({type(c).__name__ for c in labels})}")
    return labels


def _encode_labels(y: np.ndarray, classes: Sequence[Hashable] | None, n_classes: int
                   ) -> np.ndarray:
    """``y`` as column indices: indices 0..n_classes-1, or labels found in ``classes``."""
    y = np.asarray(y)
    if y.ndim != 1:
        raise DataError(f"y: expected one label per row, got shape {y.shape}")
    if classes is None:
        if y.dtype.kind not in "iu" and not (y.dtype.kind == "f" and np.all(y == np.round(y))):
            raise DataError("y: without classes=, labels must be column indices 0..n_classes-1, "
                            f"got {y.dtype} values")
        if y.size and (y.min() < 0 or y.max() >= n_classes):
            bad = int(np.flatnonzero((y < 0) | (y >= n_classes))[0])
            raise DataError(f"y: row {bad} has label {y[bad]}, outside the score columns "
                            f"0..{n_classes - 1}")
        return y.astype(np.int64)
    index = {c: i for i, c in enumerate(classes)}
    out = np.empty(len(y), dtype=np.int64)
    for i, label in enumerate(y.tolist()):
        if label not in index:
            raise DataError(f"y: row {i} has label {label!r}, which is not among classes "
                            f"{list(classes)}")
        out[i] = index[label]
    return out


class NeymanPearsonThresholds:
    """Certified per-class thresholds for any model's held-out scores.

    Per-class thresholds that keep each class's false positive rate at or below
    ``target_fpr``, except with probability at most ``delta`` over the calibration draw.
    ``calibrate(scores, y)`` takes an ``(n, n_classes)`` array of any model's out-of-sample
    scores and their true classes; ``predict(scores)`` then answers the arg-max class when its
    margin is above its threshold, else :data:`notsure.NOT_SURE`. A model that was not trained
    here thus gets the same certified ``not_sure`` as ``notsure selective``, and the thresholds
    are saved with their certificates (:meth:`save`, :meth:`load`).

    Parameters
    ----------
    target_fpr : float, default=0.00015
        The highest false positive rate allowed for every class, in (0, 1)
        (:data:`~notsure.decisions.DEFAULT_TARGET_FPR`).
    delta : float, default=0.05
        The probability, over the draw of the calibration data, that a class's FPR may exceed
        ``target_fpr`` anyway, in (0, 1) (:data:`~notsure.decisions.DEFAULT_DELTA`).
    strict : bool, default=False
        A class with too few calibration negatives for the target (:func:`min_negatives`)
        gets the most conservative threshold the data allow and a certificate saying what it
        does certify; with ``strict=True`` :meth:`calibrate` raises ``ConfigError`` instead.

    Attributes
    ----------
    kind_ : str
        ``"logits"`` or ``"probabilities"``: what the scores were taken to be (``kind="auto"``
        decides with :func:`score_kind`); :meth:`predict` reads new scores the same way.
    classes_ : tuple
        The class of every score column: ``classes`` given to :meth:`calibrate`, else the
        column indices ``0..n_classes-1``.
    thresholds_ : ndarray of shape (n_classes,)
        Every class's threshold on its margin.
    certificates_ : list of ClassCertificate
        Per class: the threshold's guarantee, or why it has none (:meth:`certificate_texts`
        in words).

    See Also
    --------
    SelectiveClassifier : Cross-fits a scikit-learn classifier and calibrates these
        thresholds on its out-of-fold scores.
    choose_thresholds : The threshold rule and its guarantee.
    ThresholdStrategy : The decision rule applied by :meth:`predict`.

    Notes
    -----
    Scores are logits (any real scores where larger means more likely) or probabilities.
    Either way a class's calibrated score is its margin, ``s_c - max_{j != c} s_j``.
    Probabilities are clipped at the smallest positive float and their logarithms taken:
    log-probabilities are logits up to a per-row constant, so their margins equal the logit
    margins (and, unlike probabilities, do not saturate near 1).

    The guarantee holds for new samples drawn like the calibration ones and scored by the same
    model; the calibration scores must come from a model that did not train on those samples.
    A saved file that was edited no longer loads: its certificates would no longer hold.

    Examples
    --------
    >>> import numpy as np
    >>> from notsure import NeymanPearsonThresholds
    >>> rng = np.random.default_rng(0)
    >>> def held_out_scores(n):
    ...     y = rng.integers(0, 3, size=n)
    ...     scores = rng.normal(size=(n, 3))
    ...     scores[np.arange(n), y] += 2.5  # the true class scores higher
    ...     return scores, y
    >>> scores, y = held_out_scores(3000)
    >>> names = ["cat", "dog", "fox"]
    >>> thresholds = NeymanPearsonThresholds(target_fpr=0.01, delta=0.05).calibrate(
    ...     scores, np.array(names)[y], classes=names)
    >>> thresholds.kind_, thresholds.classes_
    ('logits', ('cat', 'dog', 'fox'))
    >>> thresholds.thresholds_.round(2)
    array([1.12, 1.06, 0.82])
    >>> print(thresholds.certificate_texts()[0])
    class 'cat': P(FPR > 0.01) <= 0.03217 (<= delta 0.05) from 2,038 calibration negatives
    >>> new_scores, new_y = held_out_scores(20000)
    >>> pred = thresholds.predict(new_scores)
    >>> thresholds.labels_of(pred[:6])
    ['not_sure', 'cat', 'fox', 'not_sure', 'not_sure', 'fox']
    >>> fpr = [np.mean(pred[new_y != c] == c) for c in range(3)]
    >>> print(np.round(fpr, 3), f"coverage {np.mean(pred != -1):.2f}")
    [0.004 0.005 0.007] coverage 0.78
    """

    def __init__(self, target_fpr: float = DEFAULT_TARGET_FPR, delta: float = DEFAULT_DELTA,
                 strict: bool = False) -> None:
        self.target_fpr = target_fpr
        self.delta = delta
        self.strict = strict

    def calibrate(self, scores: np.ndarray, y: np.ndarray, *, kind: str = "auto",
                  classes: Sequence[Hashable] | None = None) -> NeymanPearsonThresholds:
        """Choose every class's threshold from calibration ``scores`` and true classes ``y``.

        ``y`` holds column indices, or labels of ``classes`` (one per column, in column order).
        ``kind`` says what the scores are; ``"auto"`` decides with :func:`score_kind` and the
        decision is kept for :meth:`predict`. Returns ``self``.
        """
        if kind not in SCORE_KINDS:
            raise ConfigError(f"kind must be one of {SCORE_KINDS}, got {kind!r}")
        min_negatives(self.target_fpr, self.delta)  # ConfigError naming a rate out of range
        s = check_scores(scores)
        if classes is not None:
            classes = tuple(classes)
            if len(classes) != s.shape[1] or len(set(classes)) != len(classes):
                raise ConfigError(f"classes: expected {s.shape[1]} distinct names (one per score "
                                  f"column), got {len(classes)} ({len(set(classes))} distinct)")
        y_idx = _encode_labels(y, classes, s.shape[1])
        if len(y_idx) != len(s):
            raise DataError(f"y has {len(y_idx)} labels but scores has {len(s)} rows; give one "
                            "label per row")
        resolved = score_kind(s) if kind == "auto" else kind
        margins = score_margins(s, resolved)
        only = np.unique(y_idx)
        if len(only) < 2:
            raise DataError(f"y: every calibration sample is of class {int(only[0])} or there "
                            "are none; calibration needs samples of at least two classes")
        certificates = choose_thresholds(margins, y_idx, self.target_fpr, self.delta)
        names = classes if classes is not None else tuple(range(s.shape[1]))
        if self.strict:
            weak = [c for c in certificates if not c.certified]
            if weak:
                raise ConfigError(
                    "strict=True: " + certificate_text(weak[0], names[weak[0].label],
                                                       self.target_fpr, self.delta)
                    + (f" ({len(weak) - 1} more classes alike)" if len(weak) > 1 else ""))
        self.kind_ = resolved
        self.classes_ = names
        self.certificates_ = certificates
        self.thresholds_ = np.array([c.threshold for c in certificates], dtype=np.float64)
        return self

    @classmethod
    def from_certificates(cls, certificates: Sequence[ClassCertificate], target_fpr: float,
                          delta: float, classes: Sequence[Hashable], kind: str = "logits"
                          ) -> NeymanPearsonThresholds:
        """Thresholds already chosen elsewhere (the selective job's, on its ensembles' logit
        margins), so one file format serves ``notsure decide`` for every run."""
        self = cls(target_fpr, delta)
        self.kind_, self.classes_ = kind, tuple(classes)
        self.certificates_ = list(certificates)
        self.thresholds_ = np.array([c.threshold for c in certificates], dtype=np.float64)
        return self

    # -- applying them ------------------------------------------------------------------
    def _check_calibrated(self) -> None:
        if not hasattr(self, "thresholds_"):
            raise ConfigError("these thresholds are not calibrated yet; call calibrate() or "
                              "NeymanPearsonThresholds.load() first")

    def margins(self, scores: np.ndarray) -> np.ndarray:
        """The calibrated score of every class: the margin of ``scores`` as calibrated."""
        self._check_calibrated()
        m = score_margins(scores, self.kind_)
        if m.shape[1] != len(self.thresholds_):
            raise ConfigError(f"scores: {m.shape[1]} columns, but the thresholds were "
                              f"calibrated for {len(self.thresholds_)} classes")
        return m

    def predict(self, scores: np.ndarray) -> np.ndarray:
        """Class indices (columns of ``scores``), or :data:`notsure.NOT_SURE` where the
        arg-max class's margin does not clear its threshold."""
        return ThresholdStrategy(self.thresholds_).decide(self.margins(scores))

    def confidence(self, scores: np.ndarray) -> np.ndarray:
        """How far the arg-max class's margin is above its threshold (> 0: answered)."""
        return ThresholdStrategy(self.thresholds_).confidence(self.margins(scores))

    def labels_of(self, prediction: np.ndarray, not_sure: Any = "not_sure") -> list:
        """Class names of predicted indices, ``not_sure`` for :data:`notsure.NOT_SURE`."""
        self._check_calibrated()
        return [not_sure if p == NOT_SURE else self.classes_[p] for p in np.asarray(prediction)]

    def certificate_texts(self) -> list[str]:
        """One sentence per class: its guarantee, or why it has none."""
        self._check_calibrated()
        return [certificate_text(c, self.classes_[c.label], self.target_fpr, self.delta)
                for c in self.certificates_]

    # -- files --------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """What :meth:`save` writes: settings, score kind, classes, thresholds, certificates."""
        self._check_calibrated()
        classes = json_labels(self.classes_, "classes")
        body = to_jsonable({
            "target_fpr": float(self.target_fpr), "delta": float(self.delta),
            "strict": bool(self.strict), "kind": self.kind_, "classes": classes,
            "thresholds": self.thresholds_.tolist(),
            "certificates": [c.as_dict() for c in self.certificates_],
        })
        return {"format": THRESHOLDS_FORMAT, **body, "sha256": _digest(body)}

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the thresholds as JSON (atomically); :meth:`load` reads them back."""
        return atomic_write_json(path, self.to_dict())

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> NeymanPearsonThresholds:
        """Read a file written by :meth:`save`; ConfigError naming the file if it is not one,
        or was edited after it was written (the certificates would no longer hold)."""
        path = Path(path)
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError as exc:
            raise ConfigError(f"{path}: thresholds file not found") from exc
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ConfigError(f"{path}: not a thresholds file (unreadable JSON: {exc})") from exc
        try:
            return cls.from_dict(doc)
        except (ConfigError, KeyError, TypeError, ValueError) as exc:
            raise ConfigError(f"{path}: not a valid thresholds file ({exc})") from None

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> NeymanPearsonThresholds:
        """Inverse of :meth:`to_dict`, checking the format tag, checksum and consistency."""
        if not isinstance(doc, dict) or doc.get("format") != THRESHOLDS_FORMAT:
            raise ValueError(f"format tag is not {THRESHOLDS_FORMAT!r}")
        body = {k: v for k, v in doc.items() if k not in ("format", "sha256")}
        if doc.get("sha256") != _digest(body):
            raise ValueError("its content does not match its sha256: it was edited after it was "
                             "written; calibrate again instead")
        self = cls(float(body["target_fpr"]), float(body["delta"]), bool(body["strict"]))
        min_negatives(self.target_fpr, self.delta)
        thresholds = np.asarray(body["thresholds"], dtype=np.float64)
        classes = tuple(body["classes"])
        certs = [ClassCertificate(**{
                k: math.nan if v is None and k != "test_pass_probability" else v
                for k, v in c.items()})
                 for c in body["certificates"]]
        if thresholds.ndim != 1 or len(thresholds) < 2 or not np.all(np.isfinite(thresholds)):
            raise ValueError("thresholds must be a list of at least 2 finite numbers")
        if len(classes) != len(thresholds) or len(certs) != len(thresholds):
            raise ValueError(f"{len(thresholds)} thresholds, {len(classes)} classes and "
                             f"{len(certs)} certificates: the counts must agree")
        if any(c.label != i or c.threshold != t for i, (c, t) in
               enumerate(zip(certs, thresholds, strict=True))):
            raise ValueError("certificates do not match the thresholds")
        if body["kind"] not in ("logits", "probabilities"):
            raise ValueError(f"kind {body['kind']!r} is not 'logits' or 'probabilities'")
        self.kind_, self.classes_ = body["kind"], classes
        self.certificates_, self.thresholds_ = certs, thresholds
        return self


def _digest(body: dict[str, Any]) -> str:
    """SHA-256 of the canonical JSON of ``body``: detects edits to a saved file."""
    return hashlib.sha256(json.dumps(body, sort_keys=True, allow_nan=False).encode()).hexdigest()
