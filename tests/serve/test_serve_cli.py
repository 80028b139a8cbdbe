"""`notsure serve` as users start it: worker processes answer like the run's own predictor."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time

import pytest

pytest.importorskip("uvicorn")
pytest.importorskip("onnxruntime")
httpx = pytest.importorskip("httpx")

from notsure.deploy.predictor import SelectivePredictor  # noqa: E402


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("workers", ["1", "2"])
def test_serve_answers_from_worker_processes_and_stops_cleanly(tiny_run, tiny_images, workers):
    x, _ = tiny_images
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen([sys.executable, "-m", "notsure", "serve", str(tiny_run), "--port",
                             str(port), "--workers", workers, "--quiet"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        with httpx.Client(timeout=10) as client:
            while True:
                try:
                    if client.get(url + "/api/health").status_code == 200:
                        break
                except httpx.TransportError:
                    time.sleep(0.05)
                assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read()
            answers = [client.post(url + "/api/predict",
                                   json={"images": x[i:i + 3].tolist()}).json()["predictions"]
                       for i in range(0, 30, 3)]
            bad = client.post(url + "/api/predict", content=b"{not json",
                              headers={"content-type": "application/json"})
            assert bad.status_code == 400 and "JSON" in bad.json()["error"]
        reference = SelectivePredictor.load(tiny_run)
        want = reference.labels_of(reference.predict(x[:30]).prediction)
        assert [a["label"] for batch in answers for a in batch] == want
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise
    assert proc.returncode == 0, proc.stderr.read()


def test_serve_refuses_a_bad_run_folder_in_one_line(tmp_path):
    (tmp_path / "manifest.json").write_text(json.dumps({"status": "running", "job": "selective"}))
    out = subprocess.run([sys.executable, "-m", "notsure", "serve", str(tmp_path), "--port",
                          str(free_port()), "--workers", "2"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "not complete" in lines[0] and "Traceback" not in out.stderr
