"""The shared figures draw exactly the numbers they are given."""

from __future__ import annotations

import matplotlib
import numpy as np
import pytest
from sklearn.metrics import confusion_matrix

from notsure import NOT_SURE, NOT_SURE_NAME
from notsure.errors import ConfigError
from notsure.reports import figures
from notsure.reports.figures import plt


def _labels(k: int, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y_true = rng.integers(0, k, n)
    y_pred = np.where(rng.random(n) < 0.8, y_true, rng.integers(0, k, n))
    y_pred[rng.random(n) < 0.05] = NOT_SURE
    return y_true, y_pred


def _annotations(fig) -> dict[tuple[int, int], str]:
    ax = fig.axes[0]
    return {(round(t.get_position()[1]), round(t.get_position()[0])): t.get_text()
            for t in ax.texts}


def test_backend_is_agg() -> None:
    assert matplotlib.get_backend().lower() == "agg"


@pytest.mark.parametrize("k", [10, 36])
def test_confusion_matrix_annotates_every_nonzero_count_and_the_not_sure_column(k: int) -> None:
    y_true, y_pred = _labels(k, 3000, seed=k)
    # scikit-learn's matrix over labels 0..k-1 plus NOT_SURE, moved to the last column.
    cm = confusion_matrix(y_true, y_pred, labels=[*range(k), NOT_SURE])[:k]
    names = [f"c{i}" for i in range(k)]
    fig = figures.confusion_matrix_figure(cm, names, title="t", not_sure=True)
    try:
        texts = _annotations(fig)
        want = {(i, j): str(v) for (i, j), v in np.ndenumerate(cm) if v}
        assert texts == want
        ticks = [t.get_text() for t in fig.axes[0].get_xticklabels()]
        assert ticks == [*names, NOT_SURE_NAME]
        assert [t.get_text() for t in fig.axes[0].get_yticklabels()] == names
    finally:
        plt.close(fig)


def test_normalized_confusion_matrix_shows_row_percentages() -> None:
    y_true, y_pred = _labels(10, 2000, seed=1)
    cm = confusion_matrix(y_true, y_pred, labels=list(range(10)))
    fig = figures.confusion_matrix_figure(cm, [str(i) for i in range(10)], normalize="true")
    try:
        texts = _annotations(fig)
        row_pct = 100 * cm / cm.sum(axis=1, keepdims=True)
        for (i, j), text in texts.items():
            shown = 0.0 if text.startswith("<") else float(text)
            assert abs(shown - row_pct[i, j]) <= 0.05 + 1e-9
        assert set(texts) == {(i, j) for (i, j), v in np.ndenumerate(cm) if v}
    finally:
        plt.close(fig)


def test_confusion_matrix_rejects_a_shape_that_does_not_fit_the_names() -> None:
    with pytest.raises(ConfigError, match=r"\(3, 4\)"):
        figures.confusion_matrix_figure(np.zeros((3, 3)), ["a", "b", "c"], not_sure=True)
    with pytest.raises(ConfigError, match="normalize"):
        figures.confusion_matrix_figure(np.zeros((2, 2)), ["a", "b"], normalize="all")


def test_curves_draw_each_series_and_its_band() -> None:
    x = np.linspace(0, 1, 20)
    fig = figures.curves_figure(
        [{"x": x, "y": x**0.5, "label": "a", "band_lo": x**0.6, "band_hi": x**0.4},
         {"x": x, "y": x, "label": "b"}],
        xlabel="FPR", ylabel="TPR", diagonal=True, xlim=(0, 1),
    )
    try:
        ax = fig.axes[0]
        assert [line.get_label() for line in ax.lines] == ["a", "b", "chance"]
        np.testing.assert_allclose(ax.lines[0].get_ydata(), x**0.5)
        assert len(ax.collections) == 1
        assert ax.get_xlim() == (0, 1)
    finally:
        plt.close(fig)
    with pytest.raises(ConfigError, match="series 0"):
        figures.curves_figure([{"x": [0, 1], "y": [0, 1, 2]}], xlabel="x", ylabel="y")


def test_bars_have_the_given_heights_and_labels() -> None:
    values = [210, 198, 136]
    fig = figures.bar_figure(["a", "b", "c"], values, ylabel="images")
    try:
        ax = fig.axes[0]
        assert [p.get_height() for p in ax.patches] == values
        assert [t.get_text() for t in ax.texts] == ["210", "198", "136"]
    finally:
        plt.close(fig)
    with pytest.raises(ConfigError, match="values"):
        figures.bar_figure(["a"], [1, 2])


def test_scatter_has_one_legend_entry_per_present_class_and_not_sure() -> None:
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 12, 500)
    labels[:5] = NOT_SURE
    labels[labels == 3] = 4  # class 3 absent
    fig = figures.scatter_figure(rng.normal(size=(500, 2)), labels, [f"k{i}" for i in range(12)])
    try:
        legend = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
        assert legend == [f"k{i}" for i in range(12) if i != 3] + [NOT_SURE_NAME]
    finally:
        plt.close(fig)
    with pytest.raises(ConfigError, match="class index"):
        figures.scatter_figure(np.zeros((2, 2)), np.array([0, 5]), ["a", "b"])
