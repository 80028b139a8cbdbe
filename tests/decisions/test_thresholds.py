"""NeymanPearsonThresholds: margins of logits or probabilities, certificates, files, bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy import stats
from scipy.special import softmax

from notsure import NOT_SURE, NeymanPearsonThresholds, min_negatives
from notsure.errors import ConfigError, DataError


def scores(n: int = 3000, c: int = 4, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, c, n)
    z = rng.normal(size=(n, c))
    z[np.arange(n), y] += 2.5
    return z, y


def test_thresholds_are_the_order_statistic_the_binomial_bound_allows():
    z, y = scores()
    t = NeymanPearsonThresholds(target_fpr=0.01, delta=0.05).calibrate(z, y)
    assert t.kind_ == "logits"
    for c in range(4):
        others = np.delete(z, c, axis=1).max(axis=1)
        neg = (z[:, c] - others)[y != c]
        # independent reference: largest r with P(Binomial(n, alpha) <= r) <= delta
        cdf = stats.binom.cdf(np.arange(100), len(neg), 0.01)
        r = int(np.flatnonzero(cdf <= 0.05).max())
        assert t.thresholds_[c] == np.sort(neg)[::-1][r]
        assert t.certificates_[c].certified and t.certificates_[c].calibration_fp <= r


def test_probabilities_give_the_same_thresholds_and_decisions_as_their_logits():
    z, y = scores()
    by_logits = NeymanPearsonThresholds(0.01, 0.05).calibrate(z, y)
    p = softmax(z, axis=1)
    by_proba = NeymanPearsonThresholds(0.01, 0.05).calibrate(p, y)
    assert by_proba.kind_ == "probabilities"
    np.testing.assert_allclose(by_proba.thresholds_, by_logits.thresholds_, atol=1e-9)
    z_new, _ = scores(seed=1)
    np.testing.assert_array_equal(by_proba.predict(softmax(z_new, axis=1)),
                                  by_logits.predict(z_new))
    pred = by_logits.predict(z_new)
    answered = pred != NOT_SURE
    assert 0.3 < answered.mean() < 1 and np.all(pred[answered] == z_new[answered].argmax(1))


def test_zero_probabilities_are_clipped_not_infinite():
    z, y = scores(c=3)
    p = softmax(3 * z, axis=1)
    p[p < 1e-3] = 0.0
    p /= p.sum(axis=1, keepdims=True)
    t = NeymanPearsonThresholds(0.05, 0.1).calibrate(p, y, kind="probabilities")
    assert np.all(np.isfinite(t.thresholds_))


def test_a_class_with_too_few_negatives_is_reported_or_refused_in_strict_mode():
    z, y = scores(n=2000)
    t = NeymanPearsonThresholds().calibrate(z, y)  # 0.00015 needs 19,971 negatives
    assert not any(c.certified for c in t.certificates_)
    assert "needs at least 19,971" in t.certificate_texts()[0]
    with pytest.raises(ConfigError, match="strict=True: class 0: not certified"):
        NeymanPearsonThresholds(strict=True).calibrate(z, y)


def test_min_negatives_is_where_r_zero_first_holds():
    for alpha, delta in [(0.00015, 0.05), (0.00001, 0.05), (0.01, 0.1)]:
        n = min_negatives(alpha, delta)
        assert (1 - alpha) ** n <= delta < (1 - alpha) ** (n - 1)
    assert min_negatives(0.00001, 0.05) == 299_572


def test_class_names_and_labels(tmp_path):
    z, y = scores(c=3)
    names = np.array(["cat", "dog", "eel"])
    t = NeymanPearsonThresholds(0.01, 0.05).calibrate(z, names[y], classes=names)
    assert t.classes_ == ("cat", "dog", "eel")
    assert t.labels_of(np.array([0, NOT_SURE, 2])) == ["cat", "not_sure", "eel"]
    with pytest.raises(DataError, match="row 0 has label 'cow'"):
        NeymanPearsonThresholds().calibrate(z, np.r_[["cow"], names[y[1:]]], classes=names)
    with pytest.raises(DataError, match="outside the score columns 0..2"):
        NeymanPearsonThresholds().calibrate(z, np.r_[[3], y[1:]])


@pytest.mark.parametrize("bad,match", [
    (lambda z: np.where(np.arange(z.size).reshape(z.shape) == 7, np.nan, z), "row 2, column 1"),
    (lambda z: z[:, :1], "n_classes >= 2"),
    (lambda z: z[:-1], "y has 3000 labels but scores has 2999 rows"),
])
def test_bad_scores_name_the_problem(bad, match):
    z, y = scores(c=3)
    with pytest.raises((ConfigError, DataError), match=match):
        NeymanPearsonThresholds().calibrate(bad(z), y)


def test_save_load_round_trip_and_tampering(tmp_path):
    z, y = scores()
    t = NeymanPearsonThresholds(0.01, 0.05).calibrate(z, y)
    path = t.save(tmp_path / "t.json")
    back = NeymanPearsonThresholds.load(path)
    np.testing.assert_array_equal(back.predict(z), t.predict(z))
    assert back.certificates_ == t.certificates_ and back.kind_ == "logits"
    doc = json.loads(path.read_text())
    for edit, match in [
        (lambda d: d["thresholds"].__setitem__(0, 0.0), "edited after it was written"),
        (lambda d: d.__setitem__("format", "other"), "format tag"),
    ]:
        changed = json.loads(json.dumps(doc))
        edit(changed)
        path.write_text(json.dumps(changed))
        with pytest.raises(ConfigError, match=f"t.json: not a valid thresholds file.*{match}"):
            NeymanPearsonThresholds.load(path)
    path.write_text("{")
    with pytest.raises(ConfigError, match="t.json: not a thresholds file"):
        NeymanPearsonThresholds.load(path)
    with pytest.raises(ConfigError, match="4 classes"):
        back.predict(z[:, :3])


def test_certificate_texts_name_numpy_labels_as_plain_values():
    """Classes held as numpy scalars read as the user wrote them ('a', 0), not np.str_('a')."""
    from notsure.decisions.thresholds import NeymanPearsonThresholds

    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 3000)
    scores = rng.normal(size=(3000, 3))
    scores[np.arange(3000), y] += 3
    names = np.array(["a", "b", "c"])
    texts = NeymanPearsonThresholds(target_fpr=0.01, delta=0.1).calibrate(
        scores, names[y], classes=names).certificate_texts()
    assert texts[0].startswith("class 'a': ") and "np." not in " ".join(texts)
    numeric = NeymanPearsonThresholds(target_fpr=0.01, delta=0.1).calibrate(
        scores, y, classes=np.arange(3)).certificate_texts()
    assert numeric[0].startswith("class 0: ") and "np." not in " ".join(numeric)
