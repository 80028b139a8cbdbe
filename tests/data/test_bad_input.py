"""Bad input gives one DataError that names the file, the place and what was expected."""

from __future__ import annotations

import gzip
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from notsure.data import load
from notsure.errors import DataError, NotsureError

PIXEL_HEADER = "label," + ",".join(f"pixel{k}" for k in range(4))  # 2x2 images
GOOD_ROWS = ["3,0,10,20,255", "7,1,2,3,4", "3,9,8,7,6"]


def _csv(tmp_path: Path, *rows: str, name: str = "digits.csv", header: bool = True) -> Path:
    path = tmp_path / name
    path.write_text("\n".join(([PIXEL_HEADER] if header else []) + list(rows)) + "\n")
    return path


def _idx(array: np.ndarray, type_code: int = 0x08) -> bytes:
    return (struct.pack(">BBBB", 0, 0, type_code, array.ndim)
            + struct.pack(f">{array.ndim}I", *array.shape) + array.astype(np.uint8).tobytes())


def test_errors_are_value_errors_for_the_cli() -> None:
    assert issubclass(DataError, NotsureError)
    assert issubclass(DataError, ValueError)


def test_good_csv_loads(tmp_path: Path) -> None:
    """The reference file every bad variant below breaks in one place."""
    data = load(_csv(tmp_path, *GOOD_ROWS))
    assert data.x.shape == (3, 2, 2)
    assert data.x[0].tolist() == [[0, 10], [20, 255]]  # pixel k at row k // 2, column k % 2


# --- CSV ---------------------------------------------------------------------------------------

def test_csv_wrong_column_count(tmp_path: Path) -> None:
    path = _csv(tmp_path, GOOD_ROWS[0], "7,1,2,3", GOOD_ROWS[2])
    with pytest.raises(DataError, match=r"digits\.csv: line 3: expected 5 columns, got 4"):
        load(path)


def test_csv_non_numeric_cell(tmp_path: Path) -> None:
    path = _csv(tmp_path, GOOD_ROWS[0], GOOD_ROWS[1], "3,9,oops,7,6")
    with pytest.raises(DataError,
                       match=r"digits\.csv: line 4, column 3 \('pixel1'\): 'oops' is not a number"):
        load(path)


@pytest.mark.parametrize("text", ["nan", "inf", "-inf", "NaN"])
def test_csv_nan_or_inf_pixel(tmp_path: Path, text: str) -> None:
    path = _csv(tmp_path, GOOD_ROWS[0], f"7,1,{text},3,4")
    with pytest.raises(DataError, match=rf"line 3, column 3 \('pixel1'\): '{text}' is NaN or inf"):
        load(path)


@pytest.mark.parametrize("value", ["256", "-1", "1000"])
def test_csv_pixel_out_of_range(tmp_path: Path, value: str) -> None:
    path = _csv(tmp_path, GOOD_ROWS[0], GOOD_ROWS[1], f"3,9,8,7,{value}")
    with pytest.raises(DataError, match=rf"digits\.csv: line 4, column 5 \('pixel3'\): pixel "
                                        rf"value {value} is outside 0\.\.255"):
        load(path)


def test_csv_fractional_pixel(tmp_path: Path) -> None:
    path = _csv(tmp_path, "3,0.5,10,20,255")
    with pytest.raises(DataError, match=r"line 2, column 2 \('pixel0'\): pixel '0\.5' is not a "
                                        r"whole number 0\.\.255"):
        load(path)


@pytest.mark.parametrize("label", ["cat", "2.5"])
def test_csv_label_not_integer(tmp_path: Path, label: str) -> None:
    path = _csv(tmp_path, GOOD_ROWS[0], f"{label},1,2,3,4")
    with pytest.raises(DataError, match=rf"digits\.csv: line 3, column 1 \('label'\): label "
                                        rf"'{label}' is not an integer"):
        load(path)


