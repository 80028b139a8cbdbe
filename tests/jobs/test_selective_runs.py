"""The selective job on a Dask cluster, killed and resumed, and logged to MLflow: the same
metrics.json and scores as one uninterrupted local run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from test_selective import make_images

from notsure.cli.main import main

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def bars(tmp_path_factory) -> Path:
    x, y = make_images(60, seed=3)
    path = tmp_path_factory.mktemp("data") / "bars.npz"
    np.savez(path, x=x, y=y)
    return path


def job_args(data: Path) -> list[str]:
    return ["selective", "--data", str(data), "--quick", "--quiet", "--test-per-class", "10",
            "--folds", "2", "--members", "2", "--epochs", "3", "--target-fpr", "0.05",
            "--delta", "0.2", "--executor", "local"]


@pytest.fixture(scope="module")
def local_run(bars, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("runs") / "local"
    assert main([*job_args(bars), "--out", str(out)]) == 0
    return out


def kill_when(args: list[str], out: Path, marker: Path) -> None:
    """Run ``notsure *args --out out`` in a subprocess and SIGKILL it as soon as ``marker``
    exists (or when it ends or stalls)."""
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    proc = subprocess.Popen([sys.executable, "-m", "notsure", *args, "--out", str(out)],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 600  # generous: a shared machine can be very slow
    while not marker.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()


def assert_same_results(run: Path, reference: Path) -> None:
    """Identical metrics.json and identical scores behind them."""
    assert (json.loads((run / "metrics.json").read_text())
            == json.loads((reference / "metrics.json").read_text()))
    with np.load(run / "scores.npz") as a, np.load(reference / "scores.npz") as b:
        assert sorted(a.files) == sorted(b.files)
        for name in a.files:
            np.testing.assert_array_equal(a[name], b[name], err_msg=name)


@pytest.mark.slow
def test_dask_local_cluster_gives_the_local_metrics(bars, local_run, tmp_path):
    pytest.importorskip("distributed")
    out = tmp_path / "dask"
    assert main([*job_args(bars), "--out", str(out), "--executor", "dask",
                 "--workers", "2"]) == 0
    assert_same_results(out, local_run)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["config"]["executor"] == "dask"


@pytest.mark.slow
def test_killed_run_resumes_to_the_uninterrupted_metrics(bars, local_run, tmp_path, capsys):
    out = tmp_path / "killed"
    second = out / "checkpoints" / "fold1-member0" / "done.json"
    kill_when(job_args(bars), out, second)
    assert second.exists(), "the run ended or stalled before its third member's checkpoint"
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["status"] == "running"  # killed: never marked complete
    kept = {p.parent.name: p.stat().st_mtime_ns
            for p in (out / "checkpoints").glob("*/done.json")}
    assert {"fold0-member0", "fold0-member1", "fold1-member0"} <= set(kept)

    capsys.readouterr()
    assert main(["predict", str(out), str(bars)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "not complete" in err[0] and "--resume" in err[0]
    assert main(["evaluate", str(out), str(bars)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"notsure selective --resume {out}" in err[0]

    # The run's recorded settings are the defaults of a resume: only a contradicting flag counts.
    assert main(["selective", "--quiet", "--epochs", "4", "--resume", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "setting 'epochs' was 3, now 4" in err[0]

    assert main(["selective", "--quiet", "--resume", str(out)]) == 0
    assert_same_results(out, local_run)
    for name, mtime in kept.items():  # finished folds were reused, not trained again
        assert (out / "checkpoints" / name / "done.json").stat().st_mtime_ns == mtime
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["status"] == "complete" and len(manifest["resumed"]) == 1


@pytest.mark.slow
def test_mlflow_flag_logs_the_finished_run(bars, tmp_path):
    pytest.importorskip("mlflow")
    from mlflow.tracking import MlflowClient

    out, uri = tmp_path / "run", f"sqlite:///{tmp_path / 'mlflow.db'}"
    assert main([*job_args(bars), "--out", str(out), "--mlflow", uri]) == 0
    client = MlflowClient(tracking_uri=uri)
    [run] = client.search_runs([client.get_experiment_by_name("notsure-selective").experiment_id])
    metrics = json.loads((out / "metrics.json").read_text())
    assert run.data.params["target_fpr"] == "0.05" and run.data.params["members"] == "2"
    assert run.data.metrics["after.coverage"] == metrics["after"]["coverage"]
    curve = client.get_metric_history(run.info.run_id, "fold1-member1.train_loss")
    assert [m.step for m in curve] == [1, 2, 3]  # one point per epoch
    logged = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"report.html", "thresholds.json", "predictor.json", "metrics.json"} <= logged
