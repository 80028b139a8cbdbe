"""NumPy ``.npz`` archives in the Keras layout: ``x_train, y_train`` (and ``x_test, y_test``).

Read with ``allow_pickle=False``, so an archive cannot run code. Ids are ``"train/<i>"`` and
``"test/<i>"``. A plain ``x, y`` pair is also accepted (ids ``"all/<i>"``).
"""

from __future__ import annotations

import math
import tokenize
import zipfile
import zlib
from pathlib import Path

import numpy as np
from numpy.lib import format as npy_format

from notsure.data.dataset import Dataset
from notsure.data.limits import check_bytes, check_ratio
from notsure.data.parsing import check_same_length, make_dataset, numbered_ids, read_head
from notsure.errors import DataError

#: Accepted key layouts: id prefix -> (samples key, labels key), tried in this order.
LAYOUTS: tuple[dict[str, tuple[str, str]], ...] = (
    {"train": ("x_train", "y_train"), "test": ("x_test", "y_test")},
    {"train": ("x_train", "y_train")},
    {"all": ("x", "y")},
)


def _read_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo, source: str) -> np.ndarray:
    """One ``.npy`` member, its header's claimed size checked against the member's before the
    array is allocated."""
    where = f"{source}[{info.filename}]"
    with archive.open(info) as fh:
        version = npy_format.read_magic(fh)
        if version == (1, 0):
            shape, _, dtype = npy_format.read_array_header_1_0(fh)
        elif version == (2, 0):
            shape, _, dtype = npy_format.read_array_header_2_0(fh)
        else:
            raise DataError(f"{where}: .npy format version {version} is not supported; save "
                            "with numpy.savez")
    if dtype.hasobject:
        raise DataError(f"{source}: holds an object array that would need unpickling, which is "
                        "not allowed; save numeric arrays")
    n_bytes = math.prod(shape) * dtype.itemsize
    if n_bytes > info.file_size:
        raise DataError(f"{where}: header claims shape {shape} ({n_bytes:,} bytes) but the member "
                        f"holds only {info.file_size:,} bytes; the file is corrupt")
    with archive.open(info) as fh:
        return npy_format.read_array(fh, allow_pickle=False)


def read_arrays(path: Path) -> dict[str, np.ndarray]:
    """Every array of the ``.npz`` archive at ``path``, sizes checked before allocation, object
    arrays refused (no pickle)."""
    read_head(path, 1)
    source = str(path)
    try:
        with zipfile.ZipFile(path) as archive:
            members = [i for i in archive.infolist() if i.filename.endswith(".npy")]
            claimed = sum(i.file_size for i in members)
            check_bytes(source, claimed, "the archive's arrays")
            check_ratio(source, claimed, path.stat().st_size)
            return {i.filename.removesuffix(".npy"): _read_member(archive, i, source)
                    for i in members}
    except DataError:
        raise
    except (OSError, zipfile.BadZipFile, EOFError, zlib.error, ValueError,
            NotImplementedError, RuntimeError, SyntaxError, tokenize.TokenError) as exc:
        raise DataError(f"{path}: not a readable .npz archive ({exc})") from exc


def load_npz(path: Path) -> Dataset:
    """The samples and labels of an ``.npz`` archive, train part first then test."""
    arrays = read_arrays(path)
    layout = next((lay for lay in LAYOUTS
                   if all(k in arrays for pair in lay.values() for k in pair)), None)
    if layout is None:
        raise DataError(f"{path}: has arrays {sorted(arrays)}; expected x_train, y_train "
                        "(and optionally x_test, y_test), or x, y")
    xs, ys, ids = [], [], []
    for prefix, (x_key, y_key) in layout.items():
        x, y = arrays[x_key], arrays[y_key]
        check_same_length(len(x), len(y), f"{path}[{x_key}]", f"{path}[{y_key}]")
        if y.ndim != 1:
            raise DataError(f"{path}[{y_key}]: labels must have 1 dimension, got shape {y.shape}")
        xs.append(x)
        ys.append(y)
        ids.append(numbered_ids(prefix, len(x)))
    if len({x.shape[1:] for x in xs}) > 1:
        shapes = ", ".join(f"{key[0]} {x.shape[1:]}" for key, x in zip(layout.values(), xs,
                                                                       strict=True))
        raise DataError(f"{path}: samples differ in shape between parts: {shapes}")
    return make_dataset(np.concatenate(xs), np.concatenate(ys), np.concatenate(ids),
                        source=str(path), format="npz")
