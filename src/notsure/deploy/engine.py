"""A selective run loaded once and ready to answer: members scored by ONNX Runtime or torch,
decisions taken by the run's own rule (``SelectivePredictor.decide_logits``) for both.

ONNX Runtime is the default where it is installed (measured faster here, see
``benchmarks/bench_serve.py``). It runs the per-fold graphs the run stored (sealed through
``predictor.json``), without importing torch; for a run that stored none it builds them from
the networks at load time. ``notsure export`` writes the whole ensemble as one graph.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from notsure.constants import NOT_SURE
from notsure.deploy.predictor import Decisions, PixelChecks, SelectivePredictor
from notsure.deploy.selective_run import read_json
from notsure.errors import ConfigError, DataError
from notsure.io.run_folder import METRICS_FILE, PREDICTOR_FILE, THRESHOLDS_FILE
from notsure.models.onnx_session import onnx_available
from notsure.models.runtime import BACKENDS

#: Why an image got its label; the predictor's own ``reason`` is used when it has one.
ANSWERED, BELOW_THRESHOLD = "answered", "below_threshold"


def resolve_backend(backend: str, precision: str = "fp32") -> str:
    """``auto`` becomes ``onnx`` where ONNX Runtime is installed and the run scores in fp32
    (the graph is fp32; a bf16 run keeps torch, whose bf16 numbers its thresholds were set on),
    else ``torch``."""
    if backend not in BACKENDS:
        raise ConfigError(f"--backend {backend!r}: expected one of {BACKENDS}")
    if backend == "auto":
        return "onnx" if onnx_available() and precision == "fp32" else "torch"
    if backend == "onnx" and not onnx_available():
        raise ConfigError("--backend onnx needs onnx and onnxruntime: "
                          "pip install 'notsure[serve]' (or use --backend torch)")
    return backend


def reasons_of(decisions: Decisions) -> list[str]:
    """Per image ``answered``, ``below_threshold`` or the predictor's own reason."""
    reason = getattr(decisions, "reason", None)
    if reason is not None:
        return [str(r) for r in reason]
    return [ANSWERED if p != NOT_SURE else BELOW_THRESHOLD for p in decisions.prediction]


@dataclass
class Engine:
    """A predictor plus the back end that computes its members' logits."""

    predictor: SelectivePredictor
    backend: str
    threads: int | None = None

    def __post_init__(self) -> None:
        p = self.predictor
        if self.backend == "onnx":
            from notsure.models.onnx_session import OnnxEnsemble

            # One graph per fold: the routed rule runs only the answering fold's members.
            # The run's stored graphs load without torch; older runs build them here.
            graphs = p.graphs
            if graphs is None:
                from notsure.models.onnx_export import ensemble_to_onnx

                graphs = [ensemble_to_onnx(p.fold_models(k), p.image_shape)
                          for k in range(p.n_folds)]
            self._onnx = [OnnxEnsemble(g, threads=self.threads) for g in graphs]
        elif self.backend == "torch":
            from notsure.models.inference import prepare_for_inference

            self._ready = [prepare_for_inference(m) for m in p.models]
        else:
            raise ConfigError(f"backend {self.backend!r}: expected 'onnx' or 'torch'")

    def _score(self, members: range, x: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """Logits (and features, when the run has a guard) of the members in ``members``."""
        guarded = self.predictor.guard is not None
        if self.backend == "onnx":
            per_fold = self.predictor.members
            parts = [self._onnx[k].logits_and_features(x, features=guarded)
                     for k in range(members.start // per_fold, members.stop // per_fold)]
            logits = np.concatenate([z for z, _ in parts])
            return logits, (np.concatenate([f for _, f in parts]) if guarded else None)
        from notsure.models.inference import predict_logits

        out = predict_logits(self._ready[members.start:members.stop], x,
                             precision=self.predictor.precision, threads=self.threads,
                             prepared=True, return_features=guarded)
        return out if guarded else (out, None)

    @classmethod
    def load(cls, run_dir: str | Path, backend: str = "auto",
             threads: int | None = None) -> Engine:
        """Load the run's predictor and ready the back end (``auto``: ONNX where installed)."""
        return cls.ready(SelectivePredictor.load(run_dir, networks=False), backend, threads)

    @classmethod
    def ready(cls, predictor: SelectivePredictor, backend: str = "auto",
              threads: int | None = None) -> Engine:
        """The back end for a predictor loaded without its networks: the slow part of
        :meth:`load` (torch or ONNX Runtime, the networks or graphs)."""
        backend = resolve_backend(backend, predictor.precision)
        if backend == "torch" or predictor.graphs is None:
            predictor.load_networks()
        return cls(predictor, backend, threads)

    def member_logits(self, x: np.ndarray) -> np.ndarray:
        """Every member's logits ``(K*M, N, C)`` for raw-pixel images ``(N, H, W)``."""
        return self._score(range(self.predictor.n_models), x)[0]

    def predict(self, x: np.ndarray, checks: PixelChecks | None = None) -> Decisions:
        """Decisions for images ``(N, H, W)``, by the run's rule (routing and guard included)
        whatever the back end; ``checks``: the predictor's ``pixel_checks(x)``, if done."""
        shape = tuple(self.predictor.image_shape)
        if x.ndim != 3 or tuple(x.shape[1:]) != shape:
            raise DataError(f"images have shape {tuple(x.shape[1:])} but the model was "
                            f"trained on {shape}")
        return self.predictor.predict(x, scorer=self._score, checks=checks)


def run_info(run_dir: str | Path, predictor: SelectivePredictor) -> dict[str, Any]:
    """What a client needs to know about a run: id, classes, thresholds, target, certificates.

    ``run_id`` is the folder name and the first 12 hex digits of the SHA-256 of
    ``predictor.json`` (which names every member's weights hash via its model files).
    """
    run_dir = Path(run_dir)
    predictor_doc = read_json(run_dir / PREDICTOR_FILE, required=False) or {}
    metrics = read_json(run_dir / METRICS_FILE, required=False) or {}
    thresholds = read_json(run_dir / THRESHOLDS_FILE, required=False) or {}
    digest = hashlib.sha256((run_dir / PREDICTOR_FILE).read_bytes()).hexdigest()[:12]
    after = metrics.get("after", {})
    return {
        "run_id": f"{run_dir.resolve().name}-{digest}",
        "class_names": list(predictor.class_names),
        "image_shape": list(predictor.image_shape),
        "thresholds": [float(t) for t in predictor.strategy.thresholds],
        "target_fpr": metrics.get("target_fpr", predictor_doc.get("target_fpr")),
        "delta": metrics.get("delta", predictor_doc.get("delta")),
        "test_coverage": after.get("coverage"),
        "test_accuracy_answered": after.get("selective_accuracy"),
        "test_n": metrics.get("test", {}).get("n"),
        "certificates": thresholds.get("certificates", []),
        "score_rule": predictor_doc.get("score_rule"),
        "members": predictor.n_models,
    }
