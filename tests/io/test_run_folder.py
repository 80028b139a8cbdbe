"""Run folders and atomic writes: a crash never leaves a complete-looking artifact."""

from __future__ import annotations

import csv
import json
import os

import numpy as np
import pytest

from notsure.errors import ConfigError
from notsure.io import RunFolder, atomic_path, atomic_write_json


def test_failed_write_leaves_target_untouched_and_no_temp_file(tmp_path):
    target = tmp_path / "model.bin"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_bytes(b"half")
        raise RuntimeError("crash mid-write")
    assert target.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.bin"]


def test_atomic_files_get_the_usual_permissions(tmp_path):
    old = os.umask(0o022)
    try:
        path = atomic_write_json(tmp_path / "x.json", {"a": 1})
    finally:
        os.umask(old)
    assert path.stat().st_mode & 0o777 == 0o644


def test_json_has_no_nan_and_numpy_values_become_plain(tmp_path):
    path = atomic_write_json(tmp_path / "m.json",
                             {"a": np.float32(0.5), "b": np.array([1, 2]), "c": float("nan")})
    assert json.loads(path.read_text()) == {"a": 0.5, "b": [1, 2], "c": None}


def test_manifest_goes_running_then_complete(tmp_path):
    run = RunFolder("job", tmp_path / "r", config={"k": 1}, seed=7, argv=["notsure", "job"])
    m = json.loads((run.path / "manifest.json").read_text())
    assert m["status"] == "running" and m["seed"] == 7 and m["command"] == ["notsure", "job"]
    with run.stage("work"):
        run.write_text("a.txt", "x")
    run.finish()
    m = json.loads((run.path / "manifest.json").read_text())
    assert m["status"] == "complete" and "work" in m["timings_s"] and "a.txt" in m["artifacts"]
    assert m["versions"]["numpy"] == np.__version__


def test_a_crash_marks_the_run_failed(tmp_path):
    with pytest.raises(ValueError), RunFolder("job", tmp_path / "r") as run:
        raise ValueError("boom")
    m = json.loads((run.path / "manifest.json").read_text())
    assert m["status"] == "failed" and "boom" in m["error"]


def test_refuses_a_folder_that_already_holds_a_run(tmp_path):
    RunFolder("job", tmp_path / "r").finish()
    with pytest.raises(ConfigError, match="already holds a run"):
        RunFolder("job", tmp_path / "r")


def test_csv_writes_numpy_floats_as_numbers(tmp_path):
    run = RunFolder("job", tmp_path / "r")
    path = run.write_csv("t.csv", [{"a": np.float64(0.25), "b": np.int64(3), "c": np.nan}])
    rows = list(csv.DictReader(path.open()))
    assert rows == [{"a": "0.25", "b": "3", "c": ""}]
