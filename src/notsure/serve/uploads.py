"""Turn what a client sends (PNG/JPEG bytes, or JSON pixel arrays) into model inputs.

Every failure raises :class:`notsure.errors.DataError` with one line naming the image, so the
server can answer a 4xx with that line.
"""

from __future__ import annotations

import io
import warnings
from typing import Any

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from notsure.data.preprocess import to_grayscale, to_mnist_form
from notsure.errors import DataError

#: Image formats accepted from uploads.
FORMATS = ("PNG", "JPEG")
#: Largest decoded image (pixels); bigger ones are refused before decoding (decompression bombs).
MAX_PIXELS = 4096 * 4096
PREPROCESS = ("auto", "mnist", "none")


def decode_image(data: bytes, name: str = "image") -> np.ndarray:
    """PNG or JPEG bytes as ``(H, W)`` gray or ``(H, W, 4)`` RGBA uint8 pixels, upright."""
    if not data:
        raise DataError(f"{name}: empty file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data))
            if img.format not in FORMATS:
                raise DataError(f"{name}: {img.format} images are not accepted; send PNG or JPEG")
            if img.width * img.height > MAX_PIXELS:
                raise DataError(f"{name}: {img.width}x{img.height} pixels is too large "
                                f"(at most {MAX_PIXELS:,} pixels)")
            img = ImageOps.exif_transpose(img)  # phone photos carry their rotation in EXIF
            if img.mode in ("I;16", "I;16B", "I;16L", "I"):
                return (np.asarray(img, dtype=np.float64) / 257.0).clip(0, 255).astype(np.uint8)
            has_alpha = "A" in img.getbands() or "transparency" in img.info
            return np.asarray(img.convert("RGBA" if has_alpha else "L"))
    except DataError:
        raise
    except (UnidentifiedImageError, Image.DecompressionBombError,
            Image.DecompressionBombWarning) as exc:
        raise DataError(f"{name}: not a PNG or JPEG image ({type(exc).__name__})") from exc
    except (OSError, ValueError, SyntaxError, EOFError) as exc:  # truncated or corrupt data
        raise DataError(f"{name}: the image data is damaged ({_first_line(exc)})") from exc


def to_model_input(image: np.ndarray, shape: tuple[int, int], preprocess: str = "auto",
                   name: str = "image") -> np.ndarray:
    """One image as the model's ``shape`` uint8 pixels (light ink on black).

    ``mnist``: MNIST preprocessing (gray, inverted if light, cropped, fit 20/28 of the side,
    centred by centre of mass); ``none``: the image must already be gray, of ``shape``;
    ``auto``: ``none`` for gray images of ``shape`` on a dark background (dataset images),
    ``mnist`` for everything else (drawings, photos).
    """
    if preprocess not in PREPROCESS:
        raise DataError(f"preprocess={preprocess!r}: expected one of {PREPROCESS}")
    gray = to_grayscale(image, name)
    as_is = gray.ndim == 2 and gray.shape == tuple(shape)
    if preprocess == "none" or (preprocess == "auto" and as_is and np.asarray(image).ndim == 2
                                and _dark_background(gray)):
        if not as_is:
            raise DataError(f"{name}: shape {tuple(np.shape(image))} with preprocess=none; "
                            f"send {shape[0]}x{shape[1]} gray images or preprocess=mnist")
        return np.clip(np.round(gray), 0, 255).astype(np.uint8)
    if shape[0] != shape[1]:
        raise DataError(f"{name}: MNIST preprocessing needs a square model input, the model "
                        f"takes {shape}; send images of that shape with preprocess=none")
    return to_mnist_form(image, size=shape[0])


def _dark_background(gray: np.ndarray) -> bool:
    """Whether the border is dark (as in MNIST-style dataset images), by the same rule as
    :func:`notsure.data.preprocess.ink`."""
    border = np.concatenate([gray[0], gray[-1], gray[1:-1, 0], gray[1:-1, -1]])
    return float(np.median(border)) <= 127.5


def json_images(doc: Any, shape: tuple[int, int], max_images: int,
                any_shape: bool = False) -> list[np.ndarray]:
    """The ``images`` of a JSON body ``{"images": [H x W arrays of 0..255], ...}``: arrays of
    the model's ``shape``, or (``any_shape``, for MNIST preprocessing) any gray/RGB/RGBA image."""
    if not isinstance(doc, dict) or "images" not in doc:
        raise DataError('JSON body: expected an object {"images": [[[0..255, ...], ...], ...]}')
    items = doc["images"]
    if not isinstance(items, list) or not items:
        raise DataError("JSON body: \"images\" must be a non-empty list of 2-D pixel arrays")
    if len(items) > max_images:
        raise DataError(f"JSON body: {len(items)} images; at most {max_images} per request")
    out = []
    for i, item in enumerate(items):
        try:
            x = np.asarray(item, dtype=np.float64)
        except (ValueError, TypeError) as exc:
            raise DataError(f"images[{i}]: not a rectangular array of numbers") from exc
        fits = x.shape == tuple(shape) or (any_shape and x.size > 0 and (
            x.ndim == 2 or (x.ndim == 3 and x.shape[2] in (3, 4))))
        if not fits:
            raise DataError(f"images[{i}]: shape {x.shape}; expected {shape[0]}x{shape[1]} "
                            f"pixels (other sizes with preprocess=mnist)")
        if not np.all(np.isfinite(x)) or x.min() < 0 or x.max() > 255:
            raise DataError(f"images[{i}]: pixel values must be finite numbers in 0..255")
        out.append(x)
    return out


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:200] if text else type(exc).__name__
