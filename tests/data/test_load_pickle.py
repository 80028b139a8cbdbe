"""Pickles: refused when they name code, NumPy arrays of every protocol load, real embeddings."""

from __future__ import annotations

import builtins
import hashlib
import os
import pickle
import re
import subprocess
from collections import Counter, OrderedDict
from pathlib import Path

import numpy as np
import pytest

from notsure.data import load
from notsure.data.pickles import safe_unpickle
from notsure.errors import DataError

SYNDROMES_SHA256 = "b9f8fe2d65a3856e98c03da7ee91f223bb114e7b5a06d860904b6a63a4d562a6"
# Images per syndrome, from shared/README.md.
SYNDROME_COUNTS = {
    "300000034": 210, "300000080": 198, "100192430": 136, "300000007": 115, "300000082": 98,
    "100610443": 89, "300000018": 74, "100180860": 67, "100610883": 65, "700018215": 64,
}


class _Payload:
    """Unpickling this calls ``func(*args)``: what an attacker's pickle does."""

    def __init__(self, func: object, args: tuple) -> None:
        self.func, self.args = func, args

    def __reduce__(self) -> tuple:
        return self.func, self.args


def _attacks(marker: Path) -> dict[str, tuple[object, tuple]]:
    return {
        "os.system": (os.system, (f"touch {marker}",)),
        "subprocess": (subprocess.call, (["touch", str(marker)],)),
        "eval": (builtins.eval, (f"open({str(marker)!r}, 'w').close()",)),
    }


@pytest.mark.parametrize("attack", ["os.system", "subprocess", "eval"])
@pytest.mark.parametrize("wrap", ["bare", "inside (X, y)"])
def test_pickle_that_runs_a_command_is_refused(tmp_path: Path, attack: str, wrap: str) -> None:
    marker = tmp_path / "pwned"
    func, args = _attacks(marker)[attack]
    payload = _Payload(func, args)
    obj = payload if wrap == "bare" else (np.zeros((2, 4)), [0, payload])
    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps(obj))

    # The payload is real: plain unpickling runs the command.
    pickle.loads(path.read_bytes())
    assert marker.exists()
    marker.unlink()

    forbidden = f"{func.__module__}.{func.__name__}"  # e.g. posix.system, builtins.eval
    with pytest.raises(DataError, match=rf"evil\.pkl.*forbidden global '{re.escape(forbidden)}'"):
        load(path)
    assert not marker.exists()


@pytest.mark.parametrize("protocol", [0, 1, 2, 3, 4, 5])
@pytest.mark.parametrize("dtype", [np.uint8, np.int64, np.float32, np.float64])
def test_numpy_arrays_load_with_every_protocol(tmp_path: Path, protocol: int, dtype: type) -> None:
    rng = np.random.default_rng(protocol)
    x = rng.normal(size=(12, 7)).astype(dtype)
    y = np.arange(12) % 3
    path = tmp_path / "arrays.pkl"
    path.write_bytes(pickle.dumps({"X": x, "y": y, "meta": np.float32(1.5)}, protocol=protocol))
    data = load(path)
    assert data.kind == "vectors"
    np.testing.assert_array_equal(data.x, x.astype(np.float32))
    assert data.y.tolist() == y.tolist()


@pytest.mark.parametrize("protocol", [0, 1, 2, 3, 4, 5])
def test_plain_containers_load_with_every_protocol(tmp_path: Path, protocol: int) -> None:
    obj = {"tags": {1, 2}, "frozen": frozenset("ab"), "order": OrderedDict(b=1, a=2),
           "raw": b"\x00\xffdata", "empty": b"", "buffer": bytearray(b"xy"), "z": 1 + 2j,
           "nested": [("t", 1.5, None, True)], "scalar": np.int64(7), "text": "\u00e9t\u00e9"}
    path = tmp_path / "plain.pkl"
    path.write_bytes(pickle.dumps(obj, protocol=protocol))
    assert safe_unpickle(path) == obj


def test_huge_allocation_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "bomb.pkl"
    path.write_bytes(pickle.dumps(_Payload(bytearray, (10**13,))))
    with pytest.raises(DataError, match=r"bomb\.pkl: .*bytearray\(<size>\) is not allowed"):
        load(path)


def test_flattened_binary_images_become_square_images(tmp_path: Path) -> None:
    """56x56 binary images flattened to 3,136 columns, 36 classes: the customer's layout."""
    rng = np.random.default_rng(0)
    images = rng.integers(0, 2, size=(72, 56, 56), dtype=np.uint8)
    labels = np.repeat(np.arange(36), 2)
    path = tmp_path / "letters.p"
    path.write_bytes(pickle.dumps((images.reshape(72, 3136).astype(np.float64), labels)))
    data = load(path)
    assert data.kind == "images"
    assert data.x.shape == (72, 56, 56)
    assert data.n_classes == 36
    np.testing.assert_array_equal(data.x, images)


def test_generated_embeddings_flatten_in_order(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    nested = {
        "s2": {"a": {"i1": rng.normal(size=4), "i2": rng.normal(size=4)}},
        "s1": {"b": {"i3": rng.normal(size=4)}, "c": {"i4": rng.normal(size=4)}},
    }
    path = tmp_path / "emb.p"
    path.write_bytes(pickle.dumps(nested))
    data = load(path)
    assert data.format == "embeddings"
    assert data.ids.tolist() == ["i1", "i2", "i3", "i4"]
    assert data.groups.tolist() == ["a", "a", "b", "c"]
    assert [data.class_names[i] for i in data.y] == ["s2", "s2", "s1", "s1"]
    np.testing.assert_array_equal(data.x[3], nested["s1"]["c"]["i4"].astype(np.float32))


def test_pickle_format_on_embeddings_says_which_format(tmp_path: Path) -> None:
    path = tmp_path / "emb.p"
    path.write_bytes(pickle.dumps({"s": {"a": {"i": np.zeros(3)}}}))
    with pytest.raises(DataError, match=r"emb\.p.*format='embeddings'"):
        load(path, format="pickle")


def test_real_syndrome_embeddings(syndromes_pickle: Path) -> None:
    digest = hashlib.sha256(syndromes_pickle.read_bytes()).hexdigest()
    assert digest == SYNDROMES_SHA256
    data = load(syndromes_pickle)
    assert data.format == "embeddings"
    assert data.kind == "vectors"
    assert data.x.shape == (1116, 320)
    assert data.x.dtype == np.float32
    assert data.n_classes == 10
    assert len(set(data.groups.tolist())) == 941
    assert len(set(data.ids.tolist())) == 1116
    counts = Counter(data.class_names[i] for i in data.y)
    assert counts == SYNDROME_COUNTS
