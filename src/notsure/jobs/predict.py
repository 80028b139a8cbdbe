"""``notsure predict``: label new images with a class or ``not_sure`` using a selective run."""

from __future__ import annotations

import csv
import io
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from notsure import NOT_SURE
from notsure.data import load
from notsure.data.idx import read_idx
from notsure.data.load import detect_format
from notsure.errors import DataError
from notsure.io.atomic import atomic_write_text
from notsure.io.progress import say
from notsure.jobs.engine import Engine


@dataclass
class PredictConfig:
    """Settings of ``notsure predict``."""

    run_dir: str
    input: str
    format: str | None = None
    out: str | None = None  # default: <input name>.predictions.csv in the current folder
    quiet: bool = False
    backend: str = "auto"  # onnx where ONNX Runtime is installed, else torch


def read_images(path: str | Path, format: str | None = None) -> tuple[np.ndarray, np.ndarray,
                                                                    np.ndarray | None, tuple]:
    """Images ``(N, H, W)``, their ids, labels if the input has them, and the input's class names.

    Any format the data layer reads works; unlabelled inputs may also be a ``.npy`` array of images
    or a lone IDX images file.
    """
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: no such file or folder")
    if format is None and path.is_file() and path.suffix == ".npy":
        try:
            x = np.load(path, allow_pickle=False)
        except ValueError as exc:
            raise DataError(f"{path}: not a plain NumPy array file ({exc})") from exc
        if x.ndim != 3:
            raise DataError(f"{path}: expected images of shape (N, H, W), got {x.shape}")
        return x, np.array([str(i) for i in range(len(x))]), None, ()
    if (format or detect_format(path)) == "idx":
        try:
            ds = load(path, "idx")
        except DataError:  # no labels file beside it: unlabelled images
            x = read_idx(path)
            if x.ndim != 3:
                raise
            return x, np.array([str(i) for i in range(len(x))]), None, ()
        return ds.x, ds.ids, ds.y, ds.class_names
    ds = load(path, format)
    if ds.kind != "images":
        raise DataError(f"{path}: holds {ds.kind} of shape {ds.shape}; predict needs images")
    return ds.x, ds.ids, ds.y, ds.class_names


def run_predict(config: PredictConfig) -> Path:
    """Write ``id,prediction[,label,correct]`` rows for every input image; return the CSV path."""
    with ThreadPoolExecutor(1) as pool:  # read the images while the models load
        reading = pool.submit(read_images, config.input, config.format)
        engine = Engine.load(config.run_dir, config.backend)
        x, ids, y, input_names = reading.result()
    predictor = engine.predictor
    t0 = time.perf_counter()
    decisions = engine.predict(x)
    seconds = time.perf_counter() - t0
    labels = predictor.labels_of(decisions.prediction)
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    header = ["id", "prediction", "margin_above_threshold"]
    true_names = None
    if y is not None:
        true_names = [input_names[v] for v in y]
        header += ["label", "correct"]
    writer.writerow(header)
    for i in range(len(x)):
        row = [ids[i], labels[i], f"{decisions.confidence[i]:.4f}"]
        if true_names is not None:
            row += [true_names[i], "" if decisions.prediction[i] == NOT_SURE
                    else int(labels[i] == true_names[i])]
        writer.writerow(row)
    out = Path(config.out) if config.out else Path(f"{Path(config.input).name}.predictions.csv")
    atomic_write_text(out, buf.getvalue())
    n_ns = int(np.sum(decisions.prediction == NOT_SURE))
    say(f"{len(x):,} images scored in {seconds:.2f} s ({len(x) / max(seconds, 1e-9):,.0f} "
        f"images/s, {engine.backend} back end); "
        f"{n_ns:,} not_sure; wrote {out}", quiet=config.quiet)
    return out
