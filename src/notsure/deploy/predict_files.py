"""``notsure predict``: label new images with a class or ``not_sure`` using a selective run."""

from __future__ import annotations

import csv
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import numpy as np

from notsure.constants import NOT_SURE
from notsure.data.csv_files import iter_pixel_table, square_images
from notsure.data.idx import iter_idx, open_stream, part_name, read_header, read_idx
from notsure.data.images import input_kind, read_raw_images, to_training_form
from notsure.data.load import detect_format
from notsure.data.npy_files import iter_npy_images
from notsure.data.parsing import check_same_length, labels_partner, to_pixels
from notsure.deploy.engine import Engine
from notsure.deploy.predictor import Decisions, SelectivePredictor
from notsure.errors import DataError
from notsure.io.atomic import atomic_path
from notsure.io.progress import say

T = TypeVar("T")
U = TypeVar("U")

#: Images read, scored and written at a time: 32 of the predictor's 256-image batches, so every
#: batch, and so every score, is the same as when all images are scored in one go.
CHUNK_IMAGES = 8192
#: Chunks read and prepared ahead of scoring (about 6.5 MB each for MNIST): enough to keep
#: the reader busy while the networks load.
PREFETCH = 4


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
    backend: str = "auto"  # onnx where ONNX Runtime is installed, else torch


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
            yield to_pixels(x, str(path)), _numbered("", start, len(x)), None
            start += len(x)

    return ImageChunks(False, chunks())


def iter_images(path: str | Path, format: str | None = None, rows: int = CHUNK_IMAGES, *,
                scale: float | None = None) -> ImageChunks:
    """The input images in chunks of ``rows``, as stored (pixels checked). Integer ``.npy``, IDX
    (raw or gzipped) and customer CSV files are read incrementally, so memory stays flat for any
    input size; other inputs (image files and folders, float or ``scale``d ``.npy``, other
    dataset formats) are read whole through the data layer (within the input limits)."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: no such file or folder")
    if path.is_file() and format is None and path.suffix.lower() == ".npy":
        if scale is None and _integer_npy(path):
            return _npy_chunks(path, rows)
    elif path.is_file() and format in (None, "idx", "csv") and input_kind(path) != "image":
        found = format or detect_format(path)
        if found == "idx":
            return _idx_chunks(path, rows)
        if found == "csv":
            return _csv_chunks(path, rows)
    x, ids, y, input_names, _ = read_raw_images(path, format=format, scale=scale)
    ids = np.asarray(ids, dtype=str)
    names = None if y is None else np.asarray(input_names)[y]

    def chunks() -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray | None]]:
        for s in range(0, len(x), rows):
            yield x[s:s + rows], ids[s:s + rows], None if names is None else names[s:s + rows]

    return ImageChunks(y is not None, chunks())


def _integer_npy(path: Path) -> bool:
    """Whether a ``.npy`` file holds integer pixels (streamed); floats go through the checks of
    the data layer (0..1 values need ``--scale``)."""
    from numpy.lib import format as npy_format

    try:
        with open(path, "rb") as fh:
            version = npy_format.read_magic(fh)
            read = (npy_format.read_array_header_1_0 if version == (1, 0)
                    else npy_format.read_array_header_2_0)
            shape, _, dtype = read(fh)
    except Exception:  # a probe only: the data layer's reader says what is wrong
        return False
    return dtype.kind in "iub" and len(shape) == 3


def prefetched(chunks: Iterable[T], prepare: Callable[[T], U], depth: int = 1) -> Iterator[U]:
    """``prepare(chunk)`` for every chunk, up to ``depth`` chunks read and prepared ahead in a
    background thread while the caller works on the current one (decoding and preprocessing
    overlap with scoring, whose native code releases the GIL). Errors surface in order, where
    they happened."""
    source = iter(chunks)

    def step() -> U | None:
        chunk = next(source, None)
        return None if chunk is None else prepare(chunk)

    with ThreadPoolExecutor(max_workers=1) as pool:  # one worker: chunks stay in order
        pending = deque(pool.submit(step) for _ in range(depth))
        while True:
            ready = pending.popleft().result()
            if ready is None:
                return
            pending.append(pool.submit(step))
            yield ready


def csv_rows(labels: list[str], decisions: Decisions, ids: np.ndarray,
             true_names: np.ndarray | None) -> Iterator[tuple]:
    """The CSV rows of one chunk, as columns zipped (``csv.writer.writerows`` walks them in C):
    id, prediction, reason, margin above the threshold[, label, correct]."""
    margins = [f"{v:.4f}" for v in decisions.confidence.tolist()]
    columns = [ids.tolist(), labels, decisions.reason.tolist(), margins]
    if true_names is not None:
        names = true_names.tolist()
        correct = np.where(decisions.prediction == NOT_SURE, "",
                           (np.asarray(labels, dtype=object) == true_names).astype(int)
                           .astype(str))
        columns += [names, correct.tolist()]
    return zip(*columns, strict=True)


def run_predict(config: PredictConfig) -> Path:
    """Write ``id,prediction,reason,margin_above_threshold[,label,correct]`` rows for every input
    image; return the CSV path. Reads, brings to the training form (unless ``preprocess`` is
    off), scores and writes a chunk at a time (flat memory); the file appears, whole, only when
    every image is done."""
    # The predictor's thresholds and guard load without torch; the networks load in the
    # background while the first chunks are read, preprocessed and pixel-checked.
    predictor = SelectivePredictor.load(config.run_dir, networks=False)
    images = iter_images(config.input, config.format, CHUNK_IMAGES, scale=config.scale)
    out = Path(config.out) if config.out else Path(f"{Path(config.input).name}.predictions.csv")
    n_images = n_not_sure = n_ood = n_done = 0
    seconds = 0.0

    def prepare(chunk: tuple) -> tuple:
        raw, ids, true_names = chunk
        x, done = to_training_form(raw, predictor.image_shape, config.preprocess,
                                   str(config.input))
        return x, predictor.pixel_checks(x), done, ids, true_names

    with atomic_path(out) as tmp, open(tmp, "w", encoding="utf-8", newline="") as fh, \
            ThreadPoolExecutor(max_workers=2) as background:
        loading = background.submit(Engine.ready, predictor, config.backend)
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(["id", "prediction", "reason", "margin_above_threshold"]
                        + (["label", "correct"] if images.labelled else []))
        written = None  # the previous chunk's rows, written while this chunk is scored
        for x, checks, done, ids, true_names in prefetched(images.chunks, prepare, PREFETCH):
            engine = loading.result()
            t0 = time.perf_counter()
            decisions = engine.predict(x, checks)
            seconds += time.perf_counter() - t0
            if written is not None:
                written.result()
            # Rows are formatted in the writer thread too: scoring the next chunk goes on.
            written = background.submit(lambda d=decisions, i=ids, t=true_names: writer.writerows(
                csv_rows(predictor.labels_of(d.prediction), d, i, t)))
            n_images += len(x)
            n_done += done
            n_not_sure += int(np.sum(decisions.prediction == NOT_SURE))
            n_ood += int(np.sum(decisions.reason == "out_of_distribution"))
        if written is not None:
            written.result()
        engine = loading.result()  # an input without images still reports the back end
    say(f"{n_images:,} images ({n_done:,} brought to the training form) in {seconds:.2f} s "
        f"({n_images / max(seconds, 1e-9):,.0f} images/s scoring, {engine.backend} back end); "
        f"{n_not_sure:,} not_sure "
        f"({n_ood:,} out of distribution); wrote {out}", quiet=config.quiet)
    return out
