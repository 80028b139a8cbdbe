"""The deployed selective predictor: K folds of M CNNs, the decision rule, its thresholds.

Saved in a run folder as ``models/fold<k>_member<m>.safetensors`` (+ JSON configs, via
:mod:`notsure.models.store`, never unpickled) and ``predictor.json`` (rule, thresholds, class
names, image shape, and per member: fold, weights SHA-256, class count, input shape), plus,
where ONNX is installed, each fold's members as one graph ``models/fold<k>.onnx`` (SHA-256 in
``predictor.json``), so ``notsure predict RUN_DIR INPUT`` needs nothing else and can start
without torch. Loading verifies the whole folder: the run completed, the schema holds (finite
thresholds, one per class, a known rule), and every member's weights, class count and input
shape, and every stored graph, match what was recorded at save time.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from notsure.constants import NOT_SURE
from notsure.decisions import (
    RULE_TEXT,
    RULES,
    ThresholdStrategy,
    deployed_scores,
    logit_margins,
    route,
)
from notsure.decisions.ood import OODGuard
from notsure.errors import ConfigError, DataError
from notsure.io.hashing import sha256_file
from notsure.io.run_folder import MANIFEST, PREDICTOR_FILE, RUN_FILES, RunFolder, check_sealed
from notsure.models.onnx_session import onnx_available
from notsure.models.runtime import default_precision, model_paths, read_model_header

if TYPE_CHECKING:
    from torch import nn

#: ``scorer(members, images) -> (logits (M, N, C), features (M, N, F) or None)``
Scorer = Callable[[range, np.ndarray], tuple[np.ndarray, np.ndarray | None]]

PREDICTOR_FORMAT = RUN_FILES[PREDICTOR_FILE].tag
OLD_FORMAT = "notsure-selective-predictor/1"  # one member per fold, min-member rule
REASONS = ("answered", "below_threshold", "out_of_distribution")
ONNX_FILE = "models/fold{fold}.onnx"  # each fold's members as one graph (see onnx_export)


@dataclass
class Decisions:
    """What the predictor says about a batch of images."""

    mean_logits: np.ndarray  # (N, C): the logits that pick the candidate class
    margins: np.ndarray  # (N, C): the thresholded score of the rule
    member_logits: np.ndarray | None  # (K*M, N, C) when every member ran, else None
    prediction: np.ndarray  # (N,): class index or NOT_SURE
    confidence: np.ndarray  # (N,): candidate's score above its threshold (>0: answered)
    routes: np.ndarray | None = None  # (N,): answering fold (the guard's fold for every rule)
    reason: np.ndarray | None = None  # (N,): one of REASONS
    out_of_distribution: np.ndarray | None = None  # (N,) bool, where the predictor has a guard
    ood_score: np.ndarray | None = None  # (N,): the guard's score (higher = less like training)

    @property
    def candidate(self) -> np.ndarray:
        return self.mean_logits.argmax(axis=1)

    def rows(self, start: int, stop: int) -> Decisions:
        """The decisions of images ``start:stop`` of the batch."""
        def part(name: str, value: np.ndarray | None) -> np.ndarray | None:
            if value is None:
                return None
            return value[:, start:stop] if name == "member_logits" else value[start:stop]

        return Decisions(**{f.name: part(f.name, getattr(self, f.name))
                            for f in dataclasses.fields(self)})


@dataclass(frozen=True)
class PixelChecks:
    """What a predictor works out from the pixels alone: each image's answering fold, and
    where the guard's pixel or ink check rejects it (None: the guard has neither)."""

    routes: np.ndarray
    off_pixels: np.ndarray | None


