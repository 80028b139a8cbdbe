"""The ambiguity job's edge: :func:`run_ambiguous` reads the data (and the selective run it
analyses), runs :mod:`notsure.jobs.ambiguous.pipeline`, and writes the run folder, the images and
the report (:mod:`notsure.jobs.ambiguous.report`); ``--measure-exclusion`` retrains the analysed
run's settings whole (:func:`measure_config`)."""

from __future__ import annotations

import dataclasses
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from notsure.analysis.ambiguity import (
    class_thresholds,
    confident_learning,
    ensemble_probabilities,
    member_agreement,
)
from notsure.data.dataset import Dataset
from notsure.data.exclusions import write_exclusions
from notsure.data.splits import Split
from notsure.deploy.selective_run import SelectiveRun
from notsure.errors import ConfigError, DataError
from notsure.io.progress import say
from notsure.io.run_folder import (
    EXCLUSIONS_FILE,
    EXECUTION_ONLY,
    FOLDS_FILE,
    MANIFEST,
    REPORT_HTML,
    SUMMARY_FILE,
    RunFolder,
    read_manifest,
    recorded_settings,
)
from notsure.jobs.ambiguous.pipeline import (
    ENSEMBLE,
    IMAGE_SCALE,
    OUT_OF_FOLD,
    AmbiguousConfig,
    AmbiguousResult,
    Scores,
    analysed_rows,
    count_out_of_sample,
    file_index,
    flag_counts,
    knn_opinions,
    load_dataset,
    rank_tables,
    scores_by_cross_fit,
)
from notsure.jobs.ambiguous.report import summary_document, write_report
from notsure.jobs.run_options import after_run, write_and_finish
from notsure.jobs.selective.pipeline import SelectiveConfig
from notsure.jobs.selective.run import run_selective
from notsure.metrics import accuracy, mcnemar
from notsure.models.checkpoints import CheckpointStore
from notsure.models.inference import predict_logits
from notsure.reports.document import png_bytes


def write_outputs(run: RunFolder, r: AmbiguousResult) -> None:
    """Write ``summary.json``, the three CSVs (via the report tables) and the report."""
    run.write_json(SUMMARY_FILE, summary_document(r))
    write_report(run, r)


def measure_exclusion(run: RunFolder, ds: Dataset, exclusions: Path, base: SelectiveConfig,
                      argv: list[str] | None) -> dict:
    """Run the selective job with settings ``base`` (hence the same locked test split) twice: on
    every label, and with the images listed in ``exclusions`` dropped from training. Each
    lands in its own run folder under ``exclusion/``; returns both runs' headline numbers and a
    paired comparison on the shared test images."""
    out: dict = {"exclusions": str(exclusions),
                 "preset": "quick" if base.quick else "default", "epochs": base.epochs}
    decided = {}
    for name, file in (("all_labels", None), ("without_suspected", str(exclusions))):
        say(f"measuring exclusion: selective job, {name}", quiet=base.quiet)
        path = run.path / "exclusion" / name
        if not (path / MANIFEST).exists():
            run_selective(replace(base, out=str(path), exclusions=file), argv=argv)
        elif read_manifest(path, "selective").get("status") != "complete":  # resumed here
            run_selective(replace(base, resume=str(path), exclusions=file), argv=argv)
        folder = SelectiveRun(path)
        metrics = folder.metrics
        split = folder.split(len(ds))
        stored = folder.scores(split)
        decided[name] = (split, stored["test_candidate"], stored["test_prediction"])
        after = metrics["after"]
        out[name] = {"run": str(path), "n_train": int(len(split.train)),
                     "n_test": int(len(split.test)),
                     "accuracy": metrics["before"]["accuracy"],
                     "coverage": after["coverage"], "n_errors_after": after["n_errors"],
                     "max_fpr": max(v for v in after["fpr"] if v is not None),
                     "exclusions": metrics.get("exclusions")}
    (split_a, cand_a, pred_a), (split_b, cand_b, pred_b) = (decided["all_labels"],
                                                            decided["without_suspected"])
    if not np.array_equal(split_a.test, split_b.test):
        raise DataError("the two measurement runs have different test splits; cannot pair them")
    y = ds.y[split_a.test]
    test = mcnemar(cand_a == y, cand_b == y)
    out["paired"] = {"all_right_only": test.only_a, "without_right_only": test.only_b,
                     "mcnemar_p": test.p_value,
                     "accuracy_change": accuracy(y, cand_b) - accuracy(y, cand_a),
                     "accepted_all_only": int(np.sum((pred_a >= 0) & (pred_b < 0))),
                     "accepted_without_only": int(np.sum((pred_a < 0) & (pred_b >= 0)))}
    return out


