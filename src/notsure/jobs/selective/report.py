"""Outputs of the selective job: ``metrics.json``, CSV tables, PNG figures and the report.

Every sentence in the report is built from the computed results it sits next to.
"""

from __future__ import annotations

import numpy as np
from scipy import stats

from notsure.constants import NOT_SURE
from notsure.decisions import (
    RULE_GUARANTEE,
    RULE_TEXT,
    allowed_test_fp,
    certificate_rows,
    class_delta,
)
from notsure.io.run_folder import RunFolder
from notsure.jobs.selective.pipeline import SelectiveResult
from notsure.reports import Report, fmt
from notsure.reports.figures import confusion_matrix_figure, curves_figure
from notsure.reports.tables import cm_rows, rates_rows

GALLERY_MAX = 48


def metrics_document(r: SelectiveResult) -> dict:
    """The content of ``metrics.json`` (the keys the customer's checks read, plus details)."""
    ds, test = r.dataset, r.split.test
    per_class_count = np.bincount(ds.y[test], minlength=ds.n_classes)

    def part(m: dict) -> dict:
        keys = ("accuracy", "coverage", "selective_accuracy", "n", "n_not_sure", "n_errors",
                "confusion_matrix", "tp", "fp", "fn", "tn", "support", "fpr", "fpr_ci", "tpr",
                "tpr_ci", "precision")
        return {k: m[k] for k in keys}

    after = part(r.after)
    after["meets_target"] = (r.after["fpr"] <= r.config.target_fpr).tolist()
    after["all_classes_meet_target"] = bool(np.all(r.after["fpr"] <= r.config.target_fpr))
    after["aurc"] = r.aurc
    doc = {
        "class_names": list(ds.class_names),
        "target_fpr": r.config.target_fpr,
        "delta": r.config.delta,
        "seed": r.config.seed,
        "test": {"n": int(len(test)), "per_class_count": per_class_count.tolist()},
        "calibration": {
            "n": int(len(r.split.train)),
            "out_of_fold_accuracy": float(np.mean(r.fit.oof_logits.argmax(1)
                                                  == ds.y[r.split.train])),
            "certificates": [c.as_dict() for c in r.certificates],
            "after_in_sample": part(r.calibration_after),
            "rule_comparison": r.rule_comparison,
        },
        "decision_rule": {
            "strategy": r.config.strategy, "fpr_meaning": r.config.fpr_meaning,
            "folds": r.config.folds, "members_per_fold": r.config.members,
            "test_pass_probability_all_classes_at_least": r.pass_probability,
            "test_pass_probability_all_classes_if_independent": r.pass_probability_independent,
        },
        "before": part(r.before),
        "after": after,
        "members": {"test_accuracy": r.member_test_accuracy,
                    "all_members_mean_logits_test_accuracy": r.all_member_accuracy},
        "other_rules_on_test_audit_only": r.test_of_other_rules,
        "leakage": r.leakage,
    }
    if r.exclusions is not None:
        doc["exclusions"] = r.exclusions
    if r.guard is not None:
        doc["guard"] = r.guard
    if r.label_errors is not None:
        a = r.label_errors
        doc["label_errors"] = {
            "method": "confident learning on out-of-fold probabilities of the pool",
            "pool_flagged": int(len(a.flagged)),
            "pool_flagged_ids": [ds.ids[r.split.train[i]] for i in a.flagged],
            "top_negatives": [{**row, "id": ds.ids[r.split.train[row["row"]]]}
                              for row in a.top_negatives],
            "test_false_positives": [{**row, "id": ds.ids[test[row["row"]]]}
                                     for row in a.test_false_positives],
        }
    return doc




def _pct3(v: float) -> str:
    """A rate in percent, to 3 decimals."""
    return fmt.pct(v, 3)


#: Coverage and lowest class TPR of the rule tables, to 3 decimals of a percent.
_RATES = {"coverage": _pct3, "min_class_tpr": _pct3}




def training_rows(r: SelectiveResult) -> list[dict]:
    """One row per member and epoch: fold, member and the training history."""
    rows = []
    for i, res in enumerate(r.fit.results):
        k, m = divmod(i, r.fit.members)
        for h in res.history:
            rows.append({"fold": k, "member": m, **h})
    return rows