@dataclass
class SelectivePredictor:
    """An ensemble of ``n_folds`` x ``members`` CNNs (fold-major) plus per-class thresholds on the
    score of ``rule`` (see :mod:`notsure.decisions.rules`)."""

    models: list[nn.Module]
    strategy: ThresholdStrategy
    class_names: tuple[str, ...]
    image_shape: tuple[int, int]
    precision: str = field(default_factory=default_precision)
    rule: str = "min-member"
    n_folds: int = 0  # 0: one fold per model
    guard: OODGuard | None = None  # out-of-distribution guard, applied before the thresholds
    n_models: int = 0  # K*M; 0: len(models). Set alone when loaded without the networks
    graphs: list[bytes] | None = None  # each fold's stored ONNX graph (serialized), if any
    member_paths: tuple[Path, ...] = ()  # where load() found the members (for load_networks)

    def __post_init__(self) -> None:
        if self.models:
            self.n_models = len(self.models)
        if self.n_folds == 0:
            self.n_folds = self.n_models
        if (self.rule not in RULES or self.n_models < 1 or self.n_folds < 1
                or self.n_models % self.n_folds):
            raise ConfigError(f"predictor: rule {self.rule!r} or {self.n_models} models in "
                              f"{self.n_folds} folds is inconsistent")

    @property
    def members(self) -> int:
        """Members per fold (M)."""
        return self.n_models // self.n_folds

    def fold_models(self, k: int) -> list[nn.Module]:
        """The M members of fold ``k``."""
        return self.networks()[k * self.members:(k + 1) * self.members]

    def networks(self) -> list[nn.Module]:
        """The torch networks; refused when the predictor was loaded without them."""
        if not self.models:
            raise ConfigError("this predictor was loaded without its torch networks "
                              "(SelectivePredictor.load(run_dir, networks=False)); call "
                              "load_networks() first")
        return self.models

    def load_networks(self) -> SelectivePredictor:
        """Read the members' torch networks from the run folder :meth:`load` checked; returns
        self."""
        from notsure.models.store import load_model

        if not self.member_paths:
            raise ConfigError("this predictor was not loaded from a run folder: it has no "
                              "stored networks to read")
        self.models = [load_model(path).model for path in self.member_paths]
        return self

    def pixel_checks(self, images: np.ndarray, routes: np.ndarray | None = None
                     ) -> PixelChecks:
        """What needs the pixels alone, no network: each image's answering fold (``routes``, if
        known already) and the guard's pixel and ink verdicts (``predict`` can take them
        computed ahead, e.g. while the networks load)."""
        routes = route(images, self.n_folds) if routes is None else routes
        if self.guard is None or (self.guard.pixels is None and self.guard.ink is None):
            return PixelChecks(routes, None)
        off = np.zeros(len(images), dtype=bool)
        if self.guard.pixels is not None:
            off |= self.guard.pixels.score(images, routes) > self.guard.pixels.threshold
        if self.guard.ink is not None:
            off |= self.guard.ink.score(images) > self.guard.ink.threshold
        return PixelChecks(routes, off)

    def _decide(self, candidate_logits: np.ndarray, scores: np.ndarray,
                member_logits: np.ndarray | None, routes: np.ndarray | None,
                ood_score: np.ndarray | None = None, off_pixels: np.ndarray | None = None
                ) -> Decisions:
        prediction = self.strategy.decide(scores, candidate_logits)
        reason = np.where(prediction == NOT_SURE, "below_threshold", "answered").astype(object)
        ood = None
        if ood_score is not None:
            ood = ood_score > self.guard.threshold
            if off_pixels is not None:
                ood |= off_pixels
            elif self.guard.pixels is not None or self.guard.ink is not None:
                raise ConfigError("this predictor's guard also checks pixels: pass the "
                                  "images (images=)")
            prediction = np.where(ood, NOT_SURE, prediction)
            reason[ood] = "out_of_distribution"
        return Decisions(
            mean_logits=candidate_logits, margins=scores, member_logits=member_logits,
            prediction=prediction, confidence=self.strategy.confidence(scores, candidate_logits),
            routes=routes, reason=reason, out_of_distribution=ood, ood_score=ood_score)

    def _guard_scores(self, features: np.ndarray, routes: np.ndarray) -> np.ndarray:
        """Guard scores from every member's features ``(K*M, N, F)``: each image scored by the
        members of its routed fold (the kind the guard's threshold was set on)."""
        out = np.empty(features.shape[1])
        for k in range(self.n_folds):
            rows = np.flatnonzero(routes == k)
            members = range(k * self.members, (k + 1) * self.members)
            if rows.size:
                out[rows] = self.guard.score_members(features[members.start:members.stop, rows],
                                                     members)
        return out

    def decide_logits(self, member_logits: np.ndarray, routes: np.ndarray | None = None,
                      member_features: np.ndarray | None = None,
                      images: np.ndarray | None = None) -> Decisions:
        """Apply the rule to every member's logits ``(K*M, N, C)``; ``routes`` (N,) names the
        answering fold of each image (:func:`route` of the pixels; the routed rule and the
        guard need it); with a guard, also every member's penultimate features ``(K*M, N, F)``
        and the images themselves: out-of-distribution inputs abstain."""
        candidate, scores = deployed_scores(self.rule, member_logits, self.n_folds, routes)
        ood_score = None
        if self.guard is not None:
            if member_features is None or routes is None:
                raise ConfigError("this predictor has an out-of-distribution guard: pass the "
                                  "members' features (member_features=) and the routes")
            ood_score = self._guard_scores(member_features, routes)
        off_pixels = None if images is None else self.pixel_checks(images, routes).off_pixels
        return self._decide(candidate, scores, member_logits, routes, ood_score, off_pixels)

    def predict(self, x: np.ndarray, *, batch_size: int = 256, quiet: bool = True,
                scorer: Scorer | None = None, checks: PixelChecks | None = None) -> Decisions:
        """Decisions for raw-pixel images ``x`` of shape ``(N, H, W)``; the routed rule runs only
        the answering fold's members on each image. ``scorer(members, images)`` computes the
        logits ``(M, N, C)`` (and, with a guard, features ``(M, N, F)``, else None) of the
        members indexed by the range ``members`` (default: torch on :attr:`models`);
        ``checks``: :meth:`pixel_checks` of ``x``, if computed already."""
        if x.ndim != 3 or tuple(x.shape[1:]) != tuple(self.image_shape):
            raise DataError(
                f"images have shape {tuple(x.shape[1:])} but the model was trained on "
                f"{tuple(self.image_shape)}; resize them or use a run trained on that size"
            )
        guarded = self.guard is not None
        if scorer is None:
            from notsure.models.inference import predict_logits

            def scorer(members: range, images: np.ndarray) -> tuple:
                out = predict_logits(self.networks()[members.start:members.stop], images,
                                     batch_size=batch_size, precision=self.precision,
                                     quiet=quiet, return_features=guarded)
                return out if guarded else (out, None)
        checks = checks if checks is not None else self.pixel_checks(x)
        routes = checks.routes
        if self.rule != "routed":
            logits, features = scorer(range(self.n_models), x)
            candidate, scores = deployed_scores(self.rule, logits, self.n_folds, routes)
            ood_score = self._guard_scores(features, routes) if guarded else None
            return self._decide(candidate, scores, logits, routes, ood_score, checks.off_pixels)
        chosen = np.empty((len(x), len(self.class_names)), dtype=np.float32)
        ood_score = np.empty(len(x)) if guarded else None
        for k in range(self.n_folds):
            rows = np.flatnonzero(routes == k)
            if not rows.size:
                continue
            members = range(k * self.members, (k + 1) * self.members)
            z, f = scorer(members, x[rows])
            chosen[rows] = z.mean(axis=0)
            if guarded:
                ood_score[rows] = self.guard.score_members(f, members)
        return self._decide(chosen, logit_margins(chosen), None, routes, ood_score,
                            checks.off_pixels)

    def labels_of(self, prediction: np.ndarray) -> list[str]:
        """Readable labels: class names, or ``not_sure``."""
        names = np.array(list(self.class_names) + ["not_sure"], dtype=object)
        return names[np.where(prediction == NOT_SURE, len(self.class_names), prediction)].tolist()

    def save(self, run: RunFolder, configs: list, meta: dict) -> None:
        """Write the members and ``predictor.json`` into the run folder (atomically); where
        ONNX is installed and the run scores in fp32, also each fold's ONNX graph (checked
        against torch), so ``predict`` and ``serve`` can start without torch."""
        from notsure.models.store import save_model

        members = []
        for i, (model, config) in enumerate(zip(self.networks(), configs, strict=True)):
            k, m = divmod(i, self.members)
            name = f"models/fold{k}_member{m}"
            weights, _ = save_model(run.path / name, model, config, image_shape=self.image_shape,
                                    meta={"fold": k, "member": m,
                                          "class_names": list(self.class_names), **meta})
            run.file(name + ".safetensors")
            run.file(name + ".json")
            members.append({"file": name, "fold": k, "member": m,
                            "weights_sha256": sha256_file(weights),
                            "arch": config.arch, "stages": [list(s) for s in config.stages],
                            "n_classes": len(self.class_names),
                            "image_shape": list(self.image_shape)})
        run.write_json(PREDICTOR_FILE, {
            "format": PREDICTOR_FORMAT,
            "rule": self.rule,
            "score_rule": RULE_TEXT[self.rule],
            "n_folds": self.n_folds,
            "members_per_fold": self.members,
            "members": members,
            "class_names": list(self.class_names),
            "image_shape": list(self.image_shape),
            "precision": self.precision,
            "thresholds": self.strategy.thresholds.tolist(),
            **({} if self.guard is None else {"guard": self.guard.to_dict()}),
            **self._save_graphs(run),
            **meta,
        })

    def _save_graphs(self, run: RunFolder) -> dict[str, Any]:
        """Write ``models/fold<k>.onnx`` per fold; the entry of ``predictor.json`` naming them
        (empty where ONNX is missing or the run scores in bf16, whose numbers torch computes)."""
        if not onnx_available() or self.precision != "fp32":
            return {}
        from notsure.models.onnx_export import faithful_graph

        entries, gap = [], 0.0
        for k in range(self.n_folds):
            proto, fold_gap = faithful_graph(self.fold_models(k), self.image_shape)
            gap = max(gap, fold_gap)
            name = ONNX_FILE.format(fold=k)
            with run.atomic(name) as tmp:
                tmp.write_bytes(proto.SerializeToString())
            entries.append({"file": name, "fold": k, "sha256": sha256_file(run.path / name)})
        return {"onnx": entries, "onnx_max_logit_gap_vs_torch": gap}

    @classmethod
    def load(cls, run_dir: str | Path, networks: bool = True) -> SelectivePredictor:
        """Read and verify a predictor from a finished ``notsure selective`` run folder.

        ``networks=False`` reads no torch network (and never imports torch): the predictor then
        decides only through a ``scorer``, such as the stored ONNX graphs in :attr:`graphs`.
        """
        run_dir = Path(run_dir)
        path = run_dir / PREDICTOR_FILE
        if not run_dir.is_dir():
            raise ConfigError(
                f"{run_dir} is not a folder; give the run folder of `notsure selective`")
        _require_complete(run_dir)
        if not path.is_file():
            raise ConfigError(
                f"{run_dir} is not a selective run folder: {PREDICTOR_FILE} is missing")
        doc = _read_predictor_json(path)
        for spec in doc["members"]:
            _check_member(run_dir, spec, doc)
        guard = None
        if "guard" in doc:
            try:
                guard = OODGuard.from_dict(doc["guard"])
            except ConfigError as exc:
                raise ConfigError(f"{path}: {exc}") from None
            if guard.pixels is not None and len(guard.pixels.folds) != doc["n_folds"]:
                raise ConfigError(f"{path}: the pixel guard has {len(guard.pixels.folds)} "
                                  f"folds for {doc['n_folds']}; the run folder was altered")
            if len(guard.members) != len(doc["members"]):
                raise ConfigError(f"{path}: the guard has {len(guard.members)} members for "
                                  f"{len(doc['members'])} models; the run folder was altered")
        predictor = cls(models=[], strategy=ThresholdStrategy(doc["thresholds"]),
                        class_names=doc["class_names"], image_shape=doc["image_shape"],
                        precision=doc["precision"], rule=doc["rule"], n_folds=doc["n_folds"],
                        guard=guard, n_models=len(doc["members"]),
                        graphs=_read_graphs(run_dir, doc),
                        member_paths=tuple(run_dir / spec["file"] for spec in doc["members"]))
        return predictor.load_networks() if networks else predictor


