"""Time the evaluation core on 1,000,000 samples x 10 classes and print the figures.

Targets: confusion matrix and per-class rates well under 0.1 s, one-vs-rest AUC under 2 s.
Run: ``python benchmarks/bench_metrics.py [--n 1000000] [--classes 10] [--repeat 3]``.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import numpy as np

from notsure import NOT_SURE
from notsure.metrics import (
    aurc,
    classification_report,
    confusion_matrix,
    per_class_rates,
    precision_recall_f1,
    roc_auc_ovr,
    top_k_accuracy,
)


def best_of(fn: Callable[[], object], repeat: int) -> float:
    """Fastest of ``repeat`` runs, in seconds (after one warm-up run)."""
    fn()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--classes", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    rng = np.random.default_rng(args.seed)
    n, c = args.n, args.classes
    y_true = rng.integers(0, c, n)
    scores = rng.random((n, c)) + 0.5 * np.eye(c)[y_true]
    y_pred = scores.argmax(axis=1)
    confidence = scores.max(axis=1)
    y_pred = np.where(confidence < np.quantile(confidence, 0.1), NOT_SURE, y_pred)

    cases: list[tuple[str, Callable[[], object], float | None]] = [
        ("confusion_matrix", lambda: confusion_matrix(y_true, y_pred), 0.1),
        ("per_class_rates", lambda: per_class_rates(y_true, y_pred), 0.1),
        (
            "precision_recall_f1 macro",
            lambda: precision_recall_f1(y_true, y_pred, average="macro"),
            None,
        ),
        ("classification_report", lambda: classification_report(y_true, y_pred), None),
        ("top_k_accuracy k=3", lambda: top_k_accuracy(y_true, scores, 3), None),
        ("aurc", lambda: aurc(y_true, y_pred, confidence), None),
        ("roc_auc_ovr macro", lambda: roc_auc_ovr(y_true, scores), 2.0),
    ]
    print(f"{n:,} samples x {c} classes, best of {args.repeat} runs")
    for name, fn, target in cases:
        seconds = best_of(fn, args.repeat)
        verdict = ""
        if target is not None:
            verdict = f"  (target < {target} s: {'ok' if seconds < target else 'SLOW'})"
        print(f"  {name:<28} {seconds * 1000:9.1f} ms{verdict}")


if __name__ == "__main__":
    main()
