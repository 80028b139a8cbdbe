"""Every format loads the same images and labels; real MNIST loads with its published facts."""

from __future__ import annotations

import csv
import gzip
import hashlib
import pickle
import struct
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from notsure.data import FORMATS, Dataset, detect_format, load, mnist
from notsure.data.idx import read_bytes
from notsure.errors import DataError

# Published label counts, copied from shared/README.md (not from our code).
TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


# --- real MNIST --------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def mnist_data(mnist_dir: Path) -> Dataset:
    return load(mnist_dir)


def _counts_by_part(data: Dataset, part: str) -> list[int]:
    in_part = np.char.startswith(data.ids.astype(str), f"{part}/")
    return np.bincount(data.y[in_part], minlength=10).tolist()


def test_mnist_folder_has_published_counts(mnist_data: Dataset) -> None:
    assert mnist_data.format == "mnist"
    assert mnist_data.kind == "images"
    assert mnist_data.x.shape == (70_000, 28, 28)
    assert mnist_data.x.dtype == np.uint8
    assert mnist_data.class_names == tuple("0123456789")
    assert _counts_by_part(mnist_data, "train") == TRAIN_COUNTS
    assert _counts_by_part(mnist_data, "t10k") == TEST_COUNTS
    assert len(set(mnist_data.ids.tolist())) == 70_000


def test_mnist_ids_give_position_in_file(mnist_data: Dataset, mnist_dir: Path) -> None:
    """Independent parse with gzip + offsets from the IDX spec (16-byte image header)."""
    raw = gzip.decompress((mnist_dir / "t10k-images-idx3-ubyte.gz").read_bytes())
    labels = gzip.decompress((mnist_dir / "t10k-labels-idx1-ubyte.gz").read_bytes())
    for i in (0, 42, 9_999):
        row = int(np.flatnonzero(mnist_data.ids == f"t10k/{i}")[0])
        expected = np.frombuffer(raw, np.uint8, count=784, offset=16 + 784 * i).reshape(28, 28)
        np.testing.assert_array_equal(mnist_data.x[row], expected)
        assert mnist_data.class_names[mnist_data.y[row]] == str(labels[8 + i])


def _sha256sums(mnist_dir: Path) -> dict[str, str]:
    lines = (mnist_dir / "SHA256SUMS").read_text().split("\n")
    return {name: digest for digest, name in (line.split() for line in lines if line.strip())}


def test_mnist_decompressed_bytes_match_sha256sums(mnist_dir: Path) -> None:
    sums = _sha256sums(mnist_dir)
    for raw_name in mnist.RAW_NAMES:
        data = read_bytes(mnist_dir / (raw_name + ".gz"))
        assert hashlib.sha256(data).hexdigest() == sums[raw_name]


def test_mnist_constants_match_sha256sums_and_readme(mnist_dir: Path) -> None:
    sums = _sha256sums(mnist_dir)
    assert {**mnist.SHA256_RAW, **mnist.SHA256_GZ} == sums
    assert list(mnist.LABEL_COUNTS["train"]) == TRAIN_COUNTS
    assert list(mnist.LABEL_COUNTS["t10k"]) == TEST_COUNTS


def test_single_idx_file_finds_its_labels(mnist_dir: Path, mnist_data: Dataset) -> None:
    test = load(mnist_dir / "t10k-images-idx3-ubyte.gz")
    assert test.format == "idx"
    assert test.ids[0] == "t10k/0"
    assert test.class_counts().tolist() == TEST_COUNTS
    np.testing.assert_array_equal(test.x, mnist_data.x[60_000:])


# --- round trip through every format ---------------------------------------------------------

N, SIDE = 24, 6
RNG = np.random.default_rng(7)
IMAGES = RNG.integers(0, 256, size=(N, SIDE, SIDE), dtype=np.uint8)
LABELS = RNG.permutation(np.arange(N) % 4)  # classes 0..3, all present
FLAT = IMAGES.reshape(N, -1)


def _idx_bytes(array: np.ndarray) -> bytes:
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim)
    return header + struct.pack(f">{array.ndim}I", *array.shape) + array.astype(np.uint8).tobytes()


def _write_csv(path: Path, rows: np.ndarray, header: list[str] | None = None) -> None:
    with open(path, "w", newline="") as fh:
        writer = csv.writer(fh)
        if header is not None:
            writer.writerow(header)
        writer.writerows(rows.tolist())


