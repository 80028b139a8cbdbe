"""A tiny deployed run (two small CNNs on three stroke classes) shared by the serving tests.

Built directly (train two members, calibrate thresholds with the Neyman-Pearson rule on held-out
images, save as `notsure selective` does) because the full job takes minutes on a busy machine.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from notsure.decisions import ThresholdStrategy, choose_thresholds, ensemble_margins
from notsure.deploy.predictor import SelectivePredictor
from notsure.io.run_folder import RunFolder
from notsure.models import CNNConfig, predict_logits
from notsure.models.train import train_cnn

SEED = 0
TARGET_FPR, DELTA = 0.05, 0.2


def stroke_images(n: int, seed: int, size: int = 28) -> tuple[np.ndarray, np.ndarray]:
    """``n`` uint8 images: class 0 a horizontal bar, 1 a vertical bar, 2 a filled square,
    bright on faint noise at random places; labels balanced."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 3
    x = rng.integers(0, 30, (n, size, size)).astype(np.uint8)
    for i, label in enumerate(y):
        a, b = rng.integers(4, 10), rng.integers(8, 20)
        if label == 0:
            x[i, b - 2:b + 2, a:a + 14] = 255
        elif label == 1:
            x[i, a:a + 14, b - 2:b + 2] = 255
        else:
            x[i, a:a + 10, b - 4:b + 6] = 255
    return x, y.astype(np.int64)


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory) -> Path:
    """A run folder with ``predictor.json``, two members and ``thresholds.json``."""
    config = CNNConfig(stages=((8,), (16,)), epochs=3, batch_size=32, threads=1,
                       precision="fp32", augment=False)
    x, y = stroke_images(400, seed=SEED)
    members = [train_cnn(x[k * 100:(k + 1) * 100], y[k * 100:(k + 1) * 100], 3, config,
                         seed=SEED + k, quiet=True).model for k in range(2)]
    x_cal, y_cal = x[200:], y[200:]
    margins = ensemble_margins(predict_logits(members, x_cal, precision="fp32"))
    certificates = choose_thresholds(margins, y_cal, TARGET_FPR, DELTA)
    predictor = SelectivePredictor(models=members,
                                   strategy=ThresholdStrategy.from_certificates(certificates),
                                   class_names=("h", "v", "sq"), image_shape=(28, 28),
                                   precision="fp32")
    out = tmp_path_factory.mktemp("runs") / "tiny"
    with RunFolder("selective", out, seed=SEED) as run:
        predictor.save(run, [config, config],
                       meta={"target_fpr": TARGET_FPR, "delta": DELTA, "seed": SEED})
        run.write_json("thresholds.json", {
            "target_fpr": TARGET_FPR, "delta": DELTA, "class_names": ["h", "v", "sq"],
            "certificates": [c.as_dict() for c in certificates]})
        run.finish(seal=["predictor.json", "thresholds.json"])
    return out


@pytest.fixture(scope="session")
def tiny_images() -> tuple[np.ndarray, np.ndarray]:
    """Fresh images of the same three classes (not used in training or calibration)."""
    return stroke_images(60, seed=SEED + 100)