def _n(k: int, one: str, many: str) -> str:
    """``1 false positive``, ``3 false positives``."""
    return f"{fmt.count(k)} {one if k == 1 else many}"


def exclusion_sentence(info: dict) -> str:
    """What an exclusion file changed, from the counts ``exclude_from_pool`` recorded."""
    done = ("were dropped before the folds were drawn" if info["mode"] == "drop" else
            "were used for training and calibration with their suggested labels")
    return (
        f"Exclusions from `{info['file']}` (SHA-256 `{info['sha256'][:16]}`, mode "
        f"{info['mode']}): of the {_n(info['n_listed'], 'listed sample', 'listed samples')}, "
        f"{fmt.count(info['n_pool'])} in the training pool {done}, and "
        f"{fmt.count(info['n_test'])} in the locked test split kept their given labels, so the "
        "test set is the one a run without exclusions uses.")


def _findings(r: SelectiveResult) -> list[str]:
    """Sentences that state what the numbers show (in the summary and the discussion)."""
    names, target = r.dataset.class_names, r.config.target_fpr
    b, a = r.before, r.after
    fpr_b, fpr_a = b["fpr"], a["fpr"]
    over_b = [names[c] for c in np.flatnonzero(fpr_b > target)]
    over_a = [names[c] for c in np.flatnonzero(fpr_a > target)]
    worst = int(np.nanargmax(fpr_a))
    candidate = r.test_decisions.candidate
    y = r.dataset.y[r.split.test]
    abstained = r.test_decisions.prediction == NOT_SURE
    wrong = candidate != y
    n_neg = len(y) - int(a["support"][worst])
    out = [
        f"Headline: coverage {fmt.pct(a['coverage'])} on the test set, and a probability of at "
        f"least {fmt.pct(r.pass_probability)} that a test set of this size shows every class at "
        f"or below the target FPR (estimated from calibration data before the test set was "
        f"looked at; {fmt.pct(r.pass_probability_independent)} if classes failed "
        f"independently). This test set "
        + ("passes: every class is at or below the target." if not over_a else
           f"fails in {len(over_a)} of {len(names)} classes."),
        f"Before abstention the ensemble answers every test image with accuracy "
        f"{fmt.pct(b['accuracy'])} ({fmt.count(b['n_errors'])} errors); "
        + (f"{len(over_b)} of {len(names)} classes exceed the target FPR of {fmt.pct(target)} "
           f"({', '.join(over_b)})." if over_b else
           f"every class is already within the target FPR of {fmt.pct(target)}."),
        f"After abstention coverage is {fmt.pct(a['coverage'])}: "
        f"{fmt.count(a['n_not_sure'])} of {fmt.count(a['n'])} test images are `not_sure`. "
        f"Of the {fmt.count(int(wrong.sum()))} images the ensemble would have got wrong, "
        f"{fmt.count(int((wrong & abstained).sum()))} are now `not_sure` and "
        f"{_n(int((wrong & ~abstained).sum()), 'remains an error', 'remain errors')}; the price is "
        f"{_n(int((~wrong & abstained).sum()), 'correct answer', 'correct answers')} given up.",
        (f"All {len(names)} classes are at or below the target on the test set; "
         if not over_a else
         f"{len(over_a)} classes exceed the target on the test set ({', '.join(over_a)}); ")
        + f"the largest test FPR is {fmt.pct(fpr_a[worst])} (class {names[worst]}: "
          f"{_n(int(a['fp'][worst]), 'false positive', 'false positives')} among "
          f"{fmt.count(n_neg)} negatives).",
        f"Selective accuracy on the answered images is {fmt.pct(a['selective_accuracy'], 3)}; "
        f"the lowest class TPR after abstention is {fmt.pct(np.nanmin(a['tpr']))} (class "
        f"{names[int(np.nanargmin(a['tpr']))]}), the highest "
        f"{fmt.pct(np.nanmax(a['tpr']))}.",
        f"With about {fmt.count(n_neg)} negatives per class, the test set alone can show at "
        f"most that an FPR is small: with 0 false positives the 95% Clopper-Pearson upper bound "
        f"is {fmt.pct(float(1 - 0.025 ** (1 / n_neg)))}, above the target. The guarantee comes "
        f"from the calibration data; the test set checks it.",
    ]
    uncertified = [c for c in r.certificates if not c.certified]
    if uncertified:
        out.append(
            f"The calibration data cannot support the target for {len(uncertified)} classes: "
            + "; ".join(f"class {names[c.label]} has {fmt.count(c.n_negatives)} negatives, which "
                        f"certify at best {fmt.pct(c.certifiable_fpr)} at confidence "
                        f"{fmt.pct(1 - r.config.delta)}" for c in uncertified)
            + ". Their thresholds sit above every calibration negative (no false positive "
              "allowed), the most the data can do, but the stated target is not guaranteed.")
    return out


