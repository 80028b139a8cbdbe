"""The project's CNN presets as a scikit-learn classifier on ``(n, H, W)`` images.

``CNNClassifier`` trains :class:`~notsure.models.cnn.CNNConfig`'s preset with
:func:`~notsure.models.train.train_cnn` and scores with
:func:`~notsure.models.inference.predict_logits`, so ``SelectiveClassifier(CNNClassifier())`` is
the main job's model. Saved without pickle through :mod:`notsure.models.store`.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
from scipy.special import softmax
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, column_or_1d

from notsure.decisions.thresholds import json_labels
from notsure.errors import ConfigError, DataError
from notsure.models.cnn import CNNConfig
from notsure.models.inference import check_images, predict_logits
from notsure.models.store import load_model, save_model
from notsure.models.train import train_cnn

PRESETS = ("default", "quick")


class CNNClassifier(ClassifierMixin, BaseEstimator):
    """The project's CNN as a scikit-learn classifier on raw-pixel images ``(n, H, W)``.

    A CNN on raw-pixel images ``(n, H, W)`` (values 0..255), with any hashable labels. It
    trains a :class:`~notsure.models.cnn.CNNConfig` preset with
    :func:`~notsure.models.train.train_cnn` (seeded, deterministic on a fixed machine and
    thread count), so ``SelectiveClassifier(CNNClassifier())`` is the main job's model; one
    network works for any image size and any number of classes. ``decision_function`` returns
    the ``(n, n_classes)`` logits, also for two classes; ``predict_proba`` their softmax.

    Parameters
    ----------
    preset : {"default", "quick"}, default="default"
        ``"default"``: the main job's network and training; ``"quick"``: the same network
        briefly trained on a subsample (3 epochs, at most 10,000 images).
    epochs : int or None, default=None
        Passes over the training images; None keeps the preset's.
    batch_size : int or None, default=None
        Images per optimizer step; None keeps the preset's.
    max_train : int or None, default=None
        At most this many training images (a seeded random subsample); None keeps the
        preset's (all images for ``"default"``).
    precision : {"bf16", "fp32"} or None, default=None
        ``"bf16"`` runs convolutions in bfloat16 autocast; None keeps the preset's (bf16 only
        where the CPU has native bf16).
    threads : int or None, default=None
        Torch threads for training and scoring; None keeps the preset's (every core).
    random_state : int, default=0
        An int >= 0 seeding initialisation, shuffling, augmentation and subsampling.
    quiet : bool, default=True
        Hide the per-epoch progress bars while training.

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
        The class labels seen in ``fit``, sorted.
    model_ : ConvNet
        The trained network, in eval mode.
    config_ : CNNConfig
        The settings it was trained with: the preset and the overrides.
    image_shape_ : tuple of int
        ``(H, W)`` of the training images; ``decision_function`` refuses other sizes.
    history_ : list of dict
        One dict of figures per training epoch (train loss and accuracy, seconds, images/s,
        final learning rate); empty for a network read by :meth:`load`.

    See Also
    --------
    SelectiveClassifier : Cross-fits this network and answers ``not_sure`` with certified
        per-class false positive rates.
    notsure.models.train.train_cnn : The training loop.

    Notes
    -----
    ``epochs``, ``batch_size``, ``max_train``, ``precision`` and ``threads`` override the
    preset's settings when not None (:meth:`cnn_config` gives the result, validated).
    Saved without pickle (:meth:`save`, :meth:`load`): the weights as safetensors and the
    settings and classes as JSON, through :mod:`notsure.models.store`.

    Examples
    --------
    Tiny random images, a bright bar marking class ``"odd"``; one thread and fp32, so that
    training (about two seconds) gives the same network on every run.

    >>> import numpy as np
    >>> from notsure import CNNClassifier
    >>> rng = np.random.default_rng(0)
    >>> X = rng.integers(0, 256, size=(64, 16, 16), dtype=np.uint8)
    >>> y = np.repeat(["even", "odd"], 32)
    >>> X[y == "odd", 4:12, 6:10] = 255
    >>> clf = CNNClassifier("quick", epochs=3, batch_size=16, precision="fp32", threads=1,
    ...                     random_state=0)
    >>> clf.get_params()["epochs"], clf.cnn_config().max_train
    (3, 10000)
    >>> clf = clf.fit(X, y)
    >>> clf.classes_, clf.image_shape_, len(clf.history_)
    (array(['even', 'odd'], dtype='<U4'), (16, 16), 3)
    >>> clf.decision_function(X[:4]).shape, clf.predict_proba(X[:4]).shape
    ((4, 2), (4, 2))
    >>> bool(clf.score(X, y) > 0.9)
    True
    """

    def __init__(self, preset: str = "default", *, epochs: int | None = None,
                 batch_size: int | None = None, max_train: int | None = None,
                 precision: str | None = None, threads: int | None = None,
                 random_state: int = 0, quiet: bool = True) -> None:
        self.preset = preset
        self.epochs = epochs
        self.batch_size = batch_size
        self.max_train = max_train
        self.precision = precision
        self.threads = threads
        self.random_state = random_state
        self.quiet = quiet

    def cnn_config(self) -> CNNConfig:
        """The preset with this estimator's overrides applied (validated)."""
        if self.preset not in PRESETS:
            raise ConfigError(f"preset must be one of {PRESETS}, got {self.preset!r}")
        return CNNConfig.preset(self.preset == "quick", epochs=self.epochs,
                                batch_size=self.batch_size, max_train=self.max_train,
                                precision=self.precision, threads=self.threads)

    def fit(self, X: np.ndarray, y: np.ndarray) -> CNNClassifier:
        """Train a fresh network on images ``X`` with labels ``y``."""
        config = self.cnn_config()
        seed = self.random_state
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
            raise ConfigError(f"random_state must be an int >= 0, got {seed!r}")
        x = check_images(X, "X")
        y = column_or_1d(y)
        check_classification_targets(y)
        if len(y) != len(x):
            raise DataError(f"X has {len(x)} images but y has {len(y)} labels")
        self.classes_, y_idx = np.unique(y, return_inverse=True)
        if len(self.classes_) < 2:
            raise DataError("y: a classifier needs at least two classes, got one class "
                            f"{self.classes_.tolist()}")
        result = train_cnn(x, y_idx, len(self.classes_), config, int(seed), quiet=self.quiet)
        self.model_, self.config_ = result.model, config
        self.image_shape_, self.history_ = result.image_shape, result.history
        return self

    def decision_function(self, X: np.ndarray) -> np.ndarray:
        """Logits ``(n, n_classes)``, float32."""
        check_is_fitted(self, "model_")
        x = check_images(X, "X")
        if tuple(x.shape[1:]) != tuple(self.image_shape_):
            raise DataError(f"X: images of {tuple(x.shape[1:])} pixels, but the network was "
                            f"trained on {tuple(self.image_shape_)}")
        return predict_logits(self.model_, x, precision=self.config_.precision,
                              threads=self.config_.threads)

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """Softmax of the logits, computed in float64 (so log-probabilities keep the margins)."""
        return softmax(self.decision_function(X).astype(np.float64), axis=1)

    def predict(self, X: np.ndarray) -> np.ndarray:
        """The arg-max class of every image."""
        return self.classes_[self.decision_function(X).argmax(axis=1)]

    # -- files (no pickle) --------------------------------------------------------------
    def save(self, path: str | os.PathLike[str]) -> None:
        """Write ``<path>.safetensors`` + ``<path>.json`` (weights, settings, classes)."""
        check_is_fitted(self, "model_")
        save_model(path, self.model_, self.config_, image_shape=self.image_shape_,
                   meta={"classes": json_labels(self.classes_), "params": self.get_params()})

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> CNNClassifier:
        """Read a network written by :meth:`save`; never unpickles."""
        stored = load_model(path)
        try:
            params: dict[str, Any] = stored.meta["params"]
            clf = cls(**params)
            classes = np.asarray(stored.meta["classes"])
        except (KeyError, TypeError) as exc:
            raise DataError(f"{path}: not a CNNClassifier file (meta lacks params or classes: "
                            f"{exc})") from None
        if len(classes) != stored.n_classes:
            raise DataError(f"{path}: {len(classes)} classes but the network has "
                            f"{stored.n_classes} outputs")
        clf.classes_, clf.model_, clf.config_ = classes, stored.model, stored.config
        clf.image_shape_, clf.history_ = stored.image_shape, []
        return clf
