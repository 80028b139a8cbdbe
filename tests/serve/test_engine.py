"""Both back ends decide alike; `notsure export` writes a graph and a rule that reproduce them."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from notsure import NOT_SURE
from notsure.cli.main import main
from notsure.data.idx import read_idx
from notsure.deploy.engine import Engine, resolve_backend
from notsure.deploy.export import read_decision
from notsure.errors import ConfigError, DataError
from notsure.io.run_folder import DECISION_FILE

pytest.importorskip("onnxruntime")


def assert_same_decisions(a, b, tol: float = 1e-3) -> None:
    """Equal decisions, except where a margin sits within ``tol`` of its threshold (float
    rounding differs between the back ends; such ties are counted, not hidden)."""
    np.testing.assert_allclose(a.mean_logits, b.mean_logits, rtol=1e-4, atol=1e-4)
    assert np.array_equal(a.routes, b.routes)
    close = np.abs(a.confidence) < tol
    differ = a.prediction != b.prediction
    assert not np.any(differ & ~close), int(np.sum(differ & ~close))


def test_backends_decide_alike(tiny_run, tiny_images):
    x, _ = tiny_images
    onnx = Engine.load(tiny_run, "onnx").predict(x)
    torch = Engine.load(tiny_run, "torch").predict(x)
    assert_same_decisions(onnx, torch)
    assert np.any(onnx.prediction != NOT_SURE)
    assert resolve_backend("auto") == "onnx"
    with pytest.raises(ConfigError, match="backend"):
        resolve_backend("tpu")


def test_export_writes_a_graph_and_rule_that_reproduce_the_decisions(tiny_run, tiny_images,
                                                                     tmp_path):
    import onnxruntime as ort

    x, _ = tiny_images
    assert main(["export", str(tiny_run), "--format", "onnx", "--out", str(tmp_path)]) == 0
    doc = read_decision(tmp_path)
    session = ort.InferenceSession(str(tmp_path / doc["model"]))
    logits = session.run([doc["output"]["name"]], {doc["input"]["name"]: x.astype(np.float32)})[0]
    # decision.json's rule, written out here in numpy from its text
    z = logits.astype(np.float64)
    top2 = np.sort(z, axis=-1)[..., -2:]
    best_other = np.where(z == top2[..., 1:], top2[..., :1], top2[..., 1:])
    score = (z - best_other).min(axis=0)
    candidate = z.mean(axis=0).argmax(axis=1)
    thresholds = np.array(doc["thresholds"])
    passed = score[np.arange(len(x)), candidate] > thresholds[candidate]
    want = Engine.load(tiny_run, "torch").predict(x)
    close = np.abs(want.confidence) < 1e-3
    got = np.where(passed, candidate, NOT_SURE)
    assert not np.any((got != want.prediction) & ~close)
    assert doc["class_names"] == ["h", "v", "sq"] and doc["max_logit_gap_vs_torch"] < 1e-3
    other = tmp_path / "other"
    other.mkdir()
    (other / DECISION_FILE).write_text(json.dumps({**doc, "format": "someone-else/9"}))
    with pytest.raises(DataError, match="format 'someone-else/9'"):
        read_decision(other)


@pytest.mark.slow
def test_backends_decide_alike_on_mnist_test_images(mnist_dir):
    """On the 10,000 MNIST test images with a real run: ``NOTSURE_TEST_RUN=<run folder>``."""
    run = os.environ.get("NOTSURE_TEST_RUN")
    if not run or not (Path(run) / "predictor.json").is_file():
        pytest.skip("set NOTSURE_TEST_RUN to a `notsure selective` MNIST run folder")
    x = read_idx(mnist_dir / "t10k-images-idx3-ubyte.gz")
    onnx = Engine.load(run, "onnx").predict(x)
    torch = Engine.load(run, "torch").predict(x)
    assert_same_decisions(onnx, torch)


def test_stored_graphs_load_without_torch(tiny_run, tiny_images, tmp_path):
    """The run stores one sealed graph per fold; the ONNX engine answers from them in a
    process that never imports torch, with the decisions of the torch back end."""
    import subprocess
    import sys

    doc = json.loads((tiny_run / "predictor.json").read_text())
    assert [e["file"] for e in doc["onnx"]] == ["models/fold0.onnx", "models/fold1.onnx"]
    assert doc["onnx_max_logit_gap_vs_torch"] < 1e-3
    x, _ = tiny_images
    np.save(tmp_path / "x.npy", x)
    code = ("import sys, numpy as np; from notsure.deploy.engine import Engine;"
            f"e = Engine.load({str(tiny_run)!r}, 'auto');"
            f"d = e.predict(np.load({str(tmp_path / 'x.npy')!r}));"
            f"np.save({str(tmp_path / 'p.npy')!r}, d.prediction);"
            "print(e.backend, 'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["onnx", "False"]
    want = Engine.load(tiny_run, "torch").predict(x)
    got = np.load(tmp_path / "p.npy")
    close = np.abs(want.confidence) < 1e-3
    assert not np.any((got != want.prediction) & ~close)


def test_an_altered_stored_graph_is_refused(tiny_run, tmp_path):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    graph = run / "models" / "fold1.onnx"
    data = bytearray(graph.read_bytes())
    data[-5] ^= 1
    graph.write_bytes(bytes(data))
    with pytest.raises(ConfigError, match=r"fold1\.onnx: differs from the SHA-256.*altered"):
        Engine.load(run, "onnx")


def test_a_run_without_stored_graphs_builds_them(tiny_run, tiny_images, tmp_path, monkeypatch):
    """Runs trained where ONNX was missing store no graph; the engine builds them at load."""
    from notsure.deploy import predictor as predictor_module
    from notsure.io.run_folder import RunFolder

    monkeypatch.setattr(predictor_module, "onnx_available", lambda: False)
    stored = predictor_module.SelectivePredictor.load(tiny_run)
    configs = [json.loads((tiny_run / f"models/fold{k}_member0.json").read_text())
               for k in range(2)]
    from notsure.models.cnn import CNNConfig

    out = tmp_path / "plain"
    with RunFolder("selective", out, seed=0) as run:
        stored.save(run, [CNNConfig.from_dict(c["config"]) for c in configs], meta={})
        run.finish(seal=["predictor.json"])
    assert "onnx" not in json.loads((out / "predictor.json").read_text())
    assert not list(out.glob("models/*.onnx"))
    x, _ = tiny_images
    built = Engine.load(out, "onnx")
    assert built.predictor.graphs is None and built.predictor.models
    assert np.array_equal(built.predict(x).prediction, Engine.load(tiny_run, "onnx").predict(x)
                          .prediction)