def write_label_error_section(rep: Report, r: SelectiveResult) -> None:
    """Where false positives come from: the negatives that set each threshold, and confident
    learning's verdict on them."""
    a, ds = r.label_errors, r.dataset
    names, pool = ds.class_names, r.split.train
    rep.section("Where false positives come from")
    top = a.top_negatives
    flagged_top = sum(row["likely_label_error"] for row in top)
    rep.paragraph(
        f"Confident learning (Northcutt et al., 2021) on the out-of-fold probabilities of the "
        f"{fmt.count(len(pool))} pool images flags {fmt.count(len(a.flagged))} as likely label "
        f"errors: the ensemble that never saw them is confident they are another digit. Of the "
        f"{len(top)} highest-scoring calibration negatives below ({len(top) // len(names)} per "
        f"class, the images that set the thresholds), {flagged_top} are flagged. A flagged "
        "negative is usually a clear digit of the class it scores for, labelled as another: the "
        "test set, drawn from the same pool, holds such images at the same rate, and each one "
        "the model answers correctly counts as a false positive of the labels as given.")
    rep.paragraph(
        "How they enter calibration: as the negatives their labels say they are. The test "
        "criterion counts false positives against the given labels, so a threshold that ignored "
        "them would be calibrated for a cleaner test set than the one drawn; the pass "
        "probability and the guarantee therefore rest on the labels as given (pool and test "
        "exchangeable), not on correct labels. `benchmarks/bench_test_size.py` measures, on a "
        "run's pool scores, what ignoring the flagged negatives would buy in coverage and cost "
        "in passed test sets.")
    rep.gallery([ds.x[pool[row["row"]]] for row in top],
                [f"{ds.ids[pool[row['row']]]} labelled {names[row['label']]}; score for "
                 f"{names[row['class']]} {row['score']:.1f}, threshold {row['threshold']:.1f}"
                 + (", likely label error" if row["likely_label_error"] else "")
                 for row in top], name_prefix="gallery/top_negatives", scale=3,
                caption="Each class's highest-scoring calibration negatives (score: the deployed "
                        "rule's margin for the class).")


def _summary(rep: Report, r: SelectiveResult) -> None:
    """Summary: a warning for ``--quick`` runs, then the findings."""
    rep.section("Summary")
    if r.config.quick:
        rep.paragraph("**This is a `--quick` smoke test**: small training subsets and few epochs, "
                      "to check the pipeline end to end. Its figures say nothing about what the "
                      "default run achieves.")
    rep.bullets(_findings(r))


