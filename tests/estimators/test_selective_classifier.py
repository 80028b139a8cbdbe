"""SelectiveClassifier: scikit-learn's estimator checks, the FPR guarantee by simulation, labels,
and saving without pickle."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.linear_model import LogisticRegression
from sklearn.svm import LinearSVC
from sklearn.utils.estimator_checks import parametrize_with_checks

from notsure import NOT_SURE, NOT_SURE_NAME
from notsure.decisions import ensemble_margins
from notsure.errors import ConfigError, DataError
from notsure.selective_classifier import SelectiveClassifier

#: Checks that test what an abstaining classifier deliberately does not do.
ABSTAINING = {
    "check_classifiers_train": "asserts predict equals the arg-max of predict_proba / "
    "decision_function for every sample; a selective classifier answers not_sure where the "
    "arg-max class's margin is below its threshold, by design",
    "check_classifiers_classes": "trains on the labels -1 and 1, and -1 is the default not-sure "
    "marker for numeric labels; fit refuses a label that collides with the marker (pass "
    "not_sure= another value; test_labels_that_collide_with_the_marker)",
}


@parametrize_with_checks(
    [SelectiveClassifier(LogisticRegression(), random_state=0),
     SelectiveClassifier(LinearSVC(), random_state=0)],
    expected_failed_checks=lambda est: ABSTAINING,
)
def test_scikit_learn_estimator_checks(estimator, check):
    check(estimator)


def gaussian_classes(n_per_class: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Three overlapping 2-D Gaussian classes (unit variance, means on a triangle)."""
    means = np.array([[0.0, 0.0], [3.0, 0.0], [1.5, 2.6]])
    y = np.repeat(np.arange(3), n_per_class)
    return means[y] + rng.standard_normal((len(y), 2)), y


@pytest.mark.slow
def test_fpr_guarantee_holds_in_simulation():
    """Each class's true FPR (estimated on 40,000 fresh negatives) exceeds the target in at
    most about a delta share of repetitions; the plain arg-max rule exceeds it every time."""
    target, delta, reps = 0.01, 0.1, 60
    rng = np.random.default_rng(12)
    x_big, y_big = gaussian_classes(20_000, rng)
    exceed = np.zeros(3, dtype=int)
    fprs, coverage = [], []
    for rep in range(reps):
        x, y = gaussian_classes(400, rng)
        clf = SelectiveClassifier(LogisticRegression(), target_fpr=target, delta=delta, cv=3,
                                  random_state=rep).fit(x, y)
        pred = clf.predict(x_big)
        fpr = np.array([np.mean(pred[y_big != c] == c) for c in range(3)])
        exceed += fpr > target
        fprs.append(fpr)
        coverage.append(np.mean(pred != NOT_SURE))
        assert all(c.certified for c in clf.certificates_)
    # Each class's count of exceedances is at most Binomial(reps, delta).
    assert exceed.max() <= stats.binom.ppf(0.999, reps, delta), exceed
    # Not vacuous: the FPRs come close to the target and most samples are answered...
    assert np.median(fprs) > target / 4
    assert np.mean(coverage) > 0.5
    # ...while answering the arg-max everywhere breaks the target for every class.
    argmax = clf.estimators_[0].predict(x_big)
    assert all(np.mean(argmax[y_big != c] == c) > 5 * target for c in range(3))


def test_prediction_is_the_main_jobs_rule_on_log_probabilities():
    rng = np.random.default_rng(0)
    x, y = gaussian_classes(300, rng)
    clf = SelectiveClassifier(LogisticRegression(), target_fpr=0.02, delta=0.1, cv=4,
                              random_state=0).fit(x, y)
    log_p = np.stack([np.log(m.predict_proba(x)) for m in clf.estimators_])
    margins = ensemble_margins(log_p)
    candidate = log_p.mean(axis=0).argmax(axis=1)
    passed = margins[np.arange(len(x)), candidate] > clf.thresholds_[candidate]
    np.testing.assert_array_equal(clf.predict(x), np.where(passed, candidate, NOT_SURE))
    np.testing.assert_array_equal(clf.predict_proba(x).argmax(axis=1), candidate)
    assert len(clf.estimators_) == 4 and len(clf.certificates_) == 3


def test_string_labels_get_the_not_sure_name_and_integer_labels_not_sure():
    rng = np.random.default_rng(1)
    x, y = gaussian_classes(200, rng)
    names = np.array(["cat", "dog", "eel"])
    strict = dict(target_fpr=0.001, delta=0.05, cv=3, random_state=0)  # few negatives: abstains
    pred = SelectiveClassifier(LogisticRegression(), **strict).fit(x, names[y]).predict(x)
    assert set(pred) <= {"cat", "dog", "eel", NOT_SURE_NAME} and NOT_SURE_NAME in set(pred)
    pred = SelectiveClassifier(LogisticRegression(), **strict).fit(x, y + 10).predict(x)
    assert set(pred.tolist()) <= {10, 11, 12, NOT_SURE} and NOT_SURE in pred


