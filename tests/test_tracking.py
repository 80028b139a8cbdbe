"""MLflow logging of a run folder, read back from a local SQLite store; notsure without MLflow."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys

import numpy as np
import pytest

from notsure.errors import ConfigError
from notsure.io.run_folder import RunFolder
from notsure.models.checkpoints import CheckpointStore
from notsure.parallel import DEFAULT_EXECUTOR
from notsure.tracking import check_tracking, headline_metrics, log_run


def small_run(path):
    """A finished run folder with the files a job writes and one checkpointed fold member."""
    run = RunFolder("selective", path, config={"seed": 3, "folds": 2, "cnn": {"epochs": 2}},
                    seed=3)
    run.write_json("metrics.json", {"before": {"accuracy": 0.9, "fpr": [0.1, 0.2]},
                                    "after": {"coverage": 0.75, "n_errors": 4},
                                    "note": "text is not a metric"})
    run.write_json("thresholds.json", {"target_fpr": 0.01})
    run.write_text("report.html", "<html>report</html>")
    run.write_text("models/fold0.json", "{}")
    history = [{"epoch": 1, "train_loss": 0.9, "train_acc": 0.5},
               {"epoch": 2, "train_loss": 0.4, "train_acc": 0.8}]
    CheckpointStore(path).save("fold0-member0", arrays={"held_logits": np.zeros((2, 3))},
                               meta={"history": history})
    run.finish()
    return history


def test_headline_metrics_are_the_numeric_scalars():
    doc = {"a": 1, "b": {"c": 0.5, "d": [1, 2], "e": None, "f": True}, "g": "x"}
    assert headline_metrics(doc) == {"a": 1.0, "b.c": 0.5}


@pytest.mark.slow  # creating the SQLite store runs MLflow's schema migrations
def test_a_logged_run_reads_back_from_sqlite(tmp_path):
    pytest.importorskip("mlflow")
    from mlflow.tracking import MlflowClient

    history = small_run(tmp_path / "run")
    uri = f"sqlite:///{tmp_path / 'store' / 'mlflow.db'}"
    run_id = log_run(tmp_path / "run", uri)

    client = MlflowClient(tracking_uri=uri)
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED"
    assert run.data.params == {"seed": "3", "folds": "2", "cnn.epochs": "2"}
    assert run.data.metrics == {"before.accuracy": 0.9, "after.coverage": 0.75,
                                "after.n_errors": 4.0,
                                "fold0-member0.train_loss": 0.4,
                                "fold0-member0.train_acc": 0.8}
    curve = client.get_metric_history(run_id, "fold0-member0.train_loss")
    assert [(m.step, m.value) for m in curve] == [(h["epoch"], h["train_loss"]) for h in history]
    top = {a.path for a in client.list_artifacts(run_id)}
    assert {"metrics.json", "thresholds.json", "report.html", "manifest.json", "models"} <= top
    assert "checkpoints" not in top
    assert [a.path for a in client.list_artifacts(run_id, "models")] == ["models/fold0.json"]
    local = client.download_artifacts(run_id, "metrics.json", str(tmp_path / "dl"))
    assert json.loads(open(local).read())["after"]["coverage"] == 0.75
    assert client.get_experiment(run.info.experiment_id).name == "notsure-selective"


def test_mlflow_flag_without_mlflow_is_one_clear_error(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "mlflow" else real(name, *a))
    with pytest.raises(ConfigError, match=r"--mlflow needs MLflow.*notsure\[mlflow\]"):
        check_tracking("sqlite:///x.db")
    check_tracking(None)  # not asked for: nothing to check


def test_notsure_imports_parses_and_validates_without_mlflow_or_dask():
    code = ("import sys\n"
            "for name in ('mlflow', 'dask', 'distributed'): sys.modules[name] = None\n"
            "from notsure.cli.main import build_parser\n"
            "args = build_parser().parse_args(['selective', '--quick'])\n"
            "from notsure.jobs.selective.pipeline import SelectiveConfig\n"
            "config = SelectiveConfig(quick=True)\n"
            "config.validate()\n"
            "print(config.executor, args.mlflow)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == [DEFAULT_EXECUTOR, "None"]
