"""NumPy ``.npz`` archives in the Keras layout: ``x_train, y_train`` (and ``x_test, y_test``).

Read with ``allow_pickle=False``, so an archive cannot run code. Ids are ``"train/<i>"`` and
``"test/<i>"``. A plain ``x, y`` pair is also accepted (ids ``"all/<i>"``).
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from notsure.data.dataset import Dataset
from notsure.data.load import check_same_length, make_dataset, numbered_ids, read_head
from notsure.errors import DataError

#: Accepted key layouts: id prefix -> (samples key, labels key), tried in this order.
LAYOUTS: tuple[dict[str, tuple[str, str]], ...] = (
    {"train": ("x_train", "y_train"), "test": ("x_test", "y_test")},
    {"train": ("x_train", "y_train")},
    {"all": ("x", "y")},
)


def read_arrays(path: Path) -> dict[str, np.ndarray]:
    """Every array of the ``.npz`` archive at ``path``, refusing object arrays (no pickle)."""
    read_head(path, 1)
    try:
        with np.load(path, allow_pickle=False) as archive:
            return {key: archive[key] for key in archive.files}
    except ValueError as exc:  # object arrays need pickle: refused
        raise DataError(f"{path}: holds an object array that would need unpickling, which is "
                        "not allowed; save numeric arrays") from exc
    except (OSError, zipfile.BadZipFile, EOFError) as exc:
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
