"""``notsure ambiguous``."""

from __future__ import annotations

import argparse

from notsure.cli.commands import add_command
from notsure.cli.options import (
    add_folds_option,
    add_guarantee_options,
    add_option,
    add_run_options,
    add_seed_option,
    job_config,
    run_options,
)

_CONFIG = "notsure.jobs.ambiguous.pipeline:AmbiguousConfig."
_SELECTIVE = "notsure.jobs.selective.pipeline:SelectiveConfig."  # --measure-exclusion without --run


def register(sub: argparse._SubParsersAction) -> None:
    p = add_command(
        sub, "ambiguous",
        help="rank the images a model gets confidently wrong, is least sure of, or that look "
             "mislabelled",
        description="Score every image with a CNN and a k-NN that never trained on it, rank the "
                    "official test set's (MNIST t10k by default) most confidently wrong, least "
                    "confident and suspected label errors (confident learning on both "
                    "opinions), save each listed image as imgs/<index>.png and write a report.")
    p.add_argument("--run", metavar="RUN_DIR",
                   help="selective run whose models score the images (its ensemble for its "
                        "test split, out-of-fold models for its training pool); without it, "
                        "models are cross-fitted here")
    scope = p.add_mutually_exclusive_group()
    scope.add_argument("--split", dest="scope", action="store_const", const="split",
                       help="analyse the run's own test split instead of the official test set")
    scope.add_argument("--all", dest="scope", action="store_const", const="all",
                       help="analyse every image (e.g. to find label errors in training data)")
    p.add_argument("--data", help="without --run: image dataset to cross-fit on (default MNIST)")
    p.add_argument("--format", help="format of --data if detection is not enough")
    p.add_argument("--out", help="run folder (default runs/ambiguous-<timestamp>)")
    add_seed_option(p, _CONFIG[:-1])
    add_folds_option(p, _CONFIG + "folds", "cross-fitting folds without --run")
    p.add_argument("--quick", action="store_true", default=None,
                   help="quick CNN preset when cross-fitting")
    p.add_argument("--epochs", type=int, help="override the preset's epochs")
    add_option(p, "--top", type=int, default_from=_CONFIG + "top",
               help="least-confident images listed, and images per gallery")
    add_option(p, "--knn-k", type=int, default_from=_CONFIG + "knn_k",
               help="neighbours of the k-NN second opinion (cosine, raw pixels)")
    add_option(p, "--rank-by", default_from=_CONFIG + "rank_by",
               choices_from="notsure.analysis.ambiguity:RANK_BY",
               help="order of suspected label errors: probability of the given label "
                    "(lowest first) or p(predicted) - p(given) (largest first)")
    p.add_argument("--write-exclusions", metavar="FILE",
                   help="also write the flagged label errors (the run folder always has "
                        "exclusions.csv) as id,given_label,suggested_label, for `notsure "
                        "selective --exclusions`")
    p.add_argument("--measure-exclusion", action="store_true", default=None,
                   help="also run the selective job (the run's settings) with and without the "
                        "flagged images in training and report both, paired on one test split "
                        "(slow: two trainings)")
    add_option(p, "--test-per-class", type=int, default_from=_SELECTIVE + "test_per_class",
               help="test images per class of --measure-exclusion without --run")
    add_guarantee_options(p, _SELECTIVE, " (--measure-exclusion without --run)")
    add_run_options(p, _CONFIG[:-1])
    p.set_defaults(func=_ambiguous)


def _ambiguous(args: argparse.Namespace) -> int:
    from notsure.jobs.ambiguous.pipeline import AmbiguousConfig
    from notsure.jobs.ambiguous.run import run_ambiguous

    config = job_config(AmbiguousConfig, "ambiguous",
        run=args.run, scope=args.scope, data=args.data, format=args.format, out=args.out,
        seed=args.seed, folds=args.folds, quick=args.quick, epochs=args.epochs, top=args.top,
        knn_k=args.knn_k, rank_by=args.rank_by, write_exclusions=args.write_exclusions,
        measure_exclusion=args.measure_exclusion, test_per_class=args.test_per_class,
        target_fpr=args.target_fpr, delta=args.delta, quiet=args.quiet, **run_options(args))
    print(run_ambiguous(config, argv=args.argv))
    return 0
