"""The hand-built ONNX graph against torch: same logits for varied networks, sizes and batches."""

from __future__ import annotations

import numpy as np
import pytest
import torch

pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")

from notsure.errors import ConfigError  # noqa: E402
from notsure.models import CNNConfig, build_model, predict_logits  # noqa: E402
from notsure.models.onnx_export import ensemble_to_onnx  # noqa: E402
from notsure.models.onnx_session import OnnxEnsemble  # noqa: E402


def random_net(stages, n_classes: int, seed: int):
    """A network with random weights *and* random BatchNorm statistics and pixel scaling, so
    the BatchNorm folding and the input scaling are exercised, not left at identity."""
    torch.manual_seed(seed)
    net = build_model(CNNConfig(stages=stages), n_classes)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)
        net.scale.mean.fill_(0.13)
        net.scale.std.fill_(0.31)
    return net.eval()


@pytest.mark.parametrize("stages,size,n_classes", [
    (((16,), (32, 32), (64, 64)), 28, 10),
    (((8,), (16,)), 56, 3),
])
def test_graph_matches_torch(stages, size, n_classes):
    models = [random_net(stages, n_classes, seed) for seed in range(3)]
    x = np.random.default_rng(0).integers(0, 256, (40, size, size), dtype=np.uint8)
    want = predict_logits(models, x, precision="fp32")
    runner = OnnxEnsemble(ensemble_to_onnx(models, (size, size)), batch_size=16, threads=2)
    got = runner.logits(x)
    assert got.shape == (3, 40, n_classes) and got.dtype == np.float32
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)
    # float input and one-thread, one-batch running give the same numbers
    one = OnnxEnsemble(ensemble_to_onnx(models, (size, size)), threads=1, batch_size=1000)
    np.testing.assert_allclose(one.logits(x.astype(np.float32)), got, rtol=1e-6, atol=1e-6)


def test_wrong_image_size_and_unknown_layers_are_refused():
    net = random_net(((8,),), 3, 0)
    runner = OnnxEnsemble(ensemble_to_onnx([net], (28, 28)))
    with pytest.raises(Exception, match="shape"):
        runner.logits(np.zeros((2, 30, 30), np.uint8))
    net.features.append(torch.nn.Tanh())
    with pytest.raises(ConfigError, match="Tanh"):
        ensemble_to_onnx([net], (28, 28))
