"""Optional output normalisation before scoring (Lin & Heckel).

Each reconstruction is affinely mapped to the target's mean and standard deviation:
``recon <- (recon - mean_r) / std_r * std_t + mean_t``. Only the ratio ``std_t / std_r`` enters, so
the choice of ddof does not matter (both use the same).
"""

from __future__ import annotations

import torch
from torch import Tensor

from mribench.metrics._checks import as_batch


def normalize_output(recon: Tensor, target: Tensor) -> Tensor:
    """Match each reconstruction's mean and standard deviation to its target's.

    Args:
        recon: reconstructions, (H, W) or (B, H, W), real.
        target: reference images, same shape and device.

    Returns:
        Tensor of ``recon``'s shape and dtype. A constant reconstruction (std 0) becomes the
        constant target mean.
    """
    squeeze = recon.ndim == 2
    target_b, recon_b = as_batch(target, recon)
    r = recon_b.to(torch.float64)
    t = target_b.to(torch.float64)
    mean_r = r.mean(dim=(-2, -1), keepdim=True)
    mean_t = t.mean(dim=(-2, -1), keepdim=True)
    std_r = r.std(dim=(-2, -1), keepdim=True, correction=0)
    std_t = t.std(dim=(-2, -1), keepdim=True, correction=0)
    scale = torch.where(std_r > 0, std_t / std_r.clamp_min(torch.finfo(torch.float64).tiny), torch.zeros_like(std_r))
    out = ((r - mean_r) * scale + mean_t).to(recon.dtype if recon.is_floating_point() else torch.float32)
    return out[0] if squeeze else out
