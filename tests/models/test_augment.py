import numpy as np
import pytest
import torch

from notsure.models.augment import random_affine


def _blob(n: int = 64, size: int = 28) -> torch.Tensor:
    """Images with a small bright square near the centre (content stays inside when warped)."""
    x = torch.zeros(n, 1, size, size)
    x[:, :, 10:16, 12:17] = 200.0
    return x


def _centroid(x: torch.Tensor) -> np.ndarray:
    h, w = x.shape[-2:]
    rows, cols = torch.meshgrid(torch.arange(h, dtype=torch.float64),
                                torch.arange(w, dtype=torch.float64), indexing="ij")
    mass = x.double().sum((1, 2, 3))
    return torch.stack([(x[:, 0] * rows).sum((1, 2)) / mass,
                        (x[:, 0] * cols).sum((1, 2)) / mass], 1).numpy()


def test_keeps_shape_and_dtype_and_changes_images():
    x = _blob()
    out = random_affine(x, torch.Generator().manual_seed(0))
    assert out.shape == x.shape and out.dtype == x.dtype
    assert not torch.equal(out, x)


def test_identity_parameters_return_the_input():
    x = torch.rand(8, 1, 28, 28) * 255
    out = random_affine(x, torch.Generator().manual_seed(0), max_shift=0.0, max_rotate=0.0,
                        scale=(1.0, 1.0))
    torch.testing.assert_close(out, x, atol=1e-3, rtol=0)


def test_shift_only_moves_content_at_most_max_shift_pixels():
    x = _blob()
    out = random_affine(x, torch.Generator().manual_seed(1), max_shift=2.0, max_rotate=0.0,
                        scale=(1.0, 1.0))
    moved = np.abs(_centroid(out) - _centroid(x))
    assert moved.max() <= 2.0 + 1e-4
    assert moved.max() > 0.5  # it does shift
    # bilinear resampling by a shift keeps the total ink
    np.testing.assert_allclose(out.sum((1, 2, 3)), x.sum((1, 2, 3)), rtol=1e-4)


def test_rotation_only_turns_content_by_at_most_max_rotate_degrees():
    x = _blob()
    out = random_affine(x, torch.Generator().manual_seed(2), max_shift=0.0, max_rotate=10.0,
                        scale=(1.0, 1.0))
    centre = (28 - 1) / 2
    before, after = _centroid(x) - centre, _centroid(out) - centre
    turn = np.degrees(np.arctan2(after[:, 0], after[:, 1]) - np.arctan2(before[:, 0],
                                                                         before[:, 1]))
    assert np.abs(turn).max() <= 10.5
    assert np.abs(turn).max() > 3.0


def test_same_generator_seed_gives_same_warps():
    x = _blob(8)
    a = random_affine(x, torch.Generator().manual_seed(5))
    b = random_affine(x, torch.Generator().manual_seed(5))
    assert torch.equal(a, b)


def test_rejects_integer_tensors():
    with pytest.raises(ValueError, match="float"):
        random_affine(torch.zeros(2, 1, 28, 28, dtype=torch.uint8), torch.Generator())
