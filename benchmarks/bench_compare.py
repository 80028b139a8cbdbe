"""Estimate the wall time of ``notsure compare`` per model family without running all of it.

Usage: ``python benchmarks/bench_compare.py [PATH] [--quick] [--models a,b] [--folds-timed 1]
[--cnn-images 6000]``. Default data: MNIST (``$NOTSURE_DATA_DIR``, default ``../shared/data``).

For each classical family it builds the job's own plan (same split, subsamples and folds as the
real run), times ``--folds-timed`` of its CV folds, its final fit and its test prediction, and
estimates the family as mean fold time x folds + fit + predict. For each CNN it times one
training epoch on ``--cnn-images`` training images and the test prediction, and scales the epoch
to the plan's training images and the preset's epochs. Target: the default MNIST comparison within
30 minutes on a 2-core machine (``--quick`` within 3 minutes).

Wall times depend on what else runs (under ``nice`` on a busy machine they mean little), so the
process CPU time is printed too. The scikit-learn models run single-threaded (the random forest on
every core), so their CPU time is their wall time on an idle machine; the CNN epoch is timed on
one thread (``--cnn-threads``) and its CPU time divided by ``--cnn-speedup`` (what a second core
gives, default 1.8) estimates the idle 2-core wall time.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

from notsure.jobs.compare import pipeline as compare
from notsure.models import predict_logits, train_cnn
from notsure.models.classical import pixel_features

REPO = Path(__file__).resolve().parents[1]
BUDGET_S = {False: 30 * 60, True: 3 * 60}


def time_classical(plan: compare.ModelPlan, ds, features, split, config, folds_timed: int
                   ) -> dict:
    standardize = ds.kind == "vectors"
    cpu0 = time.process_time()
    with threadpool_limits(compare.CLASSICAL_THREADS):
        cv = compare.cross_validate(plan.family, features, ds.y, plan.folds[:folds_timed],
                                    config, standardize)
        params = dict(cv.candidates[cv.chosen])
        t0 = time.perf_counter()
        model = plan.family.fit(params, features[plan.fit_index], ds.y[plan.fit_index],
                                config.seed, config.class_weight, standardize)
        fit_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        model.predict(features[split.test])
        predict_s = time.perf_counter() - t0
    fold_s = cv.seconds / folds_timed
    wall = cv.seconds + fit_s + predict_s
    cpu = time.process_time() - cpu0
    cores = len(os.sched_getaffinity(0)) if plan.name == "forest" else 1
    scale = len(plan.folds) / folds_timed  # CV share of the work measured
    cpu_cv = cpu * cv.seconds / wall
    return {"fold_s": fold_s, "fit_s": fit_s, "predict_s": predict_s,
            "estimate_s": fold_s * len(plan.folds) + fit_s + predict_s,
            "idle_s": (cpu_cv * scale + cpu - cpu_cv) / cores}


def time_cnn(plan: compare.ModelPlan, ds, split, seed: int, n_images: int, threads: int,
             speedup: float) -> dict:
    cfg = plan.cnn.replace(threads=threads)
    n_train = min(len(plan.fit_index), cfg.max_train or len(plan.fit_index))
    pick = plan.fit_index[np.random.default_rng(seed).permutation(len(plan.fit_index))
                          [:min(n_images, n_train)]]
    cpu0 = time.process_time()
    res = train_cnn(ds.x[pick], ds.y[pick], ds.n_classes, cfg.replace(epochs=1, max_train=None),
                    seed, quiet=True)
    cpu_epoch = time.process_time() - cpu0
    rate = res.history[0]["images_per_s"]
    cpu0, t0 = time.process_time(), time.perf_counter()
    predict_logits(res.model, ds.x[split.test], precision=cfg.precision, threads=cfg.threads)
    predict_s = time.perf_counter() - t0
    cpu_predict = time.process_time() - cpu0
    fit_s = cfg.epochs * n_train / rate
    idle = (cfg.epochs * n_train / len(pick) * cpu_epoch + cpu_predict) / speedup
    return {"fold_s": None, "fit_s": fit_s, "predict_s": predict_s,
            "estimate_s": fit_s + predict_s, "idle_s": idle}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path", nargs="?")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--models", help="comma-separated subset")
    parser.add_argument("--folds-timed", type=int, default=1)
    parser.add_argument("--cnn-images", type=int, default=6000)
    parser.add_argument("--cnn-threads", type=int, default=1)
    parser.add_argument("--cnn-speedup", type=float, default=1.8)
    args = parser.parse_args()
    os.environ.setdefault("NOTSURE_DATA_DIR", str(REPO.parent / "shared" / "data"))

    config = compare.CompareConfig(data=args.path, quick=args.quick, quiet=True,
                                   models=tuple(args.models.split(",")) if args.models else None)
    config.validate()
    t0 = time.perf_counter()
    ds = compare.load_data(config)
    groups = compare.leak_groups(ds)
    split = compare.lock_split(ds, config, groups)
    plans = compare.plan_models(ds, split, config, groups)
    features = pixel_features(ds.x, compare.pixel_scale(ds, split.train) or 1.0)
    setup_s = time.perf_counter() - t0
    print(f"{ds.source}: {len(ds):,} samples, train {len(split.train):,}, test "
          f"{len(split.test):,}; load+split+features {setup_s:.1f} s; "
          f"{'quick' if args.quick else 'default'} plan", flush=True)
    print(f"{'model':12} {'CV n':>7} {'folds':>5} {'fit n':>7} {'fold s':>8} {'fit s':>8} "
          f"{'pred s':>7} {'est. s':>8} {'idle s':>8}", flush=True)
    total = idle_total = setup_s
    for plan in plans:
        if plan.family is not None:
            t = time_classical(plan, ds, features, split, config, args.folds_timed)
        else:
            t = time_cnn(plan, ds, split, config.seed, args.cnn_images, args.cnn_threads,
                         args.cnn_speedup)
        total += t["estimate_s"]
        idle_total += t["idle_s"]
        fold = "" if t["fold_s"] is None else f"{t['fold_s']:8.1f}"
        print(f"{plan.name:12} {len(plan.cv_index):7,} {len(plan.folds):5} "
              f"{len(plan.fit_index):7,} {fold:>8} {t['fit_s']:8.1f} {t['predict_s']:7.1f} "
              f"{t['estimate_s']:8.1f} {t['idle_s']:8.1f}", flush=True)
    budget = BUDGET_S[args.quick]
    print(f"estimated total: {total / 60:.1f} min at this machine's current load, "
          f"{idle_total / 60:.1f} min on an idle machine from CPU time (+ report, about 5 s); "
          "budget "
          f"{budget / 60:.0f} min; cores available {len(os.sched_getaffinity(0))}; load average "
          f"{os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
