"""A generated stand-in for the letters customer's data: binary 56x56 images of the 36 classes
0-9 and A-Z, rendered from the fonts that ship with matplotlib, randomly distorted, with a skewed
class distribution that includes a one-image class (no public copy of their data exists).

Each image: a random font (DejaVu Sans, Sans Mono, Serif and STIX, each in several weights and
slants), letters upper- or lower-case (so 1/l/I and 0/O collide as in handwriting), a random
stroke width, a random affine distortion (rotation, shear, anisotropic scale, shift), then
binarized to {0, 1} and sprinkled with pixel noise. ``save_letters`` writes the ``(X, y)`` pickle
the data layer reads: ``X`` of shape ``(N, 3136)`` (flattened 56x56, values 0/1), ``y`` the class
names.
"""

from __future__ import annotations

import functools
import os
import pickle
from collections.abc import Mapping
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from notsure.errors import ConfigError
from notsure.io.atomic import atomic_path

#: The 36 class names, digits first.
CLASSES: tuple[str, ...] = tuple("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ")
SIZE = 56
#: Class sizes of the customer's data: the smallest besides the single-image class, the largest.
SMALLEST, LARGEST = 102, 3291
_CANVAS = 96
_LOWER_CASE_SHARE = 0.3


@functools.cache
def font_paths() -> tuple[Path, ...]:
    """The TrueType fonts used: every DejaVu and STIXGeneral face in matplotlib's font folder."""
    from matplotlib import font_manager

    folder = Path(font_manager.findfont("DejaVu Sans", fallback_to_default=False)).parent
    found = sorted(p for p in folder.glob("*.ttf")
                   if (p.name.startswith("DejaVu") and "Display" not in p.name)
                   or p.name.startswith("STIXGeneral"))
    if not found:
        raise ConfigError(f"no DejaVu or STIX fonts found in {folder}; reinstall matplotlib")
    return tuple(found)


@functools.cache
def _font(path: Path, size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(str(path), size)


def class_counts(scale: float = 1.0, seed: int = 0) -> dict[str, int]:
    """Images per class like the customer's: one class with a single image, the other 35 spread
    geometrically from 102 to 3,291 (32,925 in all); which class gets which size is seeded.

    ``scale`` shrinks every class but the single-image one (at least 2 images each), for tests.
    """
    if not 0 < scale <= 1:
        raise ConfigError(f"scale must lie in (0, 1], got {scale}")
    sizes = SMALLEST * (LARGEST / SMALLEST) ** (np.arange(len(CLASSES) - 1) / (len(CLASSES) - 2))
    sizes = np.maximum(2, np.round(sizes * scale)).astype(int)
    counts = np.concatenate([[1], sizes])
    order = np.random.default_rng(seed).permutation(len(CLASSES))
    return {CLASSES[c]: int(n) for c, n in zip(order, counts, strict=True)}


def _affine(rng: np.random.Generator) -> tuple[float, ...]:
    """PIL's output-to-input affine coefficients of a random rotation, shear, scale and shift
    that maps the canvas centre near the centre of the 56x56 output."""
    angle = np.deg2rad(rng.uniform(-12, 12))
    shear = rng.uniform(-0.3, 0.3)
    scale = rng.uniform(0.8, 1.1) * np.exp(rng.uniform(-0.12, 0.12, size=2))
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    forward = np.diag(scale) @ np.array([[1.0, shear], [0.0, 1.0]]) @ rot
    inverse = np.linalg.inv(forward)
    centre_out = SIZE / 2 + rng.uniform(-3, 3, size=2)
    offset = _CANVAS / 2 - inverse @ centre_out
    return (inverse[0, 0], inverse[0, 1], offset[0], inverse[1, 0], inverse[1, 1], offset[1])


def render(char: str, rng: np.random.Generator) -> np.ndarray:
    """One distorted binary ``(56, 56)`` uint8 image (glyph 1, background 0) of ``char``."""
    fonts = font_paths()
    font = _font(fonts[rng.integers(len(fonts))], int(rng.integers(38, 52)))
    if char.isalpha() and rng.random() < _LOWER_CASE_SHARE:
        char = char.lower()
    canvas = Image.new("L", (_CANVAS, _CANVAS), 0)
    stroke = int(rng.integers(0, 3))
    ImageDraw.Draw(canvas).text((_CANVAS / 2, _CANVAS / 2), char, fill=255, font=font,
                                anchor="mm", stroke_width=stroke, stroke_fill=255)
    warped = canvas.transform((SIZE, SIZE), Image.Transform.AFFINE, _affine(rng),
                              resample=Image.Resampling.BILINEAR)
    image = (np.asarray(warped) >= 128).astype(np.uint8)
    flips = rng.random(image.shape) < rng.uniform(0.0, 0.01)
    return image ^ flips.astype(np.uint8)


def make_letters(counts: Mapping[str, int] | None = None, seed: int = 0
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Images ``(N, 56, 56)`` uint8 in {0, 1} and their class names ``(N,)``, shuffled.

    ``counts`` maps class names (any of :data:`CLASSES`) to image counts; default
    :func:`class_counts` with the same ``seed``.
    """
    counts = class_counts(seed=seed) if counts is None else dict(counts)
    unknown = sorted(set(counts) - set(CLASSES))
    if unknown or any(int(n) < 0 for n in counts.values()):
        raise ConfigError(f"counts must map class names of {''.join(CLASSES)} to counts >= 0, "
                          f"got {counts}")
    labels = np.repeat(np.array(list(counts), dtype="U1"), [int(n) for n in counts.values()])
    rng = np.random.default_rng([seed, 56])
    labels = labels[rng.permutation(len(labels))]
    images = np.zeros((len(labels), SIZE, SIZE), dtype=np.uint8)
    for i, char in enumerate(labels):
        images[i] = render(str(char), rng)
    return images, labels


def save_letters(path: str | os.PathLike[str], images: np.ndarray, labels: np.ndarray) -> Path:
    """Write ``(X, y)`` as a pickle, ``X`` flattened to ``(N, 3136)`` like the customer's file."""
    path = Path(path)
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        pickle.dump((images.reshape(len(images), -1), np.asarray(labels)), fh, protocol=4)
    return path


def make_letters_file(path: str | os.PathLike[str], *, scale: float = 1.0,
                      seed: int = 0) -> Path:
    """Generate the dataset (``class_counts(scale, seed)``) and save it to ``path``."""
    images, labels = make_letters(class_counts(scale, seed), seed)
    return save_letters(path, images, labels)
