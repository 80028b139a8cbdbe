"""``notsure predict``: label new images with a class or ``not_sure`` using a selective run."""

from __future__ import annotations

import csv
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from notsure import NOT_SURE
from notsure.data import load
from notsure.data.csv_files import iter_pixel_table, square_images
from notsure.data.idx import iter_idx, open_stream, part_name, read_header, read_idx
from notsure.data.load import check_same_length, detect_format, labels_partner, to_pixels
from notsure.data.npy_files import iter_npy_images
from notsure.errors import DataError
from notsure.io.atomic import atomic_path
from notsure.io.progress import say
from notsure.jobs.predictor import SelectivePredictor

#: Images read, scored and written at a time: 32 of the predictor's 256-image batches, so every
#: batch, and so every score, is the same as when all images are scored in one go.
CHUNK_IMAGES = 8192


@dataclass
class PredictConfig:
    """Settings of ``notsure predict``."""

    run_dir: str
    input: str
    format: str | None = None
    out: str | None = None  # default: <input name>.predictions.csv in the current folder
    quiet: bool = False


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


@dataclass
class ImageChunks:
    """An input read a chunk at a time: ``(images, ids, label names or None)`` per chunk."""

    labelled: bool
    chunks: Iterator[tuple[np.ndarray, np.ndarray, np.ndarray | None]]


def _numbered(prefix: str, start: int, n: int) -> np.ndarray:
    return np.array([f"{prefix}{i}" for i in range(start, start + n)])


def _idx_chunks(path: Path, rows: int) -> ImageChunks:
    """An IDX images file, with the labels file beside it when there is one that fits."""
    with open_stream(path) as fh:
        n = read_header(fh, path).shape[0]
    labels_path = labels_partner(path)
    labels = None
    if labels_path is not None:
        try:
            labels = read_idx(labels_path)
            check_same_length(n, len(labels), str(path), str(labels_path))
        except DataError:  # not a usable labels file: the images are unlabelled
            labels = None
    prefix = f"{part_name(path)}/" if labels is not None else ""

    def chunks() -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray | None]]:
        start = 0
        for x in iter_idx(path, rows):
            if x.ndim != 3:
                raise DataError(f"{path}: expected images (N, H, W), got shape {x.shape}")
            names = None if labels is None else labels[start:start + len(x)].astype(str)
            yield to_pixels(x, str(path)), _numbered(prefix, start, len(x)), names
            start += len(x)

    return ImageChunks(labels is not None, chunks())


def _csv_chunks(path: Path, rows: int) -> ImageChunks:
    def chunks() -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray | None]]:
        start = 0
        for labels, pixels in iter_pixel_table(path, rows):
            yield square_images(path, pixels), _numbered("row/", start, len(labels)), \
                labels.astype(str)
            start += len(labels)

    return ImageChunks(True, chunks())


def _npy_chunks(path: Path, rows: int) -> ImageChunks:
    def chunks() -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray | None]]:
        start = 0
        for x in iter_npy_images(path, rows):
            yield x, _numbered("", start, len(x)), None
            start += len(x)

    return ImageChunks(False, chunks())


def iter_images(path: str | Path, format: str | None = None,
                rows: int = CHUNK_IMAGES) -> ImageChunks:
    """The input images in chunks of ``rows``. ``.npy``, IDX (raw or gzipped) and customer CSV
    files are read incrementally, so memory stays flat for any input size; other formats are
    read whole (within the input limits) and then handed out in chunks."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: no such file or folder")
    if path.is_file() and format in (None, "idx", "csv"):
        if format is None and path.suffix == ".npy":
            return _npy_chunks(path, rows)
        found = format or detect_format(path)
        if found == "idx":
            return _idx_chunks(path, rows)
        if found == "csv":
            return _csv_chunks(path, rows)
    x, ids, y, input_names = read_images(path, format)
    names = None if y is None else np.asarray(input_names)[y]

    def chunks() -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray | None]]:
        for s in range(0, len(x), rows):
            yield x[s:s + rows], ids[s:s + rows], None if names is None else names[s:s + rows]

    return ImageChunks(y is not None, chunks())


def run_predict(config: PredictConfig) -> Path:
    """Write ``id,prediction,margin_above_threshold[,label,correct]`` rows for every input
    image; return the CSV path. Reads, scores and writes a chunk at a time (flat memory); the
    file appears, whole, only when every image is done."""
    predictor = SelectivePredictor.load(config.run_dir)
    images = iter_images(config.input, config.format, CHUNK_IMAGES)
    out = Path(config.out) if config.out else Path(f"{Path(config.input).name}.predictions.csv")
    n_images = n_not_sure = 0
    seconds = 0.0
    with atomic_path(out) as tmp, open(tmp, "w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(["id", "prediction", "margin_above_threshold"]
                        + (["label", "correct"] if images.labelled else []))
        for x, ids, true_names in images.chunks:
            t0 = time.perf_counter()
            decisions = predictor.predict(x, quiet=config.quiet)
            seconds += time.perf_counter() - t0
            labels = predictor.labels_of(decisions.prediction)
            not_sure = decisions.prediction == NOT_SURE
            for i in range(len(x)):
                row = [ids[i], labels[i], f"{decisions.confidence[i]:.4f}"]
                if true_names is not None:
                    row += [true_names[i], "" if not_sure[i] else int(labels[i] == true_names[i])]
                writer.writerow(row)
            n_images += len(x)
            n_not_sure += int(not_sure.sum())
    say(f"{n_images:,} images in {seconds:.2f} s ({n_images / max(seconds, 1e-9):,.0f} "
        f"images/s); {n_not_sure:,} not_sure; wrote {out}", quiet=config.quiet)
    return out