def run_ambiguous(config: AmbiguousConfig, argv: list[str] | None = None) -> Path:
    """Run the whole job and return the run folder."""
    config.validate()
    quiet = config.quiet
    # Input is read and checked before the run folder exists: bad input writes nothing.
    t0 = time.perf_counter()
    run_manifest = None
    if config.run is not None:
        run_dir = Path(config.run)
        folder = SelectiveRun(run_dir)
        folder.predictor(networks=False)  # a clear error early if its predictor is not intact
        ds, run_manifest = folder.dataset(), folder.manifest
        if ds.kind != "images":
            raise ConfigError(f"{ds.source}: the ambiguity job needs images, got {ds.kind}")
        cnn = None
    else:
        ds = load_dataset(config.data, config.format, quiet)
        cnn = config.cnn_config()
        config.cnn = cnn.to_dict()
    t_load = time.perf_counter() - t0

    with RunFolder("ambiguous", config.out, config=config, seed=config.seed, argv=argv,
                   resume=config.resume) as run:
        run.record_timing("load", t_load)
        run.record_data("dataset", ds.provenance())
        with run.stage("score"):
            if config.run is not None:
                every, split = scores_from_run(Path(config.run), ds, quiet)
            else:
                every = scores_by_cross_fit(ds, config, cnn, CheckpointStore(run.path))
                split = None
            rows, what = analysed_rows(ds, every, config.scope, split)
        with run.stage("knn_opinions"):
            every.knn = knn_opinions(ds, every, config.knn_k, quiet)
        with run.stage("leakage_check"):
            count_out_of_sample(every)  # the analysed rows are among these
            scores = every.take(rows)
            checked = len(rows)
        with run.stage("rank"):
            index, index_in_file = file_index(ds, scores.positions)
            y_every = ds.y[every.positions]
            thresholds = class_thresholds(every.both, y_every)
            cl = confident_learning(scores.both, ds.y[scores.positions], thresholds=thresholds,
                                    rank_by=config.rank_by)
            counts = flag_counts(every, y_every, rows)
            tables = rank_tables(ds, scores, index, config.top, cl)
        with run.stage("images"):
            write_images(run, ds, scores, index, tables)
        flagged = [r for r in tables["suspected_label_errors"] if r["cl_flagged"]]
        exclusions = run.file(EXCLUSIONS_FILE)
        for target in (exclusions, config.write_exclusions):
            if target is not None:
                write_exclusions(target, [r["id"] for r in flagged],
                                 [r["given_label"] for r in flagged],
                                 [r["suggested_label"] for r in flagged])
        exclusion = None
        if config.measure_exclusion and flagged:
            with run.stage("measure_exclusion"):
                exclusion = measure_exclusion(run, ds, exclusions,
                                              measure_config(config, run_manifest), argv)
        result = AmbiguousResult(config=config, dataset=ds, analysed=what, scores=scores,
                                 n_scored=len(every.positions), index=index,
                                 index_in_file=index_in_file, cl=cl,
                                 flag_counts=counts, tables=tables, leakage_checked=checked,
                                 exclusion=exclusion, run_manifest=run_manifest)
        write_and_finish(run, write_outputs, result)
    return after_run(run.path, config.mlflow, summary_line(result, run.path), quiet=quiet)


#: Settings of an analysed run that its measurement runs do not take over: execution, the CNN
#: settings the run filled in (recomputed from the rest) and its own exclusions.
NOT_TAKEN_OVER = (*EXECUTION_ONLY, "cnn", "exclusions", "exclusion_mode")


#: This job's settings that also set up the selective runs when no run is analysed.
OWN_SELECTIVE = ("data", "format", "seed", "folds", "quick", "test_per_class", "target_fpr",
                 "delta")


