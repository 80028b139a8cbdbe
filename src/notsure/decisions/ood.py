"""Out-of-distribution guard: ``not_sure`` for inputs unlike every training class.

Each ensemble member's penultimate features are modelled as one Gaussian per class with a shared
covariance (fitted on that member's training images). An input's score is its Mahalanobis distance
to the nearest class mean, averaged over members. The threshold keeps a chosen share (e.g. 99.5%)
of in-distribution out-of-fold scores, so it is set from training-pool data only. The guard only
turns answers into ``not_sure``, so every class's false positive guarantee still holds.

A second, pixel-space check (:class:`PixelGuard`) catches what the features can miss, such as
digits with inverted colours: per fold, the principal components of that fold's training images;
an image's score is its reconstruction error (RMS, in pixel units) from them, thresholded the same
way on out-of-fold images.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

from notsure.errors import ConfigError

GUARD_FORMAT = "class-gaussian-mahalanobis/1"


@dataclass(frozen=True)
class ClassGaussians:
    """Class means ``(C, F)`` and the inverse ``(F, F)`` of their shared covariance."""

    means: np.ndarray
    precision: np.ndarray

    @cached_property
    def _mean_terms(self) -> tuple[np.ndarray, np.ndarray]:
        """``2 P m_c`` as ``(F, C)`` and ``m_c' P m_c`` ``(C,)``: the same for every image."""
        mp = self.means @ self.precision
        return 2.0 * mp.T, np.sum(mp * self.means, axis=1)

    def distances(self, features: np.ndarray) -> np.ndarray:
        """Mahalanobis distance of each row of ``features`` ``(N, F)`` to the nearest class mean."""
        f = np.asarray(features, dtype=np.float64)
        cross, const = self._mean_terms
        sq = np.sum((f @ self.precision) * f, axis=1)[:, None] - f @ cross + const
        return np.sqrt(np.clip(sq.min(axis=1), 0.0, None))


def fit_class_gaussians(features: np.ndarray, y: np.ndarray, n_classes: int,
                        ridge: float = 1e-6) -> ClassGaussians:
    """Class means and shared (within-class) covariance of ``features`` ``(N, F)`` labelled ``y``.

    ``ridge`` times the mean variance is added to the diagonal so the covariance inverts even when
    some features never vary (e.g. dead ReLU channels).
    """
    f = np.asarray(features, dtype=np.float64)
    y = np.asarray(y)
    if f.ndim != 2 or len(f) != len(y):
        raise ConfigError(f"features must be (N, F) with one label each, got {f.shape} and "
                          f"{y.shape}")
    missing = np.setdiff1d(np.arange(n_classes), y)
    if missing.size:
        raise ConfigError(f"no training features for class index {missing[0]}; every class needs "
                          "some to fit the out-of-distribution guard")
    means = np.stack([f[y == c].mean(axis=0) for c in range(n_classes)])
    centred = f - means[y]
    cov = centred.T @ centred / max(len(f) - n_classes, 1)
    cov += np.eye(len(cov)) * ridge * max(float(np.trace(cov)) / len(cov), 1e-12)
    return ClassGaussians(means=means, precision=np.linalg.inv(cov))


@dataclass(frozen=True)
class PixelPCA:
    """Mean ``(D,)`` and orthonormal principal directions ``(k, D)`` of flattened images."""

    mean: np.ndarray
    components: np.ndarray

    def errors(self, images: np.ndarray) -> np.ndarray:
        """RMS reconstruction error per image ``(N, ...)`` from the components, in pixel units."""
        x = np.asarray(images, dtype=np.float64).reshape(len(images), -1) - self.mean
        residual = x - (x @ self.components.T) @ self.components
        return np.sqrt(np.mean(residual ** 2, axis=1))


def fit_pixel_pca(images: np.ndarray, n_components: int = 32) -> PixelPCA:
    """Principal components of ``images`` ``(N, ...)`` (flattened), for :class:`PixelGuard`."""
    x = np.asarray(images, dtype=np.float64).reshape(len(images), -1)
    if len(x) < 2:
        raise ConfigError("the pixel guard needs at least two training images")
    mean = x.mean(axis=0)
    _, _, vt = np.linalg.svd(x - mean, full_matrices=False)
    return PixelPCA(mean=mean, components=vt[:n_components])


