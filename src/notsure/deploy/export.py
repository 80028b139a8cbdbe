"""``notsure export``: write a run's ensemble as ONNX with its decision rule beside it."""

from __future__ import annotations

import json
from pathlib import Path

from notsure.deploy.engine import run_info
from notsure.deploy.predictor import SelectivePredictor
from notsure.errors import ConfigError, DataError
from notsure.io.atomic import atomic_write_bytes, atomic_write_json
from notsure.io.hashing import sha256_file
from notsure.io.run_folder import DECISION_FILE, ONNX_MODEL_FILE, RUN_FILES
from notsure.models.onnx_session import onnx_available

FORMATS = ("onnx",)
DECISION_FORMAT = RUN_FILES[DECISION_FILE].tag


def run_export(run_dir: str | Path, format: str = "onnx", out: str | Path | None = None) -> Path:
    """Write ``ensemble.onnx`` and ``decision.json`` into ``out`` (default RUN_DIR/export)
    after checking that ONNX Runtime reproduces torch's logits; return the folder."""
    if format not in FORMATS:
        raise ConfigError(f"--format {format!r}: expected one of {FORMATS}")
    if not onnx_available():
        raise ConfigError("export needs onnx and onnxruntime: pip install 'notsure[serve]'")
    from notsure.decisions import RULE_TEXT
    from notsure.models.onnx_export import faithful_graph
    from notsure.models.onnx_session import FEATURES, INPUT, OUTPUT

    predictor = SelectivePredictor.load(run_dir)
    try:
        proto, gap = faithful_graph(predictor.networks(), predictor.image_shape)
    except DataError as exc:
        raise DataError(f"{run_dir}: {exc}; the export is not written") from None
    folder = Path(out) if out is not None else Path(run_dir) / "export"
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(folder / ONNX_MODEL_FILE, proto.SerializeToString())
    info = run_info(run_dir, predictor)
    atomic_write_json(folder / DECISION_FILE, {
        "format": DECISION_FORMAT,
        "model": ONNX_MODEL_FILE,
        "model_sha256": sha256_file(folder / ONNX_MODEL_FILE),
        "input": {"name": INPUT, "shape": ["N", *predictor.image_shape], "dtype": "float32",
                  "meaning": "raw pixels 0..255, light ink on black (MNIST form)"},
        "output": {"name": OUTPUT, "shape": [predictor.n_models, "N",
                                             len(predictor.class_names)],
                   "dtype": "float32", "meaning": "every member's logits"},
        "features": {"name": FEATURES, "meaning": "every member's penultimate features (K, N, F),"
                                                 " what the out-of-distribution guard scores"},
        "rule": predictor.rule,
        "rule_text": RULE_TEXT[predictor.rule] + (
            "; margin of class c = z_c - max_{j!=c} z_j; answer the candidate if its score "
            "> thresholds[candidate] else not_sure"),
        "n_folds": predictor.n_folds,
        "members_per_fold": predictor.members,
        "route": ("fold = little-endian uint32 of the BLAKE2b (4-byte digest) of the image's "
                  "uint8 pixels in C order, modulo n_folds; members are fold-major"),
        "guard": None if predictor.guard is None else {
            **predictor.guard.to_dict(),
            "rule": "score = mean over the answering fold's members of the Mahalanobis distance "
                    "of its features to the nearest class mean; pixels (if present): RMS "
                    "error of the image's reconstruction from its fold's principal components "
                    "(x - mean, projected on components and back); ink (if present): "
                    "Mahalanobis distance of 4 ink statistics (log(1 + pixels >= 25), share "
                    "of those below 200, their mean value / 255, share with all 4 neighbours "
                    ">= 25) from mean under precision; not_sure (out_of_distribution) if any "
                    "score exceeds its threshold, checked before the class thresholds"},
        "class_names": list(predictor.class_names),
        "thresholds": [float(t) for t in predictor.strategy.thresholds],
        "max_logit_gap_vs_torch": gap,
        **{k: info[k] for k in ("run_id", "target_fpr", "delta", "test_coverage",
                                "certificates")},
    })
    return folder


def read_decision(folder: str | Path) -> dict:
    """The ``decision.json`` of an export folder (for clients that deploy the ONNX file)."""
    path = Path(folder) / DECISION_FILE
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(f"{path}: not a readable export decision file ({exc})") from exc
    if doc.get("format") != DECISION_FORMAT:
        raise DataError(f"{path}: format {doc.get('format')!r}, expected {DECISION_FORMAT!r}")
    return doc
