"""Run folders and atomic writes: a crash never leaves a complete-looking artifact."""

from __future__ import annotations

import csv
import json
import os

import numpy as np
import pytest

from notsure.errors import ConfigError, DataError
from notsure.io import RunFolder, atomic_path, atomic_write_json
from notsure.io.run_folder import check_sealed


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


# -- resuming an unfinished run ------------------------------------------------------------------

def _unfinished(path, config):
    run = RunFolder("selective", path, config=config, seed=0)
    run.record_data("dataset", {"fingerprint": "abc", "n": 3})
    return run


def test_resume_continues_an_unfinished_run_with_the_same_settings(tmp_path):
    config = {"seed": 0, "epochs": 3, "out": str(tmp_path / "r"), "executor": "local",
              "workers": None}
    _unfinished(tmp_path / "r", config)
    # Where it runs may change; what it computes may not.
    resumed = RunFolder("selective", config={**config, "out": None, "executor": "dask",
                                             "workers": 4},
                        resume=tmp_path / "r")
    resumed.record_data("dataset", {"fingerprint": "abc", "n": 3})
    resumed.finish()
    manifest = json.loads((tmp_path / "r" / "manifest.json").read_text())
    assert manifest["status"] == "complete" and len(manifest["resumed"]) == 1
    assert manifest["config"]["executor"] == "dask"
    with pytest.raises(ConfigError, match="already complete"):
        RunFolder("selective", config=config, resume=tmp_path / "r")


def test_resume_names_the_changed_setting_or_data(tmp_path):
    config = {"seed": 0, "epochs": 3, "cnn": {"epochs": 3}}
    _unfinished(tmp_path / "r", config)
    with pytest.raises(ConfigError, match=r"setting 'epochs' was 3, now 4"):
        RunFolder("selective", config={"seed": 0, "epochs": 4, "cnn": {"epochs": 4}},
                  resume=tmp_path / "r")
    with pytest.raises(ConfigError, match="not a compare run folder"):
        RunFolder("compare", config=config, resume=tmp_path / "r")
    with pytest.raises(ConfigError, match="manifest.json is missing"):
        RunFolder("selective", config=config, resume=tmp_path)
    resumed = RunFolder("selective", config=config, resume=tmp_path / "r")
    with pytest.raises(DataError, match="dataset changed since the run started"):
        resumed.record_data("dataset", {"fingerprint": "xyz", "n": 3})


def test_an_unfinished_run_is_refused_with_how_to_finish_it(tmp_path):
    run = _unfinished(tmp_path / "r", {"seed": 0})
    with pytest.raises(ConfigError, match=r"'running', not complete.*selective --resume"):
        check_sealed(tmp_path / "r", "predictor.json")
    run.finish()
    check_sealed(tmp_path / "r", "predictor.json")
