"""Training-time augmentation: small random affine warps of a whole batch in one call.

Handwriting varies by a few pixels of position, a few degrees of slant and a little size; warping
training images the same way teaches the network that invariance. One ``affine_grid`` +
``grid_sample`` per batch keeps it cheap next to the convolutions.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def random_affine(
    x: torch.Tensor,
    generator: torch.Generator,
    *,
    max_shift: float = 2.0,
    max_rotate: float = 10.0,
    scale: tuple[float, float] = (0.9, 1.1),
) -> torch.Tensor:
    """Warp each image of ``x`` ``(N, C, H, W)`` (float) by its own random affine map.

    Per image: shift uniform in +-``max_shift`` pixels on each axis, rotation uniform in
    +-``max_rotate`` degrees, zoom uniform in ``scale``. Pixels from outside the image are 0
    (background, on the raw 0..255 scale). Shape and dtype are kept.
    """
    if x.ndim != 4 or not x.is_floating_point():
        raise ValueError(f"random_affine needs a float (N, C, H, W) tensor, got "
                         f"{x.dtype} {tuple(x.shape)}")
    n, _, h, w = x.shape
    u = torch.rand(n, 4, generator=generator, device=x.device, dtype=torch.float32) * 2 - 1
    angle = u[:, 0] * math.radians(max_rotate)
    lo, hi = scale
    zoom = lo + (u[:, 1] + 1) * 0.5 * (hi - lo)
    # affine_grid maps output coordinates to input coordinates in [-1, 1] units (2/size per
    # pixel); sampling from (R / zoom) p + t rotates the content and scales it by ``zoom``.
    cos, sin = torch.cos(angle) / zoom, torch.sin(angle) / zoom
    tx = u[:, 2] * max_shift * 2.0 / w
    ty = u[:, 3] * max_shift * 2.0 / h
    theta = torch.stack([torch.stack([cos, -sin, tx], 1), torch.stack([sin, cos, ty], 1)], 1)
    grid = F.affine_grid(theta.to(x.dtype), list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
