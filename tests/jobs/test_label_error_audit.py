"""The selective job's label-error audit on scores with planted label errors."""

import numpy as np

from notsure.decisions import logit_margins
from notsure.deploy.predictor import Decisions
from notsure.jobs.selective.pipeline import label_error_audit
from notsure.models.cross_fit import CrossFit

C, N, FOLDS, MEMBERS = 3, 600, 2, 2


def _logits(rng, classes):
    """Member logits confident in ``classes`` (one per row), with member noise."""
    z = rng.normal(0, 0.3, (MEMBERS, len(classes), C))
    z[:, np.arange(len(classes)), classes] += 6.0
    return z


def test_planted_label_errors_are_flagged_and_model_errors_are_not():
    rng = np.random.default_rng(0)
    truth = rng.integers(0, C, N)
    y = truth.copy()
    planted = np.arange(0, 30, 3)  # clear images of their true class, labelled as the next one
    y[planted] = (truth[planted] + 1) % C
    oof = _logits(rng, truth)
    fit = CrossFit(oof_member_logits=oof, fold_of=np.arange(N) % FOLDS, extra_logits=None,
                   results=[None] * (FOLDS * MEMBERS), members=MEMBERS)
    # Test set: row 0 a clear 0 labelled 1 (a label error the model gets right), row 1 a 2
    # the model calls 0 without confidence (a model error), the rest right.
    y_test = np.array([1, 2, 0, 1, 2])
    seen = np.array([0, 0, 0, 1, 2])
    test_logits = _logits(rng, seen)
    test_logits[:, 1] = [[1.0, 0.2, 0.8], [0.9, 0.1, 0.7]]
    fit.extra_logits = np.concatenate([test_logits] * FOLDS)  # every fold: the same members
    scores = logit_margins(oof.mean(axis=0))
    thresholds = np.full(C, 3.0)
    decisions = Decisions(mean_logits=test_logits.mean(axis=0), margins=None, member_logits=None,
                          prediction=np.array([0, 0, 0, 1, 2]), confidence=np.zeros(5),
                          routes=np.array([0, 1, 0, 1, 0]))
    audit = label_error_audit(fit, y, scores, thresholds, decisions, y_test, top=2)
    assert set(audit.flagged) == set(planted)
    assert len(audit.top_negatives) == 2 * C
    for row in audit.top_negatives:  # the top negatives of every class are planted errors
        assert row["likely_label_error"] and row["row"] in planted
        assert row["above_threshold"] == (row["score"] > 3.0)
    verdicts = {row["row"]: row["likely_label_error"] for row in audit.test_false_positives}
    assert verdicts == {0: True, 1: False}
