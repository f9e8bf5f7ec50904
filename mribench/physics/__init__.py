"""MRI physics: centred orthonormal FFTs, coil combination, sampling masks."""

from __future__ import annotations

from mribench.physics.fft import center_crop, fft2c, ifft2c, rss, zero_filled
from mribench.physics.masks import CENTER_FRACTIONS, MaskSpec, volume_mask, volume_seed

__all__ = [
    "CENTER_FRACTIONS",
    "MaskSpec",
    "center_crop",
    "fft2c",
    "ifft2c",
    "rss",
    "volume_mask",
    "volume_seed",
    "zero_filled",
]
