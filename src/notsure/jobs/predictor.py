"""The deployed selective predictor: K fold CNNs, their decision thresholds and class names.

Saved in a run folder as ``models/fold<k>.safetensors`` (+ JSON configs, via
:mod:`notsure.models.store`, never unpickled) and ``predictor.json`` (thresholds, class names,
image shape, the score rule), so ``notsure predict RUN_DIR INPUT`` needs nothing else.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from torch import nn

from notsure import NOT_SURE
from notsure.decisions import ThresholdStrategy, ensemble_margins
from notsure.decisions.ood import OODGuard
from notsure.errors import ConfigError, DataError
from notsure.io.run_folder import RunFolder
from notsure.models.cnn import default_precision
from notsure.models.predict import predict_logits
from notsure.models.store import load_model, save_model

PREDICTOR_FILE = "predictor.json"
PREDICTOR_FORMAT = "notsure-selective-predictor/1"
SCORE_RULE = ("min over members of the logit margin z_c - max_{j!=c} z_j; "
              "candidate = argmax of mean logits")


@dataclass
class Decisions:
    """What the predictor says about a batch of images."""

    mean_logits: np.ndarray  # (N, C): ensemble mean, picks the candidate class
    margins: np.ndarray  # (N, C): the calibrated score, min over members
    member_logits: np.ndarray  # (K, N, C)
    prediction: np.ndarray  # (N,): class index or NOT_SURE
    confidence: np.ndarray  # (N,): candidate's margin above its threshold (>0: answered)
    out_of_distribution: np.ndarray | None = None  # (N,) bool, where the predictor has a guard
    ood_score: np.ndarray | None = None  # (N,): the guard's score (higher = less like training)

    @property
    def candidate(self) -> np.ndarray:
        return self.mean_logits.argmax(axis=1)

    @property
    def reason(self) -> np.ndarray:
        """Why each image got its answer: answered, below_threshold or out_of_distribution."""
        reason = np.where(self.prediction == NOT_SURE, "below_threshold", "answered")
        if self.out_of_distribution is not None:
            reason = np.where(self.out_of_distribution, "out_of_distribution", reason)
        return reason.astype(object)


@dataclass
class SelectivePredictor:
    """An ensemble plus per-class thresholds on the ensemble margin."""

    models: list[nn.Module]
    strategy: ThresholdStrategy
    class_names: tuple[str, ...]
    image_shape: tuple[int, int]
    precision: str = field(default_factory=default_precision)
    guard: OODGuard | None = None  # out-of-distribution guard, applied before the thresholds

    def decide_logits(self, member_logits: np.ndarray,
                      member_features: np.ndarray | None = None) -> Decisions:
        """Apply the decision rule to members' logits ``(K, N, C)`` (and, when the predictor has
        a guard, their penultimate features ``(K, N, F)``: out-of-distribution inputs abstain)."""
        margins = ensemble_margins(member_logits)
        mean = member_logits.mean(axis=0)
        prediction = self.strategy.decide(margins, mean)
        ood = score = None
        if self.guard is not None:
            if member_features is None:
                raise ConfigError("this predictor has an out-of-distribution guard: pass the "
                                  "members' features (member_features=)")
            score = self.guard.score(member_features)
            ood = score > self.guard.threshold
            prediction = np.where(ood, NOT_SURE, prediction)
        return Decisions(
            mean_logits=mean, margins=margins, member_logits=member_logits,
            prediction=prediction, confidence=self.strategy.confidence(margins, mean),
            out_of_distribution=ood, ood_score=score,
        )

    def predict(self, x: np.ndarray, *, batch_size: int = 256, quiet: bool = True) -> Decisions:
        """Decisions for raw-pixel images ``x`` of shape ``(N, H, W)``."""
        if x.ndim != 3 or tuple(x.shape[1:]) != tuple(self.image_shape):
            raise DataError(
                f"images have shape {tuple(x.shape[1:])} but the model was trained on "
                f"{tuple(self.image_shape)}; resize them or use a run trained on that size"
            )
        if self.guard is None:
            return self.decide_logits(predict_logits(
                self.models, x, batch_size=batch_size, precision=self.precision, quiet=quiet))
        logits, features = predict_logits(self.models, x, batch_size=batch_size,
                                          precision=self.precision, quiet=quiet,
                                          return_features=True)
        return self.decide_logits(logits, features)

    def labels_of(self, prediction: np.ndarray) -> list[str]:
        """Readable labels: class names, or ``not_sure``."""
        names = np.array(list(self.class_names) + ["not_sure"], dtype=object)
        return names[np.where(prediction == NOT_SURE, len(self.class_names), prediction)].tolist()

    def save(self, run: RunFolder, configs: list, meta: dict) -> None:
        """Write the members and ``predictor.json`` into the run folder (atomically)."""
        files = []
        for k, (model, config) in enumerate(zip(self.models, configs, strict=True)):
            name = f"models/fold{k}"
            save_model(run.path / name, model, config, image_shape=self.image_shape,
                       meta={"fold": k, "class_names": list(self.class_names), **meta})
            run.file(name + ".safetensors")
            run.file(name + ".json")
            files.append(name)
        run.write_json(PREDICTOR_FILE, {
            "format": PREDICTOR_FORMAT,
            "members": files,
            "class_names": list(self.class_names),
            "image_shape": list(self.image_shape),
            "precision": self.precision,
            "thresholds": self.strategy.thresholds.tolist(),
            "score_rule": SCORE_RULE,
            **({} if self.guard is None else {"guard": self.guard.to_dict()}),
            **meta,
        })

    @classmethod
    def load(cls, run_dir: str | Path) -> SelectivePredictor:
        """Read a predictor from a run folder written by ``notsure selective``."""
        run_dir = Path(run_dir)
        path = run_dir / PREDICTOR_FILE
        if not run_dir.is_dir():
            raise ConfigError(
                f"{run_dir} is not a folder; give the run folder of `notsure selective`")
        if not path.is_file():
            raise ConfigError(
                f"{run_dir} is not a selective run folder: {PREDICTOR_FILE} is missing "
                "(was the run finished?)"
            )
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
            if doc.get("format") != PREDICTOR_FORMAT:
                raise ValueError(f"format {doc.get('format')!r}, expected {PREDICTOR_FORMAT!r}")
            thresholds = np.asarray(doc["thresholds"], dtype=np.float64)
            class_names = tuple(str(c) for c in doc["class_names"])
            shape = tuple(int(s) for s in doc["image_shape"])
            members = [run_dir / m for m in doc["members"]]
            precision = str(doc.get("precision", "bf16"))
            guard = OODGuard.from_dict(doc["guard"]) if "guard" in doc else None
        except (ValueError, KeyError, TypeError) as exc:
            raise ConfigError(f"{path}: not a valid predictor file ({exc})") from exc
        if thresholds.shape != (len(class_names),) or len(shape) != 2 or not members:
            raise ConfigError(f"{path}: thresholds, class names or image shape are inconsistent")
        models = [load_model(m).model for m in members]
        return cls(models=models, strategy=ThresholdStrategy(thresholds),
                   class_names=class_names, image_shape=shape, precision=precision, guard=guard)
