"""CNNClassifier as a scikit-learn estimator, inside SelectiveClassifier, saved without pickle."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.special import log_softmax

from notsure import NOT_SURE_NAME
from notsure.decisions import logit_margins
from notsure.errors import ConfigError, DataError
from notsure.models.cnn_classifier import CNNClassifier
from notsure.selective_classifier import SelectiveClassifier

NAMES = np.array(["horizontal", "vertical", "square"])


def tiny_cnn(**changes) -> CNNClassifier:
    """The quick preset for one epoch on one thread: enough to tell the strokes apart."""
    return CNNClassifier("quick", epochs=1, batch_size=32, threads=1, precision="fp32",
                         **changes)


def test_cnn_classifier_scores_are_the_networks_logits(strokes28):
    x, y = strokes28
    clf = tiny_cnn(random_state=3).fit(x[:300], NAMES[y[:300]])
    logits = clf.decision_function(x[300:])
    assert logits.shape == (150, 3) and logits.dtype == np.float32
    np.testing.assert_array_equal(clf.predict(x[300:]), clf.classes_[logits.argmax(1)])
    proba = clf.predict_proba(x[300:])
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    # Log-probabilities are logits up to a per-row constant: the margins agree.
    np.testing.assert_allclose(logit_margins(np.log(proba)), logit_margins(logits), atol=1e-5)
    np.testing.assert_allclose(np.log(proba), log_softmax(logits.astype(np.float64), axis=1),
                               atol=1e-9)
    assert np.mean(clf.predict(x[300:]) == NAMES[y[300:]]) > 0.6


def test_cnn_classifier_refuses_bad_input(strokes28):
    x, y = strokes28
    with pytest.raises(ConfigError, match="preset"):
        CNNClassifier("huge").fit(x[:10], y[:10])
    with pytest.raises(DataError, match="X: expected images"):
        tiny_cnn().fit(x[:10, 0], y[:10])
    clf = tiny_cnn().fit(x[:60], y[:60])
    with pytest.raises(DataError, match="trained on"):
        clf.predict(np.zeros((2, 20, 20), np.uint8))


def test_selective_cnn_round_trips_through_safetensors(strokes28, tmp_path):
    x, y = strokes28
    clf = SelectiveClassifier(tiny_cnn(), target_fpr=0.05, delta=0.2, cv=2, random_state=0)
    clf.fit(x[:300], NAMES[y[:300]])
    pred = clf.predict(x[300:])
    assert set(pred) <= {*NAMES, NOT_SURE_NAME}
    assert len(clf.estimators_) == 2 and all(isinstance(m, CNNClassifier)
                                              for m in clf.estimators_)
    clf.save(tmp_path / "model")
    assert not list(tmp_path.rglob("*.skops")) and not list(tmp_path.rglob("*.pkl"))
    back = SelectiveClassifier.load(tmp_path / "model")
    np.testing.assert_array_equal(back.predict(x[300:]), pred)
    np.testing.assert_array_equal(back.predict_proba(x[300:]), clf.predict_proba(x[300:]))
    assert back.estimator.get_params() == clf.estimator.get_params()
