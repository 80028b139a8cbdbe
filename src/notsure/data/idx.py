"""IDX files (the MNIST distribution format), raw or gzipped, and the MNIST folder of four.

An IDX file is a 4-byte magic number (two zero bytes, a type code, the number of dimensions),
one big-endian uint32 per dimension, then the values in C order.
"""

from __future__ import annotations

import contextlib
import io
import math
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from notsure.data import mnist
from notsure.data.dataset import Dataset
from notsure.data.limits import check_bytes, check_count, check_ratio
from notsure.data.parsing import (
    GZIP_MAGIC,
    check_same_length,
    make_dataset,
    numbered_ids,
    read_head,
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


CHUNK_BYTES = 1 << 22  # read and decompress 4 MiB at a time


class Gunzip(io.RawIOBase):
    """A gzip file decompressed on demand, in large steps (several times fewer Python calls than
    ``gzip.GzipFile``); members one after another and trailing zero padding are accepted."""

    def __init__(self, raw: BinaryIO) -> None:
        self._raw = raw
        self._z = zlib.decompressobj(wbits=31)
        self._in = b""

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        out = memoryview(b).cast("B")
        while len(out):
            if not self._in:
                self._in = self._raw.read(CHUNK_BYTES)
                if not self._in:
                    if not self._z.eof:
                        raise EOFError("the compressed stream ends before its end marker")
                    return 0
            if self._z.eof:  # another member follows, or padding
                if not self._in.strip(b"\0"):
                    self._in = b""
                    continue
                self._z = zlib.decompressobj(wbits=31)
            data = self._z.decompress(self._in, len(out))
            self._in = self._z.unconsumed_tail or self._z.unused_data
            if data:
                out[:len(data)] = data
                return len(data)
        return 0


@contextlib.contextmanager
def open_stream(path: Path) -> Iterator[BinaryIO]:
    """``path`` opened for reading, decompressed on the fly when it starts with the gzip magic."""
    read_head(path, 1)
    with open(path, "rb") as raw:
        gzipped = raw.read(2) == GZIP_MAGIC
        raw.seek(0)
        yield Gunzip(raw) if gzipped else raw  # type: ignore[misc]


def _read_into(fh: BinaryIO, buf: memoryview, source: str) -> int:
    """Fill ``buf`` from ``fh`` as far as the data goes; return the bytes read."""
    got = 0
    try:
        while got < len(buf):
            n = fh.readinto(buf[got:got + CHUNK_BYTES])
            if not n:
                break
            got += n
    except EOFError as exc:
        raise DataError(f"{source}: gzip data is truncated (the compressed stream ends early: "
                        f"{exc}); download the file again") from None
    except zlib.error as exc:
        raise DataError(f"{source}: gzip data is corrupt ({exc}); download the file "
                        "again") from None
    return got


def _read(fh: BinaryIO, n: int, source: str) -> bytes:
    buf = bytearray(n)
    return bytes(buf[:_read_into(fh, memoryview(buf), source)])


def _is_gzip(fh: BinaryIO) -> bool:
    return isinstance(fh, Gunzip)


def _check_growth(fh: BinaryIO, path: Path, n_decoded: int) -> None:
    """A gzip stream that has produced ``n_decoded`` bytes must not be a decompression bomb."""
    if _is_gzip(fh):
        check_ratio(str(path), n_decoded, path.stat().st_size)


def read_bytes(path: Path) -> bytes:
    """The content of ``path``, gunzipped when it starts with the gzip magic bytes.

    Decompression runs in chunks and stops at the limits (``max_bytes``, ``max_ratio``).
    """
    parts, total = [], 0
    with open_stream(path) as fh:
        while True:
            part = _read(fh, CHUNK_BYTES, str(path))
            if not part:
                return b"".join(parts)
            total += len(part)
            check_bytes(str(path), total, "the decompressed file")
            _check_growth(fh, path, total)
            parts.append(part)


def gunzip_head(path: Path, n: int) -> bytes:
    """The first ``n`` bytes of a gzipped file after decompression (for format detection)."""
    with open_stream(path) as fh:
        return _read(fh, n, str(path))


def looks_like_idx(head: bytes) -> bool:
    """True when ``head`` starts like an IDX file: two zero bytes, a known type, 1..4 dims."""
    return (len(head) >= 4 and head[0] == 0 and head[1] == 0 and head[2] in DTYPES
            and 1 <= head[3] <= 4)


def _magic_text(magic: int) -> str:
    dtype = DTYPES.get((magic >> 8) & 0xFF)
    what = f"{dtype.name if dtype is not None else 'unknown type'}, {magic & 0xFF} dimension(s)"
    return f"0x{magic:08X} ({what})"


@dataclass(frozen=True)
class IdxHeader:
    """What an IDX header claims: value type and shape; the payload starts at ``offset``."""

    dtype: np.dtype
    shape: tuple[int, ...]

    @property
    def offset(self) -> int:
        return 4 + 4 * len(self.shape)

    @property
    def row_bytes(self) -> int:
        """Bytes of one sample (one entry along the first axis)."""
        return math.prod(self.shape[1:]) * self.dtype.itemsize

    @property
    def nbytes(self) -> int:
        return self.shape[0] * self.row_bytes

    def describe(self) -> str:
        return (f"header says shape {self.shape}, {self.nbytes} bytes from offset {self.offset} "
                f"to offset {self.offset + self.nbytes}")


def read_header(fh: BinaryIO, path: Path, expect_magic: int | None = None) -> IdxHeader:
    """Parse the IDX header at the start of ``fh`` and check its claims before any payload is
    read: the payload must fit the file (raw) or the compression ratio (gzip) and the limits."""
    try:
        return _parse_header(fh, path, expect_magic)
    except DataError:
        if _is_gzip(fh):  # a corrupt stream explains a nonsense header better: say so if it is
            total = 0
            while part := _read(fh, CHUNK_BYTES, str(path)):
                total += len(part)
                _check_growth(fh, path, total)
        raise


def _parse_header(fh: BinaryIO, path: Path, expect_magic: int | None) -> IdxHeader:
    source = str(path)
    head = _read(fh, 4, source)
    if len(head) < 4:
        raise DataError(f"{source}: only {len(head)} bytes; an IDX file starts with a 4-byte "
                        "magic number")
    magic = int.from_bytes(head, "big")
    if expect_magic is not None and magic != expect_magic:
        raise DataError(f"{source}: IDX magic number at offset 0 is {_magic_text(magic)}, "
                        f"expected {_magic_text(expect_magic)}")
    if not looks_like_idx(head):
        raise DataError(f"{source}: offset 0 holds 0x{magic:08X}, not an IDX magic number "
                        "(00 00, a type code 08/09/0B/0C/0D/0E, 1..4 dimensions)")
    ndim = head[3]
    dims = _read(fh, 4 * ndim, source)
    if len(dims) < 4 * ndim:
        raise DataError(f"{source}: header ends at offset {4 + len(dims)}, expected {ndim} "
                        f"dimension sizes up to offset {4 + 4 * ndim}")
    header = IdxHeader(DTYPES[head[2]], tuple(int(d) for d in np.frombuffer(dims, ">u4")))
    check_count(source, header.shape[0])
    if _is_gzip(fh):
        _check_growth(fh, path, header.offset + header.nbytes)
    else:
        _check_end(path, header, path.stat().st_size)
    return header


def _check_end(path: Path, header: IdxHeader, end: int) -> None:
    """The payload must end exactly where the file (or decompressed stream) ends."""
    if end != header.offset + header.nbytes:
        problem = "is truncated" if end < header.offset + header.nbytes else "has extra bytes"
        raise DataError(f"{path}: payload {problem}: {header.describe()}, but the data ends at "
                        f"offset {end}")


def _payload(fh: BinaryIO, path: Path, header: IdxHeader, start: int, n_rows: int
             ) -> np.ndarray:
    """Samples ``start .. start + n_rows - 1`` (the next ones in ``fh``), native-endian."""
    buf = np.empty(n_rows * header.row_bytes, dtype=np.uint8)
    got = _read_into(fh, memoryview(buf), str(path))
    if got < len(buf):
        _check_end(path, header, header.offset + start * header.row_bytes + got)
    array = buf.view(header.dtype).reshape(n_rows, *header.shape[1:])
    return array if header.dtype.isnative else array.astype(header.dtype.newbyteorder("="))


def _no_extra_bytes(fh: BinaryIO, path: Path, header: IdxHeader) -> None:
    if _read(fh, 1, str(path)):
        end = header.offset + header.nbytes
        raise DataError(f"{path}: payload has extra bytes: {header.describe()}, but the data "
                        f"goes on after offset {end}")


def read_idx(path: str | Path, expect_magic: int | None = None) -> np.ndarray:
    """The array in the IDX file ``path`` (raw or gzipped), its size checked before reading."""
    path = Path(path)
    with open_stream(path) as fh:
        header = read_header(fh, path, expect_magic)
        check_bytes(str(path), header.nbytes, "the IDX payload")
        array = _payload(fh, path, header, 0, header.shape[0])
        _no_extra_bytes(fh, path, header)
    return array


def iter_idx(path: str | Path, rows: int, expect_magic: int | None = None
             ) -> Iterator[np.ndarray]:
    """The samples of the IDX file ``path`` in chunks of ``rows``: memory stays flat."""
    path = Path(path)
    with open_stream(path) as fh:
        header = read_header(fh, path, expect_magic)
        for start in range(0, header.shape[0], rows):
            yield _payload(fh, path, header, start, min(rows, header.shape[0] - start))
        _no_extra_bytes(fh, path, header)


def part_name(path: Path) -> str:
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
    return make_dataset(x, y, numbered_ids(part_name(path), len(x)), source=str(path),
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
