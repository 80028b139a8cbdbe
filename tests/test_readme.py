"""The README's Python API examples run as written, on the real syndrome embeddings."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]


def python_api_blocks() -> list[str]:
    """The ```python blocks of the README's "Python API" section, in order."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    section = text.split("## Python API", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```", section, flags=re.S)


def test_python_api_examples_run(syndromes_pickle, tmp_path, monkeypatch, capsys):
    if not syndromes_pickle.is_file():
        pytest.skip(f"{syndromes_pickle} not found")
    monkeypatch.setenv("NOTSURE_DATA_DIR", str(syndromes_pickle.parents[1]))
    monkeypatch.chdir(tmp_path)
    blocks = python_api_blocks()
    assert len(blocks) == 2
    namespace: dict = {}
    for block in blocks:
        exec(compile(block, "README.md", "exec"), namespace)
    out = capsys.readouterr().out
    assert "answered" in out and "negatives per class are needed" in out
    # what the examples claim holds: labels or not_sure, a certified class, a saved file
    clf, pred = namespace["clf"], namespace["pred"]
    assert set(pred) <= {*clf.classes_, "not_sure"}
    assert any(c.certified for c in clf.certificates_)
    assert (tmp_path / "thresholds.json").is_file()
    assert np.isin(namespace["decisions"], [-1, *range(10)]).all()
