"""The public names exported by ``notsure``, imported lazily so ``import notsure`` stays light."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import notsure

SRC = str(Path(notsure.__file__).resolve().parents[1])


def test_import_notsure_loads_neither_torch_nor_scikit_learn():
    code = ("import sys, notsure; "
            "print(sorted(m for m in ('torch', 'sklearn', 'scipy') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, env={"PYTHONPATH": SRC}).stdout
    assert out.strip() == "[]"


def test_public_names_resolve_to_their_modules():
    from notsure.decisions import NeymanPearsonThresholds, min_negatives
    from notsure.selective_classifier import SelectiveClassifier

    assert notsure.NeymanPearsonThresholds is NeymanPearsonThresholds
    assert notsure.SelectiveClassifier is SelectiveClassifier
    assert notsure.min_negatives is min_negatives
    assert set(notsure.__all__) <= set(dir(notsure))
