"""Targets of the out-of-distribution guard (issues 13 and 24), measured on a finished selective
run: at most 1% of noise and blank images answered, at most 2% of unlike-digit images (letters,
strokes, clothing); inverted test digits answered with a wrong digit at most 0.5% of the time,
with and without preprocessing; the guard's in-distribution coverage cost at most 0.5 points;
every class's test FPR still at or below the target. Then each of the guard's checks and two
alternatives from the logits (energy, Liu et al. 2020; top softmax probability), each alone at
the same share of out-of-fold pool images kept, by the share of every outlier kind they catch.

    python benchmarks/bench_ood_guard.py --run runs/sel-seed0 [--n 1000] [--seed 1]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from scipy.special import logsumexp

from notsure import NOT_SURE
from notsure.data.images import to_training_form
from notsure.data.outliers import synthetic_outliers
from notsure.deploy.selective_run import SelectiveRun


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--run", required=True, help="folder of a finished `notsure selective` run")
    ap.add_argument("--n", type=int, default=1000, help="outliers of each kind")
    ap.add_argument("--seed", type=int, default=1, help="seed of the outliers (not the run's)")
    args = ap.parse_args()
    run = Path(args.run)
    folder = SelectiveRun(run)
    metrics = folder.metrics
    ds = folder.dataset()
    test = folder.split(len(ds)).test
    predictor = folder.predictor()
    guard = metrics["guard"]
    print(f"guard threshold {guard['threshold']:.3f} (keeps {guard['keep']:.1%} of out-of-fold "
          f"pool images)")
    print(f"coverage cost, out-of-fold pool: {guard['coverage_cost']:.3%} "
          f"(rejected {guard['pool_rejected']:.3%}); test set: "
          f"{guard.get('test_coverage_cost', float('nan')):.3%}")
    target = metrics["target_fpr"]
    fpr = np.array(metrics["after"]["fpr"])
    print(f"test FPR after abstention: max {fpr.max():.5f} (target {target}); all classes at or "
          f"below: {bool(np.all(fpr <= target))}; coverage {metrics['after']['coverage']:.2%}")
    x, y = ds.x[test], ds.y[test]
    pick = np.random.default_rng(args.seed).permutation(len(x))[:args.n]
    outliers = synthetic_outliers(x[pick], args.n, args.seed)
    outliers["inverted, preprocessed"] = to_training_form(
        list(outliers["inverted"]), predictor.image_shape, True, "inverted")[0]
    print(f"{'outliers':<24}{'n':>6}{'caught':>9}{'answered':>10}{'wrong':>8}")
    decided = {}
    for kind, images in outliers.items():
        d = decided[kind] = predictor.predict(images)
        said = d.prediction != NOT_SURE
        wrong = (f"{np.mean(said & (d.prediction != y[pick][:len(images)])):.2%}"
                 if kind.startswith(("inverted", "shifted")) else "-")
        print(f"{kind:<24}{len(images):>6}{np.mean(d.out_of_distribution):>9.2%}"
              f"{np.mean(said):>10.2%}{wrong:>8}")
    compare_checks(folder, ds, predictor, outliers, decided)


def logit_scores(logits: np.ndarray) -> dict[str, np.ndarray]:
    """Scores from one ensemble's mean logits ``(N, C)``, higher = less like training: energy
    (minus the log-sum-exp of the logits) and one minus the top softmax probability."""
    lse = logsumexp(logits, axis=1)
    return {"energy": -lse, "1 - max softmax": 1 - np.exp(logits.max(axis=1) - lse)}


def compare_checks(folder: SelectiveRun, ds, predictor, outliers: dict, decided: dict,
                   keep: float = 0.995) -> None:
    """Each check alone, its threshold keeping ``keep`` of the out-of-fold pool images (the
    features check: the run's own threshold, set the same way); ``decided``: the predictor's
    decisions on each kind of outlier."""
    split = folder.split(len(ds))
    fold_of = folder.pool_folds(split)
    pool = ds.x[split.train]
    oof_logits = folder.scores(split, fold_of)["oof_member_logits"].mean(axis=0)
    guard = predictor.guard
    pool_scores = {"pixels (PCA error)": guard.pixels.score(pool, fold_of),
                   "ink statistics": guard.ink.score(pool), **logit_scores(oof_logits)}
    thresholds = {k: np.quantile(v, keep) for k, v in pool_scores.items()}
    print(f"\neach check alone, keeping {keep:.1%} of out-of-fold pool images: share caught")
    names = ["features (Mahalanobis)", *pool_scores]
    print(f"{'outliers':<24}" + "".join(f"{n:>24}" for n in names))
    for kind, images in outliers.items():
        d = decided[kind]
        routes = d.routes
        scores = {"pixels (PCA error)": guard.pixels.score(images, routes),
                  "ink statistics": guard.ink.score(images), **logit_scores(d.mean_logits)}
        caught = [np.mean(d.ood_score > guard.threshold)]
        caught += [np.mean(scores[n] > thresholds[n]) for n in pool_scores]
        print(f"{kind:<24}" + "".join(f"{c:>24.2%}" for c in caught))


if __name__ == "__main__":
    main()
