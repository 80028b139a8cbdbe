"""Plain NumPy ``.npy`` arrays of images, read in chunks so any size streams in flat memory."""

from __future__ import annotations

import math
import tokenize
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from numpy.lib import format as npy_format

from notsure.data.limits import check_count
from notsure.data.parsing import read_head
from notsure.errors import DataError


def iter_npy_images(path: Path, rows: int) -> Iterator[np.ndarray]:
    """The images ``(N, H, W)`` of a ``.npy`` file, ``rows`` at a time; the header's claims are
    checked against the file size before anything is read."""
    read_head(path, 1)
    with open(path, "rb") as fh:
        try:
            version = npy_format.read_magic(fh)
            if version not in ((1, 0), (2, 0)):
                raise ValueError(f"format version {version} is not supported")
            read = (npy_format.read_array_header_1_0 if version == (1, 0)
                    else npy_format.read_array_header_2_0)
            shape, fortran, dtype = read(fh)
        except (ValueError, SyntaxError, tokenize.TokenError) as exc:  # header: a Python literal
            raise DataError(f"{path}: not a plain NumPy array file ({exc})") from None
        if len(shape) != 3 or dtype.hasobject or dtype.kind not in "biuf":
            raise DataError(f"{path}: expected images of shape (N, H, W) with numeric pixels, "
                            f"got {dtype} {shape}")
        check_count(str(path), shape[0])
        row = math.prod(shape[1:])
        end = fh.tell() + shape[0] * row * dtype.itemsize
        if end != path.stat().st_size:
            raise DataError(f"{path}: header says shape {shape} of {dtype}, {end:,} bytes in all, "
                            f"but the file has {path.stat().st_size:,}; it is truncated or corrupt")
        if fortran:  # rare: strided reads through a memory map
            x = np.load(path, mmap_mode="r", allow_pickle=False)
            for start in range(0, shape[0], rows):
                yield np.ascontiguousarray(x[start:start + rows])
            return
        for start in range(0, shape[0], rows):
            n = min(rows, shape[0] - start)
            yield np.fromfile(fh, dtype=dtype, count=n * row).reshape(n, *shape[1:])