def _check_member(run_dir: Path, spec: dict, doc: dict) -> None:
    """A member's files still match ``predictor.json`` (weights SHA-256, class count, input
    shape, architecture), checked from its JSON without torch, whether or not it is loaded."""
    weights, config = model_paths(run_dir / spec["file"])
    try:
        header = read_model_header(config)
        n_classes = int(header["n_classes"])
        shape = [int(s) for s in header["image_shape"]]
        stages = [[int(c) for c in stage] for stage in header["config"]["stages"]]
    except DataError as exc:
        raise ConfigError(f"{exc}; the run folder was altered") from None
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ConfigError(f"{config}: not a readable model file ({exc}); the run folder was "
                          "altered") from None
    if n_classes != len(doc["class_names"]) or shape != list(doc["image_shape"]):
        raise ConfigError(f"{config}: a model for {n_classes} classes on {tuple(shape)} images, "
                          f"but {PREDICTOR_FILE} says {len(doc['class_names'])} classes on "
                          f"{tuple(doc['image_shape'])}; the run folder was altered")
    if "weights_sha256" in spec and sha256_file(weights) != spec["weights_sha256"]:
        raise ConfigError(f"{weights}: weights differ from the SHA-256 recorded in "
                          f"{PREDICTOR_FILE}; the run folder was altered")
    if "stages" in spec and stages != spec["stages"]:
        raise ConfigError(f"{config}: architecture differs from {PREDICTOR_FILE}; the run "
                          "folder was altered")


