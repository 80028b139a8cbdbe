"""Images to classify, from whatever a person has: one input path for ``predict`` and ``evaluate``.

Reads a single image file (PNG, JPEG, ...), a folder of image files (labelled by sub-folder when
laid out as ``root/<class>/<image>``, else unlabelled, read recursively), a ``.npy`` array, or any
dataset format :func:`notsure.data.load` reads. Pixels get the same checks as every loader (whole
numbers 0..255). Images not already in the training form (another size, colour, or a light
background) are brought to it with :func:`notsure.data.preprocess.to_mnist_form` unless
``preprocess=False``; training-form images are used exactly as given.
"""

from __future__ import annotations

import os
import struct
import tokenize
import warnings
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from notsure.data.limits import check_pixels
from notsure.data.load import FORMATS, detect_format, load
from notsure.data.parsing import encode_labels, to_pixels
from notsure.data.preprocess import (
    light_background,
    light_backgrounds,
    to_grayscale,
    to_mnist_form,
)
from notsure.errors import DataError

#: File name endings read as single images.
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")


@dataclass(frozen=True)
class Images:
    """Images ``(N, H, W)`` uint8 in the training form, their ids, and labels when the input has
    them (``y`` indexes ``class_names``)."""

    x: np.ndarray
    ids: np.ndarray
    y: np.ndarray | None
    class_names: tuple[str, ...]
    source: str
    format: str
    n_preprocessed: int = 0


def read_image_file(path: Path) -> np.ndarray:
    """One image file as uint8 ``(H, W)``, ``(H, W, 3)`` or ``(H, W, 4)`` (with transparency);
    its size is checked against the pixel limit before decoding."""
    try:
        with warnings.catch_warnings():  # PIL's bomb warning: our own check below says it
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                check_pixels(str(path), *image.size)
                return _decode(image)
    except Image.DecompressionBombError as exc:
        raise DataError(f"{path}: PIL refuses to decode it ({exc})") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError, MemoryError,
            zlib.error, struct.error) as exc:
        raise DataError(f"{path}: not a readable image ({type(exc).__name__}: {exc})") from exc


def _decode(image: Image.Image) -> np.ndarray:
    """Pixels of an opened image: grayscale as (H, W), colour as (H, W, 3|4)."""
    if image.mode in ("L", "1", "I;16", "I", "F"):
        gray = np.asarray(image.convert("F" if image.mode != "1" else "L"))
        if gray.max(initial=0) > 255:  # 16-bit grayscale
            gray = gray * (255.0 / 65535.0)
        return np.round(gray).astype(np.uint8)
    has_alpha = "A" in image.mode or "transparency" in image.info
    return np.asarray(image.convert("RGBA" if has_alpha else "RGB"), dtype=np.uint8)


def image_files(root: Path) -> list[Path]:
    """Image files under ``root`` at any depth (hidden ones skipped), sorted by relative path."""
    found = []
    for folder, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        found += [Path(folder, f) for f in files
                  if f.lower().endswith(IMAGE_SUFFIXES) and not f.startswith(".")]
    return sorted(found, key=lambda p: p.relative_to(root).as_posix())


def read_npy(path: Path, scale: float | None) -> np.ndarray:
    """A ``.npy`` array of images, scaled by ``255 / scale`` when given, as checked uint8 pixels.

    ``(N, H, W)`` gray, ``(N, H, W, 3|4)`` colour, or ``(N, H*W)`` flattened square images.
    """
    try:
        x = np.load(path, allow_pickle=False)
    except (ValueError, SyntaxError, tokenize.TokenError, OSError, EOFError,
            zipfile.BadZipFile) as exc:
        raise DataError(f"{path}: not a plain NumPy array of numbers "
                        f"({type(exc).__name__}: {exc})") from None
    if x.ndim == 2 and x.shape[1] == round(x.shape[1] ** 0.5) ** 2:
        side = round(x.shape[1] ** 0.5)
        x = x.reshape(len(x), side, side)
    if not (x.ndim == 3 or (x.ndim == 4 and x.shape[3] in (3, 4))):
        raise DataError(f"{path}: expected images (N, H, W), (N, H, W, 3|4) or flattened square "
                        f"images (N, H*W), got shape {x.shape}")
    if x.dtype.kind not in "uifb":
        raise DataError(f"{path}: pixels must be numbers, got dtype {x.dtype}")
    if scale is not None:
        x = np.round(x.astype(np.float64) * (255.0 / scale))
    elif x.dtype.kind == "f" and x.size and np.all(np.isfinite(x)) and 0 <= x.min() and \
            x.max() <= 1 and np.any((x > 0) & (x < 1)):
        raise DataError(f"{path}: pixel values lie in 0..1, not 0..255; pass --scale 1 to read "
                        "1 as full ink, or save the pixels as whole numbers 0..255")
    flat = x.reshape(len(x), x.shape[1], -1)  # to_pixels reports (sample, row, column)
    return to_pixels(flat, str(path)).reshape(x.shape)