def _approach(rep: Report, r: SelectiveResult) -> None:
    """Approach: split and cross-fitting, score and rule, thresholds, pass probability."""
    cfg, test, pool = r.config, r.split.test, r.split.train
    n_neg = min(c.n_negatives for c in r.certificates)
    rep.section("Approach")
    rep.paragraph(
        f"A test set of {fmt.count(len(test))} images ({cfg.test_per_class:,} per class) is drawn "
        f"first, stratified, from the seed {cfg.seed} alone, and nothing is fitted on it. The "
        f"remaining {fmt.count(len(pool))} images are split into {cfg.folds} folds; "
        f"{cfg.members} CNN{'s' if cfg.members > 1 else ''} with different seeds "
        f"{'are' if cfg.members > 1 else 'is'} trained per fold on the other folds, and the "
        f"fold's {cfg.members}-member ensemble scores the fold it did not see (cross-fitting). So "
        f"every non-test image has an out-of-fold score of the same kind as the deployed "
        f"ensembles give, and each class has at least {fmt.count(n_neg)} calibration negatives "
        "instead of the few thousand a held-out calibration split would leave.")
    rule = cfg.strategy
    rep.paragraph(
        "Score: for class c, the logit margin z_c - max_{j != c} z_j (of the mean logits of a "
        "fold's members). Unlike the top softmax probability it does not saturate at 1.0, so the "
        f"extreme tail that an FPR of {fmt.pct(cfg.target_fpr)} lives in stays resolvable. "
        f"Deployed rule `{rule}`: {RULE_TEXT[rule]}. " + RULE_GUARANTEE[rule])
    _thresholds_paragraph(rep, r)
    _pass_probability_paragraph(rep, r)


def _meaning_sentence(r: SelectiveResult) -> str:
    """What r, the calibration negatives allowed above a threshold, is under ``--fpr-meaning``."""
    cfg, certs = r.config, r.certificates
    if cfg.fpr_meaning == "rate":
        return (
            "`--fpr-meaning rate`: r is the largest number such that P(Binomial(n, target) <= r) "
            "<= delta; then, with probability at least 1 - delta over the calibration draw, the "
            "class's true FPR on new data from the same distribution is at most the target.")
    n_classes = len(r.dataset.class_names)
    delta_c = class_delta(cfg.fpr_meaning, cfg.delta, n_classes)
    return (
        f"`--fpr-meaning {cfg.fpr_meaning}`: r is the largest number of calibration negatives "
        f"allowed above the threshold such that a test set with "
        f"{fmt.count(certs[0].test_negatives)} negatives of the class shows an FPR at or below "
        f"the target with probability at least {fmt.pct(1 - delta_c, 2)} (the FPR at the "
        "(r+1)-th largest of n negatives is Beta(r+1, n-r) distributed, so the test count is "
        "Beta-binomial)"
        + (f"; with {n_classes} classes at {fmt.pct(1 - delta_c, 2)} each, every class passes "
           f"at once with probability at least {fmt.pct(1 - cfg.delta)} (Bonferroni)."
           if cfg.fpr_meaning == "test-all" else "."))


def _thresholds_paragraph(rep: Report, r: SelectiveResult) -> None:
    """How the per-class thresholds are chosen, and what they promise."""
    certs = r.certificates
    rep.paragraph(
        "Thresholds (Neyman-Pearson order statistic): for each class, with n calibration "
        "negatives, the threshold is the (r+1)-th largest negative score and a class is answered "
        f"only strictly above it. {_meaning_sentence(r)} Both meanings are reported per class "
        "below. Pooled out-of-fold scores mix the fold ensembles; Hoeffding's comparison of "
        "Poisson-binomial and binomial tails keeps the rate bound for their average FPR when "
        "r <= n * target - 1 "
        f"({sum(c.mixture_bound_applies for c in certs)} of {len(certs)} classes satisfy it).")


def _pass_probability_paragraph(rep: Report, r: SelectiveResult) -> None:
    """The chance that the test set passes, and why even an exact rule can fail it."""
    cfg = r.config
    m_neg = r.certificates[0].test_negatives
    allowed = allowed_test_fp(cfg.target_fpr, m_neg)
    at_target = float(stats.binom.sf(allowed, m_neg, cfg.target_fpr))
    rep.paragraph(
        "Probability that the test set shows every class at or below the target, from the "
        f"calibration evidence alone: at least {fmt.pct(r.pass_probability)} (one minus the sum "
        "of the per-class failure probabilities; no independence between classes assumed), "
        f"{fmt.pct(r.pass_probability_independent)} if classes failed independently (the "
        f"product). This test set has {fmt.count(m_neg)} negatives per class and fails a class "
        f"at {allowed + 1} false positives, so even a rule whose true FPR is exactly the target "
        f"fails a class with probability {fmt.pct(at_target)}: the test criterion is a random "
        "event, and `--fpr-meaning test-all` (or `test`) trades coverage for passing it"
        + (" - for the min rules this is a lower bound, their false positives being a subset "
           "of a fold ensemble's." if cfg.strategy != "routed" else "."))


