"""``notsure evaluate``: a selective run scored on the user's own labelled images."""

from __future__ import annotations

import argparse
import sys

from notsure.cli.commands import add_backend_option, add_command, add_run_argument
from notsure.cli.selective_cmd import add_image_options


def register(sub: argparse._SubParsersAction) -> None:
    p = add_command(
        sub, "evaluate",
        help="score a selective run on your own labelled images",
        description="Per-class FPR and TPR with 95%% Clopper-Pearson intervals, coverage, the "
                    "confusion matrix with its not_sure column and the out-of-distribution share "
                    "of a run's predictor on labelled images; warns when some of them were in "
                    "the run's training pool.")
    add_run_argument(p)
    p.add_argument("data", metavar="LABELLED_DATA",
                   help="labelled images: any dataset format, or a folder with one sub-folder "
                        "of images per class")
    add_image_options(p)
    p.add_argument("--out", metavar="FILE", help="also write every figure as JSON to FILE")
    add_backend_option(p)
    p.set_defaults(func=_evaluate)


def _evaluate(args: argparse.Namespace) -> int:
    from notsure.deploy.evaluate import (
        EvaluateConfig,
        format_evaluation,
        overlap_warning,
        run_evaluate,
    )

    result = run_evaluate(EvaluateConfig(
        run_dir=args.run_dir, data=args.data, format=args.format, scale=args.scale,
        preprocess=args.preprocess, out=args.out, backend=args.backend, quiet=args.quiet))
    warning = overlap_warning(result.overlap)
    if warning:
        print(f"notsure: {warning}", file=sys.stderr)
    print(format_evaluation(result))
    return 0
