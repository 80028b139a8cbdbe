"""Pickled datasets, unpickled safely: ``(X, y)`` / ``{"X": .., "y": ..}`` or nested embeddings.

Pickles come from strangers and unpickling can run any function the file names. The
:class:`RestrictedUnpickler` therefore resolves only the globals needed to rebuild plain
containers, numbers, strings and NumPy arrays; any other global is refused before it runs.
"""

from __future__ import annotations

import builtins
import collections
import functools
import io
import math
import pickle
import struct
from pathlib import Path
from typing import Any

import numpy as np

from notsure.data.dataset import Dataset
from notsure.data.limits import check_bytes, check_count, current_limits
from notsure.data.parsing import make_dataset, numbered_ids, read_head
from notsure.errors import DataError


def _latin1_encode(text: str, encoding: str = "utf-8") -> bytes:
    """``_codecs.encode`` as pickle protocols 0..2 use it for bytes, limited to latin-1."""
    if encoding not in ("latin1", "latin-1"):
        raise pickle.UnpicklingError(f"_codecs.encode with encoding {encoding!r} is not allowed")
    return text.encode("latin-1")


def _no_size(kind: type) -> Any:
    """``bytes``/``bytearray`` from content only: ``bytes(10**12)`` would exhaust memory."""

    def build(*args: Any) -> Any:
        if args and isinstance(args[0], int):
            raise pickle.UnpicklingError(f"{kind.__name__}(<size>) is not allowed")
        return kind(*args)

    return build


def _numpy_globals() -> dict[tuple[str, str], Any]:
    """NumPy's pickle entry points, under NumPy 1 (``numpy.core``) and 2 (``numpy._core``) names."""
    try:
        from numpy._core import multiarray, numeric
    except ImportError:  # NumPy 1.x
        from numpy.core import multiarray, numeric  # type: ignore[no-redef]

    allowed: dict[tuple[str, str], Any] = {
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
    }
    for core in ("numpy.core", "numpy._core"):
        allowed[(f"{core}.multiarray", "_reconstruct")] = multiarray._reconstruct
        allowed[(f"{core}.multiarray", "scalar")] = multiarray.scalar
        allowed[(f"{core}.numeric", "_frombuffer")] = numeric._frombuffer
    return allowed


#: ``(module, name)`` -> the object it resolves to; everything else is refused.
ALLOWED_GLOBALS: dict[tuple[str, str], Any] = {
    **{("builtins", name): getattr(builtins, name)
       for name in ("list", "dict", "tuple", "set", "frozenset", "complex")},
    ("builtins", "bytes"): _no_size(bytes),
    ("builtins", "bytearray"): _no_size(bytearray),
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("_codecs", "encode"): _latin1_encode,
    **_numpy_globals(),
}


#: NumPy value kinds a pickled array may hold: no objects (a tampered object array crashes
#: NumPy), no void or datetime values.
ARRAY_KINDS = "biufcSU"


