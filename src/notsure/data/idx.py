"""IDX files (the MNIST distribution format), raw or gzipped, and the MNIST folder of four.

An IDX file is a 4-byte magic number (two zero bytes, a type code, the number of dimensions),
one big-endian uint32 per dimension, then the values in C order.
"""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path

import numpy as np

from notsure.data import mnist
from notsure.data.dataset import Dataset
from notsure.data.load import (
    GZIP_MAGIC,
    check_same_length,
    make_dataset,
    numbered_ids,
    require_labels_path,
)
from notsure.errors import DataError

#: IDX type code -> big-endian NumPy dtype.
DTYPES: dict[int, np.dtype] = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
IMAGES_MAGIC = 0x00000803  # uint8, 3 dimensions (N, rows, columns)
LABELS_MAGIC = 0x00000801  # uint8, 1 dimension (N,)


def read_bytes(path: Path) -> bytes:
    """The content of ``path``, gunzipped when it starts with the gzip magic bytes."""
    data = path.read_bytes()
    if not data:
        raise DataError(f"{path}: file is empty (0 bytes)")
    if data[:2] != GZIP_MAGIC:
        return data
    stream = zlib.decompressobj(wbits=31)  # gzip header; faster than reading via GzipFile
    try:
        out = stream.decompress(data)
        if stream.unused_data:  # several gzip members one after another
            out = gzip.decompress(data)
    except (zlib.error, gzip.BadGzipFile, EOFError) as exc:
        raise DataError(f"{path}: gzip data is corrupt ({exc}); download the file again") from exc
    if not stream.eof:
        raise DataError(f"{path}: gzip data is truncated (the compressed stream ends early after "
                        f"{len(data)} bytes); download the file again")
    return out


def gunzip_head(path: Path, n: int) -> bytes:
    """The first ``n`` bytes of a gzipped file after decompression (for format detection)."""
    try:
        with gzip.open(path, "rb") as fh:
            return fh.read(n)
    except (OSError, EOFError, zlib.error) as exc:
        raise DataError(f"{path}: gzip data is truncated or corrupt ({exc})") from exc


def looks_like_idx(head: bytes) -> bool:
    """True when ``head`` starts like an IDX file: two zero bytes, a known type, 1..4 dims."""
    return (len(head) >= 4 and head[0] == 0 and head[1] == 0 and head[2] in DTYPES
            and 1 <= head[3] <= 4)


def _magic_text(magic: int) -> str:
    dtype = DTYPES.get((magic >> 8) & 0xFF)
    what = f"{dtype.name if dtype is not None else 'unknown type'}, {magic & 0xFF} dimension(s)"
    return f"0x{magic:08X} ({what})"


def parse_idx(data: bytes, source: str, expect_magic: int | None = None) -> np.ndarray:
    """The array stored in IDX bytes ``data`` (a read-only view, no copy for uint8)."""
    if len(data) < 4:
        raise DataError(f"{source}: only {len(data)} bytes; an IDX file starts with a 4-byte "
                        "magic number")
    magic = int.from_bytes(data[:4], "big")
    if expect_magic is not None and magic != expect_magic:
        raise DataError(f"{source}: IDX magic number at offset 0 is {_magic_text(magic)}, "
                        f"expected {_magic_text(expect_magic)}")
    if not looks_like_idx(data[:4]):
        raise DataError(f"{source}: offset 0 holds 0x{magic:08X}, not an IDX magic number "
                        "(00 00, a type code 08/09/0B/0C/0D/0E, 1..4 dimensions)")
    dtype, ndim = DTYPES[data[2]], data[3]
    offset = 4 + 4 * ndim
    if len(data) < offset:
        raise DataError(f"{source}: header ends at offset {len(data)}, expected {ndim} "
                        f"dimension sizes up to offset {offset}")
    shape = tuple(int(d) for d in np.frombuffer(data, ">u4", count=ndim, offset=4))
    size = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(data) - offset != size:
        problem = "is truncated" if len(data) - offset < size else "has extra bytes"
        raise DataError(
            f"{source}: payload {problem}: header says shape {shape}, {size} bytes from offset "
            f"{offset} to offset {offset + size}, but the data ends at offset {len(data)}"
        )
    array = np.frombuffer(data, dtype, offset=offset).reshape(shape)
    return array if dtype.isnative else array.astype(dtype.newbyteorder("="))


def read_idx(path: Path, expect_magic: int | None = None) -> np.ndarray:
    """The array in the IDX file ``path`` (raw or gzipped)."""
    return parse_idx(read_bytes(path), str(path), expect_magic)


def _part_name(path: Path) -> str:
    """``"train"`` for ``train-images-idx3-ubyte.gz``: the id prefix of the file's samples."""
    name = path.name.removesuffix(".gz")
    for marker in ("-images", "_images", ".images"):
        if marker in name:
            return name.split(marker)[0] or name
    return name.split(".")[0]


def load_idx(path: Path, labels_path: Path | None = None) -> Dataset:
    """An IDX images file with its labels file; ids ``"<part>/<i>"`` (``train/0``...)."""
    labels_path = require_labels_path(path, labels_path)
    x = read_idx(path)
    if x.ndim == 1:
        raise DataError(f"{path}: holds one value per sample (labels); pass the images file "
                        "as the path and this one as labels_path")
    y = read_idx(labels_path)
    if y.ndim != 1:
        raise DataError(f"{labels_path}: labels must have 1 dimension, got shape {y.shape}")
    check_same_length(len(x), len(y), str(path), str(labels_path))
    return make_dataset(x, y, numbered_ids(_part_name(path), len(x)), source=str(path),
                        format="idx")


def find_idx_file(folder: Path, raw_name: str) -> Path | None:
    """``folder/raw_name`` if present, else ``folder/raw_name.gz``, else ``None``."""
    for name in (raw_name, raw_name + mnist.GZ_SUFFIX):
        if (folder / name).is_file():
            return folder / name
    return None


def mnist_files(folder: Path) -> dict[str, dict[str, Path]]:
    """The four MNIST files in ``folder`` by part and role; an error lists any missing."""
    files: dict[str, dict[str, Path]] = {}
    missing = []
    for part, roles in mnist.FILES.items():
        for role, name in roles.items():
            path = find_idx_file(folder, name)
            if path is None:
                missing.append(name)
            else:
                files.setdefault(part, {})[role] = path
    if missing:
        raise DataError(f"{folder}: MNIST folder lacks {', '.join(missing)} (raw or .gz); "
                        "run `notsure data fetch` or place the four IDX files there")
    return files


def load_mnist_folder(folder: Path) -> Dataset:
    """Train and test MNIST pooled: 70,000 images, ids ``"train/<i>"`` then ``"t10k/<i>"``."""
    xs, ys, ids = [], [], []
    for part, paths in mnist_files(folder).items():
        x = read_idx(paths["images"], IMAGES_MAGIC)
        y = read_idx(paths["labels"], LABELS_MAGIC)
        check_same_length(len(x), len(y), str(paths["images"]), str(paths["labels"]))
        xs.append(x)
        ys.append(y)
        ids.append(numbered_ids(part, len(x)))
    if xs[0].shape[1:] != xs[1].shape[1:]:
        raise DataError(f"{folder}: train images are {xs[0].shape[1:]} but test images are "
                        f"{xs[1].shape[1:]}")
    return make_dataset(np.concatenate(xs), np.concatenate(ys), np.concatenate(ids),
                        source=str(folder), format="mnist", kind="images")
