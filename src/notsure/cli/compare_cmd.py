"""``notsure compare``, and ``notsure data make-letters`` (added by ``data_cmd``)."""

from __future__ import annotations

import argparse

from notsure.cli.commands import add_command
from notsure.cli.options import (
    add_data_option,
    add_folds_option,
    add_option,
    add_run_options,
    add_seed_option,
    data_path,
    job_config,
    lazy_choices,
    run_options,
)

_CONFIG = "notsure.jobs.compare.pipeline:CompareConfig."

#: Shown in the help; ``CompareConfig.validate`` checks names against the job's own list, so the
#: parser does not import scikit-learn and torch for every command.
_MODEL_NAMES = "logreg, linear_svm, rbf_svm, knn, tree, forest, cnn, cnn_deep"


def register(sub: argparse._SubParsersAction) -> None:
    p = add_command(
        sub, "compare",
        help="compare classical models and CNNs with cross-validation on a locked test split",
        description="Lock a stratified test split, choose each model family's hyperparameters "
                    "by stratified K-fold CV on the training part only, refit, evaluate once on "
                    "the test split (refusing any model whose training data overlaps it) and "
                    "write a report. Default data: MNIST.")
    add_data_option(p, "dataset (any format `notsure data info` reads); default: MNIST in "
                       "$NOTSURE_DATA_DIR (downloaded if missing)")
    p.add_argument("--format", help="format of --data if detection is not enough")
    p.add_argument("--labels", metavar="FILE", help="labels file of a headerless CSV or IDX file")
    p.add_argument("--out", help="run folder (default runs/compare-<timestamp>)")
    add_seed_option(p, _CONFIG[:-1])
    p.add_argument("--models", type=_names,
                   help=f"comma-separated subset of: {_MODEL_NAMES} (default: all; CNNs "
                        "only for images)")
    add_option(p, "--test-fraction", type=float, default_from=_CONFIG + "test_fraction",
                   help="share of every class held out for test (default 1/7)")
    p.add_argument("--test-per-class", type=int,
                   help="instead of --test-fraction: this many test images of every class")
    add_folds_option(p, _CONFIG + "cv_folds", "stratified CV folds", old="--cv-folds")
    p.add_argument("--quick", action="store_true", default=None,
                   help="small CV samples, small CNNs: a smoke test that writes every artifact")
    p.add_argument("--cv-max", type=_cap, action="append", default=[], metavar="MODEL=N",
                   help="use at most N training samples for MODEL's CV ('all=N': every model); "
                        "repeatable")
    p.add_argument("--fit-max", type=_cap, action="append", default=[], metavar="MODEL=N",
                   help="train MODEL's final fit on at most N samples (a stratified subsample); "
                        "repeatable")
    lazy_choices(p.add_argument(
        "--class-weight",
        help="weigh classes equally in training (default: every image counts once)"),
        "notsure.models.classical:CLASS_WEIGHTS")
    add_option(p, "--select-by", default_from=_CONFIG + "select_by",
               choices_from="notsure.jobs.compare.pipeline:SELECT_BY",
                   help="CV score that chooses each family's hyperparameters")
    p.add_argument("--epochs", type=int, help="override the CNN presets' epochs")
    add_run_options(p, _CONFIG[:-1])
    p.set_defaults(func=_compare)


def _names(text: str) -> tuple[str, ...]:
    return tuple(n.strip() for n in text.split(",") if n.strip())


def _cap(text: str) -> tuple[str, int]:
    name, sep, value = text.partition("=")
    if not sep or not name.strip() or not value.strip().isdigit():
        raise argparse.ArgumentTypeError(f"expected MODEL=N (e.g. rbf_svm=20000), got {text!r}")
    return name.strip(), int(value)


def _compare(args: argparse.Namespace) -> int:
    from notsure.jobs.compare.pipeline import CompareConfig
    from notsure.jobs.compare.run import run_compare

    config = job_config(CompareConfig, "compare",
        data=data_path(args), format=args.format, labels=args.labels, out=args.out, seed=args.seed,
        models=args.models, test_fraction=args.test_fraction, test_per_class=args.test_per_class,
        cv_folds=args.folds, quick=args.quick, cv_max=dict(args.cv_max),
        fit_max=dict(args.fit_max), class_weight=args.class_weight, select_by=args.select_by,
        epochs=args.epochs, quiet=args.quiet, **run_options(args))
    print(run_compare(config, argv=args.argv))
    return 0
