"""Input checks shared by the metric functions (shapes, dtypes, data ranges)."""

from __future__ import annotations

import torch
from torch import Tensor


def as_batch(target: Tensor, recon: Tensor, *, min_size: int = 1) -> tuple[Tensor, Tensor]:
    """Check a target/reconstruction pair and return both as (B, H, W) real tensors.

    Args:
        target: reference images, (H, W) or (B, H, W), real.
        recon: reconstructions, same shape as ``target``.
        min_size: smallest allowed height and width.

    Returns:
        ``(target, recon)`` as (B, H, W) views (a 2-D input becomes a batch of one).

    Raises:
        ValueError: wrong types, shapes, complex dtype or too small images.
    """
    if not isinstance(target, Tensor) or not isinstance(recon, Tensor):
        raise ValueError(
            f"expected torch tensors for target and recon, got {type(target).__name__} and {type(recon).__name__}"
        )
    if target.ndim not in (2, 3):
        raise ValueError(f"expected target of shape (H, W) or (B, H, W), got shape {tuple(target.shape)}")
    if recon.shape != target.shape:
        raise ValueError(f"expected recon of the target's shape {tuple(target.shape)}, got {tuple(recon.shape)}")
    if target.is_complex() or recon.is_complex():
        raise ValueError("expected real-valued (magnitude) images, got a complex tensor; take .abs() first")
    if target.device != recon.device:
        raise ValueError(f"expected target and recon on one device, got {target.device} and {recon.device}")
    if target.ndim == 2:
        target, recon = target.unsqueeze(0), recon.unsqueeze(0)
    h, w = target.shape[-2:]
    if h < min_size or w < min_size:
        raise ValueError(f"expected images of at least {min_size}x{min_size} pixels, got {h}x{w}")
    return target, recon


def as_data_range(data_range: float | Tensor, batch: int, device: torch.device) -> Tensor:
    """Broadcast a data range to one positive float64 value per slice.

    Args:
        data_range: a number, a 0-d tensor or a (B,) tensor.
        batch: number of slices B.
        device: device of the images.

    Returns:
        (B,) float64 tensor on ``device``.

    Raises:
        ValueError: wrong shape, or a value that is not finite and > 0.
    """
    dr = torch.as_tensor(data_range, dtype=torch.float64)
    if dr.ndim == 0:
        dr = dr.expand(batch)
    elif dr.shape != (batch,):
        raise ValueError(f"expected data_range as a number or a tensor of shape ({batch},), got {tuple(dr.shape)}")
    if not bool(torch.isfinite(dr).all()) or not bool((dr > 0).all()):
        raise ValueError(f"expected finite data_range values > 0, got {dr.tolist()}")
    return dr.to(device)
