"""Which locked test-set size and which label-error handling give the most coverage x P(pass),
simulated from a finished selective run's out-of-fold pool scores (never its test split).

    python benchmarks/bench_test_size.py --run runs/selective-... --sizes 1000 1482 2223 2963

Each row: test images per class, the false positives a class may show, the meaning thresholds
are chosen for, whether negatives that confident learning flags as label errors were left out of
calibration, mean test coverage, the share of simulated test sets in which every class passed,
the calibration part's own estimate of that share, and coverage x pass rate.
"""

from __future__ import annotations

import argparse

import numpy as np

from notsure.analysis.ambiguity import ensemble_probabilities
from notsure.decisions import calibration_scores
from notsure.decisions.test_size import simulate_test_sizes
from notsure.deploy.selective_run import SelectiveRun


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", required=True, help="folder of a finished selective run")
    ap.add_argument("--sizes", type=int, nargs="+", default=[1000, 1482, 2223, 2963])
    ap.add_argument("--meanings", nargs="+", default=["rate", "test-all"])
    ap.add_argument("--draws", type=int, default=100)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    run = SelectiveRun(args.run)
    ds = run.dataset()
    scores = run.scores(run.split(len(ds)))
    y = ds.y[scores["pool_positions"]]
    member_logits = scores["oof_member_logits"]
    rule = run.config.get("strategy", "routed")
    cal = calibration_scores(rule, member_logits)
    rank = member_logits[0] if rule == "min-member" else member_logits.mean(axis=0)
    probs = ensemble_probabilities(member_logits)
    m = run.metrics
    print(f"run {run.path.name}: {len(y):,} pool images, rule {rule}, target "
          f"{m['target_fpr']}, delta 0.05 (rate) / 0.1 (test-all), {args.draws} draws per row")
    header = ("size", "allowed_fp", "meaning", "label_errors", "coverage", "pass_rate",
              "estimate", "cov_x_pass")
    print(" ".join(f"{h:>12}" for h in header))
    for meaning in args.meanings:
        delta = 0.05 if meaning == "rate" else 0.1
        for drop in (False, True):
            rows = simulate_test_sizes(cal, rank, y, args.sizes, target_fpr=m["target_fpr"],
                                       delta=delta, meaning=meaning, draws=args.draws,
                                       seed=args.seed, probabilities=probs if drop else None)
            for o in rows:
                print(" ".join(f"{v:>12}" for v in (
                    o.size, o.allowed_fp, meaning, "left out" if drop else "kept",
                    f"{o.coverage:.4f}", f"{o.pass_rate:.3f}", f"{o.estimate:.3f}",
                    f"{o.coverage_times_pass:.4f}")), flush=True)
    print(f"(pool scores of {len(np.unique(scores['fold_of']))} folds; calibration in each draw "
          "is the pool less the simulated test set)")


if __name__ == "__main__":
    main()