def _data_and_split(rep: Report, r: SelectiveResult) -> None:
    """Data and split: the dataset, exclusions, images per class and split, leakage."""
    ds, y_test, pool = r.dataset, r.dataset.y[r.split.test], r.split.train
    rep.section("Data and split")
    counts = np.bincount(ds.y, minlength=ds.n_classes)
    rep.paragraph(
        f"{fmt.count(len(ds))} images of shape {ds.shape} from `{ds.source}` "
        f"(format {ds.format}, fingerprint `{ds.fingerprint[:16]}`).")
    if r.exclusions is not None:
        rep.paragraph(exclusion_sentence(r.exclusions))
    rep.table([{"class": n, "all": int(counts[c]),
                "test": int(np.sum(y_test == c)),
                "calibration/training pool": int(np.sum(ds.y[pool] == c))}
               for c, n in enumerate(ds.class_names)], caption="Images per class and split.",
              csv="tables/split_counts.csv")
    tt = r.leakage["train_test"]
    rep.paragraph(
        f"Exact duplicate images between the training pool and the test set: {tt['pairs']} "
        "pairs (byte-identical images, a leak that would flatter test scores).")


def _model_and_training(rep: Report, r: SelectiveResult) -> None:
    """Model and training: architecture, accuracies, training history and curves."""
    cfg, ds, pool = r.config, r.dataset, r.split.train
    rep.section("Model and training")
    cnn = cfg.cnn
    rep.paragraph(
        f"{cfg.folds} x {cfg.members} CNNs (architecture `{cnn['arch']}`, stages "
        f"{cnn['stages']}, dropout {cnn['dropout']}), each trained for {cnn['epochs']} epochs "
        f"with batch {cnn['batch_size']}, "
        f"AdamW (lr {cnn['lr']}, weight decay {cnn['weight_decay']}), {cnn['schedule']} schedule, "
        f"label smoothing {cnn['label_smoothing']}, augmentation "
        f"{'on (random shifts, rotations, scaling)' if cnn['augment'] else 'off'}, "
        f"precision {cnn['precision']}"
        + (f", a random subsample of {cnn['max_train']:,} training images per model"
           if cnn.get("max_train") else "") + ".")
    oof_acc = float(np.mean(r.fit.oof_logits.argmax(1) == ds.y[pool]))
    train_s = sum(res.seconds for res in r.fit.results)
    rep.paragraph(
        f"Out-of-fold accuracy on the {fmt.count(len(pool))} non-test images: "
        f"{_pct3(oof_acc)}. Single members on the test set: "
        + ", ".join(_pct3(a) for a in r.member_test_accuracy)
        + f"; the deployed rule's candidate: {_pct3(r.before['accuracy'])}; the mean "
          f"logits of all members: {_pct3(r.all_member_accuracy)}. Training took "
          f"{fmt.duration(train_s)} in all.")
    rep.run.write_csv("tables/training_history.csv", training_rows(r))
    _training_curves(rep, r)


def _training_curves(rep: Report, r: SelectiveResult) -> None:
    """The figure of each member's training and held-out error per epoch."""
    series = []
    for i, res in enumerate(r.fit.results):
        k, m = divmod(i, r.fit.members)
        ep = [h["epoch"] for h in res.history]
        series.append({"x": ep, "y": [1 - h["train_acc"] for h in res.history],
                       "label": f"fold {k} member {m} train error", "linestyle": "--"})
        if "val_acc" in res.history[0]:
            series.append({"x": ep, "y": [1 - h["val_acc"] for h in res.history],
                           "label": f"fold {k} member {m} held-out error"})
    rep.figure(curves_figure(series, xlabel="epoch", ylabel="error rate", logy=True,
                             title="Training curves (held-out = the fold's own out-of-fold part)"),
               "figures/training_curves.png", "Error per epoch of each member.")


