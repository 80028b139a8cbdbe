"""Print the stage timings of the embeddings job on the real syndrome file, the k-NN kernel
alone, and (with ``--compare-tsne``) openTSNE against scikit-learn's t-SNE.

Usage: ``python benchmarks/bench_embeddings.py [PATH] [--repeat N] [--compare-tsne]``; PATH
defaults to ``$NOTSURE_DATA_DIR/syndromes/mini_gm_public_v0.1.p`` (``../shared/data`` beside
the repository). Targets: the whole job, t-SNE included, under 60 s; the k-NN part under 5 s.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

from notsure.analysis import embedding_cv, embedding_stats, knn
from notsure.data.splits import stratified_kfold
from notsure.jobs.embeddings.pipeline import DEFAULT_FILE, EmbeddingsConfig, load_embeddings
from notsure.jobs.embeddings.run import run_embeddings

REPO = Path(__file__).resolve().parents[1]


def default_path() -> Path:
    root = Path(os.environ.get("NOTSURE_DATA_DIR", REPO.parent / "shared" / "data"))
    return root / DEFAULT_FILE


def time_job(path: Path, repeat: int) -> None:
    runs = []
    for _ in range(repeat):
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            run_embeddings(EmbeddingsConfig(path=str(path), out=f"{tmp}/run", quiet=True))
            wall = time.perf_counter() - t0
            timings = json.loads(Path(f"{tmp}/run/manifest.json").read_text())["timings_s"]
        timings["wall (incl. imports, load)"] = round(wall, 3)
        runs.append(timings)
    print(f"whole job on {path} ({repeat} run(s), seconds; median where repeated):")
    for stage in runs[0]:
        values = [r[stage] for r in runs]
        print(f"  {stage:28s} {statistics.median(values):8.3f}   "
              + " ".join(f"{v:.3f}" for v in values))


def time_knn(path: Path, repeat: int) -> None:
    ds, _ = load_embeddings(path)
    plan = stratified_kfold(ds.y, 10, 0, groups=ds.groups)
    train, test = plan.folds[0]
    for metric in knn.METRICS:
        kernel, nested = [], []
        for _ in range(repeat):
            t0 = time.perf_counter()
            dist = knn.pairwise_distances(ds.x[test], ds.x[train], metric)
            knn.knn_all_k(dist, ds.y[train], ds.n_classes, 15)
            kernel.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            full = knn.pairwise_distances(ds.x, ds.x, metric)
            embedding_cv.knn_cv(full, ds.y, ds.groups, ds.n_classes, plan, k_max=15,
                                n_inner=5)
            nested.append(time.perf_counter() - t0)
        print(f"k-NN {metric:9s}: one fold, distances + votes for k=1..15: "
              f"{1e3 * statistics.median(kernel):.2f} ms; nested 10 x 5-fold CV: "
              f"{statistics.median(nested):.3f} s")


def compare_tsne(path: Path) -> None:
    ds, _ = load_embeddings(path)
    x = knn.l2_normalize(ds.x)
    for backend in ("opentsne", "sklearn"):
        try:
            points, used, seconds = embedding_stats.tsne_2d(x, 0, backend=backend)
        except Exception as exc:  # openTSNE may be missing: say so and go on
            print(f"t-SNE {backend}: not run ({exc})")
            continue
        _, overall = embedding_stats.cluster_rows(x, "cosine", points, ds.y, ds.groups,
                                                  ds.class_names)
        print(f"t-SNE {used:8s} (normalized vectors): {seconds:6.2f} s, 10-NN purity in 2-D "
              f"{overall['purity_map']:.3f}, silhouette in 2-D {overall['silhouette_map']:.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path", nargs="?", type=Path, default=default_path())
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--compare-tsne", action="store_true")
    args = parser.parse_args()
    print(f"cpus: {os.cpu_count()}, load average: {os.getloadavg()[0]:.2f}")
    time_knn(args.path, max(args.repeat, 3))
    if args.compare_tsne:
        compare_tsne(args.path)
    time_job(args.path, args.repeat)


if __name__ == "__main__":
    main()
