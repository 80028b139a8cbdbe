"""Training loop for the CNNs: seeded, mixed-precision on CPU, with per-epoch history."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from notsure.errors import DataError
from notsure.io.progress import progress
from notsure.models.augment import random_affine
from notsure.models.cnn import CNNConfig, ConvNet, build_model, torch_threads
from notsure.models.inference import check_images, predict_logits


@dataclass
class TrainResult:
    """The trained network (eval mode), the image size it was trained on, and one dict of
    figures per epoch (train loss/accuracy, optional val loss/accuracy, seconds, images/s)."""

    model: ConvNet
    config: CNNConfig
    image_shape: tuple[int, int]
    history: list[dict[str, Any]] = field(default_factory=list)

    @property
    def seconds(self) -> float:
        return float(sum(h["seconds"] for h in self.history))


def _check_labels(y: np.ndarray, n: int, n_classes: int, name: str) -> np.ndarray:
    y = np.asarray(y)
    if y.shape != (n,) or y.dtype.kind not in "iu":
        raise DataError(f"{name}: expected {n} integer labels, got {y.dtype} {y.shape}")
    if n and (y.min() < 0 or y.max() >= n_classes):
        raise DataError(f"{name}: labels must lie in 0..{n_classes - 1}, "
                        f"found {y.min()}..{y.max()}")
    return y.astype(np.int64)


def _optimizer(model: ConvNet, config: CNNConfig) -> torch.optim.Optimizer:
    """AdamW; weight decay on conv/linear weights only (not on BatchNorm or biases)."""
    decay = [p for p in model.parameters() if p.ndim > 1]
    no_decay = [p for p in model.parameters() if p.ndim <= 1]
    groups = [{"params": decay, "weight_decay": config.weight_decay},
              {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=config.lr)


def lr_factor(step: int, total_steps: int, config: CNNConfig) -> float:
    """Learning-rate multiplier at optimizer ``step`` (0-based) of ``total_steps``.

    "onecycle": cosine rise from 1/25 to 1 over the warm-up, cosine fall to 1e-4 after it (the
    learning-rate shape of Smith's one-cycle policy). "cosine": linear rise from 0, cosine to 0.
    """
    warmup = round(config.warmup_frac * total_steps)
    start, end = (1 / 25, 1e-4) if config.schedule == "onecycle" else (0.0, 0.0)
    if step < warmup:
        t = step / warmup
        rise = t if config.schedule == "cosine" else 0.5 * (1 - math.cos(math.pi * t))
        return start + (1 - start) * rise
    t = min(1.0, (step - warmup) / max(1, total_steps - warmup))
    return end + (1 - end) * 0.5 * (1 + math.cos(math.pi * t))


def train_cnn(
    x: np.ndarray,
    y: np.ndarray,
    n_classes: int,
    config: CNNConfig,
    seed: int,
    *,
    x_val: np.ndarray | None = None,
    y_val: np.ndarray | None = None,
    quiet: bool = False,
) -> TrainResult:
    """Train a fresh network on raw-pixel images ``x`` ``(N, H, W)`` with labels ``y``.

    Deterministic given ``seed`` (initialisation, shuffling, augmentation, dropout, subsample)
    on a fixed machine and thread count. If ``x_val``/``y_val`` are given, each epoch also
    records validation loss and accuracy. Torch's multi-threaded training runs many times
    slower when another process shares a core; to train several models on a busy machine, run
    them in separate processes with ``config.threads=1``.
    """
    x, y, x_val, y_val = _prepare_data(x, y, n_classes, config, seed, x_val, y_val)
    with torch_threads(config.threads), torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        gen = torch.Generator().manual_seed(seed)
        model = _fresh_model(x, n_classes, config)
        xt = torch.tensor(x)  # a copy: the caller's array may be read-only
        yt = torch.from_numpy(y)
        batch = min(config.batch_size, len(x))
        steps_per_epoch = len(x) // batch  # drop the ragged last batch: stable BatchNorm
        opt = _optimizer(model, config)
        total_steps = config.epochs * steps_per_epoch
        sched = torch.optim.lr_scheduler.LambdaLR(
            opt, lambda step: lr_factor(step, total_steps, config))
        history: list[dict[str, Any]] = []
        for epoch in range(1, config.epochs + 1):
            row = _train_epoch(model, opt, sched, xt, yt, gen, batch, steps_per_epoch, epoch,
                               config, quiet)
            if x_val is not None:
                row.update(_validation_figures(model, x_val, y_val, config))
            history.append(row)
        model.eval()
    return TrainResult(model=model, config=config, image_shape=(x.shape[1], x.shape[2]),
                       history=history)


def _prepare_data(x: np.ndarray, y: np.ndarray, n_classes: int, config: CNNConfig, seed: int,
                  x_val: np.ndarray | None, y_val: np.ndarray | None
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray | None]:
    """Checked training and validation arrays, the training set subsampled to ``max_train``."""
    x = check_images(x)
    y = _check_labels(y, len(x), n_classes, "y")
    if len(x) == 0:
        raise DataError("x: no training images")
    if (x_val is None) != (y_val is None):
        raise DataError("x_val and y_val must be given together")
    if x_val is not None:
        x_val = check_images(x_val, "x_val")
        y_val = _check_labels(y_val, len(x_val), n_classes, "y_val")
    if config.max_train is not None and config.max_train < len(x):
        keep = np.sort(np.random.default_rng(seed).choice(len(x), config.max_train, replace=False))
        x, y = x[keep], y[keep]
    return x, y, x_val, y_val


def _fresh_model(x: np.ndarray, n_classes: int, config: CNNConfig) -> ConvNet:
    """A new network (from torch's seeded RNG) whose input scaling is fitted to ``x``'s pixels."""
    model = build_model(config, n_classes)
    pixels = x[:: max(1, len(x) // 10_000)].astype(np.float32) / 255  # a spread sample
    model.scale.mean.fill_(float(pixels.mean()))
    model.scale.std.fill_(float(pixels.std()) or 1.0)
    return model.to(memory_format=torch.channels_last)


def _train_epoch(model: ConvNet, opt: torch.optim.Optimizer,
                 sched: torch.optim.lr_scheduler.LambdaLR, xt: torch.Tensor, yt: torch.Tensor,
                 gen: torch.Generator, batch: int, steps_per_epoch: int, epoch: int,
                 config: CNNConfig, quiet: bool) -> dict[str, Any]:
    """One pass over shuffled full batches; the epoch's history row (without validation)."""
    model.train()
    t0 = time.perf_counter()
    order = torch.randperm(len(xt), generator=gen)
    loss_sum = torch.zeros((), dtype=torch.float64)
    correct = torch.zeros((), dtype=torch.int64)
    use_bf16 = config.precision == "bf16"
    steps = progress(range(steps_per_epoch), desc=f"train epoch {epoch}/{config.epochs}",
                     quiet=quiet)
    for step in steps:
        idx = order[step * batch:(step + 1) * batch]
        xb = xt[idx].unsqueeze(1).float()
        if config.augment:
            xb = random_affine(xb, gen)
        yb = yt[idx]
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=use_bf16):
            logits = model(xb.contiguous(memory_format=torch.channels_last))
        loss = F.cross_entropy(logits.float(), yb, label_smoothing=config.label_smoothing)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        loss_sum += loss.detach() * len(idx)
        correct += (logits.detach().argmax(1) == yb).sum()
    seconds = time.perf_counter() - t0
    seen = steps_per_epoch * batch
    return {
        "epoch": epoch,
        "train_loss": float(loss_sum) / seen,
        "train_acc": float(correct) / seen,
        "seconds": seconds,
        "images_per_s": seen / seconds,
        "lr_end": float(sched.get_last_lr()[0]),
    }


def _validation_figures(model: ConvNet, x_val: np.ndarray, y_val: np.ndarray,
                        config: CNNConfig) -> dict[str, float]:
    """Validation loss and accuracy of ``model`` (switched to eval mode)."""
    model.eval()
    val_logits = predict_logits(model, x_val, precision=config.precision, threads=config.threads)
    lt = torch.from_numpy(val_logits)
    return {"val_loss": float(F.cross_entropy(lt, torch.from_numpy(y_val))),
            "val_acc": float((val_logits.argmax(1) == y_val).mean())}
