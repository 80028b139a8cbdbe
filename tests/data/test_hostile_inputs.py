"""Files that claim far more than they hold are refused before memory is allocated.

Each bomb is generated here and small on disk. Through the CLI each one exits 2 with one line
that names the file; a subprocess run of all of them stays within 1.5 GB and 60 s.
"""

from __future__ import annotations

import gzip
import json
import os
import pickle
import struct
import subprocess
import sys
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest
from numpy.lib import format as npy_format

from notsure.cli.main import main
from notsure.data import load
from notsure.data.limits import Limits, parse_size, use_limits
from notsure.errors import ConfigError, DataError

SRC = Path(__file__).resolve().parents[2] / "src"
GZIP_HEADER = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\xff"


class _Claim:
    """Pickles as ``numpy.ndarray(shape, dtype)``: a bare allocation of the claimed size."""

    def __init__(self, shape: tuple[int, ...], dtype: str = "u1") -> None:
        self.shape, self.dtype = shape, dtype

    def __reduce__(self) -> tuple:
        return np.ndarray, (self.shape, self.dtype)


def claim_pickle(path: Path, shape: tuple[int, ...]) -> Path:
    path.write_bytes(pickle.dumps({"X": _Claim(shape), "y": [0]}, protocol=2))
    return path


def _gf2_times(matrix: list[int], vector: int) -> int:
    total, i = 0, 0
    while vector:
        if vector & 1:
            total ^= matrix[i]
        vector >>= 1
        i += 1
    return total


def crc32_after_zeros(crc: int, n: int) -> int:
    """``zlib.crc32(bytes(n), crc)`` without reading n bytes: the CRC register's zero-byte
    operator raised to the n-th power by squaring (zlib's crc32_combine)."""
    register = crc ^ 0xFFFFFFFF
    op = [0xEDB88320] + [1 << i for i in range(31)]  # one zero bit
    for _ in range(3):  # -> one zero byte
        op = [_gf2_times(op, op[i]) for i in range(32)]
    while n:
        if n & 1:
            register = _gf2_times(op, register)
        n >>= 1
        op = [_gf2_times(op, op[i]) for i in range(32)]
    return register ^ 0xFFFFFFFF


def _deflate_zeros(c: zlib._Compress, n: int, block: int = 1 << 20) -> bytes:
    """``n`` zero bytes deflated, compressing one block only: after a full flush the deflate
    state resets, so every block of zeros compresses to the same bytes."""
    full, rest = divmod(n, block)
    same = c.compress(bytes(block)) + c.flush(zlib.Z_FULL_FLUSH) if full else b""
    return same * full + c.compress(bytes(rest)) + c.flush(zlib.Z_FULL_FLUSH)