def _folder(root: Path) -> tuple[list[np.ndarray], np.ndarray, np.ndarray | None, tuple]:
    """Images of a folder; labelled by sub-folder name when every image sits one level down."""
    files = image_files(root)
    if not files:
        raise DataError(f"{root}: no image files ({', '.join(IMAGE_SUFFIXES)}) in this folder "
                        "or below it")
    rel = [p.relative_to(root) for p in files]
    images = [read_image_file(p) for p in files]
    ids = np.array([r.as_posix() for r in rel])
    if all(len(r.parts) == 2 for r in rel):
        y, names = encode_labels(np.array([r.parts[0] for r in rel]), str(root))
        return images, ids, y, names
    return images, ids, None, ()


def in_training_form(image: np.ndarray, shape: tuple[int, int]) -> bool:
    """Grayscale, of the training size, with a dark background (as training images): used as is."""
    return image.ndim == 2 and image.shape == tuple(shape) and not light_background(image)


def to_training_form(images: list[np.ndarray] | np.ndarray, shape: tuple[int, int],
                     preprocess: bool, source: str, ids: np.ndarray | None = None
                     ) -> tuple[np.ndarray, int]:
    """Images ``(N, *shape)`` uint8 and how many were preprocessed (see the module docstring);
    errors name ``source`` and the image's id (its position when ``ids`` is None)."""
    out, n_done = np.empty((len(images), *shape), dtype=np.uint8), 0
    ready = np.zeros(len(images), dtype=bool)
    if isinstance(images, np.ndarray) and images.ndim == 3 and images.shape[1:] == tuple(shape):
        ready = ~light_backgrounds(images)  # the common case, checked at once
        out[ready] = images[ready]
    for i, image in enumerate(images):
        if ready[i]:
            continue
        if in_training_form(image, shape):
            out[i] = image
        elif preprocess:
            if shape[0] != shape[1]:
                raise DataError(f"{source}: cannot bring images to the training form "
                                f"{shape[1]}x{shape[0]} (not square); pass --no-preprocess")
            out[i] = to_mnist_form(image, shape[0])
            n_done += 1
        elif image.ndim == 2 and image.shape == tuple(shape):
            out[i] = image  # light background, kept as given
        else:
            gray = to_grayscale(image, source)
            if gray.shape != tuple(shape):
                name = i if ids is None else ids[i]
                raise DataError(f"{source}: image {name} is {gray.shape[1]}x{gray.shape[0]} (WxH) "
                                f"but the model takes {shape[1]}x{shape[0]}; leave out "
                                "--no-preprocess to resize it, or use a run trained on that size")
            out[i] = np.round(gray).astype(np.uint8)
    return out, n_done


def read_images_for_prediction(
    path: str | os.PathLike[str],
    *,
    shape: tuple[int, int] = (28, 28),
    format: str | None = None,
    scale: float | None = None,
    preprocess: bool = True,
) -> Images:
    """The images at ``path`` in the training form ``shape`` (see the module docstring).

    ``scale`` is the input's full-ink value for ``.npy`` arrays (e.g. 1 for floats in 0..1).
    """
    raw, ids, y, names, kind = read_raw_images(path, format=format, scale=scale)
    x, n_done = to_training_form(raw, shape, preprocess, str(path), ids)
    return Images(x=x, ids=np.asarray(ids, dtype=str), y=y, class_names=tuple(names),
                  source=str(path), format=kind, n_preprocessed=n_done)