def _read_graphs(run_dir: Path, doc: dict) -> list[bytes] | None:
    """Each fold's stored ONNX graph, verified against the SHA-256 in ``predictor.json``; None
    when the run stored none (it was trained without ONNX installed, or in bf16)."""
    entries = doc.get("onnx")
    if not entries:
        return None
    if (not isinstance(entries, list) or len(entries) != doc["n_folds"]
            or not all(isinstance(e, dict) and e.get("file") == ONNX_FILE.format(fold=k)
                       for k, e in enumerate(entries))):
        raise ConfigError(f"{run_dir / PREDICTOR_FILE}: its onnx entry does not name one graph "
                          "per fold; the run folder was altered")
    graphs = []
    for entry in entries:
        path = run_dir / entry["file"]
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise ConfigError(f"{path}: cannot read the stored ONNX graph ({exc.strerror})"
                              ) from None
        if hashlib.sha256(data).hexdigest() != entry.get("sha256"):
            raise ConfigError(f"{path}: differs from the SHA-256 recorded in {PREDICTOR_FILE}; "
                              "the run folder was altered")
        graphs.append(data)
    return graphs


def _require_complete(run_dir: Path) -> None:
    """Refuse a run folder that did not complete, or whose predictor file changed since."""
    if (run_dir / MANIFEST).is_file():  # else a bare predictor folder, no run around it
        check_sealed(run_dir, PREDICTOR_FILE)


