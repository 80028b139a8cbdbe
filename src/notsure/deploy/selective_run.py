"""The run folder of ``notsure selective``: what it holds, how it is written (by
:mod:`notsure.jobs.selective.run`) and how it is read back.

Every reader of a selective run (``predict``, ``evaluate``, ``serve``, ``ambiguous``, the
benchmarks) goes through :class:`SelectiveRun`, so the folder's format has one owner (its file
names, kinds and versions are in :data:`notsure.io.run_folder.RUN_FILES`):

- ``manifest.json``: settings, data provenance and fingerprint, status
  (:mod:`notsure.io.run_folder`);
- ``split.json``: the locked test split and the training pool (:mod:`notsure.data.splits`);
- ``folds.json``: the cross-fitting fold of every pool position;
- ``scores.npz``: every score behind the thresholds and the test decisions;
- ``predictor.json`` + ``models/``: the deployed predictor (:mod:`notsure.deploy.predictor`);
- ``thresholds.json``, ``metrics.json``: the certificates and the measured figures.
"""

from __future__ import annotations

import json
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from notsure.data import load
from notsure.data.dataset import Dataset
from notsure.data.fetch import ensure_mnist
from notsure.data.splits import (
    Split,
    load_split,
    save_split,
)
from notsure.deploy.predictor import SelectivePredictor
from notsure.errors import ConfigError, DataError
from notsure.io.run_folder import (
    FOLDS_FILE,
    MANIFEST,
    METRICS_FILE,
    PREDICTOR_FILE,
    SCORES_FILE,
    SPLIT_FILE,
    THRESHOLDS_FILE,
    RunFolder,
)

# -- writing (by the selective job) -----------------------------------------------------------

def write_plan(run: RunFolder, split: Split, fold_of_pool: np.ndarray) -> None:
    """The locked split and the cross-fitting fold of every pool position."""
    save_split(run, split)
    run.write_json(FOLDS_FILE, {"positions": split.train.tolist(),
                                "fold": np.asarray(fold_of_pool).tolist()})


def write_scores(run: RunFolder, *, pool_positions: np.ndarray, oof_logits: np.ndarray,
                 oof_member_logits: np.ndarray, fold_of: np.ndarray, test_positions: np.ndarray,
                 test_member_logits: np.ndarray, test_routes: np.ndarray,
                 test_candidate: np.ndarray, test_prediction: np.ndarray) -> None:
    """Every score behind the thresholds and the test decisions, for audit and reuse."""
    with run.atomic(SCORES_FILE) as tmp:
        with open(tmp, "wb") as fh:
            np.savez_compressed(
                fh, pool_positions=pool_positions, oof_logits=oof_logits,
                oof_member_logits=oof_member_logits, fold_of=fold_of,
                test_positions=test_positions, test_member_logits=test_member_logits,
                test_routes=test_routes, test_candidate=test_candidate,
                test_prediction=test_prediction)


# -- reading (by everything else) -------------------------------------------------------------

