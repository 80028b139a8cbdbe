"""Log a finished run folder to MLflow: settings as params, headline metrics, per-epoch training
curves, and the report, thresholds and models as artifacts.

MLflow is optional (``pip install 'notsure[mlflow]'``) and imported only when a run is logged;
the run folder stays the record, MLflow a searchable copy of it.
"""

from __future__ import annotations

import importlib.util
import json
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from notsure.errors import ConfigError
from notsure.io.run_folder import METRICS_FILE, SUMMARY_FILE, read_manifest
from notsure.models.checkpoints import CheckpointStore

#: ``--mlflow`` without a value: a SQLite store beside the default run folders.
DEFAULT_TRACKING_URI = "sqlite:///runs/mlflow.db"
#: Files whose numbers are a job's headline metrics, first found wins.
METRIC_FILES = (METRICS_FILE, SUMMARY_FILE)
SKIPPED_FOLDERS = ("checkpoints",)  # resume state, not results
_BATCH = 100  # MLflow accepts at most 100 params per batch


def check_tracking(uri: str | None) -> None:
    """ConfigError before any work if ``--mlflow`` is asked for but MLflow is not installed."""
    if uri is not None and importlib.util.find_spec("mlflow") is None:
        raise ConfigError("--mlflow needs MLflow, which is not installed: "
                          "pip install 'notsure[mlflow]'")


def flatten(obj: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    """``(dotted.key, value)`` for every non-dict leaf of nested dicts."""
    if isinstance(obj, Mapping):
        for key, value in obj.items():
            yield from flatten(value, f"{prefix}{key}.")
    else:
        yield prefix[:-1], obj


def headline_metrics(doc: Mapping[str, Any]) -> dict[str, float]:
    """The numeric scalars of a metrics document (lists such as per-class rates are left out)."""
    return {k: float(v) for k, v in flatten(doc)
            if isinstance(v, (int, float)) and not isinstance(v, bool)}


def _artifact_root(uri: str) -> str | None:
    """For a SQLite store, artifacts go in ``mlartifacts/`` beside the database file."""
    if not uri.startswith("sqlite:///"):
        return None
    db = Path(uri[len("sqlite:///"):])
    db.parent.mkdir(parents=True, exist_ok=True)
    return (db.parent.resolve() / "mlartifacts").as_uri()


def log_run(run_dir: str | os.PathLike[str], tracking_uri: str, *,
            curves: Mapping[str, list[dict]] | None = None) -> str:
    """Log the run folder ``run_dir`` to ``tracking_uri``; return the MLflow run id.

    ``curves`` maps a model name to its per-epoch history (``TrainResult.history``); the
    histories of the run's checkpointed tasks are added. Every numeric column is logged as
    ``<name>.<column>`` at step ``epoch``.
    """
    check_tracking(tracking_uri)
    from mlflow.entities import Metric, Param
    from mlflow.tracking import MlflowClient

    run_dir = Path(run_dir)
    manifest = read_manifest(run_dir)
    client = MlflowClient(tracking_uri=tracking_uri)
    name = f"notsure-{manifest['job']}"
    try:
        found = client.get_experiment_by_name(name)
        experiment = found.experiment_id if found is not None else client.create_experiment(
            name, artifact_location=_artifact_root(tracking_uri))
    except Exception as exc:  # MLflow raises many types for unreachable or invalid stores
        raise ConfigError(f"--mlflow {tracking_uri}: cannot use this tracking store "
                          f"({type(exc).__name__}: {exc})") from None
    run = client.create_run(experiment, run_name=run_dir.name, tags={
        "notsure.run_dir": str(run_dir.resolve()), "notsure.job": manifest["job"],
        "notsure.status": str(manifest.get("status"))})
    run_id = run.info.run_id

    config = {"seed": manifest.get("seed"), **(manifest.get("config") or {})}
    params = [Param(k, str(v)[:6000]) for k, v in flatten(config)]
    for i in range(0, len(params), _BATCH):
        client.log_batch(run_id, params=params[i:i + _BATCH])

    metrics = []
    for file in METRIC_FILES:
        if (run_dir / file).is_file():
            doc = json.loads((run_dir / file).read_text(encoding="utf-8"))
            metrics += [Metric(k, v, 0, 0) for k, v in headline_metrics(doc).items()]
            break
    store = CheckpointStore(run_dir)
    curves = {**{name: store.meta(name).get("history", []) for name in store.finished()},
              **(curves or {})}
    for model, history in curves.items():
        for row in history:
            step = int(row.get("epoch", 0))
            metrics += [Metric(f"{model}.{k}", float(v), 0, step) for k, v in row.items()
                        if k != "epoch" and isinstance(v, (int, float))
                        and not isinstance(v, bool)]
    for i in range(0, len(metrics), 1000):
        client.log_batch(run_id, metrics=metrics[i:i + 1000])

    for path in sorted(run_dir.iterdir()):
        if path.is_file():
            client.log_artifact(run_id, str(path))
        elif path.is_dir() and path.name not in SKIPPED_FOLDERS:
            client.log_artifacts(run_id, str(path), artifact_path=path.name)
    client.set_terminated(run_id, "FINISHED")
    return run_id
