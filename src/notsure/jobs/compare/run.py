"""The compare job's edge: :func:`run_compare` reads the data, runs
:mod:`notsure.jobs.compare.pipeline` into a run folder (resumable through its checkpoints) and
writes the saved predictions, tables, ``metrics.json`` and the report
(:mod:`notsure.jobs.compare.report`)."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from notsure.data.splits import (
    save_split,
)
from notsure.io.progress import say
from notsure.io.run_folder import METRICS_FILE, REPORT_HTML, RunFolder
from notsure.jobs.compare.pipeline import (
    CompareConfig,
    CompareResult,
    ModelResult,
    evaluate_model,
    fold_scores,
    leak_groups,
    load_data,
    lock_split,
    pixel_scale,
    plan_models,
    run_cv_folds,
    timed,
)
from notsure.jobs.compare.report import (
    cv_rows,
    metrics_document,
    predictions_name,
    scored,
    write_report,
)
from notsure.jobs.run_options import after_run, write_and_finish
from notsure.models.checkpoints import CheckpointStore
from notsure.models.classical import pixel_features


def write_predictions(run: RunFolder, r: CompareResult, m: ModelResult) -> None:
    """The test predictions of one model: position, id, true and predicted class."""
    ds, test = r.dataset, r.split.test
    names = np.asarray(ds.class_names)
    run.write_csv(predictions_name(m.name), [
        {"position": int(p), "id": str(ds.ids[p]), "y_true": int(ds.y[p]), "y_pred": int(q),
         "true": str(names[ds.y[p]]), "predicted": str(names[q])}
        for p, q in zip(test, m.y_pred, strict=True)])


def write_outputs(run: RunFolder, r: CompareResult) -> None:
    """Write predictions, metrics, tables, figures and the report into ``run``."""
    for m in scored(r):
        write_predictions(run, r, m)
    for m in r.models:
        if m.cv is not None:
            run.write_csv(f"tables/cv_{m.name}.csv", cv_rows(m))
    run.write_json(METRICS_FILE, metrics_document(r))
    write_report(run, r)


def run_compare(config: CompareConfig, argv: list[str] | None = None) -> Path:
    """Run the whole comparison and return the run folder."""
    config.validate()
    quiet = config.quiet
    # Input is read, the split drawn and every model's samples planned before the run folder
    # exists: bad input writes nothing.
    (ds, t_load) = timed(load_data, config)
    say(f"loaded {len(ds):,} {ds.kind} {ds.shape} in {ds.n_classes} classes from {ds.source}",
        quiet=quiet)
    t0 = time.perf_counter()
    groups = leak_groups(ds)
    split = lock_split(ds, config, groups)
    plans = plan_models(ds, split, config, groups)
    t_split = time.perf_counter() - t0
    n_dup = 0 if groups is None else int(len(ds) - len(np.unique(groups)))

    with RunFolder("compare", config.out, config=config, seed=config.seed, argv=argv,
                   resume=config.resume) as run:
        run.record_timing("load", t_load)
        run.record_timing("split_and_plan", t_split)
        run.record_data("dataset", ds.provenance())
        save_split(run, split)
        scale = pixel_scale(ds, split.train)
        features = pixel_features(ds.x, scale or 1.0)
        with run.stage("cross_validation"):
            cv_folds = run_cv_folds(plans, features, ds.y, config, ds.kind == "vectors",
                                    CheckpointStore(run.path))
        results = []
        for plan in plans:
            say(f"{plan.title}: {len(plan.cv_index):,} CV samples, {plan.n_trained:,} "
                "final training samples", quiet=quiet)
            with run.stage(f"model:{plan.name}"):
                results.append(evaluate_model(plan, ds, features, split, config,
                                              *cv_folds.get(plan.name, ((), 0.0))))
        result = CompareResult(config, ds, split, n_dup, scale, results)
        write_and_finish(run, write_outputs, result)
    return after_run(run.path, config.mlflow, summary_line(result, run.path), quiet=quiet,
                     curves={m.name: m.history for m in result.models if m.history})


def summary_line(result: CompareResult, path: Path) -> str:
    """One line for the terminal: each model's test accuracy / macro F1 and the report path."""
    parts = []
    y_test = result.dataset.y[result.split.test]
    for m in result.models:
        if m.y_pred is None:
            parts.append(f"{m.name} refused")
        else:
            s = fold_scores(y_test, m.y_pred)
            parts.append(f"{m.name} {s['accuracy']:.2%}/{s['macro_f1']:.3f}")
    return "test accuracy/macro F1: " + "; ".join(parts) + f"; report: {path / REPORT_HTML}"
