"""The one dataset type every loader returns and every job consumes."""

from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass
from typing import Literal

import numpy as np

from notsure.errors import DataError

Kind = Literal["images", "vectors"]


def fingerprint_arrays(*arrays: np.ndarray) -> str:
    """SHA-256 over the dtype, shape and bytes of each array: a content fingerprint."""
    h = hashlib.sha256()
    for a in arrays:
        a = np.ascontiguousarray(a)
        if a.dtype.kind in "OU":
            a = np.asarray([str(v) for v in a.ravel()], dtype="U")
            h.update("\x1f".join(a.tolist()).encode("utf-8"))
        else:
            h.update(f"{a.dtype.str}{a.shape}".encode())
            h.update(a.tobytes())
    return h.hexdigest()


@dataclass(frozen=True, eq=False)
class Dataset:
    """Samples with integer labels, readable class names, sample ids and optional group ids.

    ``x`` holds images ``(N, H, W)`` (uint8 0..255 for pixel data) or vectors ``(N, D)`` float32.
    ``y[i]`` is an index into ``class_names``. ``ids`` are unique strings that say where a sample
    came from (for MNIST ``"train/123"`` or ``"t10k/42"``, the position in that file).
    ``groups`` keeps samples that must stay on one side of a split together (e.g. subject ids).
    """

    x: np.ndarray
    y: np.ndarray
    class_names: tuple[str, ...]
    ids: np.ndarray
    kind: Kind
    source: str
    format: str
    groups: np.ndarray | None = None
    fingerprint: str = ""

    def __post_init__(self) -> None:
        n = len(self.x)
        if self.kind not in ("images", "vectors"):
            raise DataError(f"{self.source}: kind must be 'images' or 'vectors', got {self.kind!r}")
        want_ndim = 3 if self.kind == "images" else 2
        if self.x.ndim != want_ndim:
            raise DataError(
                f"{self.source}: {self.kind} must have shape "
                f"{'(N, H, W)' if want_ndim == 3 else '(N, D)'}, got {self.x.shape}"
            )
        if self.y.shape != (n,) or self.y.dtype.kind not in "iu":
            raise DataError(
                f"{self.source}: labels must be {n} integers, got shape {self.y.shape} "
                f"dtype {self.y.dtype}"
            )
        if n and (self.y.min() < 0 or self.y.max() >= len(self.class_names)):
            raise DataError(
                f"{self.source}: label indices must lie in 0..{len(self.class_names) - 1}"
            )
        if self.ids.shape != (n,):
            raise DataError(f"{self.source}: need {n} sample ids, got shape {self.ids.shape}")
        if self.groups is not None and self.groups.shape != (n,):
            raise DataError(f"{self.source}: need {n} group ids, got shape {self.groups.shape}")
        if not self.fingerprint:
            object.__setattr__(self, "fingerprint", fingerprint_arrays(self.x, self.y))

    def __len__(self) -> int:
        return len(self.y)

    @property
    def n_classes(self) -> int:
        return len(self.class_names)

    @property
    def shape(self) -> tuple[int, ...]:
        """Shape of one sample: ``(H, W)`` for images, ``(D,)`` for vectors."""
        return tuple(self.x.shape[1:])

    def provenance(self) -> dict:
        """What a run manifest records about this dataset: where it came from and its content."""
        return {"source": self.source, "format": self.format, "fingerprint": self.fingerprint,
                "n": len(self), "kind": self.kind, "shape": list(self.shape),
                "classes": list(self.class_names)}

    def class_counts(self) -> np.ndarray:
        """Number of samples of each class, length ``n_classes`` (zeros included)."""
        return np.bincount(self.y, minlength=self.n_classes)

    def subset(self, index: np.ndarray) -> Dataset:
        """The samples at ``index`` (integer positions), keeping class names; new fingerprint."""
        index = np.asarray(index)
        if index.dtype == bool:
            index = np.flatnonzero(index)
        return dataclasses.replace(
            self,
            x=self.x[index],
            y=self.y[index],
            ids=self.ids[index],
            groups=None if self.groups is None else self.groups[index],
            fingerprint="",
        )
