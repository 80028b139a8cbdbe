"""Ceilings on what reading one input may cost, checked before the memory is allocated.

A file can claim far more than it holds: a pickled array's shape, an IDX header, a gzip stream
that expands a thousandfold, a PNG's width and height. Readers check each claim against the
active :class:`Limits` first and raise one :class:`DataError` that names the file, the limit and
how to raise it. Limits come from the environment (``NOTSURE_MAX_BYTES``...), the CLI flags
(``--max-bytes``...) or :func:`use_limits`.
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import math
import os
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from notsure.errors import ConfigError, DataError

#: Environment variable and CLI flag of each limit.
ENV_VARS = {"max_bytes": "NOTSURE_MAX_BYTES", "max_images": "NOTSURE_MAX_IMAGES",
            "max_pixels": "NOTSURE_MAX_PIXELS", "max_ratio": "NOTSURE_MAX_RATIO"}
FLAGS = {name: "--" + name.replace("_", "-") for name in ENV_VARS}

#: Compressed streams may expand past ``max_ratio`` only below this size: small files are harmless.
RATIO_FLOOR = 64 * 2**20

_UNITS = {"": 1, "K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}


@dataclass(frozen=True)
class Limits:
    """What one input may claim: decoded bytes, samples, pixels per image, compression ratio."""

    max_bytes: int = 4 * 2**30  # decoded bytes of one data file (4 GiB: 5 million 28x28 images)
    max_images: int = 10_000_000  # samples in one input
    max_pixels: int = 89_478_485  # pixels of one image file (PIL's own bomb threshold)
    max_ratio: int = 200  # decoded bytes per compressed byte (deflate bombs reach ~1000)

    def __post_init__(self) -> None:
        for name in ENV_VARS:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"{name} must be a positive integer, got {value!r}")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **given: int | None) -> Limits:
        """Defaults, overridden by the environment, overridden by ``given`` values not None."""
        environ = os.environ if environ is None else environ
        values = {}
        for name, var in ENV_VARS.items():
            if given.get(name) is not None:
                values[name] = given[name]
            elif environ.get(var, "").strip():
                values[name] = parse_size(environ[var], var)
        return dataclasses.replace(cls(), **values)


def parse_size(text: str, name: str) -> int:
    """``"4G"``, ``"512M"``, ``"1e9"`` or ``"1000"`` as an integer; K, M, G, T are powers of
    1024."""
    match = re.fullmatch(r"\s*([0-9.eE+]+)\s*([KMGT]?)i?B?\s*", str(text), flags=re.IGNORECASE)
    try:
        value = float(match.group(1)) * _UNITS[match.group(2).upper()] if match else math.nan
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value < 1:
        raise ConfigError(f"{name}={text!r}: expected a positive size such as 4G, 512M or 10000")
    return int(value)


_ACTIVE: contextvars.ContextVar[Limits | None] = contextvars.ContextVar("limits", default=None)


def current_limits() -> Limits:
    """The limits in force: set by :func:`use_limits`, else read from the environment."""
    active = _ACTIVE.get()
    return active if active is not None else Limits.from_env()


@contextlib.contextmanager
def use_limits(limits: Limits) -> Iterator[Limits]:
    """Apply ``limits`` to every read inside the ``with`` block."""
    token = _ACTIVE.set(limits)
    try:
        yield limits
    finally:
        _ACTIVE.reset(token)


def _size(n: int) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if n < 1024 or unit == "PiB":
            return f"{n:,} bytes" if unit == "bytes" else f"{n:,.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


def _raise_it(name: str) -> str:
    return f"if the file is genuine, raise it with {FLAGS[name]} or {ENV_VARS[name]}"


def check_bytes(source: str, n_bytes: int, what: str = "data") -> None:
    """``n_bytes`` of decoded ``what`` fit within ``max_bytes``."""
    limit = current_limits().max_bytes
    if n_bytes > limit:
        raise DataError(f"{source}: {what} would take {_size(n_bytes)} decoded, over the limit of "
                        f"{_size(limit)}; {_raise_it('max_bytes')}")


def check_count(source: str, n: int) -> None:
    """``n`` samples fit within ``max_images``."""
    limit = current_limits().max_images
    if n > limit:
        raise DataError(f"{source}: holds {n:,} samples, over the limit of {limit:,}; "
                        f"{_raise_it('max_images')}")


def check_pixels(source: str, width: int, height: int) -> None:
    """A ``width x height`` image fits within ``max_pixels`` (and its bytes within max_bytes)."""
    limit = current_limits().max_pixels
    if width * height > limit:
        raise DataError(f"{source}: image is {width}x{height} = {width * height:,} pixels, over "
                        f"the limit of {limit:,} per image; {_raise_it('max_pixels')}")


def check_ratio(source: str, n_decoded: int, n_compressed: int) -> None:
    """``n_decoded`` bytes from ``n_compressed`` compressed ones stay within ``max_ratio``."""
    ratio = current_limits().max_ratio
    if n_decoded > max(RATIO_FLOOR, ratio * n_compressed):
        raise DataError(f"{source}: {_size(n_compressed)} of compressed data expand to "
                        f"{_size(n_decoded)} or more, over {ratio}x (a decompression bomb?); "
                        f"{_raise_it('max_ratio')}")
