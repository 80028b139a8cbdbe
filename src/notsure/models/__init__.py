"""Convolutional networks: architectures, training, inference and safe storage.

Names are imported on first use, so that torch-free submodules (``runtime``,
``onnx_session``) load without importing torch.
"""

from __future__ import annotations

import importlib
from typing import Any

_WHERE = {
    "CNNConfig": "cnn",
    "ConvNet": "cnn",
    "build_model": "cnn",
    "predict_logits": "inference",
    "StoredModel": "store",
    "load_model": "store",
    "save_model": "store",
    "TrainResult": "train",
    "train_cnn": "train",
}

__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(importlib.import_module(f"notsure.models.{_WHERE[name]}"), name)
    raise AttributeError(f"module 'notsure.models' has no attribute {name!r}")