def test_csv_not_square(tmp_path: Path) -> None:
    path = tmp_path / "wide.csv"
    path.write_text("label,pixel0,pixel1,pixel2\n1,2,3,4\n")
    with pytest.raises(DataError, match=r"wide\.csv: 3 pixel columns do not form a square"):
        load(path)


def test_csv_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.csv"
    path.write_bytes(b"")
    with pytest.raises(DataError, match=r"empty\.csv: file is empty"):
        load(path)


def test_csv_header_only(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"digits\.csv: no data rows after the header"):
        load(_csv(tmp_path))


def test_csv_pair_different_counts(tmp_path: Path) -> None:
    (tmp_path / "x.csv").write_text("1,2,3,4\n5,6,7,8\n9,10,11,12\n")
    (tmp_path / "y.csv").write_text("0\n1\n")
    with pytest.raises(DataError, match=r"x\.csv has 3 samples but .*y\.csv has 2 labels"):
        load(tmp_path / "x.csv")


def test_csv_pair_nan_in_vectors(tmp_path: Path) -> None:
    (tmp_path / "x.csv").write_text("0.5,1.5,2.5\n0.1,nan,0.3\n")
    (tmp_path / "y.csv").write_text("0\n1\n")
    with pytest.raises(DataError, match=r"x\.csv: line 2, column 2: 'nan' is NaN or infinite"):
        load(tmp_path / "x.csv")


def test_csv_pair_label_not_integer(tmp_path: Path) -> None:
    (tmp_path / "x.csv").write_text("0.5,1.5\n0.1,0.3\n")
    (tmp_path / "y.csv").write_text("label\n0\nseven\n")
    with pytest.raises(DataError, match=r"y\.csv: line 3, column 1 \('label'\): label 'seven'"):
        load(tmp_path / "x.csv")


def test_csv_pair_missing_labels_file(tmp_path: Path) -> None:
    (tmp_path / "x.csv").write_text("0.5,1.5\n")
    with pytest.raises(DataError, match=r"x\.csv: no labels file found.*labels_path="):
        load(tmp_path / "x.csv", format="csv-pair")


# --- IDX and MNIST folders ---------------------------------------------------------------------

IMAGES = np.arange(3 * 4 * 4).reshape(3, 4, 4) % 256
LABELS = np.array([1, 0, 1])


def _idx_pair(tmp_path: Path, images: bytes, labels: bytes, suffix: str = "") -> Path:
    (tmp_path / f"d-images-idx3-ubyte{suffix}").write_bytes(images)
    (tmp_path / f"d-labels-idx1-ubyte{suffix}").write_bytes(labels)
    return tmp_path / f"d-images-idx3-ubyte{suffix}"


