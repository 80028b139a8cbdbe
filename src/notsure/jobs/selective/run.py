"""The selective job's edge: :func:`run_selective` reads the input, runs the pure pipeline of
:mod:`notsure.jobs.selective.pipeline` and writes the run folder (its format:
:mod:`notsure.deploy.selective_run`) and the report (:mod:`notsure.jobs.selective.report`)."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from notsure.data.splits import (
    leakage_report,
    stratified_kfold,
    stratified_test_split,
)
from notsure.decisions import (
    NeymanPearsonThresholds,
)
from notsure.deploy.selective_run import write_plan, write_scores
from notsure.io.progress import say
from notsure.io.run_folder import (
    METRICS_FILE,
    PREDICTOR_FILE,
    REPORT_HTML,
    THRESHOLDS_FILE,
    RunFolder,
)
from notsure.jobs.run_options import after_run, write_and_finish
from notsure.jobs.selective.pipeline import (
    SelectiveConfig,
    SelectiveResult,
    check_target_supported,
    exclude_from_pool,
    fit_and_evaluate,
    load_images,
    measure_throughput,
)
from notsure.jobs.selective.report import metrics_document, write_report
from notsure.models.checkpoints import CheckpointStore


def run_selective(config: SelectiveConfig, argv: list[str] | None = None) -> Path:
    """Run the whole job and return the run folder."""
    config.validate()
    cnn = config.cnn_config()
    config.cnn = cnn.to_dict()
    quiet = config.quiet
    # Input is read and the split drawn before the run folder exists: bad input writes nothing.
    t0 = time.perf_counter()
    ds = load_images(config)
    t_load = time.perf_counter() - t0
    say(f"loaded {len(ds):,} images {ds.shape} in {ds.n_classes} classes from {ds.source}",
        quiet=quiet)
    t0 = time.perf_counter()
    # The test split is drawn first, from the data and the seed alone, and locked.
    split = stratified_test_split(ds.y, config.test_per_class, config.seed)
    data, exclusions = ds, None
    if config.exclusions is not None:
        data, split, exclusions = exclude_from_pool(ds, split, config.exclusions,
                                                    config.exclusion_mode)
    pool = split.train
    check_target_supported(config, data.y[pool], ds.n_classes)
    plan = stratified_kfold(data.y[pool], config.folds, config.seed)
    t_split = time.perf_counter() - t0

    with RunFolder("selective", config.out, config=config, seed=config.seed, argv=argv,
                   resume=config.resume) as run:
        run.record_timing("load", t_load)
        run.record_timing("split", t_split)
        run.record_data("dataset", ds.provenance())
        if exclusions is not None:
            run.record_data("exclusions", exclusions)
        write_plan(run, split, plan.fold)
        with run.stage("leakage_check"):
            leakage = leakage_report(ds.x, split)
        result = fit_and_evaluate(config, cnn, data, split, plan, leakage, exclusions=exclusions,
                                  stage=run.stage, checkpoints=CheckpointStore(run.path))
        with run.stage("save_scores"):
            save_scores(run, result)
        with run.stage("save_model"):
            result.predictor.save(run, [r.config for r in result.fit.results],
                                  meta={"target_fpr": config.target_fpr, "delta": config.delta,
                                        "fpr_meaning": config.fpr_meaning, "seed": config.seed})
        with run.stage("throughput"):
            run.record("predict_throughput", measure_throughput(result.predictor, ds.x[split.test]))
        result.timings = run.manifest["timings_s"]
        write_and_finish(run, write_outputs, result, seal=[PREDICTOR_FILE, THRESHOLDS_FILE])
    return after_run(run.path, config.mlflow, summary_line(result, run.path), quiet=quiet)


def save_scores(run: RunFolder, r: SelectiveResult) -> None:
    """Every score behind the thresholds and the test decisions, for audit and reuse."""
    write_scores(run, pool_positions=r.split.train, oof_logits=r.fit.oof_logits,
                 oof_member_logits=r.fit.oof_member_logits, fold_of=r.fit.fold_of,
                 test_positions=r.split.test, test_member_logits=r.fit.extra_logits,
                 test_routes=r.test_decisions.routes, test_candidate=r.test_decisions.candidate,
                 test_prediction=r.test_decisions.prediction)


def write_outputs(run: RunFolder, r: SelectiveResult) -> None:
    """Write metrics, tables, figures and the report into ``run``."""
    run.write_json(METRICS_FILE, metrics_document(r))
    # The format `notsure calibrate` writes, so `notsure decide` applies them to the logits of
    # the answering fold ensemble (or of any model scored the same way).
    NeymanPearsonThresholds.from_certificates(
        r.certificates, r.config.target_fpr, r.config.delta, r.dataset.class_names
    ).save(run.file(THRESHOLDS_FILE))
    write_report(run, r)


def summary_line(result: SelectiveResult, path: Path) -> str:
    """One line for the terminal: the headline numbers and where the report is."""
    fpr = result.after["fpr"]
    worst = int(np.nanargmax(fpr))
    return (
        f"before: accuracy {result.before['accuracy']:.4%}; after: coverage "
        f"{result.after['coverage']:.2%}, P(every class passes the test) >= "
        f"{result.pass_probability:.3f}, max class FPR {fpr[worst]:.5f} "
        f"(class {result.dataset.class_names[worst]}, target {result.config.target_fpr}); "
        f"report: {path / REPORT_HTML}"
    )
