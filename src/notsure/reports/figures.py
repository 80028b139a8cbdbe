"""The figures every job shares: confusion matrices, curves with bands, bars and scatter plots.

Each function returns a matplotlib ``Figure`` and never shows it; :meth:`Report.figure` saves and
closes it. The Agg backend is forced so jobs run on machines without a display.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from notsure.constants import NOT_SURE, NOT_SURE_NAME  # noqa: E402
from notsure.errors import ConfigError  # noqa: E402
from notsure.reports import fmt  # noqa: E402

_MARKERS = ("o", "s", "^", "D", "v", "P")


def _cell_text(value: float, normalized: bool, count: float) -> str:
    """A count, or a row share in percent with one decimal; zero cells stay blank."""
    if count == 0:
        return ""
    if not normalized:
        return f"{int(value)}"
    return "<0.1" if value < 0.0005 else f"{100 * value:.1f}"


def confusion_matrix_figure(
    cm: np.ndarray,
    class_names: Sequence[str],
    *,
    normalize: str | None = None,
    title: str = "",
    not_sure: bool = False,
) -> Figure:
    """Heatmap of a confusion matrix (rows: true class, columns: predicted), every cell annotated.

    Correct predictions are blue, errors red and, with ``not_sure=True``, the last column (the
    abstentions, shape ``(K, K+1)``) orange behind a divider, each with its own colour scale so
    small error counts stay visible. ``normalize="true"`` shows each cell as a percentage of its
    row (the true class). Zero cells are left blank.
    """
    cm = np.asarray(cm, dtype=float)
    k = len(class_names)
    want = (k, k + 1) if not_sure else (k, k)
    if cm.shape != want:
        raise ConfigError(
            f"cm has shape {cm.shape}; expected {want} for {k} class names"
            + (" plus a not_sure column" if not_sure else "")
        )
    if normalize not in (None, "true"):
        raise ConfigError(f"normalize must be None or 'true', got {normalize!r}")
    counts = cm
    if normalize == "true":
        totals = cm.sum(axis=1, keepdims=True)
        values = np.divide(cm, totals, out=np.zeros_like(cm), where=totals > 0)
    else:
        values = cm

    ncols = want[1]
    cell_in = 0.5 if k <= 12 else 0.36
    width = max(4.5, ncols * cell_in + 2.2)
    height = max(3.8, k * cell_in + 1.8)
    fig, ax = plt.subplots(figsize=(width, height), layout="constrained")

    rows, cols = np.indices(values.shape)
    layers = [
        (rows == cols, "Blues"),
        ((rows != cols) & (cols < k), "Reds"),
        (cols == k, "Oranges"),
    ]
    shade = np.zeros_like(values)
    for mask, cmap in layers:
        top = values[mask].max() if mask.any() else 0.0
        if top <= 0:
            continue
        # Any non-zero cell gets at least a pale shade, so it never looks empty.
        shade[mask] = 0.12 + 0.88 * values[mask] / top
        img = np.where(mask & (counts > 0), shade, np.nan)
        ax.imshow(np.ma.masked_invalid(img), cmap=cmap, vmin=0, vmax=1, aspect="equal",
                  interpolation="nearest")

    fontsize = 9 if k <= 12 else 7
    normalized = normalize == "true"
    for (i, j), v in np.ndenumerate(values):
        text = _cell_text(v, normalized, counts[i, j])
        if text:
            color = "white" if shade[i, j] > 0.6 else "black"
            ax.text(j, i, text, ha="center", va="center", fontsize=fontsize, color=color)

    col_names = [*map(str, class_names), *([NOT_SURE_NAME] if not_sure else [])]
    long_names = max(len(n) for n in col_names) > 3
    ax.set_xticks(range(ncols), col_names, rotation=90 if long_names or k > 12 else 0,
                  fontsize=fontsize + 1)
    ax.set_yticks(range(k), [str(n) for n in class_names], fontsize=fontsize + 1)
    if not_sure:
        ax.axvline(k - 0.5, color="black", linewidth=1.5)
        ax.get_xticklabels()[-1].set_fontweight("bold")
    ax.set_xticks(np.arange(-0.5, ncols), minor=True)
    ax.set_yticks(np.arange(-0.5, k), minor=True)
    ax.grid(which="minor", color="0.85", linewidth=0.5)
    ax.tick_params(which="minor", length=0)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    if title:
        ax.set_title(title + (" (% of each true class)" if normalized else ""))
    return fig


def curves_figure(
    series: Sequence[Mapping[str, Any]],
    *,
    xlabel: str,
    ylabel: str,
    title: str = "",
    diagonal: bool = False,
    xlim: tuple[float, float] | None = None,
    ylim: tuple[float, float] | None = None,
    logx: bool = False,
    logy: bool = False,
) -> Figure:
    """Line plots, each series a dict with ``x``, ``y``, ``label`` and optional ``band_lo`` /
    ``band_hi`` (a shaded spread, e.g. across folds), ``linestyle`` and ``marker``.

    ``diagonal`` draws the chance line y = x (for ROC curves).
    """
    fig, ax = plt.subplots(figsize=(6.4, 4.6), layout="constrained")
    for n, s in enumerate(series):
        x, y = np.asarray(s["x"], dtype=float), np.asarray(s["y"], dtype=float)
        if x.shape != y.shape or x.ndim != 1:
            raise ConfigError(
                f"series {n} ({s.get('label')!r}): x {x.shape} and y {y.shape} must be equal 1-D"
            )
        (line,) = ax.plot(x, y, label=s.get("label"), linestyle=s.get("linestyle", "-"),
                          marker=s.get("marker"), linewidth=1.6)
        if s.get("band_lo") is not None and s.get("band_hi") is not None:
            lo = np.asarray(s["band_lo"], dtype=float)
            hi = np.asarray(s["band_hi"], dtype=float)
            if lo.shape != x.shape or hi.shape != x.shape:
                raise ConfigError(
                    f"series {n} ({s.get('label')!r}): band_lo {lo.shape} and band_hi "
                    f"{hi.shape} must match x {x.shape}"
                )
            ax.fill_between(x, lo, hi, color=line.get_color(), alpha=0.2, linewidth=0)
    if diagonal:
        ax.plot([0, 1], [0, 1], linestyle=":", color="0.5", linewidth=1, label="chance")
    if logx:
        ax.set_xscale("log")
    if logy:
        ax.set_yscale("log")
    if xlim is not None:
        ax.set_xlim(*xlim)
    if ylim is not None:
        ax.set_ylim(*ylim)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    ax.grid(alpha=0.3)
    if any(s.get("label") for s in series):
        outside = len(series) > 8
        ax.legend(fontsize=8, loc="upper left" if outside else "best",
                  bbox_to_anchor=(1.02, 1) if outside else None)
    return fig


def bar_figure(
    labels: Sequence[str],
    values: Sequence[float],
    *,
    title: str = "",
    ylabel: str = "",
    horizontal: bool = False,
    annotate: bool = True,
) -> Figure:
    """Bars, one per label (e.g. images per class), each annotated with its value."""
    values = np.asarray(values, dtype=float)
    if values.shape != (len(labels),):
        raise ConfigError(f"values has shape {values.shape}; expected ({len(labels)},) like labels")
    n = len(labels)
    names = [str(s) for s in labels]
    span = max(4.0, 0.32 * n + 1.5)
    fig, ax = plt.subplots(figsize=(6.4, span) if horizontal else (max(6.4, span), 4.2),
                           layout="constrained")
    pos = np.arange(n)
    if horizontal:
        bars = ax.barh(pos, values, color="tab:blue")
        ax.set_yticks(pos, names)
        ax.invert_yaxis()
        ax.set_xlabel(ylabel)
    else:
        bars = ax.bar(pos, values, color="tab:blue")
        rotate = n > 12 or max((len(s) for s in names), default=0) > 4
        ax.set_xticks(pos, names, rotation=90 if rotate else 0)
        ax.set_ylabel(ylabel)
    if annotate:
        texts = [fmt.num(v) if v % 1 else fmt.count(v) for v in values]
        ax.bar_label(bars, labels=texts, fontsize=7 if n > 12 else 8, padding=2)
        ax.margins(**({"x": 0.1} if horizontal else {"y": 0.1}))
    if title:
        ax.set_title(title)
    ax.grid(axis="x" if horizontal else "y", alpha=0.3)
    return fig


def scatter_figure(
    points: np.ndarray,
    labels: np.ndarray,
    class_names: Sequence[str],
    *,
    title: str = "",
    annotate_centers: bool = True,
) -> Figure:
    """2-D points (e.g. a t-SNE embedding) coloured by class, with a legend.

    Classes beyond ten get a new marker per ten colours, so 36 classes stay distinguishable;
    ``annotate_centers`` writes each class name at the median of its points. A label equal to
    ``NOT_SURE`` is drawn as grey crosses named ``not_sure``.
    """
    points = np.asarray(points, dtype=float)
    labels = np.asarray(labels)
    if points.ndim != 2 or points.shape[1] != 2:
        raise ConfigError(f"points has shape {points.shape}; expected (N, 2)")
    if labels.shape != (len(points),):
        raise ConfigError(f"labels has shape {labels.shape}; expected ({len(points)},)")
    k = len(class_names)
    bad = (labels != NOT_SURE) & ((labels < 0) | (labels >= k))
    if bad.any():
        raise ConfigError(f"labels hold {labels[bad][0]!r}, not a class index 0..{k - 1}")

    fig, ax = plt.subplots(figsize=(7.5 if k <= 12 else 9.0, 6.4), layout="constrained")
    size = 12 if len(points) <= 2000 else 3
    colors = plt.get_cmap("tab10").colors
    for c in range(k):
        sel = labels == c
        if not sel.any():
            continue
        ax.scatter(points[sel, 0], points[sel, 1], s=size, color=colors[c % 10],
                   marker=_MARKERS[(c // 10) % len(_MARKERS)], alpha=0.7, linewidths=0,
                   label=str(class_names[c]))
        if annotate_centers:
            cx, cy = np.median(points[sel], axis=0)
            ax.text(cx, cy, str(class_names[c]), fontsize=8, weight="bold", ha="center",
                    va="center", bbox={"boxstyle": "round,pad=0.15", "fc": "white",
                                       "ec": colors[c % 10], "alpha": 0.8})
    unsure = labels == NOT_SURE
    if unsure.any():
        ax.scatter(points[unsure, 0], points[unsure, 1], s=size * 1.5, color="0.4", marker="x",
                   linewidths=0.8, label=NOT_SURE_NAME)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=7, markerscale=2 if
              size < 10 else 1, ncols=1 if k <= 20 else 2, frameon=False)
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title)
    return fig
