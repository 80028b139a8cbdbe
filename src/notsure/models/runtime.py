"""What inference needs without torch: the CPU's precision, thread counts, input checks, and
the names and settings headers of stored networks.

Kept free of torch so that ``predict`` and ``serve`` on stored ONNX graphs start without
importing it (about 2 s on a 2-core machine).
"""

from __future__ import annotations

import json
import os
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

import numpy as np

from notsure.errors import DataError

WEIGHTS_SUFFIX, CONFIG_SUFFIX = ".safetensors", ".json"
FORMAT, VERSION = "notsure-cnn", 1  # the settings header of a stored network
Precision = Literal["bf16", "fp32"]
PRECISIONS = ("bf16", "fp32")
#: What scores a run's members (``--backend`` of predict, evaluate, serve): "auto" is ONNX Runtime
#: where installed, else torch. Here, not in ``deploy.engine``, so the command line offers them
#: without importing torch.
BACKENDS = ("auto", "onnx", "torch")


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


def read_model_header(config_path: Path) -> dict[str, Any]:
    """The settings file of a stored network, checked to be ours (format, version, keys); read
    without torch, so a run folder can be verified before (or without) loading its networks."""
    if not config_path.is_file():
        raise DataError(f"{config_path}: model settings file not found (expected the .json "
                        f"written beside the .safetensors weights by save_model)")
    try:
        header = json.loads(config_path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(f"{config_path}: not a notsure model settings file (invalid JSON: "
                        f"{exc})") from exc
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise DataError(f"{config_path}: not a notsure model settings file "
                        f"(expected \"format\": \"{FORMAT}\")")
    if header.get("version") != VERSION:
        raise DataError(f"{config_path}: model file version {header.get('version')!r} is not "
                        f"supported (expected {VERSION})")
    missing = [k for k in ("config", "n_classes", "image_shape", "weights_sha256")
               if k not in header]
    if missing:
        raise DataError(f"{config_path}: missing keys {missing}")
    return header
