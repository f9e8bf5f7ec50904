"""The multi-coil Cartesian MRI forward operator ``A = mask * FFT * sensitivities`` and its adjoint.

FFTs are the centred orthonormal ones of fastMRI (:func:`mribench.physics.fft2c`), so ``A^H`` is the
exact adjoint of ``A`` and ``A^H y`` is the sensitivity-weighted coil combination of the zero-filled
coil images.
"""

from __future__ import annotations

import fastmri
import torch

from mribench.physics.fft import fft2c, ifft2c


def _fft2c(x: torch.Tensor) -> torch.Tensor:
    # mribench.physics.fft2c computes in complex64. Double precision (used by the equivalence tests
    # of the TTT machinery) goes through the same fastmri transform without the cast.
    if x.dtype == torch.complex64:
        return fft2c(x)
    return torch.view_as_complex(fastmri.fft2c(torch.view_as_real(x).contiguous()))


def _ifft2c(x: torch.Tensor) -> torch.Tensor:
    if x.dtype == torch.complex64:
        return ifft2c(x)
    return torch.view_as_complex(fastmri.ifft2c(torch.view_as_real(x).contiguous()))


def forward(image: torch.Tensor, sens: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``A x``: coil images, centred FFT, under-sampling.

    Args:
        image: complex (B, H, W).
        sens: complex (B, C, H, W) coil sensitivities.
        mask: (B, 1, 1, W) column mask or (B, 1, H, W) point mask (ones where sampled).

    Returns:
        complex (B, C, H, W) k-space, zero where not sampled.
    """
    return mask * _fft2c(sens * image.unsqueeze(-3))


def adjoint(kspace: torch.Tensor, sens: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``A^H y``: under-sampling, centred inverse FFT, sensitivity-weighted coil combination.

    Args:
        kspace: complex (B, C, H, W).
        sens: complex (B, C, H, W).
        mask: (B, 1, 1, W) or (B, 1, H, W).

    Returns:
        complex (B, H, W).
    """
    return (sens.conj() * _ifft2c(mask * kspace)).sum(dim=-3)


def coil_images(kspace: torch.Tensor) -> torch.Tensor:
    """Centred orthonormal inverse FFT of each coil, in the input's precision. complex (..., H, W) -> same."""
    return _ifft2c(kspace)


def combine_coils(kspace: torch.Tensor, sens: torch.Tensor) -> torch.Tensor:
    """Sensitivity-weighted coil combination of fully sampled k-space (the complex training target).

    Args:
        kspace: complex (B, C, H, W) fully sampled.
        sens: complex (B, C, H, W).

    Returns:
        complex (B, H, W): ``sum_c conj(S_c) * IFFT(k_c)``.
    """
    return (sens.conj() * _ifft2c(kspace)).sum(dim=-3)
