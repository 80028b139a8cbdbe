"""Save and load trained CNNs without pickle: weights in safetensors, settings in JSON.

``save_model("out/fold0", ...)`` writes ``out/fold0.safetensors`` (tensors only) and
``out/fold0.json`` (format tag, config, class count, image shape, the weights' SHA-256 and
caller metadata). Loading parses the JSON, rebuilds the network from the config and fills it
from the safetensors file, so a file can never run code; anything that does not match raises
DataError naming the file.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from notsure.errors import ConfigError, DataError
from notsure.io.atomic import atomic_path, atomic_write_json
from notsure.io.hashing import sha256_file
from notsure.models.cnn import CNNConfig, ConvNet, build_model
from notsure.models.runtime import FORMAT, VERSION, model_paths, read_model_header


@dataclass
class StoredModel:
    """A network loaded from disk with the settings it was saved with."""

    model: ConvNet
    config: CNNConfig
    image_shape: tuple[int, int]
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def n_classes(self) -> int:
        return self.model.n_classes


def save_model(path: str | os.PathLike[str], model: ConvNet, config: CNNConfig, *,
               image_shape: tuple[int, int], meta: dict[str, Any] | None = None
               ) -> tuple[Path, Path]:
    """Write ``model`` as ``<path>.safetensors`` + ``<path>.json`` atomically; return both paths.

    ``meta`` (JSON-ready: class names, fold, seed, training history...) is stored verbatim.
    The JSON is written last, so a complete JSON always names complete weights.
    """
    weights_path, config_path = model_paths(path)
    tensors = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    with atomic_path(weights_path) as tmp:
        save_file(tensors, str(tmp), metadata={"format": FORMAT})
    atomic_write_json(config_path, {
        "format": FORMAT,
        "version": VERSION,
        "config": config.to_dict(),
        "n_classes": model.n_classes,
        "image_shape": [int(s) for s in image_shape],
        "weights": weights_path.name,
        "weights_sha256": sha256_file(weights_path),
        "meta": meta or {},
    })
    return weights_path, config_path


def load_model(path: str | os.PathLike[str]) -> StoredModel:
    """Load a model written by ``save_model`` (prefix, or either file's path); never unpickles.

    Raises DataError if a file is missing, not ours, altered since saving, or holds tensors whose
    names or shapes do not fit the saved config; ConfigError if the config itself is invalid.
    """
    weights_path, config_path = model_paths(path)
    header = read_model_header(config_path)
    try:
        config = CNNConfig.from_dict(header["config"])
        n_classes = int(header["n_classes"])
        image_shape = tuple(int(s) for s in header["image_shape"])
        model = build_model(config, n_classes)
    except (ConfigError, TypeError, ValueError) as exc:
        raise ConfigError(f"{config_path}: invalid model settings: {exc}") from exc
    if len(image_shape) != 2 or min(image_shape) < 1:
        raise DataError(f"{config_path}: image_shape {header['image_shape']} is not (H, W)")
    if not weights_path.is_file():
        raise DataError(f"{weights_path}: model weights file not found")
    if sha256_file(weights_path) != header["weights_sha256"]:
        raise DataError(f"{weights_path}: weights do not match {config_path.name} (SHA-256 "
                        f"differs): the files were altered or come from different saves")
    try:
        tensors = load_file(str(weights_path))
    except Exception as exc:  # safetensors raises its own error types for malformed headers
        raise DataError(f"{weights_path}: not a safetensors file ({exc})") from exc
    _check_tensors(weights_path, tensors, model.state_dict())
    model.load_state_dict(tensors, strict=True)
    model.eval()
    return StoredModel(model=model, config=config, image_shape=(image_shape[0], image_shape[1]),
                       meta=dict(header.get("meta") or {}))


def _check_tensors(path: Path, got: dict[str, torch.Tensor],
                   want: dict[str, torch.Tensor]) -> None:
    missing = sorted(set(want) - set(got))
    extra = sorted(set(got) - set(want))
    wrong = [f"{k}: {tuple(got[k].shape)} != {tuple(v.shape)}"
             for k, v in want.items() if k in got and got[k].shape != v.shape]
    if missing or extra or wrong:
        raise DataError(f"{path}: tensors do not fit the saved config; missing {missing[:5]}, "
                        f"unexpected {extra[:5]}, wrong shapes {wrong[:5]}")
