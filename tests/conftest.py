"""Shared fixtures: where the real data lives, and small generated files for format tests."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _data_dir() -> Path | None:
    env = os.environ.get("NOTSURE_DATA_DIR")
    if env:  # absolute, so paths built from it stay valid from any folder or symlink
        return Path(env).expanduser().resolve()
    beside = REPO.parent / "shared" / "data"
    return beside if beside.is_dir() else None


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The real data folder (``$NOTSURE_DATA_DIR``, else ``../shared/data``).

    Missing data skips the test locally but fails under CI (``CI`` set), so CI never passes by
    skipping the real-data tests.
    """
    path = _data_dir()
    if path is None or not (path / "mnist").is_dir():
        if os.environ.get("CI"):
            pytest.fail("real data not found: set NOTSURE_DATA_DIR=../shared/data")
        pytest.skip("real data not found: set NOTSURE_DATA_DIR")
    return path


@pytest.fixture(scope="session")
def mnist_dir(data_dir: Path) -> Path:
    return data_dir / "mnist"


@pytest.fixture(scope="session")
def syndromes_pickle(data_dir: Path) -> Path:
    return data_dir / "syndromes" / "mini_gm_public_v0.1.p"


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory) -> Path:
    """A finished selective run folder whose two members are tiny untrained CNNs (one 2-channel
    convolution): scoring costs next to nothing, for tests of how ``predict`` reads and writes."""
    import numpy as np
    import torch

    from notsure.decisions import ThresholdStrategy
    from notsure.deploy.predictor import SelectivePredictor
    from notsure.io.run_folder import RunFolder
    from notsure.models.cnn import CNNConfig, build_model

    torch.manual_seed(0)
    config = CNNConfig(stages=((2,),), threads=1, precision="fp32")
    predictor = SelectivePredictor(
        models=[build_model(config, 3) for _ in range(2)],
        strategy=ThresholdStrategy(np.array([-1.0, -1.0, 1.0])),  # 2 is never answered
        class_names=("0", "1", "2"), image_shape=(28, 28), precision="fp32")
    with RunFolder("selective", tmp_path_factory.mktemp("runs") / "tiny", argv=[]) as run:
        predictor.save(run, [config, config], meta={})
        run.finish()
    return run.path
