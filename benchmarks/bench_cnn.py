"""Print CNN training and inference throughput (images/s) per precision and thread count, and
the training time per model that implies for each preset.

Usage: ``python benchmarks/bench_cnn.py [--precisions fp32,bf16] [--threads 1,0] [--repeat N]
[--accuracy [--presets default,quick] [--train-size 48000] [--ensemble K]]`` (threads 0 = all
cores). Throughput uses MNIST images when found (``$NOTSURE_DATA_DIR``, default
``../shared/data``), else random pixels (speed does not depend on content). Targets: the default
preset trains 48,000 images x its epochs in <= 2.5 min per model, and a 5-model ensemble
predicts >= 5,000 images/s. ``--accuracy`` trains each preset on 48,000 official training images
and reports the official test accuracy: an offline design experiment only (the product never
tunes on the test set). Other processes on the machine make torch's multi-threaded training
many times slower; compare thread counts only on a quiet machine.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

import numpy as np

from notsure.models import CNNConfig, predict_logits, train_cnn

REPO = Path(__file__).resolve().parents[1]
PRESETS = {"default": CNNConfig.default, "quick": CNNConfig.quick}


def mnist() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None:
    """(x_train, y_train, x_test, y_test) of MNIST, or None if the files are not there."""
    folder = Path(os.environ.get("NOTSURE_DATA_DIR", REPO.parent / "shared" / "data")) / "mnist"
    if not folder.is_dir():
        return None
    from notsure.data import load

    ds = load(folder)
    test = np.char.startswith(ds.ids.astype(str), "t10k/")
    return ds.x[~test], ds.y[~test], ds.x[test], ds.y[test]


def spread(values: list[float]) -> str:
    return f"median {statistics.median(values):7.0f}  range {min(values):7.0f}-{max(values):7.0f}"


def bench_throughput(precision: str, threads: int | None, x: np.ndarray, y: np.ndarray,
                     repeat: int, n_train: int, n_infer: int,
                     ensemble: int) -> tuple[list[float], list[float]]:
    """Training images/s (one epoch over ``n_train`` images with augmentation) and ensemble
    inference images/s (``ensemble`` models over ``n_infer`` images)."""
    config = CNNConfig.default().replace(epochs=1, precision=precision, threads=threads)
    train_rates, infer_rates = [], []
    model = None
    for r in range(repeat):
        res = train_cnn(x[:n_train], y[:n_train], 10, config, seed=r, quiet=True)
        train_rates.append(res.history[0]["images_per_s"])
        model = res.model
    models = [model] * ensemble
    predict_logits(models, x[:512], precision=precision, threads=threads)  # warm-up
    for _ in range(repeat):
        t0 = time.perf_counter()
        predict_logits(models, x[:n_infer], precision=precision, threads=threads)
        infer_rates.append(n_infer / (time.perf_counter() - t0))
    return train_rates, infer_rates


def bench_accuracy(config: CNNConfig, data: tuple[np.ndarray, ...], n_train: int,
                   ensemble: int) -> None:
    x_tr, y_tr, x_te, y_te = data
    logits = []
    for k in range(ensemble):
        # Each member sees a different 4/5-style subsample, as cross-fitted fold models do.
        rng = np.random.default_rng(k)
        pick = np.sort(rng.choice(len(x_tr), min(n_train, len(x_tr)), replace=False))
        t0 = time.perf_counter()
        res = train_cnn(x_tr[pick], y_tr[pick], 10, config, seed=k, quiet=True)
        seconds = time.perf_counter() - t0
        lg = predict_logits(res.model, x_te, precision=config.precision, threads=config.threads)
        logits.append(lg)
        acc = float((lg.argmax(1) == y_te).mean())
        print(f"  model {k}: {len(pick)} images, {config.epochs} epochs, train {seconds:6.1f} s, "
              f"test accuracy {acc:.4f}", flush=True)
    if ensemble > 1:
        mean_logits = np.mean(logits, axis=0)
        acc = float((mean_logits.argmax(1) == y_te).mean())
        print(f"  ensemble of {ensemble} (mean logits): test accuracy {acc:.4f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--precisions", default="fp32,bf16")
    ap.add_argument("--threads", default="1,0", help="comma list; 0 = all cores")
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--train-images", type=int, default=2048, help="images per timed epoch")
    ap.add_argument("--infer-images", type=int, default=5000)
    ap.add_argument("--ensemble", type=int, default=5)
    ap.add_argument("--accuracy", action="store_true")
    ap.add_argument("--presets", default="default,quick", help="presets for --accuracy")
    ap.add_argument("--train-size", type=int, default=48_000)
    args = ap.parse_args()

    data = mnist()
    if data is None:
        print("MNIST not found: timing on random pixels")
        rng = np.random.default_rng(0)
        x = rng.integers(0, 256, (max(args.train_images, args.infer_images), 28, 28), np.uint8)
        y = rng.integers(0, 10, len(x))
    else:
        x, y = data[0], data[1]
    for precision in args.precisions.split(","):
        for t in (int(v) for v in args.threads.split(",")):
            threads = t or None
            tr, inf = bench_throughput(precision, threads, x, y, args.repeat, args.train_images,
                                       args.infer_images, args.ensemble)
            label = f"{precision} threads={t or 'all'}"
            print(f"{label:<18} train img/s {spread(tr)}", flush=True)
            print(f"{label:<18} infer img/s, ensemble of {args.ensemble}: {spread(inf)}",
                  flush=True)
            for name, preset in PRESETS.items():
                config = preset()
                images = min(args.train_size, config.max_train or args.train_size)
                seconds = images * config.epochs / statistics.median(tr)
                print(f"{'':<18} -> {name}: {images} images x {config.epochs} epochs "
                      f"~ {seconds:.0f} s per model")
    if args.accuracy:
        if data is None:
            raise SystemExit("--accuracy needs the MNIST files")
        for name in args.presets.split(","):
            for precision in args.precisions.split(","):
                config = PRESETS[name]().replace(precision=precision,
                                                 threads=int(args.threads.split(",")[0]) or None)
                print(f"accuracy: {name} {precision} threads={config.threads or 'all'}")
                bench_accuracy(config, data, args.train_size, args.ensemble)


if __name__ == "__main__":
    main()
