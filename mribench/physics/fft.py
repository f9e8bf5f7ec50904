"""Centred, orthonormal 2D FFTs on complex tensors and coil combination.

mribench keeps k-space as complex64 ``(..., H, W)``; fastmri uses a trailing real dim of 2. The
transforms are fastmri's definition (ifftshift -> orthonormal FFT -> fftshift over the last two
dims) written with torch's native complex ``fftshift``: fastmri's own shift (narrow + cat) is about
half of a zero-filled reconstruction's time. tests/test_physics.py checks equality with fastmri.
"""

from __future__ import annotations

import torch

_DIMS = (-2, -1)


def fft2c(image: torch.Tensor) -> torch.Tensor:
    """Centred orthonormal FFT over the last two dims. complex (..., H, W) -> complex (..., H, W)."""
    x = torch.fft.ifftshift(image.to(torch.complex64), dim=_DIMS)
    return torch.fft.fftshift(torch.fft.fft2(x, dim=_DIMS, norm="ortho"), dim=_DIMS)


def ifft2c(kspace: torch.Tensor) -> torch.Tensor:
    """Centred orthonormal inverse FFT over the last two dims. complex (..., H, W) -> complex (..., H, W)."""
    x = torch.fft.ifftshift(kspace.to(torch.complex64), dim=_DIMS)
    return torch.fft.fftshift(torch.fft.ifft2(x, dim=_DIMS, norm="ortho"), dim=_DIMS)


def rss(coil_images: torch.Tensor, dim: int = -3) -> torch.Tensor:
    """Root-sum-of-squares coil combination. complex (..., C, H, W) -> real (..., H, W)."""
    return torch.sqrt((coil_images.real**2 + coil_images.imag**2).sum(dim))


def center_crop(x: torch.Tensor, shape: tuple[int, int]) -> torch.Tensor:
    """Centre-crop the last two dims to ``shape`` with fastmri's index convention."""
    h, w = shape
    if not (0 < h <= x.shape[-2] and 0 < w <= x.shape[-1]):
        raise ValueError(f"expected a crop size within {tuple(x.shape[-2:])}, got {shape}")
    top = (x.shape[-2] - h) // 2
    left = (x.shape[-1] - w) // 2
    return x[..., top : top + h, left : left + w]


def zero_filled(masked_kspace: torch.Tensor, shape: tuple[int, int]) -> torch.Tensor:
    """Zero-filled RSS reconstruction. complex (B, C, H, W) -> real (B, h, w) cropped to ``shape``."""
    return center_crop(rss(ifft2c(masked_kspace)), shape)
