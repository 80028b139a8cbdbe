"""``notsure embeddings``: k-NN (cosine and Euclidean) on syndrome embeddings, with a report."""

from __future__ import annotations

import argparse

from notsure.analysis.knn import WEIGHTINGS
from notsure.cli.commands import add_command
from notsure.cli.options import (
    add_data_option,
    add_folds_option,
    add_option,
    add_run_options,
    add_seed_option,
    data_path,
    job_config,
    run_options,
)

_CONFIG = "notsure.jobs.embeddings.pipeline:EmbeddingsConfig."


def register(sub: argparse._SubParsersAction) -> None:
    p = add_command(
        sub, "embeddings",
        help="integrity, statistics, t-SNE and nested k-NN evaluation of image embeddings",
        description="Check and describe {syndrome: {subject: {image: vector}}} embeddings, map "
                    "them with t-SNE, and evaluate k-NN with cosine and Euclidean distance "
                    "(k chosen by nested, subject-grouped cross-validation) against a "
                    "logistic-regression baseline. Writes a report, tables and metrics.json.")
    add_data_option(p, "the embeddings pickle (default: "
                       "$NOTSURE_DATA_DIR/syndromes/mini_gm_public_v0.1.p)")
    p.add_argument("--out", help="run folder (default runs/embeddings-<timestamp>)")
    add_seed_option(p, _CONFIG[:-1])
    add_folds_option(p, _CONFIG + "n_folds", "outer cross-validation folds")
    add_option(p, "--inner-folds", type=int, default_from=_CONFIG + "inner_folds",
               help="inner folds that choose k (and C) inside each training part")
    add_option(p, "--k-max", type=int, default_from=_CONFIG + "k_max",
               help="k is chosen among 1..K_MAX")
    add_option(p, "--weighting", choices=WEIGHTINGS,
               default_from=_CONFIG + "weighting",
               help="k-NN votes: equal (uniform) or weighted by 1/distance")
    p.add_argument("--dim", type=int,
                   help="expected vector length (default: the most common length)")
    add_option(p, "--tsne-backend", default_from=_CONFIG + "tsne_backend",
               choices_from="notsure.analysis.embedding_stats:TSNE_BACKENDS",
                   help="t-SNE implementation (auto: openTSNE if installed)")
    p.add_argument("--no-tsne", action="store_true", help="skip the t-SNE maps")
    p.add_argument("--no-baseline", action="store_true",
                   help="skip the logistic-regression baseline")
    add_run_options(p, _CONFIG[:-1], resume=False)
    p.set_defaults(func=_embeddings)


def _embeddings(args: argparse.Namespace) -> int:
    from notsure.jobs.embeddings.pipeline import EmbeddingsConfig
    from notsure.jobs.embeddings.run import run_embeddings

    config = job_config(EmbeddingsConfig, "embeddings",
        path=data_path(args), out=args.out, seed=args.seed, n_folds=args.folds,
        inner_folds=args.inner_folds, k_max=args.k_max, weighting=args.weighting, dim=args.dim,
        tsne=False if args.no_tsne else None, tsne_backend=args.tsne_backend,
        baseline=False if args.no_baseline else None,
        quiet=args.quiet, **run_options(args))
    path = run_embeddings(config, argv=getattr(args, "argv", None))
    print(path)
    return 0