def write_csv(tmp: Path) -> Path:
    path = tmp / "digits.csv"
    header = ["label"] + [f"pixel{k}" for k in range(SIDE * SIDE)]
    _write_csv(path, np.column_stack([LABELS, FLAT]), header)
    return path


def write_csv_pair(tmp: Path) -> Path:
    _write_csv(tmp / "x.csv", FLAT)
    _write_csv(tmp / "y.csv", LABELS[:, None])
    return tmp / "x.csv"


def write_npz(tmp: Path) -> Path:
    path = tmp / "keras.npz"
    np.savez(path, x_train=IMAGES[:16], y_train=LABELS[:16], x_test=IMAGES[16:],
             y_test=LABELS[16:])
    return path


def write_pickle_tuple(tmp: Path) -> Path:
    path = tmp / "tuple.pkl"
    path.write_bytes(pickle.dumps((FLAT, LABELS)))  # flat square rows: reshaped to images
    return path


def write_pickle_dict(tmp: Path) -> Path:
    path = tmp / "dict.p"
    path.write_bytes(pickle.dumps({"X": IMAGES, "y": LABELS.tolist()}))
    return path


def write_png_folder(tmp: Path) -> Path:
    root = tmp / "pngs"
    for i, (image, label) in enumerate(zip(IMAGES, LABELS, strict=True)):
        (root / str(label)).mkdir(parents=True, exist_ok=True)
        Image.fromarray(image, mode="L").save(root / str(label) / f"{i:03d}.png")
    return root


def _write_idx(tmp: Path, compress: bool) -> Path:
    suffix = ".gz" if compress else ""
    pack = gzip.compress if compress else bytes
    (tmp / f"small-images-idx3-ubyte{suffix}").write_bytes(pack(_idx_bytes(IMAGES)))
    (tmp / f"small-labels-idx1-ubyte{suffix}").write_bytes(pack(_idx_bytes(LABELS)))
    return tmp / f"small-images-idx3-ubyte{suffix}"


def write_idx_raw(tmp: Path) -> Path:
    return _write_idx(tmp, compress=False)


def write_idx_gz(tmp: Path) -> Path:
    return _write_idx(tmp, compress=True)


def write_mnist_folder(tmp: Path) -> Path:
    root = tmp / "mnist"
    root.mkdir()
    parts = {"train": slice(0, 16), "t10k": slice(16, N)}
    for part, rows in parts.items():
        gz = part == "train"  # one part gzipped, one raw: both are accepted
        for role, array in (("images", IMAGES[rows]), ("labels", LABELS[rows])):
            name = mnist.FILES[part][role] + (".gz" if gz else "")
            data = _idx_bytes(array)
            (root / name).write_bytes(gzip.compress(data) if gz else data)
    return root


WRITERS = {
    "csv": write_csv, "csv-pair": write_csv_pair, "npz": write_npz,
    "pickle-tuple": write_pickle_tuple, "pickle-dict": write_pickle_dict,
    "png-folder": write_png_folder, "idx-raw": write_idx_raw, "idx-gz": write_idx_gz,
    "mnist": write_mnist_folder,
}


def _row_of(sample_id: str) -> int:
    """Position in IMAGES of a loaded sample, from its id."""
    tail = sample_id.split("/")[-1]
    if sample_id.startswith("test/"):
        return 16 + int(tail)
    if sample_id.startswith("t10k/"):
        return 16 + int(tail)
    return int(tail.removesuffix(".png"))


@pytest.mark.parametrize("writer", sorted(WRITERS))
def test_round_trip_gives_identical_arrays(tmp_path: Path, writer: str) -> None:
    path = WRITERS[writer](tmp_path)
    data = load(path)
    expected_format = writer.split("-")[0] if writer.startswith(("pickle", "idx")) else writer
    assert data.format == expected_format
    assert data.kind == "images"
    assert data.class_names == ("0", "1", "2", "3")
    rows = np.array([_row_of(i) for i in data.ids.tolist()])
    assert sorted(rows.tolist()) == list(range(N))
    np.testing.assert_array_equal(data.x, IMAGES[rows])
    np.testing.assert_array_equal(np.array(data.class_names)[data.y], LABELS[rows].astype(str))


