"""A folder of grayscale PNGs with one sub-folder per class (``root/<class>/<image>.png``).

Class names are the sub-folder names; ids are ``"<class>/<file name>"``; files are read in
sorted order so a folder always loads the same way.
"""

from __future__ import annotations

import struct
import warnings
import zlib
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from notsure.data.dataset import Dataset
from notsure.data.limits import check_bytes, check_count, check_pixels
from notsure.data.parsing import make_dataset
from notsure.errors import DataError

GRAYSCALE_MODES = ("L", "1")  # 8-bit gray; 1-bit black and white (read as 0 / 255)


def _pngs(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir()
                  if p.suffix.lower() == ".png" and p.is_file() and not p.name.startswith("."))


def class_folders(root: Path) -> list[Path]:
    """The sub-folders of ``root`` that hold at least one PNG, sorted by name."""
    return sorted(d for d in root.iterdir()
                  if d.is_dir() and not d.name.startswith(".") and _pngs(d))


def read_png(path: Path) -> np.ndarray:
    """One grayscale PNG as a uint8 ``(H, W)`` array; its size is checked before decoding."""
    try:
        with warnings.catch_warnings():  # PIL's bomb warning: our own check below says it
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                if image.format != "PNG" or image.mode not in GRAYSCALE_MODES:
                    raise DataError(f"{path}: is a {image.format} image in mode {image.mode}; "
                                    "expected a grayscale PNG (mode L)")
                check_pixels(str(path), *image.size)
                return np.asarray(image.convert("L"), dtype=np.uint8)
    except Image.DecompressionBombError as exc:
        raise DataError(f"{path}: PIL refuses to decode it ({exc})") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError, MemoryError,
            zlib.error, struct.error) as exc:
        raise DataError(f"{path}: not a readable PNG image ({type(exc).__name__}: {exc})") from exc


def load_png_folder(root: Path) -> Dataset:
    """All PNGs under ``root/<class>/``, with labels from the sub-folder names."""
    if not root.is_dir():
        raise DataError(f"{root}: a png-folder dataset must be a folder")
    folders = class_folders(root)
    if not folders:
        raise DataError(f"{root}: no sub-folders with .png files; expected one sub-folder per "
                        "class holding that class's grayscale PNGs")
    files = {folder: _pngs(folder) for folder in folders}
    n_files = sum(map(len, files.values()))
    check_count(str(root), n_files)
    images, labels, ids = [], [], []
    for folder in folders:
        for path in files[folder]:
            image = read_png(path)
            if not images:
                check_bytes(str(root), n_files * image.size, f"{n_files:,} images of {path.name}'s "
                            "size")
            if images and image.shape != images[0].shape:
                raise DataError(f"{path}: image is {image.shape[1]}x{image.shape[0]} (WxH), "
                                f"expected {images[0].shape[1]}x{images[0].shape[0]} like "
                                f"{root / ids[0]}")
            images.append(image)
            labels.append(folder.name)
            ids.append(f"{folder.name}/{path.name}")
    return make_dataset(np.stack(images), np.asarray(labels), np.asarray(ids), source=str(root),
                        format="png-folder", kind="images")
