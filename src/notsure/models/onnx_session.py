"""Runs an ensemble graph of :mod:`notsure.models.onnx_export` on ONNX Runtime, without torch.

The graph takes raw pixels ``images`` ``(N, H, W)`` float32 and returns every member's
``logits`` ``(K, N, C)`` and penultimate ``features`` ``(K, N, F)``.
"""

from __future__ import annotations

import importlib.util
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from notsure.errors import DataError
from notsure.models.runtime import check_images, resolve_threads

INPUT, OUTPUT, FEATURES = "images", "logits", "features"


def onnx_available() -> bool:
    """Whether ``onnx`` and ``onnxruntime`` are installed (the ``serve`` extra)."""
    return all(importlib.util.find_spec(m) is not None for m in ("onnx", "onnxruntime"))


class OnnxEnsemble:
    """Runs an ensemble graph on ONNX Runtime: ``logits(x)`` returns ``(K, N, C)`` float32.

    Like :func:`notsure.models.inference.predict_logits`, ``threads`` workers each take whole
    batches with one ONNX Runtime thread, so workers never wait on each other.
    """

    def __init__(self, model, *, threads: int | None = None, batch_size: int = 256) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        data = model if isinstance(model, (bytes, str)) else model.SerializeToString()
        self.session = ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])
        out_shape = self.session.get_outputs()[0].shape
        self.n_members, self.n_classes = int(out_shape[0]), int(out_shape[2])
        self.n_features = int(self.session.get_outputs()[1].shape[2])
        self.image_shape = tuple(int(s) for s in self.session.get_inputs()[0].shape[1:])
        self.threads = resolve_threads(threads)
        self.batch_size = batch_size

    def logits(self, x: np.ndarray) -> np.ndarray:
        """Members' logits ``(K, N, C)`` for raw-pixel images ``(N, H, W)``."""
        return self.logits_and_features(x, features=False)[0]

    def logits_and_features(self, x: np.ndarray, features: bool = True
                            ) -> tuple[np.ndarray, np.ndarray | None]:
        """Members' logits ``(K, N, C)`` and penultimate features ``(K, N, F)`` (or None)."""
        x = check_images(x)
        if tuple(x.shape[1:]) != self.image_shape:
            raise DataError(f"images have shape {tuple(x.shape[1:])}; the graph takes "
                            f"{self.image_shape}")
        out = np.empty((self.n_members, len(x), self.n_classes), dtype=np.float32)
        feats = (np.empty((self.n_members, len(x), self.n_features), dtype=np.float32)
                 if features else None)
        names = [OUTPUT, FEATURES] if features else [OUTPUT]

        def run_batch(start: int) -> None:
            xb = np.ascontiguousarray(x[start:start + self.batch_size], dtype=np.float32)
            got = self.session.run(names, {INPUT: xb})
            out[:, start:start + len(xb)] = got[0]
            if features:
                feats[:, start:start + len(xb)] = got[1]

        starts = range(0, len(x), self.batch_size)
        if len(starts) <= 1 or self.threads == 1:
            for s in starts:
                run_batch(s)
        else:
            with ThreadPoolExecutor(min(self.threads, len(starts))) as pool:
                list(pool.map(run_batch, starts))
        return out, feats
