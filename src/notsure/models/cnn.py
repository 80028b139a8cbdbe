"""Small convolutional networks for grey-scale digit and letter images, and their settings.

A network takes raw pixels (``(N, H, W)`` or ``(N, 1, H, W)``, values 0..255, any dtype) and
returns class logits, so callers never normalise. Global average pooling before the head makes
one network work for any image size (MNIST 28x28, letters 56x56) and any number of classes.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from notsure.errors import ConfigError
from notsure.models.runtime import (  # noqa: F401  (re-exported)
    PRECISIONS,
    Precision,
    default_precision,
    native_bf16,
    resolve_threads,
)

Schedule = Literal["onecycle", "cosine"]

#: Names of the architectures ``build_model`` knows; saved configs must name one of these.
ARCHITECTURES = ("vgg",)
SCHEDULES = ("onecycle", "cosine")


@dataclass(frozen=True)
class CNNConfig:
    """Architecture and training settings of one CNN; ``default()`` and ``quick()`` are presets.

    ``stages`` lists the output channels of the 3x3 convolutions of each stage; a 2x2 max pool
    separates stages. Training: AdamW with ``lr`` peak and ``weight_decay``, ``schedule`` with a
    ``warmup_frac`` warm-up, ``label_smoothing``, random affine ``augment``ation. ``precision``
    "bf16" runs convolutions in bfloat16 autocast (AMX on recent Intel CPUs: ~1.7x faster
    training, ~2-3x faster inference, same accuracy); the head and loss stay float32. The default
    is bf16 only where the CPU has native bf16 (:func:`default_precision`); the precision used is
    recorded with every trained model.
    ``max_train`` caps the training images (a seeded random subsample), for quick runs.
    ``threads=None`` uses every core.
    """

    arch: str = "vgg"
    stages: tuple[tuple[int, ...], ...] = ((16,), (32, 32), (64, 64))
    dropout: float = 0.1
    epochs: int = 8
    batch_size: int = 128
    lr: float = 3e-3
    weight_decay: float = 5e-4
    schedule: Schedule = "onecycle"
    warmup_frac: float = 0.2
    label_smoothing: float = 0.0
    augment: bool = True
    precision: Precision = field(default_factory=default_precision)
    threads: int | None = None
    max_train: int | None = None

    def __post_init__(self) -> None:
        # JSON round trips turn tuples into lists; store tuples so configs compare equal.
        try:
            stages = tuple(tuple(int(c) for c in s) for s in self.stages)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"CNN config: stages={self.stages!r} is invalid; expected lists "
                              f"of channel counts such as [[16], [32, 32]]") from exc
        object.__setattr__(self, "stages", stages)
        self.validate()

    @classmethod
    def default(cls) -> CNNConfig:
        """The preset used by the default job: accuracy first, within the time budget."""
        return cls()

    @classmethod
    def quick(cls) -> CNNConfig:
        """The default network trained briefly on a subsample, for ``--quick`` runs."""
        return cls(epochs=3, max_train=10_000)

    @classmethod
    def preset(cls, quick: bool, **overrides: Any) -> CNNConfig:
        """``quick()`` or ``default()`` with the settings in ``overrides`` that are not None."""
        base = cls.quick() if quick else cls.default()
        changes = {k: v for k, v in overrides.items() if v is not None}
        return base.replace(**changes) if changes else base

    def validate(self) -> None:
        """Raise ConfigError naming the first setting out of range."""
        checks = [
            (self.arch in ARCHITECTURES, "arch", f"one of {ARCHITECTURES}"),
            (len(self.stages) >= 1 and all(len(s) >= 1 and min(s) >= 1 for s in self.stages),
             "stages", "non-empty channel lists with positive counts"),
            (0.0 <= self.dropout < 1.0, "dropout", "in [0, 1)"),
            (self.epochs >= 1, "epochs", ">= 1"),
            (self.batch_size >= 1, "batch_size", ">= 1"),
            (self.lr > 0, "lr", "> 0"),
            (self.weight_decay >= 0, "weight_decay", ">= 0"),
            (self.schedule in SCHEDULES, "schedule", f"one of {SCHEDULES}"),
            (0.0 <= self.warmup_frac < 1.0, "warmup_frac", "in [0, 1)"),
            (0.0 <= self.label_smoothing < 1.0, "label_smoothing", "in [0, 1)"),
            (self.precision in PRECISIONS, "precision", f"one of {PRECISIONS}"),
            (self.threads is None or self.threads >= 1, "threads", "None or >= 1"),
            (self.max_train is None or self.max_train >= 1, "max_train", "None or >= 1"),
        ]
        for ok, name, expected in checks:
            if not ok:
                raise ConfigError(
                    f"CNN config: {name}={getattr(self, name)!r} is invalid; expected {expected}"
                )

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict (tuples become lists)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CNNConfig:
        """Inverse of ``to_dict``; unknown or missing keys raise ConfigError (a saved config must
        not silently take today's defaults)."""
        if not isinstance(data, dict):
            raise ConfigError(f"CNN config: expected a mapping of settings, got {type(data)}")
        names = {f.name for f in dataclasses.fields(cls)}
        unknown, missing = sorted(set(data) - names), sorted(names - set(data))
        if unknown or missing:
            raise ConfigError(f"CNN config: unknown settings {unknown}, missing settings "
                              f"{missing}; expected exactly {sorted(names)}")
        try:
            return cls(**data)
        except TypeError as exc:
            raise ConfigError(f"CNN config: {exc}") from exc

    def replace(self, **changes: Any) -> CNNConfig:
        """A copy with some settings changed (validated)."""
        return dataclasses.replace(self, **changes)


@contextlib.contextmanager
def torch_threads(threads: int | None) -> Iterator[int]:
    """Run torch ops with ``threads`` threads (default: all cores); restore the old count."""
    old = torch.get_num_threads()
    n = resolve_threads(threads)
    torch.set_num_threads(n)
    try:
        yield n
    finally:
        torch.set_num_threads(old)


class PixelScale(nn.Module):
    """Map raw pixels (0..255) to standardised floats and add the channel axis if missing."""

    def __init__(self, mean: float = 0.0, std: float = 1.0) -> None:
        super().__init__()
        # mean/std of the training pixels on the 0..1 scale; buffers, so they are saved.
        self.register_buffer("mean", torch.tensor(float(mean)))
        self.register_buffer("std", torch.tensor(float(std)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim == 3:
            x = x.unsqueeze(1)
        return (x.float() * (1.0 / 255.0) - self.mean) / self.std


def _conv_bn_relu(c_in: int, c_out: int) -> list[nn.Module]:
    return [nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out),
            nn.ReLU(inplace=True)]


class ConvNet(nn.Module):
    """VGG-style net: [3x3 conv-BN-ReLU]* per stage, 2x2 max pool between stages, global
    average pool, dropout, linear head."""

    def __init__(self, stages: tuple[tuple[int, ...], ...], n_classes: int,
                 dropout: float = 0.0) -> None:
        super().__init__()
        self.scale = PixelScale()
        layers: list[nn.Module] = []
        c_in = 1
        for i, stage in enumerate(stages):
            if i > 0:
                layers.append(nn.MaxPool2d(2))
            for c_out in stage:
                layers += _conv_bn_relu(c_in, c_out)
                c_in = c_out
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(c_in, n_classes)
        self.n_classes = n_classes

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate features ``(N, channels)``: the global-average-pooled last stage, float32."""
        return self.pool(self.features(self.scale(x))).flatten(1).float()

    def classify(self, features: torch.Tensor) -> torch.Tensor:
        """Logits from :meth:`embed`'s features."""
        # The head always runs in float32: under bf16 autocast the logits would keep only ~3
        # significant digits, and thresholds on logit margins need finer steps than that.
        with torch.autocast(features.device.type, enabled=False):
            return self.head(self.dropout(features))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classify(self.embed(x))


def build_model(config: CNNConfig, n_classes: int) -> ConvNet:
    """A freshly initialised network for ``config`` with ``n_classes`` outputs."""
    if n_classes < 2:
        raise ConfigError(f"n_classes={n_classes}: a classifier needs at least 2 classes")
    if config.arch == "vgg":
        return ConvNet(config.stages, n_classes, config.dropout)
    raise ConfigError(f"CNN config: unknown arch {config.arch!r}; expected one of {ARCHITECTURES}")


def fuse_for_inference(model: ConvNet) -> ConvNet:
    """An eval-mode copy computing the same function with fewer memory passes (CPU inference
    is bound by memory traffic, not arithmetic): each BatchNorm folded into its convolution,
    and ReLU moved after the max pool that follows it (max and ReLU commute; 4x fewer values)."""
    fused = copy.deepcopy(model).eval()
    layers = list(fused.features)
    out: list[nn.Module] = []
    for layer in layers:
        if isinstance(layer, nn.BatchNorm2d) and out and isinstance(out[-1], nn.Conv2d):
            out[-1] = fuse_conv_bn_eval(out[-1], layer)
        elif isinstance(layer, nn.MaxPool2d) and out and isinstance(out[-1], nn.ReLU):
            out.insert(len(out) - 1, layer)
        else:
            out.append(layer)
    fused.features = nn.Sequential(*out)
    return fused