def _certificates(rep: Report, r: SelectiveResult) -> None:
    """Calibration certificate per class: the thresholds and the calibration coverage."""
    cfg = r.config
    rep.section("Calibration certificate per class")
    rep.paragraph(
        f"Target FPR {cfg.target_fpr}, delta {cfg.delta}. `allowed_fp` is r, `calibration_fp` the "
        "calibration negatives above the threshold, `P(FPR>target)<=` the bound on the chance "
        "that the true FPR exceeds the target; `calibration_tpr` is in-sample for the thresholds.")
    rep.table(certificate_rows(r.certificates, r.dataset.class_names),
              caption="Thresholds on the deployed rule's score "
              "(calibration data: out-of-fold scores of the training pool).",
              csv="tables/certificates.csv",
              formats={"calibration_tpr": fmt.pct, "P(FPR>target)<=": lambda v: f"{v:.4f}",
                       "P(test FPR<=target)": lambda v: f"{v:.4f}"})
    cal = r.calibration_after
    rep.paragraph(
        f"On the calibration data (in-sample for the thresholds) the deployed rule answers "
        f"{_pct3(cal['coverage'])} of the images with "
        f"{_n(int(np.sum(cal['fp'])), 'false positive', 'false positives')}"
        + (" - for the routed rule this is the estimate of the deployed coverage."
           if cfg.strategy == "routed" else "."))


def _rule_comparison(rep: Report, r: SelectiveResult) -> None:
    """Scores and rules compared on calibration data, and each rule on the test set (audit)."""
    rep.section("Scores and rules compared on calibration data")
    rep.paragraph(
        "Every candidate score, thresholded the same way (same target, delta and meaning) on the "
        "same out-of-fold data; coverage and lowest class TPR are in-sample for the thresholds, "
        "AURC ranks by the score's margin above its threshold. The deployed rule was fixed "
        "before the run; none of these numbers looks at the test split.")
    rep.table(r.rule_comparison, caption="Scores on calibration data.",
              csv="tables/rule_comparison_calibration.csv",
              formats={**_RATES, "aurc": fmt.num})
    rep.paragraph(
        "For the audit only, each rule with its own out-of-fold thresholds on the test set (the "
        "min rules cannot be evaluated on calibration data, since no pool image has more than "
        "one out-of-fold ensemble). Not used for any choice.")
    rep.table(r.test_of_other_rules, caption="Rules on the test set (audit only).",
              csv="tables/rules_on_test_audit.csv",
              formats=_RATES)


def _test_results(rep: Report, r: SelectiveResult, key: str) -> None:
    """Test results ``key`` ("before" or "after") abstention: rates, confusion, per class."""
    m, names = getattr(r, key), r.dataset.class_names
    rep.section(f"Test results {key} abstention")
    rep.paragraph(
        f"Accuracy {_pct3(m['accuracy'])} (abstentions count as not correct), coverage "
        f"{_pct3(m['coverage'])}, selective accuracy "
        f"{_pct3(m['selective_accuracy'])}, "
        f"{fmt.count(m['n_errors'])} wrong answers, {fmt.count(m['n_not_sure'])} not_sure.")
    cm = m["confusion_matrix"]
    has_ns = cm.shape[1] > len(names)
    rep.figure(confusion_matrix_figure(cm, names, not_sure=has_ns,
                                       title=f"Confusion matrix, {key} abstention"),
               f"figures/confusion_{key}.png", f"Test confusion matrix {key} abstention.")
    rep.table(cm_rows(cm, names), caption=f"Confusion matrix {key} abstention "
              "(rows: true class).", csv=f"tables/confusion_{key}.csv")
    rep.table(rates_rows(m, names, r.config.target_fpr if key == "after" else None),
              caption=f"Per-class FPR and TPR {key} abstention, with 95% Clopper-Pearson "
                      "intervals.", csv=f"tables/rates_{key}.csv",
              formats={c: _pct3 for c in ("fpr", "fpr_lo", "fpr_hi", "tpr", "tpr_lo",
                                          "tpr_hi")})


