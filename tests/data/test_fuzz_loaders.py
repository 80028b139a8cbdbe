"""Fuzzing every loader and the prediction input reader: whatever the bytes, only our own errors.

Inputs are random bytes or valid files of each format with a few bytes set, inserted, deleted,
cut off, or overwritten by an extreme 32-bit number (sizes, counts, lengths). A quick profile runs
here; ``NOTSURE_FUZZ_EXAMPLES=10000`` runs that many inputs per loader (see the report printed
with ``-s``). Hypothesis derives its choices from a fixed seed, so a run is reproducible.
"""

from __future__ import annotations

import collections
import gzip
import io
import os
import pickle
import struct
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from notsure.data import load
from notsure.data.limits import Limits, use_limits
from notsure.deploy.predict_files import iter_images
from notsure.errors import NotsureError

EXAMPLES = int(os.environ.get("NOTSURE_FUZZ_EXAMPLES", "150"))
#: Low limits keep every generated input cheap; the limits themselves are tested elsewhere.
LIMITS = Limits(max_bytes=64 * 2**20, max_images=100_000, max_pixels=2**20)
INTERESTING = (0, 1, 0x7F, 0x80, 0xFF, 0x7FFF, 0xFFFF, 2**31 - 1, 2**31, 2**32 - 1, 12_000_000)
NET = "could not be read ("  # the message of load()'s catch-all: an error no reader named

X = (np.arange(3 * 4 * 4).reshape(3, 4, 4) * 37 % 256).astype(np.uint8)
Y = np.array([1, 0, 1], dtype=np.uint8)
outcomes: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)


def _idx(array: np.ndarray) -> bytes:
    return struct.pack(f">I{array.ndim}I", 0x800 | array.ndim, *array.shape) + array.tobytes()


def _npz() -> bytes:
    buf = io.BytesIO()
    np.savez(buf, x_train=X, y_train=Y)
    return buf.getvalue()


def _npy() -> bytes:
    buf = io.BytesIO()
    np.save(buf, X)
    return buf.getvalue()


def _png() -> bytes:
    buf = io.BytesIO()
    Image.fromarray(X[0]).save(buf, format="PNG")
    return buf.getvalue()


CSV = b"label,p0,p1,p2,p3\n3,0,10,20,255\n7,1,2,3,4\n3,9,8,7,6\n"
EMBEDDINGS = {"s1": {"a": {"i1": np.arange(4, dtype=np.float32)}},
              "s2": {"b": {"i2": np.ones(4, np.float32), "i3": np.zeros(4, np.float32)}}}

#: Seed content of each loader's fuzzed file.
SEEDS: dict[str, list[bytes]] = {
    "idx": [_idx(X)],
    "idx.gz": [_idx(X), gzip.compress(_idx(X))],
    "csv": [CSV],
    "csv-pair": [b"1,2,3,4\n5,6,7,8\n9,10,11,12\n"],
    "npz": [_npz()],
    "pickle": [pickle.dumps((X, Y), protocol=p) for p in range(6)]
              + [pickle.dumps({"X": X.tolist(), "y": Y.tolist()})],
    "embeddings": [pickle.dumps(EMBEDDINGS, protocol=p) for p in (2, 4)],
    "png-folder": [_png()],
    "mnist": [gzip.compress(_idx(X))],
    "predict-npy": [_npy()],
    "predict-idx": [_idx(X)],
    "predict-csv": [CSV],
}


@st.composite
def fuzzed(draw: st.DrawFn, seeds: list[bytes]) -> bytes:
    """Random bytes, or a seed with one to four edits."""
    if draw(st.integers(0, 9)) == 0:
        return draw(st.binary(min_size=1, max_size=512))
    data = bytearray(draw(st.sampled_from(seeds)))
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["set", "insert", "delete", "truncate", "word"]))
        at = draw(st.integers(0, max(len(data) - 1, 0)))
        if op == "set" and data:
            data[at] = draw(st.integers(0, 255))
        elif op == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=8))
        elif op == "delete":
            del data[at:at + draw(st.integers(1, 8))]
        elif op == "truncate" and at > 0:
            del data[at:]
        elif op == "word":
            order = draw(st.sampled_from(["big", "little"]))
            data[at:at + 4] = draw(st.sampled_from(INTERESTING)).to_bytes(4, order)
    return bytes(data) or b"\0"


