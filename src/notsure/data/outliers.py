"""Synthetic inputs unlike MNIST digits, to measure what the out-of-distribution guard catches.

Every kind is ``(n, size, size)`` uint8 and drawn from a seeded generator: uniform noise, blank
images, inverted digits (white background), digits shifted off-centre, letters drawn with PIL's
default font, random strokes, and garment silhouettes (clothing, as in Fashion-MNIST).
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from notsure.data.preprocess import to_mnist_form

OUTLIER_KINDS = ("noise", "blank", "inverted", "shifted", "letters", "strokes", "clothing")
#: Garment silhouettes of :func:`draw_clothing`, as polygons on a unit square (x, y).
GARMENTS = {
    "shirt": [(0.3, 0.05), (0.7, 0.05), (1.0, 0.3), (0.85, 0.45), (0.78, 0.38), (0.78, 0.98),
              (0.22, 0.98), (0.22, 0.38), (0.15, 0.45), (0.0, 0.3)],
    "trousers": [(0.25, 0.0), (0.75, 0.0), (0.8, 1.0), (0.56, 1.0), (0.5, 0.3), (0.44, 1.0),
                 (0.2, 1.0)],
    "dress": [(0.35, 0.0), (0.65, 0.0), (0.62, 0.35), (0.9, 1.0), (0.1, 1.0), (0.38, 0.35)],
    "bag": [(0.05, 0.35), (0.95, 0.35), (0.95, 0.95), (0.05, 0.95)],
    "shoe": [(0.0, 0.55), (0.45, 0.55), (0.6, 0.7), (1.0, 0.75), (1.0, 0.92), (0.0, 0.92)],
    "boot": [(0.15, 0.05), (0.5, 0.05), (0.55, 0.6), (1.0, 0.7), (1.0, 0.95), (0.15, 0.95)],
}
#: Letters that do not look like a digit (no O, I, S, Z, B, G ...).
LETTERS = "ACEFHKMNPRTUVWXY"


def shift_off_centre(images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Each image moved (zero fill) so its ink touches a random corner of the frame."""
    out = np.zeros_like(images)
    for i, image in enumerate(images):
        rows = np.flatnonzero(image.any(axis=1))
        cols = np.flatnonzero(image.any(axis=0))
        if rows.size == 0:
            continue
        crop = image[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]
        top = 0 if rng.random() < 0.5 else image.shape[0] - crop.shape[0]
        left = 0 if rng.random() < 0.5 else image.shape[1] - crop.shape[1]
        out[i, top:top + crop.shape[0], left:left + crop.shape[1]] = crop
    return out


def draw_letters(n: int, rng: np.random.Generator, size: int = 28) -> np.ndarray:
    """Capital letters in PIL's default font, brought to MNIST form (cropped, 20x20, centred)."""
    try:
        font = ImageFont.load_default(size=48)
    except TypeError:  # Pillow without a scalable default font
        font = ImageFont.load_default()
    out = np.empty((n, size, size), dtype=np.uint8)
    for i in range(n):
        canvas = Image.new("L", (64, 64), 0)
        ImageDraw.Draw(canvas).text((8, 0), str(rng.choice(list(LETTERS))), fill=255, font=font)
        out[i] = to_mnist_form(np.asarray(canvas), size)
    return out


def draw_strokes(n: int, rng: np.random.Generator, size: int = 28) -> np.ndarray:
    """Two to five random straight strokes, 2-3 pixels wide, anywhere in the frame, with soft
    edges as pen strokes have (drawn 4x larger and scaled down)."""
    out = np.empty((n, size, size), dtype=np.uint8)
    big = 4 * size
    for i in range(n):
        canvas = Image.new("L", (big, big), 0)
        draw = ImageDraw.Draw(canvas)
        for _ in range(int(rng.integers(2, 6))):
            points = [tuple(4 * float(v) for v in rng.uniform(2, size - 2, 2)) for _ in range(2)]
            draw.line(points, fill=255, width=4 * int(rng.integers(2, 4)))
        out[i] = np.asarray(canvas.resize((size, size), Image.BOX))
    return out


def draw_clothing(n: int, rng: np.random.Generator, size: int = 28) -> np.ndarray:
    """Garment silhouettes in the manner of Fashion-MNIST (the mistaken upload a digit service
    gets): a filled, jittered polygon of :data:`GARMENTS` filling most of the frame, grey and
    textured, with a handle on bags and a collar on shirts."""
    out = np.empty((n, size, size), dtype=np.uint8)
    names = list(GARMENTS)
    for i in range(n):
        kind = names[int(rng.integers(len(names)))]
        span = rng.uniform(0.75, 1.0) * (size - 2)
        x0, y0 = (size - span) / 2 + rng.uniform(-1, 1, 2)
        points = [(x0 + (px + rng.normal(0, 0.02)) * span, y0 + (py + rng.normal(0, 0.02)) * span)
                  for px, py in GARMENTS[kind]]
        mask = Image.new("L", (size, size), 0)
        draw = ImageDraw.Draw(mask)
        draw.polygon(points, fill=255)
        if kind == "bag":
            draw.arc([x0 + 0.3 * span, y0 + 0.1 * span, x0 + 0.7 * span, y0 + 0.6 * span],
                     180, 360, fill=255, width=2)
        shade = rng.uniform(90, 230) + rng.normal(0, 25, (size, size))
        stripes = rng.random() < 0.4
        if stripes:  # knitted or striped fabric
            shade *= 0.75 + 0.25 * (np.arange(size)[:, None] % int(rng.integers(2, 5)) == 0)
        image = np.asarray(mask, dtype=np.float64) / 255 * np.clip(shade, 0, 255)
        if kind == "shirt":
            image[int(y0):int(y0) + 2, int(x0 + 0.4 * span):int(x0 + 0.6 * span)] = 0
        out[i] = np.clip(image, 0, 255).astype(np.uint8)
    return out


def synthetic_outliers(digits: np.ndarray, n: int, seed: int) -> dict[str, np.ndarray]:
    """``n`` images of each kind in :data:`OUTLIER_KINDS`; inverted and shifted ones are made
    from the first ``n`` of ``digits`` (MNIST-form images, ``(N, size, size)`` uint8)."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, 13]))
    size = digits.shape[1]
    base = digits[:n]
    return {
        "noise": rng.integers(0, 256, (n, size, size), dtype=np.uint8),
        "blank": np.zeros((n, size, size), dtype=np.uint8),
        "inverted": 255 - base,
        "shifted": shift_off_centre(base, rng),
        "letters": draw_letters(n, rng, size),
        "strokes": draw_strokes(n, rng, size),
        "clothing": draw_clothing(n, rng, size),
    }
