"""Finished tasks of a run, saved as soon as they exist, so a killed run can be resumed.

``CheckpointStore(run_dir)`` keeps one folder per task under ``checkpoints/<name>/``: models as
safetensors + JSON (:mod:`notsure.models.store`, never unpickled), arrays as ``.npy`` (no
pickle) and ``done.json`` (the task's record), written last and atomically: a task is finished
exactly when its ``done.json`` exists.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from notsure.errors import DataError
from notsure.io.atomic import atomic_path, atomic_write_json
from notsure.io.run_folder import CHECKPOINT_DONE

FOLDER = "checkpoints"


@dataclass
class Checkpoint:
    """A finished task read back: its models, arrays and record (``meta``)."""

    models: dict[str, Any] = field(default_factory=dict)  # name -> StoredModel
    arrays: dict[str, np.ndarray] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)


class CheckpointStore:
    """Per-task results inside a run folder."""

    def __init__(self, run_dir: str | os.PathLike[str]) -> None:
        self.root = Path(run_dir) / FOLDER

    def _dir(self, name: str) -> Path:
        if not name or "/" in name or name.startswith("."):
            raise ValueError(f"checkpoint name {name!r}: use a plain file name")
        return self.root / name

    def has(self, name: str) -> bool:
        """Whether task ``name`` finished (its ``done.json`` exists)."""
        return (self._dir(name) / CHECKPOINT_DONE).is_file()

    def finished(self) -> list[str]:
        """Names of every finished task, sorted."""
        if not self.root.is_dir():
            return []
        return sorted(p.parent.name for p in self.root.glob(f"*/{CHECKPOINT_DONE}"))

    def save(self, name: str, *, models: dict[str, tuple] | None = None,
             arrays: dict[str, np.ndarray] | None = None,
             meta: dict[str, Any] | None = None) -> Path:
        """Write task ``name``'s results; ``models`` maps a name to ``(model, config,
        image_shape)``. ``done.json`` goes last, so a crash leaves the task unfinished."""
        from notsure.models.store import save_model

        folder = self._dir(name)
        folder.mkdir(parents=True, exist_ok=True)
        for key, array in (arrays or {}).items():
            with atomic_path(folder / f"{key}.npy") as tmp, open(tmp, "wb") as fh:
                np.save(fh, np.asarray(array), allow_pickle=False)  # a path would gain ".npy"
        for key, (model, config, image_shape) in (models or {}).items():
            save_model(folder / key, model, config, image_shape=image_shape)
        return atomic_write_json(folder / CHECKPOINT_DONE, {
            "name": name, "arrays": sorted(arrays or {}), "models": sorted(models or {}),
            "meta": meta or {}})

    def meta(self, name: str) -> dict[str, Any]:
        """The record of finished task ``name`` without loading its models or arrays."""
        path = self._dir(name) / CHECKPOINT_DONE
        try:
            return json.loads(path.read_text(encoding="utf-8")).get("meta") or {}
        except (OSError, ValueError, AttributeError) as exc:
            raise DataError(f"{path}: unreadable checkpoint record ({exc})") from None

    def load(self, name: str) -> Checkpoint:
        """Read task ``name`` back; DataError names the file if anything is missing or altered."""
        from notsure.models.store import load_model

        folder = self._dir(name)
        path = folder / CHECKPOINT_DONE
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
            arrays = {k: np.load(folder / f"{k}.npy", allow_pickle=False)
                      for k in record["arrays"]}
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise DataError(f"{path}: unreadable checkpoint ({exc}); delete the folder "
                            f"{folder} to train that task again") from None
        models = {k: load_model(folder / k) for k in record["models"]}
        return Checkpoint(models=models, arrays=arrays, meta=record.get("meta") or {})
