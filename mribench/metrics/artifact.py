"""Laplacian artifact variance (Lin & Heckel): variance of the 3x3 Laplacian of |target - recon|.

Lower is better: it grows with high-frequency error structure (aliasing, streaks, noise).

Intensity scale. The variance scales with intensity squared, so on raw fastMRI intensities (~1e-4)
it is ~1e-9 and depends on the scanner's scaling. It is computed on a fixed, scale-free scale: the
error in units of 1/255 of the data range (mribench: the target **volume's** max), i.e. on
``|target - recon| / data_range * 255``, the 8-bit display scale on which the variance of the
Laplacian is usually computed (``cv2.Laplacian(img, cv2.CV_64F).var()`` on uint8 images, without
the rounding). Lin & Heckel 2024 (Table 4: 117-434) do not state their scale and their public code
(MLI-lab/mri_data_diversity) contains no Laplacian computation; the 8-bit scale is mribench's
documented assumption, consistent with the magnitude of their values (on the embedded benchmark it
gives a few hundred to a few thousand at 128x128 and 160x160).

The
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

from mribench.metrics._checks import as_batch, as_data_range

DISPLAY_SCALE = 255.0  # the error is measured in 1/255 of the data range (8-bit display scale)


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


def laplacian_variance(
    target: Tensor, recon: Tensor, data_range: float | Tensor, *, scale: float = DISPLAY_SCALE
) -> Tensor:
    """Variance of the Laplacian of the absolute error on the 8-bit display scale, per slice.

    ``var(laplace(|target - recon| / data_range * scale))`` (lower is better); invariant to a common
    intensity scaling of target, recon and data range.

    Args:
        target: reference images, (H, W) or (B, H, W), real.
        recon: reconstructions, same shape and device.
        data_range: a number or a (B,) tensor (mribench: the target volume's max).
        scale: value of ``data_range`` on the output scale (255: 8-bit display).

    Returns:
        (B,) float64 tensor on the input device.
    """
    target, recon = as_batch(target, recon)
    dr = as_data_range(data_range, target.shape[0], target.device)
    err = (target.to(torch.float64) - recon.to(torch.float64)).abs() * (float(scale) / dr).view(-1, 1, 1)
    return laplacian(err).var(dim=(-2, -1), correction=0)
