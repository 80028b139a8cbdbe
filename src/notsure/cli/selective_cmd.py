"""``notsure selective`` and ``notsure predict``."""

from __future__ import annotations

import argparse

from notsure.cli.commands import add_backend_option, add_command, add_run_argument
from notsure.cli.options import (
    add_folds_option,
    add_guarantee_options,
    add_option,
    add_run_options,
    add_seed_option,
    job_config,
    run_options,
)
from notsure.decisions.neyman_pearson import MEANING_TEXT, MEANINGS
from notsure.decisions.rules import RULE_TEXT, RULES
from notsure.models.runtime import PRECISIONS

_CONFIG = "notsure.jobs.selective.pipeline:SelectiveConfig."


def register(sub: argparse._SubParsersAction) -> None:
    p = add_command(
        sub, "selective",
        help="train a CNN ensemble that answers not_sure to keep every class's FPR at a target",
        description="Train on MNIST (default) or any image dataset, lock a stratified test set, "
                    "cross-fit a CNN ensemble, choose per-class thresholds with a Neyman-Pearson "
                    "guarantee and report before/after metrics.")
    p.add_argument("--data", help="image dataset (any format `notsure data info` reads); "
                                  "default: MNIST in $NOTSURE_DATA_DIR (downloaded if missing)")
    p.add_argument("--format", help="format of --data if detection is not enough")
    p.add_argument("--out", help="run folder (default runs/selective-<timestamp>)")
    add_seed_option(p, _CONFIG[:-1])
    add_option(p, "--test-per-class", type=int, default_from=_CONFIG + "test_per_class",
               help="test images per class")
    add_folds_option(p, _CONFIG + "folds", "cross-fitting folds")
    add_option(p, "--members", type=int, default_from=_CONFIG + "members",
               help="CNNs per fold; each fold's ensemble scores the images it held out")
    add_option(p, "--strategy", choices=RULES,
               default_from=_CONFIG + "strategy",
               help="decision rule, thresholded on: "
                    + "; ".join(f"{k}: {v}" for k, v in RULE_TEXT.items()))
    add_guarantee_options(p, _CONFIG)
    add_option(p, "--fpr-meaning", choices=MEANINGS, default_from=_CONFIG + "fpr_meaning",
               help="; ".join(f"{k}: {v}" for k, v in MEANING_TEXT.items())
               + " (the test set has --test-per-class images per class)")
    p.add_argument("--quick", action="store_true", default=None,
                   help="small model, few epochs: a smoke test that still writes every artifact")
    p.add_argument("--epochs", type=int, help="override the preset's epochs")
    p.add_argument("--precision", choices=PRECISIONS, help="override the preset's precision")
    p.add_argument("--exclusions", metavar="FILE",
                   help="CSV id,given_label,suggested_label of suspected label errors (as written "
                        "by `notsure ambiguous --write-exclusions`): listed training-pool samples "
                        "are dropped or relabelled; the test split is drawn as without it")
    add_option(p, "--exclusion-mode", default_from=_CONFIG + "exclusion_mode",
               choices_from="notsure.jobs.selective.pipeline:EXCLUSION_MODES",
               help="drop the listed training-pool samples, or train and calibrate them with "
                    "their suggested labels")
    add_run_options(p, _CONFIG[:-1])
    p.set_defaults(func=_selective)

    q = add_command(sub, "predict",
                    help="label images with a class or not_sure using a selective run",
                    description="Writes a CSV: id, prediction (class or not_sure), reason "
                                "(answered, below_threshold, out_of_distribution), margin above "
                                "the class threshold, and label/correct when the input has "
                                "labels.")
    add_run_argument(q)
    q.add_argument("input", metavar="INPUT",
                   help="images: an image file (PNG, JPEG, ...), a folder of them (sub-folders "
                        "per class give labels), a .npy array, or any dataset format")
    add_image_options(q)
    q.add_argument("--out", help="CSV to write (default INPUT-name.predictions.csv)")
    add_backend_option(q)
    q.set_defaults(func=_predict)


def add_image_options(parser: argparse.ArgumentParser) -> None:
    """``--format``, ``--scale`` and ``--no-preprocess``: how images to classify are read."""
    parser.add_argument("--format", help="format of INPUT if detection is not enough (a dataset "
                                         "format, or npy, image, image-folder)")
    parser.add_argument("--scale", type=float, metavar="MAX",
                        help="the value that means full ink in a .npy input, e.g. 1 for floats "
                             "in 0..1 (pixels are multiplied by 255/MAX)")
    parser.add_argument("--no-preprocess", dest="preprocess", action="store_false",
                        help="use images as given: no resizing, cropping, centring or inverting "
                             "(images of another size are then an error)")


def _selective(args: argparse.Namespace) -> int:
    from notsure.data.splits import TooFewForTest
    from notsure.errors import ConfigError
    from notsure.jobs.selective.pipeline import SelectiveConfig
    from notsure.jobs.selective.run import run_selective

    config = job_config(SelectiveConfig, "selective",
        data=args.data, format=args.format, out=args.out, seed=args.seed,
        test_per_class=args.test_per_class, folds=args.folds, members=args.members,
        strategy=args.strategy, fpr_meaning=args.fpr_meaning, target_fpr=args.target_fpr,
        delta=args.delta, quick=args.quick, quiet=args.quiet, epochs=args.epochs,
        precision=args.precision, exclusions=args.exclusions,
        exclusion_mode=args.exclusion_mode, **run_options(args))
    try:
        path = run_selective(config, argv=args.argv)
    except TooFewForTest as exc:  # word the remedy with the flag, not the Python argument
        fix = f"lower --test-per-class to at most {exc.fits}" if exc.fits else \
            "use a dataset whose every class has at least 2 samples"
        raise ConfigError(f"--test-per-class: {exc.detail}; {fix}") from None
    print(path)
    return 0


def _predict(args: argparse.Namespace) -> int:
    from notsure.deploy.predict_files import PredictConfig, run_predict

    out = run_predict(PredictConfig(run_dir=args.run_dir, input=args.input, format=args.format,
                                    out=args.out, quiet=args.quiet, scale=args.scale,
                                    preprocess=args.preprocess, backend=args.backend))
    print(out)
    return 0
