"""Descriptive statistics of labelled, grouped vectors: counts, imbalance, norms, t-SNE, clusters.

Pure functions of arrays (vectors ``x``, class indices ``y``, group ids ``groups``) returning
rows (lists of dicts) or small dicts that a job turns into tables, figures and sentences.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any, Literal, get_args

import numpy as np
from sklearn.metrics import silhouette_samples

from notsure.analysis import knn
from notsure.errors import ConfigError

TsneBackend = Literal["auto", "opentsne", "sklearn"]
TSNE_BACKENDS: tuple[str, ...] = get_args(TsneBackend)


def summary(y: np.ndarray, groups: np.ndarray, class_names: Sequence[str]) -> dict[str, Any]:
    """Counts and imbalance: classes, groups, samples, largest/smallest class and their ratio."""
    images = np.bincount(y, minlength=len(class_names))
    subjects = _groups_per_class(y, groups, len(class_names))
    _, per_group = np.unique(groups, return_counts=True)
    present = images > 0
    return {
        "syndromes": int(present.sum()),
        "subjects": len(per_group),
        "images": len(y),
        "largest": class_names[int(np.argmax(images))],
        "largest_images": int(images.max()),
        "smallest": class_names[int(np.argmin(np.where(present, images, images.max() + 1)))],
        "smallest_images": int(images[present].min()),
        "imbalance_ratio": float(images.max() / images[present].min()),
        "subject_imbalance_ratio": float(subjects.max() / subjects[present].min()),
        "majority_share": float(images.max() / len(y)),
        "multi_image_subjects": int((per_group > 1).sum()),
        "images_in_multi_image_subjects": int(per_group[per_group > 1].sum()),
        "max_images_per_subject": int(per_group.max()),
    }


def _groups_per_class(y: np.ndarray, groups: np.ndarray, n_classes: int) -> np.ndarray:
    """Number of distinct groups holding each class."""
    _, gi = np.unique(groups, return_inverse=True)
    pairs = np.unique(gi.astype(np.int64) * n_classes + y)
    return np.bincount(pairs % n_classes, minlength=n_classes)


def class_rows(y: np.ndarray, groups: np.ndarray,
               class_names: Sequence[str]) -> list[dict[str, Any]]:
    """Per class (largest first): images, subjects, images per subject and share of images."""
    images = np.bincount(y, minlength=len(class_names))
    subjects = _groups_per_class(y, groups, len(class_names))
    order = np.lexsort((np.arange(len(images)), -images))
    return [{"syndrome": class_names[c], "images": int(images[c]), "subjects": int(subjects[c]),
             "images per subject": float(images[c] / max(subjects[c], 1)),
             "share of images": float(images[c] / len(y))} for c in order]


def images_per_subject_rows(groups: np.ndarray) -> list[dict[str, int]]:
    """How many subjects own 1, 2, 3, ... images, and how many images those subjects hold."""
    _, per_group = np.unique(groups, return_counts=True)
    sizes, n = np.unique(per_group, return_counts=True)
    return [{"images per subject": int(s), "subjects": int(k), "images": int(s * k)}
            for s, k in zip(sizes, n, strict=True)]


def norm_rows(x: np.ndarray, y: np.ndarray,
              class_names: Sequence[str]) -> tuple[list[dict[str, Any]], float]:
    """Per-class L2 norm statistics (plus an ``all`` row) and the share of norm variance that
    the class explains (eta squared: between-class over total sum of squares)."""
    norms = np.linalg.norm(np.asarray(x, dtype=np.float64), axis=1)
    rows = []
    for c, name in enumerate([*class_names, "all"]):
        v = norms[y == c] if c < len(class_names) else norms
        if len(v) == 0:
            continue
        rows.append({"syndrome": name, "images": len(v), "mean": float(v.mean()),
                     "std": float(v.std()), "min": float(v.min()),
                     "median": float(np.median(v)), "max": float(v.max())})
    means = np.array([norms[y == c].mean() if (y == c).any() else 0.0
                      for c in range(len(class_names))])
    counts = np.bincount(y, minlength=len(class_names))
    between = float((counts * (means - norms.mean()) ** 2).sum())
    total = float(((norms - norms.mean()) ** 2).sum())
    return rows, between / total if total > 0 else float("nan")


def tsne_2d(x: np.ndarray, seed: int, *, perplexity: float = 30.0, n_iter: int = 500,
            backend: TsneBackend = "auto") -> tuple[np.ndarray, str, float]:
    """2-D t-SNE of ``x`` (Euclidean), seeded: ``(points, backend used, seconds)``.

    Both backends run 250 early-exaggeration iterations, then ``n_iter`` more, from a PCA
    initialization. ``"auto"`` uses openTSNE when installed (about ten times faster here), else
    scikit-learn.
    """
    if backend not in TSNE_BACKENDS:
        raise ConfigError(f"tsne backend must be one of {', '.join(TSNE_BACKENDS)}, "
                          f"got {backend!r}")
    if len(x) <= 3 * perplexity:
        perplexity = max(1.0, (len(x) - 1) / 3.0)
    x = np.asarray(x, dtype=np.float64)
    if backend == "auto":
        try:
            import openTSNE  # noqa: F401
            backend = "opentsne"
        except ImportError:
            backend = "sklearn"
    t0 = time.perf_counter()
    if backend == "opentsne":
        try:
            from openTSNE import TSNE as OpenTSNE
        except ImportError:
            raise ConfigError("tsne backend 'opentsne' needs openTSNE: pip install openTSNE, "
                              "or use backend 'sklearn'") from None
        points = OpenTSNE(n_components=2, perplexity=perplexity, n_iter=n_iter,
                          early_exaggeration_iter=250, initialization="pca", n_jobs=1,
                          random_state=seed).fit(x)
    else:
        from sklearn.manifold import TSNE

        points = TSNE(n_components=2, perplexity=perplexity, max_iter=250 + n_iter, init="pca",
                      random_state=seed).fit_transform(x)
    return np.asarray(points, dtype=np.float64), backend, time.perf_counter() - t0


def neighbour_purity(dist: np.ndarray, y: np.ndarray, groups: np.ndarray, k: int) -> np.ndarray:
    """Per sample: share of its ``k`` nearest neighbours of the same class, never counting the
    sample itself or other samples of its own group (those would flatter the figure)."""
    _, gi = np.unique(groups, return_inverse=True)
    masked = np.where(gi[:, None] == gi[None, :], np.inf, dist)
    order, _ = knn.nearest(masked, k)
    return (y[order] == y[:, None]).mean(axis=1)


def cluster_rows(high: np.ndarray, metric: knn.Metric, points: np.ndarray, y: np.ndarray,
                 groups: np.ndarray, class_names: Sequence[str], k: int = 10
                 ) -> tuple[list[dict[str, Any]], dict[str, float]]:
    """How well classes cluster in the original space (``metric``) and in the 2-D map.

    Per class: mean silhouette and mean ``k``-neighbour purity (other subjects only) in both
    spaces; plus the overall means. Silhouette uses all samples, same-subject pairs included.
    """
    d_high = knn.pairwise_distances(high, high, metric)
    d_map = knn.pairwise_distances(points, points, "euclidean")
    np.fill_diagonal(d_high, 0.0)
    np.fill_diagonal(d_map, 0.0)
    sil_high = silhouette_samples(d_high, y, metric="precomputed")
    sil_map = silhouette_samples(d_map, y, metric="precomputed")
    pur_high = neighbour_purity(d_high, y, groups, k)
    pur_map = neighbour_purity(d_map, y, groups, k)
    rows = []
    for c, name in enumerate(class_names):
        sel = y == c
        if sel.any():
            rows.append({"syndrome": name, "images": int(sel.sum()),
                         f"silhouette {high.shape[1]}-D": float(sil_high[sel].mean()),
                         "silhouette 2-D": float(sil_map[sel].mean()),
                         f"purity@{k} {high.shape[1]}-D": float(pur_high[sel].mean()),
                         f"purity@{k} 2-D": float(pur_map[sel].mean())})
    overall = {"silhouette_high": float(sil_high.mean()), "silhouette_map": float(sil_map.mean()),
               "purity_high": float(pur_high.mean()), "purity_map": float(pur_map.mean()),
               "k": k, "chance_purity": float(((np.bincount(y) / len(y)) ** 2).sum())}
    return rows, overall