def read_raw_images(path: str | os.PathLike[str], *, format: str | None = None,
                    scale: float | None = None) -> tuple:
    """``(images, ids, labels or None, class names, input kind)`` as stored, pixels checked;
    images is a list when sizes or colour may differ."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: no such file or folder")
    if scale is not None and not scale > 0:
        raise DataError(f"--scale must be > 0, got {scale}")
    y, names = None, ()
    kind = format or input_kind(path)
    if kind == "npy":
        raw = read_npy(path, scale)
        ids = np.arange(len(raw)).astype(str)
    elif kind == "image":
        raw, ids = [read_image_file(path)], np.array([path.name])
    elif kind == "image-folder":
        raw, ids, y, names = _folder(path)
    else:
        if scale is not None:
            raise DataError(f"{path}: --scale applies to .npy arrays only; this is {kind} data")
        raw, ids, y, names = _dataset(path, kind)
    if len(raw) == 0:
        raise DataError(f"{path}: holds no images")
    return raw, ids, y, names, kind


def image_input_info(path: str | os.PathLike[str], *, format: str | None = None,
                     scale: float | None = None) -> dict:
    """What ``notsure data info`` says about an image input (a ``.npy``, image file or folder)."""
    raw, _, y, names, kind = read_raw_images(path, format=format, scale=scale)
    shapes = sorted({"x".join(str(s) for s in im.shape) for im in raw})
    return {
        "source": str(path), "format": kind, "n": len(raw), "shapes": shapes,
        "min": int(min(im.min() for im in raw)), "max": int(max(im.max() for im in raw)),
        "class_counts": None if y is None else dict(zip(
            names, np.bincount(y, minlength=len(names)).tolist(), strict=True)),
    }


def format_image_input_info(info: dict) -> str:
    """:func:`image_input_info` as text for a person."""
    lines = [f"source       {info['source']}",
             f"format       {info['format']} (images for `notsure predict` / `evaluate`)",
             f"samples      {info['n']} images of {', '.join(info['shapes'])} (HxW[xchannels]) "
             f"uint8, values {info['min']}..{info['max']}"]
    counts = info["class_counts"]
    if counts is None:
        lines.append("labels       none")
    else:
        width = max(len(name) for name in counts)
        lines.append(f"classes      {len(counts)}")
        lines += [f"  {name:<{width}}  {count:>8}" for name, count in counts.items()]
    return "\n".join(lines)


#: What ``read_images_for_prediction`` reads besides the dataset formats.
IMAGE_INPUTS = ("npy", "image", "image-folder")


def input_kind(path: Path) -> str:
    """``npy``, ``image``, ``image-folder`` or a dataset format name (detected)."""
    if not path.exists():
        raise DataError(f"{path}: no such file or folder")
    if path.is_file() and path.suffix.lower() == ".npy":
        return "npy"
    if path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES:
        return "image"
    if path.is_dir():
        try:
            return "mnist" if detect_format(path) == "mnist" else "image-folder"
        except DataError:
            return "image-folder"
    return detect_format(path)


def _dataset(path: Path, format: str) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, tuple]:
    """A dataset file; a lone IDX images file (no labels beside it) is read unlabelled."""
    from notsure.data.idx import read_idx

    if format not in FORMATS:
        raise DataError(f"unknown format {format!r}; use one of "
                        f"{', '.join(FORMATS + IMAGE_INPUTS)}")
    if format == "idx":
        try:
            ds = load(path, "idx")
        except DataError:  # no labels file beside it: unlabelled images
            x = read_idx(path)
            if x.ndim != 3:
                raise
            return to_pixels(x, str(path)), np.arange(len(x)).astype(str), None, ()
    else:
        ds = load(path, format)
    if ds.kind != "images":
        raise DataError(f"{path}: holds {ds.kind} of shape {ds.shape}; images are needed")
    return ds.x, ds.ids, ds.y, ds.class_names