class RestrictedUnpickler(pickle._Unpickler):
    """An unpickler that resolves only :data:`ALLOWED_GLOBALS` (data, never code).

    NumPy arrays are checked before they are built: the dtype must hold plain values and the
    claimed size fit both the pickle (its data must come from the file) and the limits. The
    Python implementation of the unpickler is used because its BUILD step can be checked too:
    NumPy's own ``__setstate__`` crashes the process on some malformed dtype states.
    """

    dispatch = dict(pickle._Unpickler.dispatch)

    def __init__(self, file: io.BufferedIOBase, source: str, size: int) -> None:
        super().__init__(file, encoding="latin1")  # Python 2 str payloads of NumPy arrays
        self.source = source
        self.size = size

    def find_class(self, module: str, name: str) -> Any:
        if module == "__builtin__":  # protocols 0..2 name Python 2's module
            module = "builtins"
        try:
            found = ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            raise DataError(
                f"{self.source}: refused to unpickle forbidden global '{module}.{name}'; only "
                "plain containers, numbers, strings and NumPy arrays are allowed"
            ) from None
        if found is np.dtype:
            return self._dtype
        if found is np.ndarray or name == "_reconstruct":
            return functools.partial(self._array, found)
        return found

    def load_build(self) -> None:
        """BUILD: set a dtype's or an array's state, only when it has the layout NumPy writes."""
        inst, state = self.stack[-2], self.stack[-1]
        if isinstance(inst, np.dtype):
            ok = (isinstance(state, tuple) and len(state) == 8 and state[0] == 3
                  and state[1] in ("<", ">", "|", "=") and state[2:5] == (None, None, None)
                  and all(type(v) is int for v in state[5:]))
        elif isinstance(inst, np.ndarray):
            ok = (isinstance(state, tuple) and len(state) == 5 and state[0] == 1
                  and isinstance(state[1], tuple) and all(type(d) is int for d in state[1])
                  and isinstance(state[2], np.dtype) and isinstance(state[4], (bytes, str)))
            if ok:
                self._check_size(state[1], state[2])
        else:
            ok = False
        if not ok:
            raise DataError(f"{self.source}: a pickled {type(inst).__name__} has a malformed "
                            "state; the file is corrupt or tampered with")
        super().load_build()

    dispatch[pickle.BUILD[0]] = load_build

    def _check_size(self, shape: Any, dtype: Any) -> None:
        """An array of ``shape`` and ``dtype`` must fit the limits and the file's own size."""
        dims = (shape,) if isinstance(shape, int) else tuple(shape)
        if not all(isinstance(d, int) and d >= 0 for d in dims):
            raise DataError(f"{self.source}: a pickled array has the invalid shape {shape!r}")
        n_bytes = math.prod(dims) * self._dtype(dtype).itemsize
        check_bytes(self.source, n_bytes, f"an array of shape {dims}")
        if n_bytes > self.size:
            raise DataError(f"{self.source}: claims an array of shape {dims} ({n_bytes:,} bytes) "
                            f"but the file holds only {self.size:,} bytes; it is corrupt or "
                            "tampered with")

    def _dtype(self, *args: Any) -> np.dtype:
        dtype = np.dtype(*args)
        if dtype.kind not in ARRAY_KINDS or dtype.hasobject or dtype.itemsize == 0:
            raise DataError(f"{self.source}: holds a NumPy array of dtype {dtype}, which is not "
                            "allowed; save numbers or strings")
        return dtype

    def _array(self, build: Any, *args: Any) -> np.ndarray:
        """``ndarray(shape, dtype, ...)`` or ``_reconstruct(cls, shape, dtype)``, size checked."""
        if build is np.ndarray:
            shape, dtype = args[0], args[1] if len(args) > 1 else float
        else:  # _reconstruct(cls, shape, dtype): cls is always ndarray
            args = (np.ndarray, *args[1:])
            shape, dtype = args[1], args[2]
        self._check_size(shape, dtype)
        return build(*args)


def safe_unpickle(path: Path) -> Any:
    """The object pickled in ``path``, rebuilt by :class:`RestrictedUnpickler`."""
    read_head(path, 1)
    size = path.stat().st_size
    check_bytes(str(path), size, "the pickle")
    try:  # from memory: a claimed length beyond the end of the data is then never allocated
        return RestrictedUnpickler(io.BytesIO(path.read_bytes()), str(path), size).load()
    except DataError:
        raise
    except MemoryError:
        raise DataError(f"{path}: ran out of memory unpickling it; the file is corrupt or holds "
                        "more than this machine can load") from None
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, IndexError,
            AttributeError, KeyError, OverflowError, RecursionError, struct.error) as exc:
        raise DataError(f"{path}: not a readable pickle, truncated or corrupt "
                        f"({type(exc).__name__}: {exc})") from exc


def is_embeddings(obj: Any) -> bool:
    """True for ``{syndrome: {subject: {image: vector}}}``: three levels of dicts."""
    try:
        subjects = next(iter(obj.values()))
        images = next(iter(subjects.values()))
        return isinstance(images, dict)
    except (AttributeError, StopIteration):
        return False


def _xy(obj: Any, path: Path) -> tuple[Any, Any]:
    if isinstance(obj, (tuple, list)) and len(obj) == 2:
        return obj[0], obj[1]
    if isinstance(obj, dict):
        keys = {str(k).lower(): k for k in obj}
        if "x" in keys and "y" in keys:
            return obj[keys["x"]], obj[keys["y"]]
    what = f"dict with keys {sorted(map(str, obj))[:10]}" if isinstance(obj, dict) else (
        f"{type(obj).__name__}")
    hint = "; it looks like nested embeddings: use format='embeddings'" if is_embeddings(obj) \
        else ""
    raise DataError(f"{path}: expected an (X, y) tuple or a dict with keys 'X' and 'y', "
                    f"got {what}{hint}")