@dataclass(frozen=True)
class PixelGuard:
    """Rejects images far from their fold's training images in pixel space: reconstruction
    error from fold k's principal components (``folds[k]``) above ``threshold``."""

    folds: tuple[PixelPCA, ...]
    threshold: float
    keep: float

    def score(self, images: np.ndarray, routes: np.ndarray) -> np.ndarray:
        """``(N,)`` reconstruction errors, each image by the model of its fold ``routes[i]``."""
        out = np.empty(len(images))
        for k, model in enumerate(self.folds):
            rows = np.flatnonzero(routes == k)
            if rows.size:
                out[rows] = model.errors(images[rows])
        return out

    def to_dict(self) -> dict:
        return {"threshold": self.threshold, "keep": self.keep,
                "folds": [{"mean": m.mean.tolist(), "components": m.components.tolist()}
                          for m in self.folds]}

    @classmethod
    def from_dict(cls, doc: dict) -> PixelGuard:
        folds = tuple(PixelPCA(np.asarray(m["mean"], dtype=np.float64),
                               np.asarray(m["components"], dtype=np.float64))
                      for m in doc["folds"])
        if not folds or any(m.components.ndim != 2 or m.mean.ndim != 1
                            or m.components.shape[1] != m.mean.shape[0] for m in folds):
            raise ValueError("pixel guard: means and components disagree in shape")
        return cls(folds=folds, threshold=float(doc["threshold"]), keep=float(doc["keep"]))


@dataclass(frozen=True)
class OODGuard:
    """Rejects inputs whose mean (over members) class-Mahalanobis distance exceeds ``threshold``."""

    members: tuple[ClassGaussians, ...]
    threshold: float
    keep: float  # share of in-distribution out-of-fold images the threshold keeps
    pixels: PixelGuard | None = None  # the pixel-space check, applied too

    def score(self, member_features: np.ndarray) -> np.ndarray:
        """``(N,)`` scores from the members' features ``(K, N, F)``: higher = less like training."""
        z = np.asarray(member_features)
        if z.ndim != 3 or len(z) != len(self.members):
            raise ConfigError(f"member features must have shape ({len(self.members)}, N, F), "
                              f"got {z.shape}")
        return np.mean([g.distances(f) for g, f in zip(self.members, z, strict=True)], axis=0)

    def score_members(self, member_features: np.ndarray, members: range) -> np.ndarray:
        """``(N,)`` scores from the features ``(len(members), N, F)`` of the members indexed by
        ``members`` alone (e.g. the one fold ensemble that answers an image)."""
        z = np.asarray(member_features)
        if z.ndim != 3 or len(z) != len(members) or members.stop > len(self.members):
            raise ConfigError(f"member features of shape {z.shape} do not fit members "
                              f"{members.start}..{members.stop - 1} of {len(self.members)}")
        return np.mean([self.members[i].distances(f) for i, f in zip(members, z, strict=True)],
                       axis=0)

    def rejects(self, member_features: np.ndarray) -> np.ndarray:
        """Boolean ``(N,)``: True where the input is out of distribution."""
        return self.score(member_features) > self.threshold

    def to_dict(self) -> dict:
        """JSON-ready form (saved in ``predictor.json``)."""
        doc = {"format": GUARD_FORMAT, "threshold": self.threshold, "keep": self.keep,
               "members": [{"means": g.means.tolist(), "precision": g.precision.tolist()}
                           for g in self.members]}
        if self.pixels is not None:
            doc["pixels"] = self.pixels.to_dict()
        return doc

    @classmethod
    def from_dict(cls, doc: dict) -> OODGuard:
        """Inverse of :meth:`to_dict`; ConfigError on anything else."""
        try:
            if doc["format"] != GUARD_FORMAT:
                raise ValueError(f"format {doc['format']!r}, expected {GUARD_FORMAT!r}")
            members = tuple(ClassGaussians(np.asarray(m["means"], dtype=np.float64),
                                           np.asarray(m["precision"], dtype=np.float64))
                            for m in doc["members"])
            pixels = PixelGuard.from_dict(doc["pixels"]) if "pixels" in doc else None
            guard = cls(members=members, threshold=float(doc["threshold"]),
                        keep=float(doc["keep"]), pixels=pixels)
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(f"out-of-distribution guard: not a valid guard ({exc})") from exc
        dims = {(g.means.shape[1], g.precision.shape) for g in guard.members}
        if not members or len(dims) != 1 or any(d[1] != (d[0], d[0]) for d in dims):
            raise ConfigError("out-of-distribution guard: member means and precisions disagree "
                              "in shape")
        return guard


def keep_threshold(in_distribution_scores: np.ndarray, keep: float) -> float:
    """The smallest score that at least ``keep`` of ``in_distribution_scores`` do not exceed."""
    scores = np.sort(np.asarray(in_distribution_scores, dtype=np.float64))
    if not 0.0 < keep <= 1.0:
        raise ConfigError(f"keep={keep}: the share of in-distribution images kept must lie in "
                          "(0, 1]")
    if scores.size == 0:
        raise ConfigError("no in-distribution scores to set the guard's threshold from")
    return float(scores[int(np.ceil(keep * scores.size)) - 1])