def test_formats_are_listed() -> None:
    assert set(FORMATS) == {"idx", "mnist", "csv", "csv-pair", "npz", "pickle", "embeddings",
                            "png-folder"}


def test_explicit_format_overrides_detection(tmp_path: Path) -> None:
    # images.csv beside labels.csv is detected as a CSV pair ...
    header = ["label"] + [f"pixel{k}" for k in range(SIDE * SIDE)]
    _write_csv(tmp_path / "images.csv", np.column_stack([LABELS, FLAT]), header)
    _write_csv(tmp_path / "labels.csv", LABELS[:, None])
    assert detect_format(tmp_path / "images.csv") == "csv-pair"
    # ... but it is really a customer CSV; format= says so.
    data = load(tmp_path / "images.csv", format="csv")
    np.testing.assert_array_equal(data.x, IMAGES)
    # A name that tells nothing loads when the format is given.
    (tmp_path / "digits.data").write_bytes((tmp_path / "images.csv").read_bytes())
    with pytest.raises(DataError, match=r"digits\.data.*could not detect.*format="):
        load(tmp_path / "digits.data")
    assert load(tmp_path / "digits.data", format="csv").fingerprint == data.fingerprint


def test_labels_path_pairs_any_names(tmp_path: Path) -> None:
    _write_csv(tmp_path / "features.csv", FLAT)
    _write_csv(tmp_path / "targets.csv", LABELS[:, None], header=["label"])
    data = load(tmp_path / "features.csv", labels_path=tmp_path / "targets.csv")
    assert data.format == "csv-pair"
    np.testing.assert_array_equal(np.array(data.class_names)[data.y], LABELS.astype(str))


def test_slow_path_accepts_what_the_fast_path_cannot(tmp_path: Path) -> None:
    """Labels written as floats ("3.0") and spaces after commas still parse, row by row."""
    path = tmp_path / "floaty.csv"
    lines = ["label," + ",".join(f"pixel{k}" for k in range(SIDE * SIDE))]
    lines += [f"{float(lab)}, " + ", ".join(map(str, row)) for lab, row in zip(LABELS, FLAT,
                                                                                 strict=True)]
    path.write_text("\n".join(lines) + "\n")
    data = load(path)
    np.testing.assert_array_equal(data.x, IMAGES)
    np.testing.assert_array_equal(np.array(data.class_names)[data.y], LABELS.astype(str))


def test_spreadsheet_csv_with_bom_and_crlf(tmp_path: Path) -> None:
    path = write_csv(tmp_path)
    text = path.read_text().replace("\r\n", "\n").replace("\n", "\r\n")
    path.write_bytes(b"\xef\xbb\xbf" + text.encode())
    data = load(path)
    np.testing.assert_array_equal(data.x, IMAGES)
    np.testing.assert_array_equal(np.array(data.class_names)[data.y], LABELS.astype(str))


def test_non_pixel_columns_become_float32_vectors(tmp_path: Path) -> None:
    values = RNG.normal(size=(N, 5))
    _write_csv(tmp_path / "x.csv", values)
    _write_csv(tmp_path / "y.csv", LABELS[:, None])
    data = load(tmp_path / "x.csv")
    assert data.kind == "vectors"
    assert data.x.dtype == np.float32
    np.testing.assert_allclose(data.x, values, rtol=1e-6)


def test_label_classes_sort_numerically_and_by_text(tmp_path: Path) -> None:
    path = tmp_path / "pairs.npz"
    np.savez(path, x=FLAT[:3], y=np.array([10, 2, 9]))
    assert load(path).class_names == ("2", "9", "10")
    path.unlink()
    np.savez(path, x=FLAT[:3], y=np.array(["cat", "ant", "bee"]))
    data = load(path)
    assert data.class_names == ("ant", "bee", "cat")
    assert data.y.tolist() == [2, 0, 1]
    assert Counter(data.ids.tolist()) == Counter(["all/0", "all/1", "all/2"])


@pytest.mark.parametrize("compress", [False, True])
def test_idx_readers_take_string_paths(tmp_path: Path, compress: bool) -> None:
    from notsure.data.idx import iter_idx, read_idx

    path = str(_write_idx(tmp_path, compress))
    np.testing.assert_array_equal(read_idx(path), IMAGES)
    np.testing.assert_array_equal(np.concatenate(list(iter_idx(path, 7))), IMAGES)