def _gz_variant(data: bytes) -> bytes:
    return data if data[:2] == b"\x1f\x8b" else gzip.compress(data)


def _write_idx_pair(folder: Path, data: bytes, suffix: str = "") -> Path:
    (folder / f"d-labels-idx1-ubyte{suffix}").write_bytes(_idx(Y))
    path = folder / f"d-images-idx3-ubyte{suffix}"
    path.write_bytes(data)
    return path


def _mnist(folder: Path, data: bytes) -> Path:
    for part in ("train", "t10k"):
        (folder / f"{part}-images-idx3-ubyte.gz").write_bytes(gzip.compress(_idx(X)))
        (folder / f"{part}-labels-idx1-ubyte.gz").write_bytes(gzip.compress(_idx(Y)))
    (folder / "t10k-images-idx3-ubyte.gz").write_bytes(_gz_variant(data))
    return folder


def _png_folder(folder: Path, data: bytes) -> Path:
    for name, content in (("a", _png()), ("b", data)):
        (folder / name).mkdir()
        (folder / name / "img.png").write_bytes(content)
    return folder


def _file(name: str) -> Callable[[Path, bytes], Path]:
    def write(folder: Path, data: bytes) -> Path:
        (folder / name).write_bytes(data)
        return folder / name
    return write


def _csv_pair(folder: Path, data: bytes) -> Path:
    (folder / "y.csv").write_bytes(b"0\n1\n0\n")
    return _file("x.csv")(folder, data)


def _predict(path: Path) -> None:
    for _ in iter_images(path, None, 2).chunks:
        pass


#: loader -> (write the fuzzed bytes into a folder and return the path, read that path)
LOADERS: dict[str, tuple[Callable[[Path, bytes], Path], Callable[[Path], object]]] = {
    "idx": (_write_idx_pair, lambda p: load(p, "idx")),
    "idx.gz": (lambda f, d: _write_idx_pair(f, _gz_variant(d), ".gz"), lambda p: load(p, "idx")),
    "csv": (_file("d.csv"), lambda p: load(p, "csv")),
    "csv-pair": (_csv_pair, lambda p: load(p, "csv-pair")),
    "npz": (_file("d.npz"), lambda p: load(p, "npz")),
    "pickle": (_file("d.pkl"), lambda p: load(p, "pickle")),
    "embeddings": (_file("e.p"), lambda p: load(p, "embeddings")),
    "png-folder": (_png_folder, lambda p: load(p, "png-folder")),
    "mnist": (_mnist, lambda p: load(p, "mnist")),
    "detect": (_file("blob.bin"), load),
    "predict-npy": (_file("x.npy"), _predict),
    "predict-idx": (lambda f, d: _write_idx_pair(f, d), _predict),
    "predict-csv": (_file("d.csv"), _predict),
}
SEEDS["detect"] = [s for seeds in SEEDS.values() for s in seeds]


@pytest.mark.parametrize("loader", sorted(LOADERS))
def test_only_our_errors_escape(loader: str) -> None:
    write, read = LOADERS[loader]

    @settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    @given(data=fuzzed(SEEDS[loader]))
    def check(data: bytes) -> None:
        with tempfile.TemporaryDirectory() as tmp, use_limits(LIMITS):
            path = write(Path(tmp), data)
            try:
                read(path)
            except NotsureError as exc:
                outcomes[loader]["net" if NET in str(exc) else "our error"] += 1
                return
            outcomes[loader]["read"] += 1

    check()
    counts = outcomes[loader]
    print(f"\nfuzz {loader}: {sum(counts.values())} inputs: {dict(counts)}")
    assert counts["net"] == 0, "an error reached load()'s catch-all: name it in its reader"
