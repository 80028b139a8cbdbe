"""The run folder every job writes: artifacts plus a ``manifest.json`` that makes the run auditable.

The manifest is written when the run starts (``status: running``) and rewritten at the end
(``status: complete``), so a crashed run never looks complete. A run that did not finish can be
continued in its own folder (``resume=``) with the same settings and data.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import datetime as dt
import importlib.metadata
import io
import json
import os
import platform
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from notsure.errors import ConfigError, DataError
from notsure.io.atomic import atomic_path, atomic_write_json, atomic_write_text, to_jsonable
from notsure.io.hashing import sha256_file


@dataclasses.dataclass(frozen=True)
class RunFile:
    """A file a run folder (or a saved model folder) holds: its name, and the kind and version
    of its format. The manifest records the tag of every such file a run wrote."""

    name: str
    kind: str
    version: int
    what: str

    @property
    def tag(self) -> str:
        return f"notsure-{self.kind}/{self.version}"


# Every file name of every folder format is named here, and only here: readers and writers
# import these constants. Formats that carry their own tag inside (thresholds, predictor, decision,
# selective classifier) take it from RUN_FILES.
MANIFEST = "manifest.json"
METRICS_FILE = "metrics.json"
SUMMARY_FILE = "summary.json"
SPLIT_FILE = "split.json"
FOLDS_FILE = "folds.json"
SUBJECT_FOLDS_FILE = "subject_folds.json"
SCORES_FILE = "scores.npz"
OOF_SCORES_FILE = "oof_scores.npz"
PREDICTIONS_FILE = "predictions.csv"
THRESHOLDS_FILE = "thresholds.json"
CERTIFICATES_FILE = "certificates.csv"
PREDICTOR_FILE = "predictor.json"
EXCLUSIONS_FILE = "exclusions.csv"
REPORT_HTML = "report.html"
REPORT_MD = "report.md"
CHECKPOINT_DONE = "done.json"
ESTIMATOR_FILE = "selective.json"
ONNX_MODEL_FILE = "ensemble.onnx"
DECISION_FILE = "decision.json"

RUN_FILES: dict[str, RunFile] = {f.name: f for f in (
    RunFile(MANIFEST, "manifest", 1, "settings, data provenance, timings, status (every job)"),
    RunFile(METRICS_FILE, "metrics", 1, "the measured figures (selective, compare, embeddings)"),
    RunFile(SUMMARY_FILE, "ambiguity-summary", 1, "counts and top images (ambiguous)"),
    RunFile(SPLIT_FILE, "split", 1, "the locked test split and the training pool"),
    RunFile(FOLDS_FILE, "cross-fit-folds", 1, "the cross-fitting fold of every pool position"),
    RunFile(SUBJECT_FOLDS_FILE, "subject-folds", 1, "image ids, subjects and outer folds"),
    RunFile(SCORES_FILE, "selective-scores", 1, "every score behind thresholds and decisions"),
    RunFile(OOF_SCORES_FILE, "embedding-scores", 1, "out-of-fold k-NN scores (embeddings)"),
    RunFile(PREDICTIONS_FILE, "embedding-predictions", 1, "out-of-fold predictions as CSV"),
    RunFile(THRESHOLDS_FILE, "thresholds", 1, "certified per-class thresholds"),
    RunFile(CERTIFICATES_FILE, "certificates", 1, "one row per class certificate (calibrate)"),
    RunFile(PREDICTOR_FILE, "selective-predictor", 2, "the deployed ensemble, rule and guard"),
    RunFile(EXCLUSIONS_FILE, "exclusions", 1, "suspected label errors to drop or relabel"),
    RunFile(REPORT_HTML, "report-html", 1, "the self-contained report"),
    RunFile(REPORT_MD, "report-md", 1, "the report as Markdown"),
    RunFile(CHECKPOINT_DONE, "checkpoints", 1, "finished tasks of a resumable run"),
    RunFile(ESTIMATOR_FILE, "selective-classifier", 1, "a saved SelectiveClassifier"),
    RunFile(ONNX_MODEL_FILE, "onnx-ensemble", 1, "the exported ensemble graph"),
    RunFile(DECISION_FILE, "onnx-decision", 1, "the exported decision rule"),
)}
#: Settings that say where and how a run executes, not what it computes: a resumed run may
#: change them.
EXECUTION_ONLY = ("out", "quiet", "resume", "executor", "workers", "scheduler", "mlflow")
#: Keys of ``record_data`` entries that fix a file's content; a resumed run must see the same.
_CONTENT_KEYS = ("fingerprint", "sha256")
_PACKAGES = ("notsure", "numpy", "scipy", "scikit-learn", "torch", "matplotlib", "safetensors")


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def package_versions() -> dict[str, str]:
    """Installed versions of the packages whose behaviour a run depends on."""
    versions = {"python": platform.python_version()}
    for name in _PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def default_run_dir(job: str, root: str | os.PathLike[str] = "runs") -> Path:
    """``runs/<job>-<UTC timestamp>``; a numeric suffix keeps two runs in one second apart."""
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%d-%H%M%S")
    base = Path(root) / f"{job}-{stamp}"
    path, n = base, 1
    while path.exists():
        n += 1
        path = base.with_name(f"{base.name}-{n}")
    return path


class RunFolder:
    """A job's output folder: atomic artifact writes, stage timings and the manifest.

    ``resume``: the folder of an unfinished run of the same job to continue instead of starting
    a new one; every setting outside ``EXECUTION_ONLY`` must be what that run was given.
    """

    def __init__(
        self,
        job: str,
        out: str | os.PathLike[str] | None = None,
        *,
        config: Any = None,
        seed: int | None = None,
        argv: Sequence[str] | None = None,
        resume: str | os.PathLike[str] | None = None,
    ) -> None:
        if dataclasses.is_dataclass(config) and not isinstance(config, type):
            config = dataclasses.asdict(config)
        self.resumed = resume is not None
        if resume is not None:
            self._reopen(Path(resume), job, to_jsonable(config), argv)
            return
        self.path = Path(out) if out is not None else default_run_dir(job)
        if self.path.exists() and not self.path.is_dir():
            raise ConfigError(f"--out {self.path} exists and is not a folder; choose another path")
        if (self.path / MANIFEST).exists():
            raise ConfigError(
                f"--out {self.path} already holds a run ({MANIFEST}); choose an empty folder"
            )
        self.path.mkdir(parents=True, exist_ok=True)
        self.manifest: dict[str, Any] = {
            "job": job,
            "status": "running",
            "command": list(sys.argv if argv is None else argv),
            "config": to_jsonable(config),
            "seed": seed,
            "data": {},
            "versions": package_versions(),
            "platform": {"machine": platform.machine(), "processor": platform.processor(),
                         "cpus": os.cpu_count()},
            "started": _now(),
            "finished": None,
            "timings_s": {},
            "artifacts": [],
        }
        self._t0 = time.perf_counter()
        self._write_manifest()

    def _reopen(self, path: Path, job: str, config: Any, argv: Sequence[str] | None) -> None:
        """Continue the unfinished run in ``path``: same job, same results-relevant settings."""
        try:
            manifest = read_manifest(path, job)
        except ConfigError as exc:
            raise ConfigError(f"--resume: {exc}") from None
        if manifest.get("status") == "complete":
            raise ConfigError(f"--resume {path}: the run is already complete")
        old, new = manifest.get("config") or {}, config or {}
        for key in [*new, *(k for k in old if k not in new)]:  # the config's own order
            if key not in EXECUTION_ONLY and old.get(key) != new.get(key):
                raise ConfigError(f"--resume {path}: setting {key!r} was {old.get(key)!r}, now "
                                  f"{new.get(key)!r}; resume with the run's settings")
        self.path = path
        self.manifest = manifest
        self.manifest.update(status="running", finished=None, config=new)
        self.manifest.pop("error", None)
        self.manifest.setdefault("resumed", []).append(
            {"at": _now(), "command": list(sys.argv if argv is None else argv)})
        self._t0 = time.perf_counter()
        self._write_manifest()

    # -- manifest -------------------------------------------------------------------------
    def _write_manifest(self) -> None:
        atomic_write_json(self.path / MANIFEST, self.manifest)

    def record_data(self, name: str, info: Mapping[str, Any]) -> None:
        """Record a dataset's fingerprint and provenance under ``manifest["data"][name]``; a
        resumed run must see the content it started with (DataError otherwise)."""
        info = to_jsonable(dict(info))
        old = self.manifest["data"].get(name) if self.resumed else None
        for key in _CONTENT_KEYS if old is not None else ():
            if old.get(key) != info.get(key):
                raise DataError(f"--resume {self.path}: the {name} changed since the run "
                                f"started ({key} {old.get(key)!r}, now {info.get(key)!r}); "
                                "resume with the same data")
        self.manifest["data"][name] = info
        self._write_manifest()

    def record(self, key: str, value: Any) -> None:
        """Store any extra fact in the manifest (e.g. measured throughput)."""
        self.manifest[key] = to_jsonable(value)
        self._write_manifest()

    @contextlib.contextmanager
    def stage(self, name: str) -> Iterator[None]:
        """Time a stage of the job; the wall time lands in ``manifest["timings_s"][name]``."""
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.manifest["timings_s"][name] = round(time.perf_counter() - t0, 4)
            self._write_manifest()

    def record_timing(self, name: str, seconds: float) -> None:
        """Record a stage timed before the folder existed (e.g. loading and validating input)."""
        self.manifest["timings_s"][name] = round(seconds, 4)
        self._write_manifest()

    def __enter__(self) -> RunFolder:
        return self

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        """On an exception, mark the run ``failed`` with the error, so it never looks complete."""
        if exc is not None and self.manifest["status"] != "complete":
            self.manifest["status"] = "failed"
            self.manifest["error"] = f"{type(exc).__name__}: {exc}"
            self.manifest["finished"] = _now()
            self._write_manifest()

    def finish(self, seal: Sequence[str] = ()) -> None:
        """Mark the run complete with its end time and total wall time; record the SHA-256 of
        the artifacts named in ``seal`` so readers can tell an altered file (see :func:`sealed`)."""
        self.manifest["sealed_sha256"] = {name: sha256_file(self.path / name) for name in seal}
        self.manifest["timings_s"]["total"] = round(time.perf_counter() - self._t0, 4)
        self.manifest["finished"] = _now()
        self.manifest["status"] = "complete"
        self._write_manifest()

    # -- artifacts ------------------------------------------------------------------------
    def file(self, name: str) -> Path:
        """Path of an artifact inside the run folder (sub-folders are created)."""
        path = self.path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        rel = str(path.relative_to(self.path))
        if rel not in self.manifest["artifacts"]:
            self.manifest["artifacts"].append(rel)
        if rel in RUN_FILES:
            self.manifest.setdefault("formats", {})[rel] = RUN_FILES[rel].tag
        return path

    @contextlib.contextmanager
    def atomic(self, name: str) -> Iterator[Path]:
        """Temporary path for writers that need a file name; renamed to ``name`` on success."""
        with atomic_path(self.file(name)) as tmp:
            yield tmp

    def write_json(self, name: str, obj: Any) -> Path:
        return atomic_write_json(self.file(name), obj)

    def write_text(self, name: str, text: str) -> Path:
        return atomic_write_text(self.file(name), text)

    def write_csv(self, name: str, rows: Sequence[Mapping[str, Any]],
                  columns: Sequence[str] | None = None) -> Path:
        """Write ``rows`` (dicts) as CSV; ``columns`` fixes the order (default: the first row's)."""
        columns = list(columns if columns is not None else (rows[0].keys() if rows else []))
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        for row in rows:
            writer.writerow({c: _csv_cell(row.get(c)) for c in columns})
        return atomic_write_text(self.file(name), buf.getvalue())


def recorded_settings(config_cls: type, recorded: Mapping[str, Any],
                      skip: Sequence[str] = EXECUTION_ONLY) -> dict[str, Any]:
    """The settings a manifest recorded (``recorded``: its ``config``) that are fields of the
    dataclass ``config_cls``, less ``skip``; tuple fields get their tuples back (JSON stores
    lists)."""
    fields = {f.name: f for f in dataclasses.fields(config_cls)}
    out = {}
    for name, value in recorded.items():
        if name in fields and name not in skip:
            as_tuple = isinstance(fields[name].default, tuple) and isinstance(value, list)
            out[name] = tuple(value) if as_tuple else value
    return out


def read_manifest(run_dir: str | os.PathLike[str], job: str | None = None) -> dict[str, Any]:
    """The manifest of the run in ``run_dir``; ConfigError unless it is a ``job`` run folder."""
    path = Path(run_dir) / MANIFEST
    kind = f"{job} run folder" if job else "run folder"
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (FileNotFoundError, NotADirectoryError):
        raise ConfigError(f"{run_dir} is not a {kind}: {MANIFEST} is missing") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(f"{path}: not a readable run manifest ({exc})") from None
    if not isinstance(manifest, dict):
        raise DataError(f"{path}: not a run manifest (expected a JSON object)")
    if job is not None and manifest.get("job") != job:
        raise ConfigError(f"{run_dir} is not a {kind}: it holds a {manifest.get('job')!r} run")
    return manifest


def check_sealed(run_dir: str | os.PathLike[str], name: str) -> None:
    """Raise ConfigError unless ``run_dir``'s manifest says the run completed and, if the run
    sealed ``name``, the file still has the recorded SHA-256."""
    run_dir = Path(run_dir)
    path = run_dir / MANIFEST
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
        status = manifest.get("status")
        sealed = manifest.get("sealed_sha256") or {}
    except (OSError, ValueError, UnicodeDecodeError, AttributeError) as exc:
        raise ConfigError(f"{path}: unreadable run manifest ({exc})") from None
    if status != "complete":
        job = manifest.get("job", "JOB")
        raise ConfigError(f"{run_dir}: the run is {status!r}, not complete (its {MANIFEST} says "
                          f"so); finish it with `notsure {job} --resume {run_dir}` or rerun it")
    if name in sealed and sha256_file(run_dir / name) != sealed[name]:
        raise ConfigError(f"{run_dir / name}: altered since the run finished (its SHA-256 differs "
                          f"from the one sealed in {MANIFEST})")


def _csv_cell(value: Any) -> Any:
    if isinstance(value, float):  # NumPy floats too: write the plain number, NaN as empty
        return repr(float(value)) if value == value else ""
    if hasattr(value, "item"):
        return _csv_cell(value.item())
    return "" if value is None else value