def _risk_coverage(rep: Report, r: SelectiveResult) -> None:
    """Risk and coverage: the test risk-coverage curve with the operating point."""
    rep.section("Risk and coverage")
    rc = r.risk_coverage
    ok = np.isfinite(rc.risk)
    op = r.after
    rep.figure(curves_figure(
        [{"x": rc.coverage[ok], "y": rc.risk[ok], "label": "deployed score above threshold"},
         {"x": [op["coverage"]], "y": [1 - op["selective_accuracy"]], "label": "operating point",
          "linestyle": "none", "marker": "o"}],
        xlabel="coverage", ylabel="selective risk (error rate on answered)", logy=False,
        title="Risk-coverage curve on the test set"), "figures/risk_coverage.png",
        f"Answering in order of margin above the class threshold; AURC {fmt.num(r.aurc)}.")


def _not_sure_digits(rep: Report, r: SelectiveResult) -> None:
    """Digits answered not_sure: the test digits furthest below their threshold."""
    ds, test, d = r.dataset, r.split.test, r.test_decisions
    names, y_test = ds.class_names, ds.y[test]
    rep.section("Digits answered not_sure")
    ns = np.flatnonzero(d.prediction == NOT_SURE)
    order = ns[np.argsort(d.confidence[ns])][:GALLERY_MAX]
    if len(order):
        rep.gallery([ds.x[test[i]] for i in order],
                    [f"{ds.ids[test[i]]} true {names[y_test[i]]} cand. {names[d.candidate[i]]}"
                     for i in order], name_prefix="gallery/not_sure", scale=3,
                    caption=f"The {len(order)} not_sure test digits furthest below their "
                            f"threshold (of {len(ns)}).")
    else:
        rep.paragraph("No test image was answered not_sure.")


def _remaining_errors(rep: Report, r: SelectiveResult) -> None:
    """Errors that remain after abstention, with confident learning's verdict on each."""
    ds, test, d = r.dataset, r.split.test, r.test_decisions
    names, y_test = ds.class_names, ds.y[test]
    errs = np.flatnonzero((d.prediction != NOT_SURE) & (d.prediction != y_test))
    rep.subsection("Errors that remain after abstention")
    if not len(errs):
        rep.paragraph("None: every answered test image is correct.")
        return
    suspect = ({row["row"]: row["likely_label_error"]
                for row in r.label_errors.test_false_positives}
               if r.label_errors is not None else {})
    rep.gallery([ds.x[test[i]] for i in errs],
                [f"{ds.ids[test[i]]} labelled {names[y_test[i]]} said "
                 f"{names[d.prediction[i]]}"
                 + {True: ", likely label error", False: ", model error"}.get(
                     suspect.get(int(i)), "") for i in errs],
                name_prefix="gallery/remaining_errors", scale=3,
                caption="Every test image still answered wrongly (each is a false positive "
                        "of the class it was given), with what confident learning, at the "
                        "thresholds it drew from the pool's out-of-fold scores, says of it.")


def _discussion(rep: Report, r: SelectiveResult) -> None:
    """Discussion: the findings again, and the assumptions behind the guarantee."""
    rep.section("Discussion")
    rep.bullets(_findings(r))
    rep.paragraph(
        "Assumptions: the guarantee is for new images drawn like the calibration images "
        "(the pooled data, with MNIST's own class frequencies among the negatives; the test set "
        "has equal class counts), and for labels as given: a mislabelled calibration image can "
        "only make thresholds stricter, a mislabelled test image counts as an error.")


def write_report(run: RunFolder, r: SelectiveResult) -> None:
    """The report: approach, data, model, certificates, before/after, figures, discussion."""
    cfg = r.config
    rep = Report(f"Selective classification on {r.dataset.source}",
                 run, subtitle=f"target FPR {cfg.target_fpr} per class, delta {cfg.delta}")
    _summary(rep, r)
    _approach(rep, r)
    _data_and_split(rep, r)
    _model_and_training(rep, r)
    _certificates(rep, r)
    _rule_comparison(rep, r)
    _test_results(rep, r, "before")
    _test_results(rep, r, "after")
    _risk_coverage(rep, r)
    if r.guard is not None:
        write_guard_section(rep, r.guard)
    if r.label_errors is not None:
        write_label_error_section(rep, r)
    _not_sure_digits(rep, r)
    _remaining_errors(rep, r)
    _discussion(rep, r)
    rep.run_summary()
    rep.write()


