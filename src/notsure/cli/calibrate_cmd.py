"""``notsure calibrate`` and ``notsure decide``: certified thresholds for any model's scores."""

from __future__ import annotations

import argparse

from notsure.cli.commands import add_command
from notsure.cli.options import add_guarantee_options, add_option, given
from notsure.decisions.thresholds import SCORE_KINDS

_CONFIG = "notsure.jobs.calibrate.run:CalibrateConfig."

_SCORES_HELP = ("a model's scores, one column per class: CSV (a header gives the class names), "
                ".npy, or .npz (arrays 'scores' and optional 'classes')")


def register(sub: argparse._SubParsersAction) -> None:
    p = add_command(
        sub, "calibrate",
        help="per-class thresholds with a false positive guarantee for any model's scores",
        description="Choose, for every class, the threshold on its score margin that keeps its "
                    "false positive rate at or below --target-fpr (except with probability "
                    "--delta), from out-of-sample scores and true labels. Writes "
                    "thresholds.json, certificates.csv and a report into --out.")
    p.add_argument("scores", metavar="SCORES", help=_SCORES_HELP)
    p.add_argument("--labels", required=True, metavar="LABELS",
                   help="true class of every row: CSV (one per line) or .npy; class names if "
                        "the scores name their columns, else column indices 0..C-1")
    add_guarantee_options(p, _CONFIG)
    add_option(p, "--kind", choices=SCORE_KINDS,
               default_from=_CONFIG + "kind",
               help="what the scores are; auto: probabilities if every row is in [0, 1] and "
                    "sums to 1")
    p.add_argument("--strict", action="store_true",
                   help="fail if a class has too few negatives for the target, instead of "
                        "certifying what the data allow")
    p.add_argument("--out", help="run folder (default runs/calibrate-<timestamp>)")
    p.set_defaults(func=_calibrate)

    q = add_command(
        sub, "decide",
        help="apply calibrated thresholds to scores: a class or not_sure per row",
        description="Writes a CSV: row, prediction (class or not_sure), margin above the "
                    "class's threshold.")
    q.add_argument("thresholds", metavar="THRESHOLDS",
                   help="thresholds.json written by `notsure calibrate`")
    q.add_argument("scores", metavar="SCORES", help=_SCORES_HELP + ", same columns as calibrated")
    q.add_argument("--out", required=True, metavar="FILE", help="CSV of decisions to write")
    q.set_defaults(func=_decide)


def _calibrate(args: argparse.Namespace) -> int:
    from notsure.jobs.calibrate.run import CalibrateConfig, run_calibrate

    config = CalibrateConfig(**given(scores=args.scores, labels=args.labels, out=args.out,
                                     target_fpr=args.target_fpr, delta=args.delta,
                                     kind=args.kind, strict=args.strict, quiet=args.quiet))
    print(run_calibrate(config, argv=args.argv))
    return 0


def _decide(args: argparse.Namespace) -> int:
    from notsure.jobs.calibrate.run import run_decide

    print(run_decide(args.thresholds, args.scores, args.out))
    return 0
