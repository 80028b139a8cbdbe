"""SIGTERM (a scheduler, ``docker stop``) ends a run like Ctrl-C: status failed, exit 143."""

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

SRC = Path(__file__).resolve().parents[2] / "src"


def _wait_for_running(manifest: Path, proc: subprocess.Popen, timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            doc = json.loads(manifest.read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            doc = {}
        if doc.get("status") == "running":
            return doc
        time.sleep(0.05)
    raise AssertionError(f"the run never got going: {proc.poll()=}")


@pytest.mark.slow  # a subprocess that imports torch: 10-20 s on a busy machine
def test_sigterm_marks_the_run_failed_and_exits_143(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    data = tmp_path / "noise.npz"
    np.savez(data, x=rng.integers(0, 256, (600, 28, 28), dtype=np.uint8),
             y=np.arange(600) % 3)
    out = tmp_path / "run"
    command = ["selective", "--data", str(data), "--out", str(out), "--quick", "--quiet",
               "--test-per-class", "20", "--folds", "2", "--epochs", "200",
               "--target-fpr", "0.05", "--delta", "0.2"]  # a target small data can certify
    code = f"import sys; from notsure.cli.main import main; sys.exit(main({command!r}))"
    env = {**os.environ, "PYTHONPATH": str(SRC), "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-c", code], env=env, stderr=subprocess.PIPE,
                            text=True)
    try:
        _wait_for_running(out / "manifest.json", proc)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 143
    assert err.strip().splitlines() == ["notsure: terminated (SIGTERM)"]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["status"] == "failed"
    assert manifest["error"] == "Terminated: terminated by signal SIGTERM"
    assert manifest["finished"] is not None
    assert not list(out.rglob(".*.tmp")), "a half-written file was left behind"
    assert not (out / "predictor.json").exists()
