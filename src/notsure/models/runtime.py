"""What inference needs without torch: the CPU's precision, thread counts, input checks.

Kept free of torch so that ``predict`` and ``serve`` on stored ONNX graphs start without
importing it (about 2 s on a 2-core machine).
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Literal

import numpy as np

from notsure.errors import DataError

WEIGHTS_SUFFIX, CONFIG_SUFFIX = ".safetensors", ".json"
Precision = Literal["bf16", "fp32"]
PRECISIONS = ("bf16", "fp32")


@lru_cache(maxsize=1)
def native_bf16() -> bool:
    """Whether this CPU computes bfloat16 natively (AMX or AVX-512 BF16).

    Elsewhere (AVX2-only CPUs) torch emulates bf16 and trains about 8x *slower* than fp32
    (measured on an AVX2 AMD EPYC: 164 against 1,362 images/s), so bf16 only pays where native.
    """
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    return bool(flags & {"amx_bf16", "avx512_bf16"})
    except OSError:
        pass
    return False


def default_precision() -> Precision:
    """``"bf16"`` where the CPU has native bf16 arithmetic, else ``"fp32"``."""
    return "bf16" if native_bf16() else "fp32"


def resolve_threads(threads: int | None) -> int:
    """Thread count: ``threads`` or every core available to this process."""
    if threads is not None:
        return threads
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def check_images(x: np.ndarray, name: str = "x") -> np.ndarray:
    """Return ``x`` as ``(N, H, W)`` pixels; raise DataError naming the shape otherwise."""
    x = np.asarray(x)
    if x.ndim == 4 and x.shape[1] == 1:
        x = x[:, 0]
    if x.ndim != 3 or x.dtype.kind not in "uif":
        raise DataError(f"{name}: expected images (N, H, W) of pixel values 0..255, got "
                        f"{x.dtype} {x.shape}")
    return x


def model_paths(path: str | os.PathLike[str]) -> tuple[Path, Path]:
    """(weights, config) paths of a stored network's prefix (see :mod:`notsure.models.store`);
    a trailing ``.safetensors``/``.json`` is dropped."""
    path = Path(path)
    if path.suffix in (WEIGHTS_SUFFIX, CONFIG_SUFFIX):
        path = path.with_suffix("")
    return (path.with_name(path.name + WEIGHTS_SUFFIX),
            path.with_name(path.name + CONFIG_SUFFIX))
