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

A third (:class:`InkGuard`) looks at how the ink is laid down: handwriting is strokes of nearly
full ink with soft edges, while photographs of objects (clothing, say) fill areas with mid-grey
texture. Four statistics of an image's ink (:func:`ink_statistics`) are compared with the training
images' by their Mahalanobis distance.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
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
        # |residual|^2 = |x|^2 - |coefficients|^2 for orthonormal components: one product
        coefficients = x @ self.components.T
        squared = np.einsum("ij,ij->i", x, x) - np.einsum("ij,ij->i", coefficients, coefficients)
        return np.sqrt(np.clip(squared, 0.0, None) / x.shape[1])


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


#: Pixel value (0..255) from which a pixel counts as ink, and below which ink counts as grey.
INK, FULL_INK = 25, 200


def ink_statistics(images: np.ndarray) -> np.ndarray:
    """``(N, 4)`` per image: log(1 + ink pixels); the share of ink pixels that are grey rather
    than full; the mean ink value (0..1); the share of ink pixels whose four neighbours are ink
    too (filled areas rather than strokes)."""
    x = np.asarray(images)
    x = x.reshape(len(x), x.shape[-2], x.shape[-1])
    ink = x >= INK
    n_ink = ink.sum(axis=(1, 2))
    per_ink = np.maximum(n_ink, 1)
    grey = (ink & (x < FULL_INK)).sum(axis=(1, 2)) / per_ink
    mean_ink = np.where(ink, x, 0).sum(axis=(1, 2), dtype=np.float64) / per_ink / 255.0
    inner = (ink[:, 1:-1, 1:-1] & ink[:, :-2, 1:-1] & ink[:, 2:, 1:-1] & ink[:, 1:-1, :-2]
             & ink[:, 1:-1, 2:])
    filled = inner.sum(axis=(1, 2)) / per_ink
    return np.column_stack([np.log1p(n_ink), grey, mean_ink, filled])


@dataclass(frozen=True)
class InkGuard:
    """Rejects images whose :func:`ink_statistics` lie further than ``threshold`` (Mahalanobis)
    from the training images' mean ``(4,)`` under their covariance's inverse ``(4, 4)``."""

    mean: np.ndarray
    precision: np.ndarray
    threshold: float
    keep: float

    def score(self, images: np.ndarray) -> np.ndarray:
        """``(N,)`` distances: higher = ink less like the training images'."""
        d = ink_statistics(images) - self.mean
        return np.sqrt(np.clip(np.sum((d @ self.precision) * d, axis=1), 0.0, None))

    def to_dict(self) -> dict:
        return {"mean": self.mean.tolist(), "precision": self.precision.tolist(),
                "threshold": self.threshold, "keep": self.keep}

    @classmethod
    def from_dict(cls, doc: dict) -> InkGuard:
        mean = np.asarray(doc["mean"], dtype=np.float64)
        precision = np.asarray(doc["precision"], dtype=np.float64)
        if mean.shape != (4,) or precision.shape != (4, 4):
            raise ValueError("ink guard: expected a mean of 4 statistics and a 4 x 4 precision")
        return cls(mean, precision, float(doc["threshold"]), float(doc["keep"]))


def fit_ink_guard(train_images: np.ndarray, held_out_images: np.ndarray, keep: float
                  ) -> tuple[InkGuard, np.ndarray]:
    """Mean and covariance of the ink statistics of ``train_images``; the threshold keeps
    ``keep`` of ``held_out_images``. Returns the guard and the held-out images' scores."""
    stats = ink_statistics(train_images)
    cov = np.cov(stats, rowvar=False) + np.eye(4) * 1e-9
    guard = InkGuard(stats.mean(axis=0), np.linalg.inv(cov), 0.0, keep)
    scores = guard.score(held_out_images)
    return replace(guard, threshold=keep_threshold(scores, keep)), scores


@dataclass(frozen=True)
class OODGuard:
    """Rejects inputs whose mean (over members) class-Mahalanobis distance exceeds ``threshold``."""

    members: tuple[ClassGaussians, ...]
    threshold: float
    keep: float  # share of in-distribution out-of-fold images the threshold keeps
    pixels: PixelGuard | None = None  # the pixel-space check, applied too
    ink: InkGuard | None = None  # the ink check, applied too

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
        if self.ink is not None:
            doc["ink"] = self.ink.to_dict()
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
            ink = InkGuard.from_dict(doc["ink"]) if "ink" in doc else None
            guard = cls(members=members, threshold=float(doc["threshold"]),
                        keep=float(doc["keep"]), pixels=pixels, ink=ink)
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
