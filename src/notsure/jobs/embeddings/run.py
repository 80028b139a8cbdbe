"""The embeddings job's edge: :func:`run_embeddings` reads the embeddings, runs
:mod:`notsure.jobs.embeddings.pipeline` and writes the folds, ``metrics.json``, the out-of-fold
predictions and the report (:mod:`notsure.jobs.embeddings.report`)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from notsure.analysis import embedding_cv, knn
from notsure.data.splits import stratified_kfold
from notsure.io.hashing import sha256_file
from notsure.io.progress import say
from notsure.io.run_folder import (
    METRICS_FILE,
    OOF_SCORES_FILE,
    PREDICTIONS_FILE,
    REPORT_HTML,
    SUBJECT_FOLDS_FILE,
    RunFolder,
)
from notsure.jobs.embeddings.pipeline import (
    EmbeddingsConfig,
    EmbeddingsResult,
    check_k_max,
    default_path,
    evaluate_baseline,
    evaluate_knn,
    load_embeddings,
    statistics,
    tsne_maps,
)
from notsure.jobs.embeddings.report import metrics_document, write_report
from notsure.jobs.run_options import after_run, write_and_finish


def write_predictions(run: RunFolder, result: EmbeddingsResult) -> None:
    """Out-of-fold predictions as CSV (for people) and scores as ``oof_scores.npz``."""
    ds = result.dataset
    names = np.asarray(ds.class_names)
    fold = result.methods["cosine"].cv.fold
    rows = []
    for i in range(len(ds)):
        row: dict[str, Any] = {"image": ds.ids[i], "subject": ds.groups[i],
                               "syndrome": names[ds.y[i]],
                               "fold": int(fold[i]) + 1 if fold[i] >= 0 else ""}
        for key, m in result.methods.items():
            row[f"{key} prediction"] = names[m.cv.pred[i]] if m.cv.pred[i] >= 0 else ""
            row[f"{key} score of true syndrome"] = float(m.cv.scores[i, ds.y[i]])
        rows.append(row)
    run.write_csv(PREDICTIONS_FILE, rows)
    arrays = {"y": ds.y, "class_names": names, "ids": ds.ids.astype(str),
              "fold": result.methods["cosine"].cv.fold}
    for key, m in result.methods.items():
        arrays[f"{key}_scores"] = m.cv.scores
        arrays[f"{key}_pred"] = m.cv.pred
    with run.atomic(OOF_SCORES_FILE) as tmp:
        with open(tmp, "wb") as fh:
            np.savez_compressed(fh, **arrays)


def write_outputs(run: RunFolder, result: EmbeddingsResult) -> None:
    """Write ``metrics.json``, the predictions, and the report with its tables and figures."""
    run.write_json(METRICS_FILE, metrics_document(result))
    write_predictions(run, result)
    write_report(run, result)


def run_embeddings(config: EmbeddingsConfig, argv: list[str] | None = None) -> Path:
    """Run the whole job and return the run folder."""
    config.validate()
    quiet = config.quiet
    path = Path(config.path) if config.path is not None else default_path()
    # Input is read and the folds drawn before the run folder exists: bad input writes nothing.
    t0 = time.perf_counter()
    ds, integrity = load_embeddings(path, config.dim)
    sha = sha256_file(path)
    t_load = time.perf_counter() - t0
    say(f"loaded {len(ds):,} vectors of length {ds.shape[0]} in {ds.n_classes} syndromes, "
        f"{len(np.unique(ds.groups)):,} subjects from {path} "
        f"({len(integrity.dropped)} dropped by the integrity checks)", quiet=quiet)
    t0 = time.perf_counter()
    plan = stratified_kfold(ds.y, config.n_folds, config.seed, groups=ds.groups)
    check_k_max(ds, plan, config)
    t_split = time.perf_counter() - t0

    with RunFolder("embeddings", config.out, config=config, seed=config.seed, argv=argv) as run:
        run.record_timing("load_and_integrity", t_load)
        run.record_timing("folds", t_split)
        run.record_data("embeddings", {"source": str(path), "sha256": sha, "format": ds.format,
                                       "fingerprint": ds.fingerprint, "n": len(ds),
                                       "dim": ds.shape[0], "classes": list(ds.class_names)})
        run.write_json(SUBJECT_FOLDS_FILE, {"ids": ds.ids.tolist(), "subjects": ds.groups.tolist(),
                                      "fold": plan.fold.tolist(),
                                      "not_evaluable": {ds.class_names[int(k)]: v for k, v in
                                                        plan.not_evaluable.items()}})
        with run.stage("statistics"):
            stats = statistics(ds)
        tsne: dict[str, dict[str, Any]] = {}
        if config.tsne:
            say("t-SNE of normalized and raw vectors ...", quiet=quiet)
            with run.stage("tsne"):
                tsne = tsne_maps(ds, config)
        say(f"nested k-NN, {config.n_folds} outer x {config.inner_folds} inner folds ...",
            quiet=quiet)
        with run.stage("knn"):
            methods = evaluate_knn(ds, plan, config)
        if config.baseline:
            say("logistic regression baseline on the same folds ...", quiet=quiet)
            with run.stage("baseline"):
                methods["logreg"] = evaluate_baseline(ds, plan, config)
        paired = embedding_cv.paired_comparison(methods["cosine"].folds,
                                                methods["euclidean"].folds)
        best = max(knn.METRICS, key=lambda m: methods[m].mean("accuracy"))
        paired_baseline = (embedding_cv.paired_comparison(methods["logreg"].folds,
                                                          methods[best].folds)
                           if "logreg" in methods else [])
        result = EmbeddingsResult(config=config, path=path, sha256=sha, dataset=ds,
                                  integrity=integrity, plan=plan, stats=stats, tsne=tsne,
                                  methods=methods, paired=paired,
                                  paired_baseline=paired_baseline)
        write_and_finish(run, write_outputs, result)
    return after_run(run.path, config.mlflow, summary_line(result, run.path), quiet=quiet)


def summary_line(result: EmbeddingsResult, path: Path) -> str:
    """One line for the terminal: nested accuracy and macro F1 of each method."""
    parts = [f"{m.label}: accuracy {m.mean('accuracy'):.3f}, macro F1 {m.mean('macro_f1'):.3f}"
             for m in result.methods.values()]
    return "; ".join(parts) + f". Report: {path / REPORT_HTML}"
