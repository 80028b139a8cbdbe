"""Bring any grayscale or colour image to the form MNIST digits have, the way MNIST was made.

Light background -> inverted (ink bright on black); cropped to the ink; scaled (anti-aliased,
aspect ratio kept) to fit a 20x20 box; placed in 28x28 with its centre of mass at the centre.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
from PIL import Image

from notsure.errors import DataError

#: MNIST: the digit is scaled to fit 20x20 inside the 28x28 image.
MNIST_SIZE, MNIST_BOX = 28, 20
#: Pixels whose ink is below this share of the darkest ink are left out of the crop box
#: (anti-aliasing and sensor noise).
INK_CUTOFF = 0.1


def to_grayscale(image: np.ndarray, source: str = "image") -> np.ndarray:
    """``(H, W)``, ``(H, W, 3)`` or ``(H, W, 4)`` pixels 0..255 as float ``(H, W)`` luminance.

    Colour uses ITU-R 601 luma (as PIL's ``convert("L")``); alpha is composited on white, so a
    transparent canvas with dark strokes reads as dark ink on a light page.
    """
    x = np.asarray(image)
    if x.dtype.kind not in "uifb" or not (x.ndim == 2 or (x.ndim == 3 and x.shape[2] in (3, 4))):
        raise DataError(f"{source}: expected a grayscale (H, W) or colour (H, W, 3|4) image of "
                        f"numbers, got {x.dtype} {x.shape}")
    x = x.astype(np.float64)
    if x.ndim == 2:
        return x
    gray = x[..., :3] @ np.array([0.299, 0.587, 0.114])
    if x.shape[2] == 4:
        alpha = x[..., 3] / 255.0
        gray = gray * alpha + 255.0 * (1.0 - alpha)
    return gray


def border_pixels(images: np.ndarray) -> np.ndarray:
    """The one-pixel border of each image of ``(..., H, W)``, as ``(..., 2H + 2W - 4)``."""
    x = np.asarray(images)
    return np.concatenate([x[..., 0, :], x[..., -1, :], x[..., 1:-1, 0], x[..., 1:-1, -1]],
                          axis=-1)


def background_level(gray: np.ndarray) -> float:
    """The background's gray level: the median of the one-pixel border."""
    return float(np.median(border_pixels(gray)))


def light_background(gray: np.ndarray) -> bool:
    """True for dark ink on a light page (the opposite of MNIST)."""
    return background_level(gray) > 127.5


def light_backgrounds(images: np.ndarray) -> np.ndarray:
    """:func:`light_background` of every image of a stack ``(N, H, W)``, at once."""
    return np.median(border_pixels(images), axis=-1) > 127.5


def ink(gray: np.ndarray) -> np.ndarray:
    """How much ink each pixel holds, 0 = background: the distance from the background level
    towards dark (on a light background, i.e. inverted) or bright (on a dark background)."""
    background = background_level(gray)
    if background > 127.5:
        return np.clip(background - gray, 0.0, None)
    return np.clip(gray - background, 0.0, None)


def to_mnist_form(image: np.ndarray, size: int = MNIST_SIZE) -> np.ndarray:
    """One image (any size, grayscale, RGB or RGBA) as a ``(size, size)`` uint8 MNIST-style digit.

    A blank image (no ink) comes back all zero. ``size`` other than 28 scales the 20-pixel box
    in proportion.
    """
    amount = ink(to_grayscale(image))
    out = np.zeros((size, size), dtype=np.uint8)
    peak = amount.max()
    if peak <= 0:
        return out
    amount = amount * (255.0 / peak)
    rows = np.flatnonzero((amount > INK_CUTOFF * 255).any(axis=1))
    cols = np.flatnonzero((amount > INK_CUTOFF * 255).any(axis=0))
    crop = amount[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]
    box = max(1, round(size * MNIST_BOX / MNIST_SIZE))
    scale = box / max(crop.shape)
    height, width = (max(1, round(s * scale)) for s in crop.shape)
    resized = Image.fromarray(crop.astype(np.float32), mode="F").resize(
        (width, height), Image.Resampling.LANCZOS if scale < 1 else Image.Resampling.BILINEAR)
    digit = np.clip(np.asarray(resized, dtype=np.float64), 0.0, 255.0)
    # Centre of mass at pixel (size/2, size/2), as measured on MNIST (14.0, 14.0).
    total = digit.sum()
    if total <= 0:
        return out
    cy = (digit.sum(axis=1) @ np.arange(height)) / total
    cx = (digit.sum(axis=0) @ np.arange(width)) / total
    top = int(round(size / 2 - cy))
    left = int(round(size / 2 - cx))
    top = min(max(top, 0), size - height)
    left = min(max(left, 0), size - width)
    out[top:top + height, left:left + width] = np.round(digit).astype(np.uint8)
    return out


def to_mnist_batch(images: Iterable[np.ndarray], size: int = MNIST_SIZE) -> np.ndarray:
    """:func:`to_mnist_form` of each image (sizes may differ): ``(N, size, size)`` uint8."""
    out = [to_mnist_form(image, size) for image in images]
    return np.stack(out) if out else np.zeros((0, size, size), dtype=np.uint8)