#: How each synthetic outlier kind is described in the report.
KIND_TEXT = {
    "noise": "uniform random noise",
    "blank": "blank (all zero)",
    "inverted": "test digits with inverted colours (white background), not preprocessed",
    "shifted": "test digits moved into a corner",
    "letters": "capital letters in PIL's default font, MNIST-style",
    "strokes": "2-5 random straight strokes",
    "clothing": "garment silhouettes (shirts, trousers, dresses, bags, shoes), grey and textured",
}


def guard_rows(guard: dict) -> list[dict]:
    """One row per outlier kind: caught by the guard, answered with a class, answered wrongly."""
    return [{"outliers": KIND_TEXT.get(kind, kind), "n": row["n"],
             "caught by the guard": row["caught"], "answered a class": row["answered"],
             "answered a wrong class": row.get("answered_wrong")}
            for kind, row in guard["outliers"].items()]


def write_guard_section(rep: Report, guard: dict) -> None:
    """Threshold, in-distribution coverage cost and catch rates of the guard."""
    rep.section("Out-of-distribution guard")
    rep.paragraph(
        "Before the class thresholds, each image's penultimate features (the 64 global-average-"
        "pooled channels) are compared with the training images': for every member, the "
        "Mahalanobis distance to the nearest class mean (class means and a shared covariance "
        "fitted on that member's own training images), averaged over members. Images further "
        f"than {fmt.num(guard['threshold'])} are answered not_sure (reason out_of_distribution). "
        f"The threshold keeps {fmt.pct(guard['keep'], 1)} of the {fmt.count(guard['n_pool'])} "
        "training-pool images scored out of fold (each by the member that did not train on it), "
        "so no test image shapes it. A second check works on the pixels: each fold's 32 "
        "principal components of its training images, and an image's RMS reconstruction error "
        "from the components of its fold; images above "
        f"{fmt.num(guard['pixel_threshold'])} (which keeps {fmt.pct(guard['pixel_keep'], 1)} of "
        "the out-of-fold pool images) are also out_of_distribution. It catches inputs the "
        "features can mistake for digits, such as inverted colours. A third looks at the ink: "
        "its amount, the share of it that is grey rather than full, its mean value and the "
        "share of filled rather than stroke pixels, compared with the training images' by "
        f"Mahalanobis distance; images above {fmt.num(guard['ink_threshold'])} (which keeps "
        f"{fmt.pct(guard['ink_keep'], 1)} of the pool images) are out_of_distribution too, which "
        "catches textured objects such as clothing. The guard only removes answers: the FPR "
        "guarantee holds.")
    rep.paragraph(
        f"Cost on in-distribution data (out-of-fold pool): {fmt.pct(guard['pool_rejected'], 3)} "
        "of the images are rejected by the guard (features "
        f"{fmt.pct(guard['pool_rejected_features'], 3)}, pixels "
        f"{fmt.pct(guard['pool_rejected_pixels'], 3)}, ink "
        f"{fmt.pct(guard['pool_rejected_ink'], 3)}); coverage falls from "
        f"{fmt.pct(guard['coverage_without_guard'], 3)} by {fmt.pct(guard['coverage_cost'], 3)} "
        "(images the thresholds would have answered). On the test set, where every member "
        "scores each image and their mean distance is used: "
        f"{fmt.pct(guard['test_rejected'], 3)} of the {fmt.count(guard['n_test'])} images "
        f"rejected, a coverage cost of {fmt.pct(guard['test_coverage_cost'], 3)}.")
    rep.table(guard_rows(guard), caption="Synthetic outliers (seeded): share caught by the "
              "guard, and share still answered with a class (by the whole decision rule).",
              csv="tables/ood_outliers.csv",
              formats={c: fmt.pct for c in ("caught by the guard", "answered a class",
                                            "answered a wrong class")})
