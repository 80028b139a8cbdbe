"""notsure: classifiers that know when they are not sure, and evaluation you can audit.

The public API is imported on first use, so ``import notsure`` stays light (no scikit-learn or
torch until an estimator is asked for).
"""

from __future__ import annotations

import importlib
from typing import Any

from notsure.constants import NOT_SURE, NOT_SURE_NAME, VERSION
from notsure.errors import NotsureError

__version__ = VERSION


#: Public names defined in submodules, imported when first accessed.
_LAZY = {
    "NeymanPearsonThresholds": "notsure.decisions.thresholds",
    "min_negatives": "notsure.decisions.neyman_pearson",
    "SelectiveClassifier": "notsure.selective_classifier",
    "CNNClassifier": "notsure.models.cnn_classifier",
}

__all__ = ["NOT_SURE", "NOT_SURE_NAME", "NotsureError", "__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'notsure' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