def gzip_of_zeros_idx(path: Path, n_images: int, side: int = 28) -> Path:
    """A valid gzipped IDX file of ``n_images`` blank images, a thousandth of its size."""
    header = struct.pack(">IIII", 0x803, n_images, side, side)
    total = n_images * side * side
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    body = c.compress(header) + c.flush(zlib.Z_FULL_FLUSH) + _deflate_zeros(c, total)
    crc = crc32_after_zeros(zlib.crc32(header), total)
    trailer = struct.pack("<II", crc, (len(header) + total) & 0xFFFFFFFF)
    path.write_bytes(GZIP_HEADER + body + c.flush(zlib.Z_FINISH) + trailer)
    return path


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def blank_png(path: Path, width: int, height: int) -> Path:
    """A valid 1-bit grayscale PNG, streamed row by row: a few kB for any size."""
    c = zlib.compressobj(9)  # every row: filter byte 0, then packed zero bits
    idat = _deflate_zeros(c, height * (1 + (width + 7) // 8)) + c.flush()
    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", idat)
                     + _chunk(b"IEND", b""))
    return path


def npz_with_lying_header(path: Path, shape: tuple[int, ...]) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        for key in ("x", "y"):
            with archive.open(f"{key}.npy", "w") as fh:
                npy_format.write_array_header_1_0(
                    fh, {"descr": "|u1", "fortran_order": False, "shape": shape})
                fh.write(bytes(10))
    return path


def npz_bomb(path: Path, n_mib: int) -> Path:
    """An ``.npz`` whose deflated member expands ~1000-fold to ``n_mib`` MiB of zeros."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        with archive.open("x.npy", "w", force_zip64=True) as fh:
            npy_format.write_array_header_1_0(
                fh, {"descr": "|u1", "fortran_order": False, "shape": (n_mib * 1024, 1024)})
            for _ in range(n_mib):
                fh.write(bytes(1 << 20))
        archive.writestr("y.npy", b"")
    return path


@pytest.fixture(scope="module")
def bombs(tmp_path_factory) -> dict[str, tuple[list[str], str]]:
    """Name -> (CLI arguments of `notsure data info`, file the error must name)."""
    root = tmp_path_factory.mktemp("bombs")
    gz = gzip_of_zeros_idx(root / "big-images-idx3-ubyte.gz", 2_000_000_000 // 784)
    (root / "big-labels-idx1-ubyte.gz").write_bytes(gzip.compress(struct.pack(">II", 0x801, 1)
                                                                  + b"\0"))
    p12k = blank_png(root / "png12k" / "a" / "huge.png", 12_000, 12_000)
    p20k = blank_png(root / "png20k" / "a" / "huge.png", 20_000, 20_000)
    cases = {
        "pickle 12M x 28 x 28": claim_pickle(root / "claim.pkl", (12_000_000, 28, 28)),
        "pickle 1 TB": claim_pickle(root / "terabyte.pkl", (10**12,)),
        "gzip of a 2 GB IDX": gz,
        "npz header lies": npz_with_lying_header(root / "lies.npz", (12_000_000, 28, 28)),
        "npz deflate bomb": npz_bomb(root / "bomb.npz", 70),
        "png 12000x12000": p12k,
        "png 20000x20000": p20k,
    }
    folders = {p12k: p12k.parents[1], p20k: p20k.parents[1]}
    return {name: ([str(folders.get(path, path))], str(path)) for name, path in cases.items()}


def test_bombs_are_small_on_disk(bombs) -> None:
    sizes = {name: os.path.getsize(file) for name, (_, file) in bombs.items()}
    assert sizes["pickle 12M x 28 x 28"] < 100  # the 86-byte pickle
    assert max(sizes.values()) < 3_000_000, sizes


@pytest.mark.parametrize("name", ["pickle 12M x 28 x 28", "pickle 1 TB", "gzip of a 2 GB IDX",
                                  "npz header lies", "npz deflate bomb", "png 12000x12000",
                                  "png 20000x20000"])
def test_bomb_exits_2_with_one_line_naming_the_file(bombs, name, capsys) -> None:
    args, file = bombs[name]
    assert main(["data", "info", *args]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith(f"notsure: error: {file}"), err[0]
    assert "internal error" not in err[0] and "Warning" not in err[0]


def test_limits_are_named_with_how_to_raise_them(bombs, capsys) -> None:
    expected = {"pickle 12M x 28 x 28": "raise it with --max-bytes or NOTSURE_MAX_BYTES",
                "gzip of a 2 GB IDX": "raise it with --max-ratio or NOTSURE_MAX_RATIO",
                "png 12000x12000": "raise it with --max-pixels or NOTSURE_MAX_PIXELS"}
    for name, hint in expected.items():
        main(["data", "info", *bombs[name][0]])
        assert hint in capsys.readouterr().err, name


def test_raising_a_limit_lets_a_genuine_claim_through(tmp_path, capsys) -> None:
    """A big PNG is a real image: refused under a low --max-pixels, loaded under a higher one."""
    png = blank_png(tmp_path / "d" / "a" / "big.png", 3_000, 3_000)
    assert main(["data", "info", str(png.parents[1]), "--max-pixels", "1M"]) == 2
    assert "over the limit of 1,048,576 per image" in capsys.readouterr().err
    assert main(["data", "info", str(png.parents[1]), "--json", "--max-pixels", "10M"]) == 0
    assert json.loads(capsys.readouterr().out)["shapes"] == ["3000x3000"]


def test_pickle_claim_within_the_limit_but_beyond_the_file(tmp_path) -> None:
    path = claim_pickle(tmp_path / "c.pkl", (1000, 28, 28))
    with pytest.raises(DataError, match=r"c\.pkl: claims an array of shape \(1000, 28, 28\) "
                                        r"\(784,000 bytes\) but the file holds only \d+ bytes"):
        load(path)


def test_pickled_object_arrays_are_refused(tmp_path) -> None:
    """A tampered object array crashes NumPy itself (segfault), so none is ever built."""
    path = tmp_path / "o.pkl"
    path.write_bytes(pickle.dumps((np.zeros((2, 4)), np.array(["a", 1], dtype=object))))
    with pytest.raises(DataError, match=r"o\.pkl: holds a NumPy array of dtype object"):
        load(path)


def test_repeated_references_are_sized_before_numpy_builds_them(tmp_path) -> None:
    """One 784-value row referenced a million times: a 4 MB pickle that NumPy would expand to
    6 GB."""
    row = list(range(784))
    path = tmp_path / "refs.pkl"
    path.write_bytes(pickle.dumps(([row] * 1_000_000, [0] * 1_000_000)))
    assert path.stat().st_size < 5_000_000
    with pytest.raises(DataError, match=r"refs\.pkl: X of shape \(1000000, 784\) would take "
                                        r"5\.8 GiB decoded, over the limit"):
        load(path)


def test_gzip_payload_beyond_max_bytes_is_refused_before_decompressing(tmp_path) -> None:
    path = gzip_of_zeros_idx(tmp_path / "z-images-idx3-ubyte.gz", 2000)
    with gzip.open(tmp_path / "z-labels-idx1-ubyte.gz", "wb") as fh:  # the images' partner name
        fh.write(struct.pack(">II", 0x801, 2000) + bytes(2000))
    with use_limits(Limits(max_bytes=1_000_000)):
        with pytest.raises(DataError, match=r"the IDX payload would take 1\.5 MiB decoded, over "
                                            r"the limit of 976\.6 KiB"):
            load(path)
    assert load(path).x.shape == (2000, 28, 28)  # under the default limits: a valid file


def test_csv_larger_than_the_limit(tmp_path, capsys) -> None:
    path = tmp_path / "d.csv"
    path.write_text("label,p0,p1,p2,p3\n" + "1,0,0,0,0\n" * 1000)
    code = main(["data", "info", str(path), "--max-bytes", "4K"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "d.csv: the CSV would take 9.8 KiB" in err[0]


def test_too_many_samples(tmp_path) -> None:
    path = tmp_path / "d.csv"
    path.write_text("label,p0,p1,p2,p3\n" + "1,0,0,0,0\n" * 20)
    with use_limits(Limits(max_images=10)), pytest.raises(
            DataError, match=r"d\.csv: holds 20 samples, over the limit of 10; .*--max-images"):
        load(path)


def test_environment_sets_the_limits(monkeypatch) -> None:
    monkeypatch.setenv("NOTSURE_MAX_BYTES", "2G")
    monkeypatch.setenv("NOTSURE_MAX_IMAGES", "1e6")
    limits = Limits.from_env(max_images=5)
    assert limits.max_bytes == 2 * 2**30 and limits.max_images == 5
    assert parse_size("512 MiB", "x") == 512 * 2**20 and parse_size("1000", "x") == 1000
    monkeypatch.setenv("NOTSURE_MAX_RATIO", "lots")
    with pytest.raises(ConfigError, match=r"NOTSURE_MAX_RATIO='lots': expected a positive size"):
        Limits.from_env()


def test_crc_of_zeros_matches_zlib() -> None:
    for n in (0, 1, 7, 1000, 65_537):
        assert crc32_after_zeros(12345, n) == zlib.crc32(bytes(n), 12345)


@pytest.mark.slow  # a fresh process; slow on a busy machine
def test_every_bomb_in_bounded_memory_and_time(bombs) -> None:
    """In a fresh process: every bomb exits 2 within 60 s, peak resident memory under 1.5 GB."""
    runs = [["data", "info", *args] for args, _ in bombs.values()]
    code = (
        "import json, resource, sys, time\n"
        "from notsure.cli.main import main\n"
        "out = []\n"
        f"for argv in {runs!r}:\n"
        "    t0 = time.perf_counter()\n"
        "    out.append((main(argv), time.perf_counter() - t0))\n"
        "rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024\n"
        "print(json.dumps({'runs': out, 'rss': rss}))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                          timeout=300, check=True)
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert [rc for rc, _ in result["runs"]] == [2] * len(runs), done.stderr
    assert max(seconds for _, seconds in result["runs"]) < 60
    assert result["rss"] < 1.5e9