def _read_predictor_json(path: Path) -> dict:
    """``predictor.json`` parsed and schema-checked; one ConfigError naming the file otherwise."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        fmt = doc.get("format")
        if fmt == OLD_FORMAT:  # one member per fold, min-member rule
            doc["members"] = [{"file": f, "fold": k, "member": 0}
                              for k, f in enumerate(doc["members"])]
            doc.update(rule="min-member", n_folds=len(doc["members"]))
        elif fmt != PREDICTOR_FORMAT:
            raise ValueError(f"format {fmt!r}, expected {PREDICTOR_FORMAT!r}")
        thresholds = np.asarray(doc["thresholds"], dtype=np.float64)
        class_names = tuple(str(c) for c in doc["class_names"])
        shape = tuple(int(s) for s in doc["image_shape"])
        members = list(doc["members"])
        n_folds = int(doc["n_folds"])
        rule = str(doc["rule"])
        precision = str(doc.get("precision", "bf16"))
    except (ValueError, KeyError, TypeError, AttributeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: not a valid predictor file ({exc})") from None
    problems = []
    if rule not in RULES:
        problems.append(f"unknown rule {rule!r} (expected one of {', '.join(RULES)})")
    if thresholds.shape != (len(class_names),) or len(class_names) < 2:
        problems.append(f"{thresholds.size} thresholds for {len(class_names)} class names")
    elif not np.all(np.isfinite(thresholds)):
        problems.append("thresholds must be finite numbers")
    if len(shape) != 2 or min(shape, default=0) < 1:
        problems.append(f"image_shape {shape} is not (H, W)")
    if not members or n_folds < 1 or len(members) % n_folds:
        problems.append(f"{len(members)} members do not split into {n_folds} folds")
    if precision not in ("bf16", "fp32"):
        problems.append(f"unknown precision {precision!r}")
    if problems:
        raise ConfigError(f"{path}: not a valid predictor file: {'; '.join(problems)}")
    if not all(isinstance(m, dict) and isinstance(m.get("file"), str) for m in members) or any(
            ".." in Path(m["file"]).parts or Path(m["file"]).is_absolute() for m in members):
        raise ConfigError(f"{path}: members must be relative file names inside the run folder")
    doc.update(thresholds=thresholds, class_names=class_names, image_shape=shape,
               members=members, n_folds=n_folds, rule=rule, precision=precision)
    return doc

