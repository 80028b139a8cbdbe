"""``notsure predict``: label new images with a class or ``not_sure`` using a selective run."""

from __future__ import annotations

import csv
import io
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from notsure import NOT_SURE
from notsure.data.images import read_images_for_prediction
from notsure.io.atomic import atomic_write_text
from notsure.io.progress import say
from notsure.jobs.predictor import SelectivePredictor


@dataclass
class PredictConfig:
    """Settings of ``notsure predict``."""

    run_dir: str
    input: str
    format: str | None = None
    out: str | None = None  # default: <input name>.predictions.csv in the current folder
    quiet: bool = False
    scale: float | None = None  # full-ink value of a .npy input (e.g. 1 for floats in 0..1)
    preprocess: bool = True  # bring images not in the training form to it (MNIST-style)


def run_predict(config: PredictConfig) -> Path:
    """Write ``id,prediction,reason,margin_above_threshold[,label,correct]`` rows for every input
    image; return the CSV path."""
    predictor = SelectivePredictor.load(config.run_dir)
    images = read_images_for_prediction(
        config.input, shape=predictor.image_shape, format=config.format, scale=config.scale,
        preprocess=config.preprocess)
    x, ids, y, input_names = images.x, images.ids, images.y, images.class_names
    t0 = time.perf_counter()
    decisions = predictor.predict(x, quiet=config.quiet)
    seconds = time.perf_counter() - t0
    labels = predictor.labels_of(decisions.prediction)
    reasons = decisions.reason
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    header = ["id", "prediction", "reason", "margin_above_threshold"]
    true_names = None
    if y is not None:
        true_names = [input_names[v] for v in y]
        header += ["label", "correct"]
    writer.writerow(header)
    for i in range(len(x)):
        row = [ids[i], labels[i], reasons[i], f"{decisions.confidence[i]:.4f}"]
        if true_names is not None:
            row += [true_names[i], "" if decisions.prediction[i] == NOT_SURE
                    else int(labels[i] == true_names[i])]
        writer.writerow(row)
    out = Path(config.out) if config.out else Path(f"{Path(config.input).name}.predictions.csv")
    atomic_write_text(out, buf.getvalue())
    n_ns = int(np.sum(decisions.prediction == NOT_SURE))
    n_ood = int(np.sum(reasons == "out_of_distribution"))
    say(f"{len(x):,} images ({images.n_preprocessed:,} brought to the training form) in "
        f"{seconds:.2f} s ({len(x) / max(seconds, 1e-9):,.0f} images/s); {n_ns:,} not_sure "
        f"({n_ood:,} out of distribution); wrote {out}", quiet=config.quiet)
    return out
