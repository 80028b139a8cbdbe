"""``notsure data fetch|info|export`` through the real entry point, in-process and as a process."""

from __future__ import annotations

import functools
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from notsure.cli.main import main
from notsure.data import fetch

TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
MNIST_COUNTS = {str(d): a + b for d, (a, b) in enumerate(zip(TRAIN_COUNTS, TEST_COUNTS,
                                                             strict=True))}


def one_error_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("notsure: error: ")
    assert "Traceback" not in err
    return lines[0]


@pytest.fixture
def malformed_csv(tmp_path: Path) -> Path:
    path = tmp_path / "bad.csv"
    path.write_text("label,pixel0,pixel1,pixel2,pixel3\n1,0,0,0,0\n2,0,abc,0,0\n")
    return path


def test_info_prints_counts_and_fingerprint(mnist_dir: Path, capsys) -> None:
    assert main(["data", "info", str(mnist_dir)]) == 0
    out = capsys.readouterr().out
    lines = {line.split()[0]: line.split()[1:] for line in out.splitlines() if line.strip()}
    assert {d: int(lines[d][0]) for d in MNIST_COUNTS} == MNIST_COUNTS
    assert len(lines["fingerprint"][0]) == 64

    assert main(["data", "info", str(mnist_dir), "--json", "--quiet"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["class_counts"] == MNIST_COUNTS and info["n"] == 70000
    assert info["fingerprint"] == lines["fingerprint"][0]


def test_export_split_round_trip(mnist_dir: Path, tmp_path: Path, capsys) -> None:
    from notsure.data.load import load

    out = tmp_path / "t10k.csv"
    assert main(["data", "export", str(mnist_dir), "--to", "csv", "--out", str(out),
                 "--split", "t10k", "-q"]) == 0
    assert capsys.readouterr().err == ""
    mnist = load(mnist_dir)
    test = mnist.subset(np.char.startswith(mnist.ids.astype(str), "t10k/"))
    back = load(out)
    assert len(back) == 10000
    np.testing.assert_array_equal(back.x, test.x)
    np.testing.assert_array_equal(np.array(back.class_names)[back.y],
                                  np.array(test.class_names)[test.y])
    assert back.class_counts().tolist() == TEST_COUNTS


def test_export_split_without_mnist_ids(malformed_csv: Path, tmp_path: Path, capsys) -> None:
    good = tmp_path / "good.csv"
    good.write_text("label,pixel0,pixel1,pixel2,pixel3\n1,0,0,0,0\n")
    assert main(["data", "export", str(good), "--to", "csv", "--out", str(tmp_path / "o.csv"),
                 "--split", "train"]) == 2
    assert "--split" in one_error_line(capsys.readouterr().err)
    assert not (tmp_path / "o.csv").exists()


@pytest.mark.parametrize("case", ["missing", "malformed"])
def test_bad_input_is_one_line_exit_2(case: str, malformed_csv: Path, tmp_path: Path,
                                      capsys) -> None:
    path = tmp_path / "nothing.csv" if case == "missing" else malformed_csv
    assert main(["data", "info", str(path)]) == 2
    line = one_error_line(capsys.readouterr().err)
    assert str(path) in line
    if case == "malformed":
        assert "line 3" in line and "abc" in line


def test_debug_shows_traceback(malformed_csv: Path, capsys) -> None:
    assert main(["data", "info", str(malformed_csv), "--debug"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" in err and err.strip().splitlines()[-1].startswith("notsure: error: ")


def test_fetch_with_files_present_downloads_nothing(mnist_dir: Path, tmp_path: Path,
                                                    capsys) -> None:
    dest = tmp_path / "mnist"
    dest.mkdir()
    for name in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
                 "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"):
        (dest / f"{name}.gz").symlink_to(mnist_dir / f"{name}.gz")
    assert main(["data", "fetch", "mnist", "--dest", str(dest)]) == 0
    assert "ready" in capsys.readouterr().err


def test_fetch_failure_is_one_line(tmp_path: Path, monkeypatch, capsys) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{s.getsockname()[1]}/"
    monkeypatch.setattr(fetch, "fetch_mnist",
                        functools.partial(fetch.fetch_mnist, mirrors=[closed], timeout=5))
    assert main(["data", "fetch", "mnist", "--dest", str(tmp_path / "m"), "-q"]) == 2
    assert "by hand" in one_error_line(capsys.readouterr().err)


def test_subprocess_exit_code_and_stderr(tmp_path: Path) -> None:
    missing = tmp_path / "missing.csv"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src")}
    proc = subprocess.run([sys.executable, "-m", "notsure", "data", "info", str(missing)],
                          capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == 2
    assert str(missing) in one_error_line(proc.stderr)
    assert proc.stdout == ""


def _bad_files(folder: Path) -> dict[str, tuple[Path, str]]:
    """One broken file per kind of bad input, with a fragment its error must contain."""
    import gzip
    import pickle

    header = "label," + ",".join(f"pixel{i}" for i in range(4))
    files = {
        "wrong_columns": ("a.csv", header + "\n1,0,0,0,0\n2,0,0,0\n", "line 3"),
        "pixel_range": ("b.csv", header + "\n1,0,0,0,0\n2,0,300,0,0\n", "300"),
        "label_not_int": ("c.csv", header + "\n1.5,0,0,0,0\n", "line 2"),
        "nan_pixel": ("d.csv", header + "\n1,0,nan,0,0\n", "line 2"),
        "empty": ("e.csv", "", "empty"),
    }
    out = {}
    for case, (name, text, fragment) in files.items():
        path = folder / name
        path.write_text(text)
        out[case] = (path, fragment)
    idx = (0x00000803).to_bytes(4, "big") + (2).to_bytes(4, "big") + (2).to_bytes(4, "big") * 2
    path = folder / "images-idx3-ubyte.gz"
    path.write_bytes(gzip.compress(idx + bytes(8))[:-12])
    labels = (0x00000801).to_bytes(4, "big") + (2).to_bytes(4, "big") + bytes(2)
    (folder / "labels-idx1-ubyte.gz").write_bytes(gzip.compress(labels))
    out["truncated_gzip"] = (path, "truncated")
    path = folder / "bad-magic-idx3-ubyte"
    path.write_bytes((0x00000804).to_bytes(4, "big") + bytes(12))
    out["idx_magic"] = (path, "magic")
    path = folder / "ragged.p"
    path.write_bytes(pickle.dumps({"s1": {"p1": {"i1": np.zeros(4, np.float32),
                                                 "i2": np.zeros(3, np.float32)}}}))
    out["ragged_embeddings"] = (path, "i2")
    return out


@pytest.mark.parametrize("case", ["wrong_columns", "pixel_range", "label_not_int", "nan_pixel",
                                  "empty", "truncated_gzip", "idx_magic", "ragged_embeddings"])
def test_bad_input_names_the_place_and_writes_nothing(case: str, tmp_path: Path, capsys) -> None:
    src = tmp_path / "in"
    src.mkdir()
    path, fragment = _bad_files(src)[case]
    out = tmp_path / "out" / "export.csv"
    assert main(["data", "export", str(path), "--to", "csv", "--out", str(out)]) == 2
    line = one_error_line(capsys.readouterr().err)
    assert path.name in line and fragment in line
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_info_labels_the_file_hash_and_the_content_fingerprint(tmp_path: Path, capsys) -> None:
    import hashlib

    import numpy as np

    from notsure.data.load import load

    path = tmp_path / "tiny.npz"
    np.savez(path, x_train=np.arange(2 * 28 * 28, dtype=np.uint8).reshape(2, 28, 28) % 255,
             y_train=np.array([0, 1]))
    assert main(["data", "info", str(path)]) == 0
    lines = {line.split()[0]: line for line in capsys.readouterr().out.splitlines() if line}
    assert lines["file-sha256"].split()[1] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert lines["fingerprint"].split()[1] == load(path).fingerprint
    assert "file's bytes" in lines["file-sha256"] and "labels and values" in lines["fingerprint"]
