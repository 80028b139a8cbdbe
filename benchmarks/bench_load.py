"""Print load times of the real data: MNIST from its gzipped IDX folder, the same 70,000 images
as a customer CSV (generated into a temporary folder), and the syndrome embedding pickle.

Usage: ``python benchmarks/bench_load.py [--repeat N]``; data from ``$NOTSURE_DATA_DIR``
(default ``../shared/data`` beside the repository). Targets: MNIST under 1 s.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from notsure.data import load
from notsure.data.dataset import fingerprint_arrays
from notsure.data.idx import read_bytes

REPO = Path(__file__).resolve().parents[1]


def data_dir() -> Path:
    return Path(os.environ.get("NOTSURE_DATA_DIR", REPO.parent / "shared" / "data"))


def timed(label: str, func: Callable[[], object], repeat: int) -> object:
    """Run ``func`` ``repeat`` times; print the best and median wall time."""
    times, result = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        result = func()
        times.append(time.perf_counter() - start)
    print(f"{label:<44} best {min(times):7.3f} s   median {statistics.median(times):7.3f} s")
    return result


def write_customer_csv(images: np.ndarray, labels: np.ndarray, path: Path) -> None:
    """``label,pixel0,...`` then one row per image: the customer CSV layout."""
    flat = images.reshape(len(images), -1)
    header = ",".join(["label"] + [f"pixel{k}" for k in range(flat.shape[1])])
    with open(path, "w") as fh:
        fh.write(header + "\n")
        for label, row in zip(labels.tolist(), flat.tolist(), strict=True):
            fh.write(f"{label},{','.join(map(str, row))}\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    mnist_dir = data_dir() / "mnist"
    pickle_path = data_dir() / "syndromes" / "mini_gm_public_v0.1.p"

    mnist = timed("MNIST gz IDX folder, 70,000 (total)", lambda: load(mnist_dir), args.repeat)
    big = mnist_dir / "train-images-idx3-ubyte.gz"
    raw = timed("  of which: gunzip train images", lambda: read_bytes(big), args.repeat)
    timed("  of which: SHA-256 of train images", lambda: hashlib.sha256(raw).digest(), args.repeat)
    timed(
        "  of which: fingerprint (x, y)", lambda: fingerprint_arrays(mnist.x, mnist.y), args.repeat
    )

    with tempfile.TemporaryDirectory() as tmp:
        csv_path = Path(tmp) / "mnist.csv"
        start = time.perf_counter()
        write_customer_csv(mnist.x, np.asarray(mnist.class_names)[mnist.y], csv_path)
        print(
            f"(wrote {csv_path.stat().st_size / 1e6:.0f} MB CSV in "
            f"{time.perf_counter() - start:.1f} s)"
        )
        from_csv = timed("customer CSV, 70,000 rows", lambda: load(csv_path), args.repeat)
        assert from_csv.fingerprint == mnist.fingerprint, "CSV and IDX disagree"

    timed("syndrome embeddings pickle, 1,116 vectors", lambda: load(pickle_path), args.repeat)


if __name__ == "__main__":
    main()
