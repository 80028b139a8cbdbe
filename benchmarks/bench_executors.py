"""Threads or processes for fold training: a 2-fold cross-fit of the default CNN on a 12,000-image
MNIST subset, as 1 process x 2 threads (the local executor, CNN threads=2) and as 2 processes x
1 thread (``--executor processes --workers 2``, the jobs' default), on a quiet machine and beside
one busy-looping process that competes for a core. Prints the wall time of each.

    python benchmarks/bench_executors.py [--images 12000] [--epochs 2]

Wall times include starting the worker processes. Other work on the machine changes the
figures: run it when nothing else does, and say so when that cannot be ensured.
"""

from __future__ import annotations

import argparse
import multiprocessing
import time

import numpy as np

from notsure.data import load
from notsure.data.fetch import ensure_mnist
from notsure.data.splits import stratified_kfold
from notsure.models.cnn import CNNConfig
from notsure.models.cross_fit import cross_fit
from notsure.parallel import Execution

SETUPS = {  # name -> (execution, torch threads per task)
    "1 process x 2 threads": (Execution("local"), 2),
    "2 processes x 1 thread": (Execution("processes", workers=2), 1),
}


def busy_loop() -> None:
    """A competing CPU load: one core's worth of pure Python spinning."""
    while True:
        pass


def time_cross_fit(x: np.ndarray, y: np.ndarray, config: CNNConfig,
                   execution: Execution) -> float:
    folds = stratified_kfold(y, 2, seed=0).folds
    t0 = time.perf_counter()
    cross_fit(x, y, 10, folds, config, seed=0, execution=execution, quiet=True)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--images", type=int, default=12_000)
    ap.add_argument("--epochs", type=int, default=2,
                    help="epochs of the default CNN (its preset trains 8; fewer keeps the "
                         "benchmark short, the threads/processes ratio is per epoch)")
    args = ap.parse_args()
    ds = load(ensure_mnist(quiet=True))
    keep = np.sort(np.random.default_rng(0).choice(len(ds), args.images, replace=False))
    x, y = ds.x[keep], ds.y[keep]
    trained = args.images // 2 * 2 * args.epochs  # 2 folds, each on half the images
    print(f"2-fold cross-fit, default CNN, {args.epochs} epochs, {args.images:,} images "
          f"({trained:,} image-epochs)")
    for load_name in ("quiet", "with 1 busy-loop process"):
        hog = None
        if load_name != "quiet":
            hog = multiprocessing.get_context("spawn").Process(target=busy_loop, daemon=True)
            hog.start()
        try:
            for name, (execution, threads) in SETUPS.items():
                config = CNNConfig.default().replace(epochs=args.epochs, threads=threads)
                seconds = time_cross_fit(x, y, config, execution)
                print(f"{load_name:>26}: {name:<23} {seconds:6.1f} s "
                      f"({trained / seconds:,.0f} images/s)", flush=True)
        finally:
            if hog is not None:
                hog.terminate()
                hog.join()


if __name__ == "__main__":
    main()
