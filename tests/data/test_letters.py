"""The generated letters dataset: class sizes like the customer's, binary 56x56 images that the
data layer reads back, determinism, and classes a simple classifier can tell apart."""

from __future__ import annotations

import argparse

import numpy as np
import pytest
from sklearn.model_selection import cross_val_score
from sklearn.neighbors import KNeighborsClassifier

from notsure.cli.data_cmd import run_make_letters
from notsure.data import load
from notsure.data.letters import CLASSES, class_counts, make_letters, save_letters
from notsure.errors import ConfigError


def test_class_counts_match_the_customer_shape():
    counts = class_counts()
    assert set(counts) == set(CLASSES) and len(counts) == 36
    sizes = sorted(counts.values())
    assert sizes[0] == 1 and sizes[1] == 102 and sizes[-1] == 3291
    assert 29_000 < sum(sizes) < 34_000  # the customer had 30,134
    assert counts != class_counts(seed=1)  # which class is which size is seeded
    assert sorted(class_counts(seed=1).values()) == sizes


def test_scaled_counts_keep_the_single_image_class():
    sizes = sorted(class_counts(scale=0.05).values())
    assert sizes[0] == 1 and sizes[1] >= 2 and sizes[-1] == round(3291 * 0.05)
    with pytest.raises(ConfigError, match="scale"):
        class_counts(scale=0)


def test_images_are_binary_glyphs_with_the_requested_counts():
    counts = {"A": 5, "0": 3, "Z": 1}
    x, y = make_letters(counts, seed=3)
    assert x.shape == (9, 56, 56) and x.dtype == np.uint8
    assert set(np.unique(x)) <= {0, 1}
    assert {c: int(np.sum(y == c)) for c in counts} == counts
    ink = x.reshape(9, -1).mean(axis=1)
    assert ((ink > 0.02) & (ink < 0.6)).all()  # a glyph, not a blank or a filled square
    x2, y2 = make_letters(counts, seed=3)
    assert np.array_equal(x, x2) and np.array_equal(y, y2)
    assert not np.array_equal(x, make_letters(counts, seed=4)[0])


def test_unknown_class_is_refused():
    with pytest.raises(ConfigError, match="class names"):
        make_letters({"a": 3})


def test_saved_pickle_reads_back_as_56x56_binary_images(tmp_path):
    x, y = make_letters({c: 2 for c in "019ABZ"}, seed=0)
    ds = load(save_letters(tmp_path / "letters.p", x, y))
    assert ds.kind == "images" and ds.shape == (56, 56) and ds.format == "pickle"
    assert ds.class_names == tuple("019ABZ")
    assert np.array_equal(ds.x, x)  # 0/1 kept, not scaled
    assert np.array_equal(np.asarray(ds.class_names)[ds.y], y)


def test_make_letters_command_writes_a_loadable_file(tmp_path, capsys):
    out = tmp_path / "l.p"
    args = argparse.Namespace(out=out, scale=0.01, seed=2, quiet=True)
    assert run_make_letters(args) == 0
    ds = load(out)
    assert ds.n_classes == 36 and sorted(ds.class_counts())[0] == 1
    assert str(out) in capsys.readouterr().out


def test_classes_are_learnable_but_not_trivial():
    x, y = make_letters({c: 16 for c in CLASSES}, seed=5)
    flat = x.reshape(len(x), -1)
    acc = cross_val_score(KNeighborsClassifier(1), flat, y, cv=4).mean()
    assert 0.2 < acc < 0.95  # far above chance (1/36), below perfect: distortions matter