def read_json(path: Path, *, required: bool = True) -> Any:
    """The JSON in ``path``; None for an absent optional file; one error naming it otherwise."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        if not required:
            return None
        raise ConfigError(f"{path} is missing: give the folder of a finished `notsure "
                          "selective` run") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(f"{path}: not a readable JSON file ({exc}); is the run folder "
                        "intact?") from None


class SelectiveRun:
    """A finished ``notsure selective`` run folder, read and checked."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if not self.path.is_dir():
            raise ConfigError(f"{self.path} is not a folder; give the run folder of `notsure "
                              "selective`")
        if not (self.path / MANIFEST).is_file():
            raise ConfigError(f"{self.path} is not a selective run folder: {MANIFEST} is "
                              "missing; give the folder of a finished `notsure selective` run")
        self.manifest = read_json(self.path / MANIFEST)
        if (self.manifest.get("job") != "selective"
                or self.manifest.get("status") != "complete"):
            unfinished = self.manifest.get("job") == "selective"
            raise ConfigError(f"{self.path}: not a finished `notsure selective` run (job "
                              f"{self.manifest.get('job')!r}, status "
                              f"{self.manifest.get('status')!r})"
                              + (f"; finish it with `notsure selective --resume {self.path}`"
                                 if unfinished else ""))

    @property
    def config(self) -> dict:
        """The run's settings as recorded."""
        return self.manifest.get("config") or {}

    @property
    def dataset_info(self) -> dict:
        """Where the run's data came from: source, format, fingerprint."""
        return self.manifest.get("data", {}).get("dataset", {})

    def dataset(self) -> Dataset:
        """The run's dataset, read from its recorded source and checked against its
        fingerprint (the split's positions would point at other images otherwise)."""
        info = self.dataset_info
        if "source" not in info:
            raise ConfigError(f"{self.path / MANIFEST}: records no dataset source")
        source = info["source"]
        if not Path(source).exists() and self.config.get("data") is None:
            source = ensure_mnist(quiet=True)  # the default data, cached elsewhere now
        ds = load(source, info.get("format"))
        if ds.fingerprint != info.get("fingerprint"):
            raise DataError(f"{self.path}: the run was trained on data with fingerprint "
                            f"{info.get('fingerprint')}, but {ds.source} now has "
                            f"{ds.fingerprint}; the positions in its split would point at "
                            "other images")
        return ds

    def split(self, n_samples: int | None = None) -> Split:
        """The locked test split and training pool."""
        return load_split(self.path / SPLIT_FILE, n_samples)

    def pool_folds(self, split: Split) -> np.ndarray:
        """Cross-fitting fold of each training-pool position (in ``split.train`` order)."""
        path = self.path / FOLDS_FILE
        doc = read_json(path)
        try:
            positions = np.asarray(doc["positions"], dtype=np.int64)
            fold = np.asarray(doc["fold"], dtype=np.int64)
        except (KeyError, TypeError, ValueError) as exc:
            raise DataError(f"{path}: expected lists \"positions\" and \"fold\" ({exc})") from None
        if positions.shape != fold.shape or not np.array_equal(np.sort(positions), split.train):
            raise DataError(f"{path}: its positions are not the training part of {SPLIT_FILE}; "
                            "the run folder is inconsistent")
        out = np.full(split.train.shape, -1, dtype=np.int64)
        out[np.searchsorted(split.train, positions)] = fold
        return out

    def scores(self, split: Split, pool_fold: np.ndarray | None = None) -> dict | None:
        """``scores.npz`` (older runs lack it: None), checked against the split and folds."""
        path = self.path / SCORES_FILE
        if not path.is_file():
            return None
        try:
            with np.load(path, allow_pickle=False) as npz:
                stored = {k: npz[k] for k in npz.files}
        except (OSError, ValueError) as exc:
            raise DataError(f"{path}: not a readable score file ({exc})") from None
        pool = stored.get("pool_positions")
        if (pool is None or not np.array_equal(pool, split.train)
                or not np.array_equal(stored.get("test_positions"), split.test)
                or (pool_fold is not None
                    and not np.array_equal(stored.get("fold_of"), pool_fold))):
            raise DataError(f"{path}: its positions or folds differ from {SPLIT_FILE}/"
                            f"{FOLDS_FILE}; the run folder is inconsistent")
        return stored

    @cached_property
    def metrics(self) -> dict:
        """``metrics.json``: the run's measured figures."""
        return read_json(self.path / METRICS_FILE)

    @cached_property
    def thresholds(self) -> dict:
        """``thresholds.json``: thresholds and certificates ({} if absent)."""
        return read_json(self.path / THRESHOLDS_FILE, required=False) or {}

    @cached_property
    def predictor_doc(self) -> dict:
        """``predictor.json`` as stored (use :meth:`predictor` to run it)."""
        return read_json(self.path / PREDICTOR_FILE)

    def predictor(self, networks: bool = True) -> SelectivePredictor:
        """The deployed predictor, verified (hashes, seal, shapes); ``networks=False`` checks
        every file the same way but loads no torch network (a cheap early check)."""
        return SelectivePredictor.load(self.path, networks=networks)
