"""Laplacian artifact variance (Lin & Heckel): variance of the 3x3 Laplacian of |target - recon|.

Lower is better: it grows with high-frequency error structure (aliasing, streaks, noise). The
Laplacian is the 5-point stencil ``[[0, 1, 0], [1, -4, 1], [0, 1, 0]]``, i.e. ``scipy.ndimage.laplace``
with its default boundary mode ``'reflect'`` (half-sample symmetric: the pixel beyond an edge equals
the edge pixel, which for a 3-tap stencil is plain edge replication). OpenCV's ``cv2.Laplacian``
default (``BORDER_REFLECT_101``) differs on the one-pixel border only. The variance is the
population variance (ddof = 0, NumPy's ``.var()``) over all H x W pixels.

Hand-written (five shifted views of an edge-padded image) because torch has no Laplacian and a conv
would need float64 support that oneDNN lacks on CPU.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from mribench.metrics._checks import as_batch


def laplacian(image: Tensor) -> Tensor:
    """Discrete 5-point Laplacian with scipy's default ``'reflect'`` boundary.

    Args:
        image: (B, H, W) real tensor.

    Returns:
        (B, H, W) tensor of the image's dtype.
    """
    p = F.pad(image.unsqueeze(1), (1, 1, 1, 1), mode="replicate").squeeze(1)  # (B, H + 2, W + 2)
    c = p[:, 1:-1, 1:-1]
    return p[:, :-2, 1:-1] + p[:, 2:, 1:-1] + p[:, 1:-1, :-2] + p[:, 1:-1, 2:] - 4.0 * c


def laplacian_variance(target: Tensor, recon: Tensor) -> Tensor:
    """Variance of the Laplacian of the absolute error, per slice (lower is better).

    Args:
        target: reference images, (H, W) or (B, H, W), real.
        recon: reconstructions, same shape and device.

    Returns:
        (B,) float64 tensor on the input device.
    """
    target, recon = as_batch(target, recon)
    err = (target.to(torch.float64) - recon.to(torch.float64)).abs()
    return laplacian(err).var(dim=(-2, -1), correction=0)