def test_idx_truncated_gzip(tmp_path: Path) -> None:
    whole = gzip.compress(_idx(IMAGES))
    path = _idx_pair(tmp_path, whole[: len(whole) // 2], gzip.compress(_idx(LABELS)), ".gz")
    with pytest.raises(DataError, match=r"d-images-idx3-ubyte\.gz: gzip data is (truncated|corr)"):
        load(path, format="idx")


def test_idx_corrupt_gzip(tmp_path: Path) -> None:
    whole = bytearray(gzip.compress(_idx(IMAGES)))
    whole[12:20] = b"\xff" * 8  # damage the deflate stream
    path = _idx_pair(tmp_path, bytes(whole), gzip.compress(_idx(LABELS)), ".gz")
    with pytest.raises(DataError, match=r"d-images-idx3-ubyte\.gz: gzip data is (corrupt|trunc)"):
        load(path, format="idx")


def test_idx_payload_shorter_than_header(tmp_path: Path) -> None:
    path = _idx_pair(tmp_path, _idx(IMAGES)[:-5], _idx(LABELS))
    with pytest.raises(DataError, match=r"d-images-idx3-ubyte: payload is truncated: header says "
                                        r"shape \(3, 4, 4\), 48 bytes from offset 16 to offset 64, "
                                        r"but the data ends at offset 59"):
        load(path)


def test_idx_images_and_labels_differ_in_count(tmp_path: Path) -> None:
    path = _idx_pair(tmp_path, _idx(IMAGES), _idx(LABELS[:2]))
    with pytest.raises(DataError, match=r"d-images-idx3-ubyte has 3 samples but "
                                        r".*d-labels-idx1-ubyte has 2 labels"):
        load(path)


def test_idx_empty_file(tmp_path: Path) -> None:
    path = _idx_pair(tmp_path, b"", _idx(LABELS))
    with pytest.raises(DataError, match=r"d-images-idx3-ubyte: file is empty"):
        load(path, format="idx")


def _mnist_folder(tmp_path: Path, swap: bool = False) -> Path:
    for part in ("train", "t10k"):
        images, labels = _idx(IMAGES), _idx(LABELS)
        if swap and part == "t10k":
            images = labels  # labels where the images should be
        (tmp_path / f"{part}-images-idx3-ubyte.gz").write_bytes(gzip.compress(images))
        (tmp_path / f"{part}-labels-idx1-ubyte.gz").write_bytes(gzip.compress(labels))
    return tmp_path


def test_mnist_folder_wrong_magic(tmp_path: Path) -> None:
    folder = _mnist_folder(tmp_path, swap=True)
    with pytest.raises(DataError, match=r"t10k-images-idx3-ubyte\.gz: IDX magic number at offset "
                                        r"0 is 0x00000801 .*, expected 0x00000803"):
        load(folder)


def test_mnist_folder_missing_file(tmp_path: Path) -> None:
    folder = _mnist_folder(tmp_path)
    (folder / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DataError, match=r"MNIST folder lacks t10k-labels-idx1-ubyte \(raw or \.gz"):
        load(folder)


# --- npz, pickles, embeddings, PNG -------------------------------------------------------------

def test_npz_different_counts(tmp_path: Path) -> None:
    path = tmp_path / "k.npz"
    np.savez(path, x_train=IMAGES, y_train=LABELS[:2])
    with pytest.raises(DataError, match=r"k\.npz\[x_train\] has 3 samples but .*\[y_train\] has 2"):
        load(path)


def test_npz_missing_keys(tmp_path: Path) -> None:
    path = tmp_path / "k.npz"
    np.savez(path, images=IMAGES, labels=LABELS)
    with pytest.raises(DataError, match=r"k\.npz: has arrays \['images', 'labels'\]; expected "
                                        r"x_train, y_train"):
        load(path)


def test_npz_object_array_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "k.npz"
    np.savez(path, x=np.array([{"a": 1}, None], dtype=object), y=LABELS[:2])
    with pytest.raises(DataError, match=r"k\.npz: holds an object array"):
        load(path)


def test_pickle_pixel_out_of_range(tmp_path: Path) -> None:
    images = IMAGES.astype(np.int64)
    images[2, 1, 3] = 300
    path = tmp_path / "d.pkl"
    path.write_bytes(pickle.dumps((images, LABELS)))
    with pytest.raises(DataError, match=r"d\.pkl: pixel value 300 at sample 2, row 1, column 3; "
                                        r"expected a whole number 0\.\.255"):
        load(path)


def test_pickle_vectors_with_inf(tmp_path: Path) -> None:
    x = np.ones((3, 5))
    x[1, 4] = np.inf
    path = tmp_path / "d.pkl"
    path.write_bytes(pickle.dumps({"X": x, "y": LABELS}))
    with pytest.raises(DataError, match=r"d\.pkl: value inf at sample 1, position \(4,\) is not "
                                        r"a finite number"):
        load(path)


def test_pickle_different_counts(tmp_path: Path) -> None:
    path = tmp_path / "d.pkl"
    path.write_bytes(pickle.dumps((np.ones((4, 3)), LABELS)))
    with pytest.raises(DataError, match=r"d\.pkl has 4 samples but .* has 3 labels"):
        load(path)


def test_pickle_float_label_not_integer(tmp_path: Path) -> None:
    path = tmp_path / "d.pkl"
    path.write_bytes(pickle.dumps((np.ones((3, 3)), np.array([0.0, 1.5, 1.0]))))
    with pytest.raises(DataError, match=r"d\.pkl: label at index 1 is 1\.5, expected an integer"):
        load(path)


def test_pickle_truncated(tmp_path: Path) -> None:
    path = tmp_path / "d.pkl"
    path.write_bytes(pickle.dumps((np.ones((3, 3)), LABELS))[:-20])
    with pytest.raises(DataError, match=r"d\.pkl: not a readable pickle, truncated or corrupt"):
        load(path)


def test_pickle_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "d.pkl"
    path.write_bytes(b"")
    with pytest.raises(DataError, match=r"d\.pkl: file is empty"):
        load(path)


def test_ragged_embeddings(tmp_path: Path) -> None:
    nested = {"s1": {"subj1": {"img1": np.zeros(8, np.float32)}},
              "s2": {"subj2": {"img2": np.zeros(8, np.float32), "img3": np.zeros(7, np.float32)}}}
    path = tmp_path / "emb.p"
    path.write_bytes(pickle.dumps(nested))
    with pytest.raises(DataError, match=r"emb\.p: syndrome 's2' subject 'subj2' image 'img3': "
                                        r"vector has shape \(7,\), expected \(8,\)"):
        load(path)


def test_embeddings_duplicate_image_id(tmp_path: Path) -> None:
    nested = {"s1": {"a": {"img": np.zeros(2)}}, "s2": {"b": {"img": np.ones(2)}}}
    path = tmp_path / "emb.p"
    path.write_bytes(pickle.dumps(nested))
    with pytest.raises(DataError, match=r"emb\.p: image id 'img' occurs 2 times"):
        load(path)


def test_png_not_grayscale(tmp_path: Path) -> None:
    (tmp_path / "cats").mkdir()
    Image.new("RGB", (4, 4)).save(tmp_path / "cats" / "a.png")
    with pytest.raises(DataError, match=r"a\.png: is a PNG image in mode RGB; expected a "
                                        r"grayscale PNG"):
        load(tmp_path)


def test_png_sizes_differ(tmp_path: Path) -> None:
    for name, size in (("a", (4, 4)), ("b", (5, 4))):
        (tmp_path / name).mkdir()
        Image.new("L", size).save(tmp_path / name / "img.png")
    with pytest.raises(DataError, match=r"b/img\.png: image is 5x4 \(WxH\), expected 4x4"):
        load(tmp_path)


# --- detection and arguments -------------------------------------------------------------------

def test_undetectable_file_lists_tried_formats(tmp_path: Path) -> None:
    path = tmp_path / "blob.bin"
    path.write_bytes(b"\x01\x02\x03\x04 not data")
    with pytest.raises(DataError, match=r"blob\.bin: could not detect the data format \(tried "
                                        r"idx.*npz, pickle, csv.*--format \(Python: "
                                        r"format=\), one of idx"):
        load(path)


def test_empty_folder_is_not_a_dataset(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"could not detect.*tried mnist.*png-folder"):
        load(tmp_path)


def test_unknown_format_name(tmp_path: Path) -> None:
    path = _csv(tmp_path, *GOOD_ROWS)
    with pytest.raises(DataError, match=r"unknown format 'excel'; use one of idx, mnist, csv"):
        load(path, format="excel")


def test_folder_format_on_a_file_and_back(tmp_path: Path) -> None:
    path = _csv(tmp_path, *GOOD_ROWS)
    with pytest.raises(DataError, match=r"digits\.csv: format 'mnist' reads a folder"):
        load(path, format="mnist")
    with pytest.raises(DataError, match=r"format 'csv' reads a file"):
        load(tmp_path, format="csv")


def test_missing_path(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"nope\.csv: no such file or folder"):
        load(tmp_path / "nope.csv")
