"""Pixel-wise error metrics with fastMRI's definitions (``fastmri.evaluate.psnr`` / ``nmse``).

Computed per slice in float64; fastMRI evaluates whole volumes, mribench slices (the volume max is
passed in as the data range, as fastMRI does by default).
"""

from __future__ import annotations

import torch
from torch import Tensor

from mribench.metrics._checks import as_batch, as_data_range


def mse(target: Tensor, recon: Tensor) -> Tensor:
    """Mean squared error per slice.

    Args:
        target: reference images, (H, W) or (B, H, W), real.
        recon: reconstructions, same shape and device.

    Returns:
        (B,) float64 tensor on the input device.
    """
    target, recon = as_batch(target, recon)
    diff = target.to(torch.float64) - recon.to(torch.float64)
    return (diff * diff).mean(dim=(-2, -1))


def psnr(target: Tensor, recon: Tensor, data_range: float | Tensor) -> Tensor:
    """Peak signal-to-noise ratio per slice: ``10 log10(data_range^2 / MSE)`` (skimage / fastMRI).

    Args:
        target: reference images, (H, W) or (B, H, W), real.
        recon: reconstructions, same shape and device.
        data_range: peak value, a number or a (B,) tensor (mribench: the target volume's max).

    Returns:
        (B,) float64 tensor in dB; ``inf`` where the slices are identical.
    """
    target, recon = as_batch(target, recon)
    dr = as_data_range(data_range, target.shape[0], target.device)
    err = mse(target, recon)
    return 10.0 * torch.log10(dr * dr / err)


def nmse(target: Tensor, recon: Tensor) -> Tensor:
    """Normalised mean squared error per slice: ``||target - recon||^2 / ||target||^2`` (fastMRI).

    Args:
        target: reference images, (H, W) or (B, H, W), real.
        recon: reconstructions, same shape and device.

    Returns:
        (B,) float64 tensor (``nan``/``inf`` for an all-zero target, as NumPy gives).
    """
    target, recon = as_batch(target, recon)
    t = target.to(torch.float64)
    diff = t - recon.to(torch.float64)
    return (diff * diff).sum(dim=(-2, -1)) / (t * t).sum(dim=(-2, -1))