def _as_array(value: Any, path: Path, name: str) -> np.ndarray:
    """``value`` as an array. Nested lists may repeat one object many times at a few bytes each,
    so their size is estimated from the first element of each level before NumPy builds them."""
    if not isinstance(value, np.ndarray):
        dims, first, itemsize = [], value, 8
        while isinstance(first, (list, tuple)) and len(dims) < 64:
            dims.append(len(first))
            first = first[0] if first else None
        if isinstance(first, np.ndarray):
            dims += first.shape
            itemsize = max(itemsize, first.dtype.itemsize)
        elif isinstance(first, (str, bytes)) and len(dims) == 1:  # NumPy sizes by the longest
            itemsize = max(itemsize, 4 * max(len(v) for v in value if isinstance(v, (str, bytes))))
        check_bytes(str(path), math.prod(dims) * itemsize, f"{name} of shape {tuple(dims)}")
    try:
        return np.asarray(value)
    except (ValueError, TypeError) as exc:
        raise DataError(f"{path}: {name} is not a regular array of numbers or strings "
                        f"({exc})") from None


def dataset_from_xy(obj: Any, path: Path) -> Dataset:
    """``(X, y)`` or ``{"X": X, "y": y}``: rows of ``X`` are samples; ids ``"row/<i>"``."""
    x, y = _xy(obj, path)
    x, y = _as_array(x, path, "X"), _as_array(y, path, "y")
    check_count(str(path), len(x) if x.ndim else 0)
    if x.ndim == 0:
        raise DataError(f"{path}: X must hold one row per sample, got a single value")
    if y.ndim != 1:
        raise DataError(f"{path}: y must have one label per sample, got shape {y.shape}")
    return make_dataset(x, y, numbered_ids("row", len(x)), source=str(path), format="pickle")


def dataset_from_embeddings(obj: Any, path: Path) -> Dataset:
    """``{syndrome_id: {subject_id: {image_id: vector}}}`` flattened in stored order.

    Label = syndrome, group = subject, id = image id; vectors float32 of one common length.
    """
    vectors, labels, groups, ids = [], [], [], []
    want: tuple[int, ...] | None = None
    max_images = current_limits().max_images
    for syndrome, subjects in obj.items():
        if not isinstance(subjects, dict):
            raise DataError(f"{path}: syndrome {syndrome!r} holds {type(subjects).__name__}, "
                            "expected a dict of subjects")
        for subject, images in subjects.items():
            if not isinstance(images, dict):
                raise DataError(f"{path}: syndrome {syndrome!r} subject {subject!r} holds "
                                f"{type(images).__name__}, expected a dict of image vectors")
            for image, vector in images.items():
                where = f"{path}: syndrome {syndrome!r} subject {subject!r} image {image!r}"
                vector = np.asarray(vector)
                if want is None:
                    want = vector.shape
                if vector.shape != want or vector.ndim != 1:
                    raise DataError(f"{where}: vector has shape {vector.shape}, expected {want} "
                                    "like the first vector (one 1-D vector per image)")
                if vector.dtype.kind not in "iuf" or not np.isfinite(vector).all():
                    raise DataError(f"{where}: vector must hold finite numbers")
                vectors.append(vector)
                if len(vectors) > max_images:
                    check_count(str(path), len(vectors))
                labels.append(str(syndrome))
                groups.append(str(subject))
                ids.append(str(image))
    if not vectors:
        raise DataError(f"{path}: holds no image vectors")
    check_bytes(str(path), len(vectors) * want[0] * 4, f"{len(vectors):,} vectors")
    unique, counts = np.unique(ids, return_counts=True)
    if (counts > 1).any():
        raise DataError(f"{path}: image id {str(unique[counts > 1][0])!r} occurs "
                        f"{counts[counts > 1][0]} times; image ids must be unique")
    return make_dataset(np.stack(vectors).astype(np.float32), np.asarray(labels), np.asarray(ids),
                        source=str(path), format="embeddings", groups=np.asarray(groups),
                        kind="vectors")


def load_pickle(path: Path, format: str | None = None) -> Dataset:
    """A pickled dataset; ``format`` ``"pickle"``, ``"embeddings"`` or ``None`` (by content)."""
    obj = safe_unpickle(path)
    if format is None:
        format = "embeddings" if is_embeddings(obj) else "pickle"
    if format == "embeddings":
        if not isinstance(obj, dict):
            raise DataError(f"{path}: expected a dict {{syndrome: {{subject: {{image: vector}}}}}}"
                            f", got {type(obj).__name__}")
        return dataset_from_embeddings(obj, path)
    return dataset_from_xy(obj, path)
