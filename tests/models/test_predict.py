import numpy as np
import pytest
import torch

from notsure.errors import DataError
from notsure.models import CNNConfig, build_model, predict_logits


@pytest.fixture(scope="module")
def models():
    torch.manual_seed(0)
    return [build_model(CNNConfig.quick(), 4).eval() for _ in range(3)]


@pytest.fixture(scope="module")
def images():
    return np.random.default_rng(0).integers(0, 256, (50, 28, 28), dtype=np.uint8)


def test_single_model_matches_plain_forward(models, images):
    got = predict_logits(models[0], images, precision="fp32")
    with torch.no_grad():
        want = models[0](torch.from_numpy(images.copy())).numpy()
    assert got.shape == (50, 4) and got.dtype == np.float32
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


def test_ensemble_stacks_members(models, images):
    got = predict_logits(models, images, precision="fp32")
    assert got.shape == (3, 50, 4) and got.dtype == np.float32
    for k, m in enumerate(models):
        np.testing.assert_allclose(got[k], predict_logits(m, images, precision="fp32"),
                                   rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("precision,tol", [("fp32", 1e-5), ("bf16", 2e-2)])
def test_batch_size_does_not_change_logits(models, images, precision, tol):
    whole = predict_logits(models, images, batch_size=1000, precision=precision, threads=1)
    pieces = predict_logits(models, images, batch_size=7, precision=precision, threads=1)
    np.testing.assert_allclose(pieces, whole, rtol=tol, atol=tol)


def test_bf16_close_to_fp32(models, images):
    a = predict_logits(models[0], images, precision="fp32")
    b = predict_logits(models[0], images, precision="bf16")
    assert b.dtype == np.float32
    np.testing.assert_allclose(b, a, atol=0.05 * np.abs(a).max())


def test_channel_axis_accepted_and_bad_shapes_refused(models, images):
    np.testing.assert_array_equal(predict_logits(models[0], images[:, None], precision="fp32"),
                                  predict_logits(models[0], images, precision="fp32"))
    with pytest.raises(DataError, match="images"):
        predict_logits(models[0], images.reshape(50, -1))
    with pytest.raises(DataError, match="precision"):
        predict_logits(models[0], images, precision="fp16")


def test_empty_input_gives_empty_logits(models):
    out = predict_logits(models, np.zeros((0, 28, 28), dtype=np.uint8))
    assert out.shape == (3, 0, 4)


def test_parallel_workers_give_the_same_logits(models, images):
    one = predict_logits(models, images, batch_size=8, precision="bf16", threads=1)
    two = predict_logits(models, images, batch_size=8, precision="bf16", threads=2)
    np.testing.assert_array_equal(two, one)
