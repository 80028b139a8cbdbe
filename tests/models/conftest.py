"""Synthetic images for the CNN tests: three stroke patterns a small network must tell apart."""

from __future__ import annotations

import numpy as np
import pytest

from notsure.models import CNNConfig


def stroke_images(n: int, size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` uint8 images ``(size, size)`` of class 0 (horizontal bar), 1 (vertical bar) or
    2 (filled square), at random places and sizes, on faint noise; labels balanced."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 3
    rng.shuffle(y)
    x = rng.integers(0, 40, (n, size, size)).astype(np.uint8)
    q = size // 4
    for i, label in enumerate(y):
        length = rng.integers(size // 2, size - 4)
        a, b = rng.integers(2, size - length - 1), rng.integers(q, size - q)
        if label == 0:
            x[i, b - 1:b + 1, a:a + length] = 255
        elif label == 1:
            x[i, a:a + length, b - 1:b + 1] = 255
        else:
            side = rng.integers(q // 2, q + 1)
            r, c = rng.integers(1, size - side - 1, 2)
            x[i, r:r + side, c:c + side] = 255
    return x, y.astype(np.int64)


@pytest.fixture(scope="session")
def tiny_config() -> CNNConfig:
    """The quick architecture with enough steps to learn 300 images in about a second; one
    thread, which stays fast when other work shares the cores."""
    return CNNConfig.quick().replace(epochs=6, batch_size=32, max_train=None, lr=3e-3, threads=1)


@pytest.fixture(scope="session")
def strokes28() -> tuple[np.ndarray, np.ndarray]:
    return stroke_images(450, 28, seed=1)


@pytest.fixture(scope="session")
def strokes56() -> tuple[np.ndarray, np.ndarray]:
    return stroke_images(450, 56, seed=2)
