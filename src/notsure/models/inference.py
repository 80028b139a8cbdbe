"""Batched inference: raw pixels in, float32 logits out, for one network or an ensemble."""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch
from torch import nn

from notsure.errors import DataError
from notsure.io.progress import progress
from notsure.models.cnn import ConvNet, fuse_for_inference, torch_threads
from notsure.models.runtime import (  # noqa: F401  (check_images re-exported)
    PRECISIONS,
    Precision,
    check_images,
    default_precision,
    resolve_threads,
)


def prepare_for_inference(model: nn.Module) -> nn.Module:
    """Eval-mode copy tuned for CPU inference: BatchNorm folded into convs, channels-last."""
    fused = fuse_for_inference(model) if isinstance(model, ConvNet) else model.eval()
    return fused.to(memory_format=torch.channels_last)


def predict_logits(
    model_or_models: nn.Module | Sequence[nn.Module],
    x: np.ndarray,
    *,
    batch_size: int = 128,
    precision: Precision | None = None,
    threads: int | None = None,
    quiet: bool = True,
    return_features: bool = False,
    prepared: bool = False,
) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """Logits of raw-pixel images ``x`` ``(N, H, W)``: ``(N, C)`` for one network, ``(K, N, C)``
    for a sequence of K networks. Always float32, whatever ``precision`` computes in (default:
    :func:`notsure.models.cnn.default_precision`, bf16 only where the CPU has it natively).

    ``threads`` workers (default: all cores) each take whole batches and run every network on
    them with one torch thread. Unlike torch's own multi-threading, which waits for all threads
    after every operation and slows down many-fold when another process shares a core, workers
    never wait for each other. Batches of a few hundred images keep activations in cache.

    ``return_features=True`` (ConvNets only) also returns each network's penultimate features
    (:meth:`ConvNet.embed`), ``(N, F)`` or ``(K, N, F)``, from the same forward pass.

    ``prepared=True`` says the networks already went through :func:`prepare_for_inference`
    (a server prepares them once, not on every request).
    """
    if precision is None:
        precision = default_precision()
    if precision not in PRECISIONS:
        raise DataError(f"precision={precision!r}: expected one of {PRECISIONS}")
    if batch_size < 1:
        raise DataError(f"batch_size={batch_size}: expected >= 1")
    single = isinstance(model_or_models, nn.Module)
    models = [model_or_models] if single else list(model_or_models)
    x = check_images(x)
    ready = models if prepared else [prepare_for_inference(m) for m in models]
    out = np.empty((len(ready), len(x), _n_outputs(ready[0], x)), dtype=np.float32)
    if return_features:
        if not all(isinstance(m, ConvNet) for m in ready):
            raise DataError("return_features=True needs ConvNet models")
        feats = np.empty((len(ready), len(x), ready[0].head.in_features), dtype=np.float32)

    def run_batch(start: int) -> None:
        # inference mode and autocast are per thread, so each worker enters them itself.
        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16,
                                                    enabled=precision == "bf16"):
            xb = torch.from_numpy(np.array(x[start:start + batch_size]))  # writable copy
            for k, m in enumerate(ready):
                if return_features:
                    f = m.embed(xb)
                    feats[k, start:start + len(xb)] = f.numpy()
                    out[k, start:start + len(xb)] = m.classify(f).float().numpy()
                else:
                    out[k, start:start + len(xb)] = m(xb).float().numpy()

    starts = range(0, len(x), batch_size)
    workers = min(resolve_threads(threads), max(1, len(starts)))
    with torch_threads(1), ThreadPoolExecutor(workers) as pool:
        for _ in progress(pool.map(run_batch, starts), desc="predict", total=len(starts),
                          quiet=quiet):
            pass
    if return_features:
        return (out[0], feats[0]) if single else (out, feats)
    return out[0] if single else out


def _n_outputs(model: nn.Module, x: np.ndarray) -> int:
    """Number of logits per image: the head's width, else one probe forward pass."""
    head = getattr(model, "head", None)
    if isinstance(head, nn.Linear):
        return head.out_features
    with torch.inference_mode():
        return int(model(torch.from_numpy(np.array(x[:1]))).shape[1]) if len(x) else 0