def test_labels_that_collide_with_the_marker():
    rng = np.random.default_rng(2)
    x, y = gaussian_classes(100, rng)
    signs = np.where(y == 0, -1, 1)
    with pytest.raises(DataError, match="not_sure="):
        SelectiveClassifier(LogisticRegression(), cv=3).fit(x, signs)
    clf = SelectiveClassifier(LogisticRegression(), target_fpr=0.001, cv=3, not_sure=0)
    assert set(clf.fit(x, signs).predict(x).tolist()) <= {-1, 0, 1}


def test_a_class_with_too_few_negatives_gets_a_certificate_not_an_error():
    rng = np.random.default_rng(3)
    x, y = gaussian_classes(100, rng)
    clf = SelectiveClassifier(LogisticRegression(), cv=3, random_state=0).fit(x, y)
    assert not any(c.certified for c in clf.certificates_)
    assert "needs at least 19,971" in clf.certificate_texts()[0]


@pytest.mark.parametrize("bad,match", [({"cv": 1}, "cv must be"), ({"target_fpr": 0}, "FPR"),
                                       ({"delta": 1.5}, "delta")])
def test_bad_parameters_name_the_parameter(bad, match):
    x, y = gaussian_classes(20, np.random.default_rng(0))
    with pytest.raises(ConfigError, match=match):
        SelectiveClassifier(LogisticRegression(), **bad).fit(x, y)


@pytest.mark.slow  # importing skops takes 10-30 s on a busy machine
def test_save_and_load_with_skops_give_identical_predictions(tmp_path):
    pytest.importorskip("skops")
    rng = np.random.default_rng(4)
    x, y = gaussian_classes(200, rng)
    names = np.array(["a", "b", "c"])
    clf = SelectiveClassifier(LogisticRegression(C=0.5), target_fpr=0.02, delta=0.1, cv=3,
                              random_state=0).fit(x, names[y])
    clf.save(tmp_path / "model")
    back = SelectiveClassifier.load(tmp_path / "model")
    np.testing.assert_array_equal(back.predict(x), clf.predict(x))
    np.testing.assert_array_equal(back.predict_proba(x), clf.predict_proba(x))
    assert back.get_params()["estimator"].C == 0.5 and back.certificates_ == clf.certificates_


@pytest.mark.slow
def test_loading_refuses_altered_or_untrusted_files(tmp_path):
    pytest.importorskip("skops")
    x, y = gaussian_classes(60, np.random.default_rng(5))
    clf = SelectiveClassifier(Stranger(), target_fpr=0.05, cv=3).fit(x, y)
    clf.save(tmp_path / "m")
    with pytest.raises(ConfigError, match="does not trust.*Stranger"):
        SelectiveClassifier.load(tmp_path / "m")
    member = tmp_path / "m" / "estimator.skops"
    member.write_bytes(member.read_bytes() + b"x")
    with pytest.raises(ConfigError, match="estimator.skops: SHA-256 differs"):
        SelectiveClassifier.load(tmp_path / "m")
    with pytest.raises(ConfigError, match="selective.json: not found"):
        SelectiveClassifier.load(tmp_path / "nothing")


class Stranger(ClassifierMixin, BaseEstimator):
    """A classifier skops does not know: loading it must be refused unless trusted."""

    def fit(self, x, y):
        self.classes_ = np.unique(y)
        self.means_ = np.stack([x[y == c].mean(axis=0) for c in self.classes_])
        return self

    def decision_function(self, x):
        return -((x[:, None, :] - self.means_[None]) ** 2).sum(axis=2)


def test_groups_stay_in_one_fold():
    """With groups, no member scores a sample whose group it trained on."""
    rng = np.random.default_rng(6)
    x, y = gaussian_classes(120, rng)
    groups = np.arange(len(y)) // 4  # four samples per group, all of one class
    seen = []

    class Recorder(LogisticRegression):
        def fit(self, x_fit, y_fit):
            seen.append({tuple(row) for row in np.round(x_fit, 12)})
            return super().fit(x_fit, y_fit)

    SelectiveClassifier(Recorder(), target_fpr=0.05, cv=3, random_state=0).fit(x, y, groups)
    assert len(seen) == 3
    for trained in seen:
        held_groups = {g for g, row in zip(groups, np.round(x, 12), strict=True)
                       if tuple(row) not in trained}
        in_training = {g for g, row in zip(groups, np.round(x, 12), strict=True)
                       if tuple(row) in trained}
        assert not held_groups & in_training
