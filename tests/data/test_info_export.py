"""Dataset summaries (counts, duplicates) and the customer CSV export, checked independently."""

from __future__ import annotations

import csv
import dataclasses
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest

from notsure.data.csv_export import csv_labels, export_csv
from notsure.data.dataset import Dataset
from notsure.data.info import dataset_info, duplicate_groups, format_info
from notsure.errors import DataError

# Label counts of MNIST from the data's README, train + test.
TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


def make_images(x: np.ndarray, labels: list[str], class_names: tuple[str, ...]) -> Dataset:
    y = np.array([class_names.index(v) for v in labels], dtype=np.int64)
    return Dataset(x=x, y=y, class_names=class_names,
                   ids=np.array([f"s/{i}" for i in range(len(x))]), kind="images",
                   source="test", format="test")


@pytest.fixture(scope="module")
def mnist(mnist_dir: Path) -> Dataset:
    from notsure.data.load import load

    return load(mnist_dir)


def test_info_on_real_mnist(mnist: Dataset) -> None:
    info = dataset_info(mnist)
    assert info["n"] == 70000 and info["kind"] == "images"
    assert info["shape"] == [28, 28] and info["dtype"] == "uint8"
    assert (info["min"], info["max"]) == (0, 255)
    want = {str(d): a + b for d, (a, b) in enumerate(zip(TRAIN_COUNTS, TEST_COUNTS, strict=True))}
    assert info["class_counts"] == want
    assert info["parts"] == {"train": 60000, "t10k": 10000}
    assert info["fingerprint"] == mnist.fingerprint and len(info["fingerprint"]) == 64
    assert info["n_groups"] is None
    text = format_info(info)
    assert info["fingerprint"] in text
    assert all(f"{count:>8}" in text for count in want.values())


def reference_duplicates(x: np.ndarray) -> list[list[int]]:
    """Groups of identical rows via a dict of row bytes: slow, obviously right."""
    seen: dict[bytes, list[int]] = defaultdict(list)
    for i, row in enumerate(x):
        seen[row.tobytes()].append(i)
    return sorted((g for g in seen.values() if len(g) > 1), key=lambda g: g[0])


@pytest.mark.parametrize("kind", ["images", "vectors"])
def test_duplicates_match_reference(kind: str) -> None:
    rng = np.random.default_rng(7)
    if kind == "images":
        x = rng.integers(0, 3, size=(400, 3, 3), dtype=np.uint8)  # many chance duplicates
    else:
        x = rng.normal(size=(300, 5)).astype(np.float32)
        x[[10, 50, 299]] = x[3]
        x[[7, 8]] = x[1]
        x[200] = x[201]
        x[201, 4] = np.nextafter(x[201, 4], np.float32(np.inf))  # one ulp apart: distinct
    got = [g.tolist() for g in duplicate_groups(x)]
    want = reference_duplicates(x)
    assert got == want and len(want) > 1


def test_info_duplicates_conflicts_and_groups() -> None:
    x = np.zeros((6, 2, 2), dtype=np.uint8)
    x[:, 0, 0] = [1, 2, 1, 3, 2, 1]  # groups {0, 2, 5} and {1, 4}
    ds = make_images(x, ["a", "b", "a", "a", "a", "b"], ("a", "b"))
    ds = dataclasses.replace(ds, groups=np.array(["p", "p", "q", "r", "r", "r"]))
    info = dataset_info(ds)
    dup = info["duplicates"]
    assert dup["groups"] == 2 and dup["extra_copies"] == 3
    assert dup["groups_with_conflicting_labels"] == 2  # {0,2,5}: a,a,b; {1,4}: b,a
    assert dup["examples"] == [["s/0", "s/2", "s/5"], ["s/1", "s/4"]]
    assert info["n_groups"] == 3
    assert info["class_counts"] == {"a": 4, "b": 2}


def test_export_header_and_pixel_order(tmp_path: Path) -> None:
    x = np.zeros((2, 28, 28), dtype=np.uint8)
    x[0, 3, 5] = 255  # pixel 3 * 28 + 5 = 89
    x[0, 27, 0] = 7  # pixel 756
    x[1] = np.arange(784).reshape(28, 28) % 251
    ds = make_images(x, ["7", "10"], ("7", "10"))
    out = export_csv(ds, tmp_path / "two.csv")
    lines = out.read_text().splitlines()
    assert lines[0] == "label," + ",".join(f"pixel{k}" for k in range(784))
    rows = list(csv.reader(lines[1:]))
    assert len(rows) == 2 and all(len(r) == 785 for r in rows)
    assert rows[0][0] == "7" and rows[1][0] == "10"
    first = [int(v) for v in rows[0][1:]]
    assert first[89] == 255 and first[756] == 7 and sum(first) == 262
    assert [int(v) for v in rows[1][1:]] == [k % 251 for k in range(784)]


def test_export_non_square_uses_width(tmp_path: Path) -> None:
    x = np.arange(12, dtype=np.uint8).reshape(2, 2, 3) * 20
    ds = make_images(x, ["0", "1"], ("0", "1"))
    lines = export_csv(ds, tmp_path / "r.csv").read_text().splitlines()
    assert lines == ["label,pixel0,pixel1,pixel2,pixel3,pixel4,pixel5",
                     "0,0,20,40,60,80,100", "1,120,140,160,180,200,220"]


def test_export_round_trip_real_subset(mnist: Dataset, tmp_path: Path) -> None:
    from notsure.data.load import load

    keep = np.sort(np.random.default_rng(0).choice(len(mnist), size=2000, replace=False))
    part = mnist.subset(keep)
    back = load(export_csv(part, tmp_path / "part.csv"))
    assert back.format == "csv" and len(back) == len(part)
    np.testing.assert_array_equal(back.x, part.x)
    names = np.array(part.class_names)[part.y]
    np.testing.assert_array_equal(np.array(back.class_names)[back.y], names)


def test_export_text_names_written_as_indices(tmp_path: Path) -> None:
    assert csv_labels(("0", "1", "12")) == ("0", "1", "12")
    assert csv_labels(("cat", "dog")) == ("0", "1")
    x = np.ones((2, 2, 2), dtype=np.uint8)
    lines = export_csv(make_images(x, ["dog", "cat"], ("cat", "dog")), tmp_path / "c.csv")
    assert [line.split(",")[0] for line in lines.read_text().splitlines()[1:]] == ["1", "0"]


def test_export_vectors_is_an_error_and_writes_nothing(tmp_path: Path) -> None:
    ds = Dataset(x=np.zeros((3, 4), np.float32), y=np.zeros(3, np.int64), class_names=("0",),
                 ids=np.array(["a", "b", "c"]), kind="vectors", source="emb.p", format="pickle")
    with pytest.raises(DataError, match="emb.p.*vectors"):
        export_csv(ds, tmp_path / "v.csv")
    assert list(tmp_path.iterdir()) == []