def measure_config(config: AmbiguousConfig, run_manifest: dict | None) -> SelectiveConfig:
    """The selective settings of the two measurement runs: the analysed run's recorded
    settings as a whole, else this job's own (the selective defaults for the rest); ``--epochs``
    overrides either, and this job's execution settings apply."""
    recorded = (run_manifest or {}).get("config")
    if recorded:
        base = SelectiveConfig(**recorded_settings(SelectiveConfig, recorded, NOT_TAKEN_OVER))
    else:
        base = SelectiveConfig(**{k: getattr(config, k) for k in OWN_SELECTIVE
                                  if getattr(config, k) is not None})
    epochs = base.epochs if config.epochs is None else config.epochs
    return dataclasses.replace(base, epochs=epochs, quiet=config.quiet, executor=config.executor,
                               workers=config.workers, scheduler=config.scheduler)


def scores_from_run(run_dir: Path, ds: Dataset, quiet: bool) -> tuple[Scores, Split]:
    """Score every image the run holds with run models that never trained on it.

    Images in the run's test split: the whole ensemble. Images in its training pool: the fold
    model that held them out (``oof_logits`` of ``scores.npz``, or recomputed from that model).
    """
    folder = SelectiveRun(run_dir)
    predictor = folder.predictor()
    split = folder.split(len(ds))
    pool_fold = folder.pool_folds(split)
    k = predictor.n_folds
    if pool_fold.min() < 0 or pool_fold.max() >= k:
        raise DataError(f"{run_dir / FOLDS_FILE}: folds must lie in 0..{k - 1} (one per fold)")
    stored = folder.scores(split, pool_fold)
    if stored is not None:
        member, oof = stored["test_member_logits"], stored["oof_logits"]
    else:
        member = predict_logits(predictor.models, ds.x[split.test],
                                precision=predictor.precision, quiet=quiet)
        oof = np.empty((len(split.train), ds.n_classes), dtype=np.float32)
        for j in range(k):
            rows = np.flatnonzero(pool_fold == j)
            oof[rows] = predict_logits(predictor.fold_models(j), ds.x[split.train[rows]],
                                       precision=predictor.precision, quiet=quiet).mean(axis=0)
    n_test, n_pool = len(split.test), len(split.train)
    probs = np.concatenate([ensemble_probabilities(member), ensemble_probabilities(oof[None])])
    trained_on = {j: split.train[pool_fold != j] for j in range(k)}
    trained_on[-1] = split.train
    scores = Scores(
        positions=np.concatenate([split.test, split.train]), probs=probs,
        source=np.array([ENSEMBLE] * n_test + [OUT_OF_FOLD] * n_pool),
        scorer=np.concatenate([np.full(n_test, -1), pool_fold]),
        n_members=np.concatenate([np.full(n_test, len(predictor.models)),
                                  np.full(n_pool, predictor.members, np.int64)]),
        agreement=np.concatenate([member_agreement(member, probs[:n_test].argmax(axis=1)),
                                  np.full(n_pool, np.nan)]),
        trained_on=trained_on)
    return scores, split


def write_images(run: RunFolder, ds: Dataset, scores: Scores, index: np.ndarray,
                 tables: dict[str, list[dict]]) -> list[Path]:
    """``imgs/<index>.png`` (upscaled, nearest) for every image listed in any ranking."""
    where = {int(i): int(p) for i, p in zip(index, scores.positions, strict=True)}
    listed = sorted({int(r["index"]) for rows in tables.values() for r in rows})
    paths = []
    for i in listed:
        with run.atomic(f"imgs/{i}.png") as tmp:
            tmp.write_bytes(png_bytes(np.asarray(ds.x[where[i]]), IMAGE_SCALE))
        paths.append(run.file(f"imgs/{i}.png"))
    return paths


def summary_line(result: AmbiguousResult, path: Path) -> str:
    """One line for the terminal: the counts of each list and where the report is."""
    t = result.tables
    n_flagged = sum(1 for r in t["suspected_label_errors"] if r["cl_flagged"])
    return (f"analysed {len(result.scores.positions):,} images: "
            f"{len(t['most_confident_wrong'])} wrong, "
            f"{n_flagged} flagged label errors "
            f"({len(t['suspected_label_errors'])} candidates); "
            f"report: {path / REPORT_HTML}")
