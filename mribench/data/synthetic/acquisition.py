"""From an object on a fine grid to multi-coil k-space: band-limiting, coils, noise, filters.

Pipeline of one slice (all arrays complex, fastMRI's centred orthonormal FFT convention):

1. the object is built on a grid ``f`` times finer than the encoded matrix (``(f H, f W)``);
2. its k-space is cropped to the encoded matrix ``(H, W)`` (no inverse crime: the object is
   not representable on the reconstruction grid) and brought back to image space;
3. coil images ``S_c * x`` are Fourier transformed (``fft2c``);
4. complex Gaussian noise, correlated across coils by the site's covariance, is added;
5. unacquired phase-encoding columns are zeroed; a site may apodise (Fermi window).

The target is then ``center_crop(rss(ifft2c(kspace)))`` of the final complex64 k-space, as fastMRI
computes ``reconstruction_rss`` (same centred orthonormal FFT convention as
:mod:`mribench.physics.fft`), evaluated in double precision and stored as float32. Generation uses
NumPy/SciPy only (no torch, no BLAS), so it is single-threaded and identical in every process.
"""

from __future__ import annotations

import numpy as np
import scipy.fft as sfft


def _checkerboard(shape: tuple[int, ...]) -> np.ndarray:
    """(-1)^(i + j) over the last two axes, float32 (H, W)."""
    h, w = shape[-2], shape[-1]
    return np.where((np.arange(h)[:, None] + np.arange(w)[None, :]) % 2 == 0, 1.0, -1.0).astype(np.float32)


def _centred(x: np.ndarray, inverse: bool) -> np.ndarray:
    h, w = x.shape[-2:]
    fn = sfft.ifft2 if inverse else sfft.fft2
    if h % 2 or w % 2:  # general case: explicit shifts
        return sfft.fftshift(fn(sfft.ifftshift(x, axes=(-2, -1)), norm="ortho", workers=1), axes=(-2, -1))
    # even sizes: the shifts are a (-1)^(i+j) modulation on both sides (cheaper than rolling)
    m = _checkerboard(x.shape)
    out = fn(x * m, norm="ortho", workers=1)
    out *= m if (h // 2 + w // 2) % 2 == 0 else -m
    return out


def fft2c_np(x: np.ndarray) -> np.ndarray:
    """Centred orthonormal 2D FFT over the last two axes (fastMRI convention). complex (..., H, W)."""
    return _centred(x, inverse=False)


def ifft2c_np(k: np.ndarray) -> np.ndarray:
    """Centred orthonormal 2D inverse FFT over the last two axes. complex (..., H, W)."""
    return _centred(k, inverse=True)


def crop_center(x: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Centre crop of the last two axes with fastmri's index convention. (..., H, W) -> (..., h, w)."""
    h, w = shape
    if not (0 < h <= x.shape[-2] and 0 < w <= x.shape[-1]):
        raise ValueError(f"expected a crop size within {x.shape[-2:]}, got {shape}")
    top, left = (x.shape[-2] - h) // 2, (x.shape[-1] - w) // 2
    return x[..., top : top + h, left : left + w]


def band_limit(fine: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Resample a fine-grid object onto a coarser grid of the same field of view by cropping k-space.

    Pixel ``i`` of an ``N``-pixel grid sits at ``(i - N//2) * FOV / N`` (centred FFT convention), so
    the two grids share their centre pixel; amplitudes are preserved.

    Args:
        fine: complex or real (fH, fW) object, fH >= H and fW >= W, all sizes even.
        shape: (H, W) target grid.

    Returns:
        complex128 (H, W) band-limited object.
    """
    fh, fw = fine.shape
    if fh < shape[0] or fw < shape[1] or any(n % 2 for n in (fh, fw, *shape)):
        raise ValueError(f"expected an even fine grid at least {shape}, got {fine.shape}")
    k = crop_center(fft2c_np(fine), shape)
    return ifft2c_np(k) * np.sqrt(shape[0] * shape[1] / (fh * fw))  # orthonormal FFTs: rescale to keep amplitudes


def fermi_window(shape: tuple[int, int], radius: float, width: float) -> np.ndarray:
    """Radial Fermi apodisation window ``1 / (1 + exp((r - radius) / width))``, r in units of k_max.

    Returns:
        float64 (H, W), 1 at the k-space centre.
    """
    H, W = shape
    ky = (np.arange(H) - H // 2) / (H / 2)
    kx = (np.arange(W) - W // 2) / (W / 2)
    r = np.sqrt(ky[:, None] ** 2 + kx[None, :] ** 2)
    return 1.0 / (1.0 + np.exp((r - radius) / width))


def coil_kspace(
    obj: np.ndarray,
    sens: np.ndarray,
    noise_std: float,
    noise_chol: np.ndarray,
    rng: np.random.Generator,
    *,
    padding: tuple[int, int],
    window: np.ndarray | None = None,
) -> np.ndarray:
    """Multi-coil k-space of one slice.

    Args:
        obj: complex (H, W) band-limited object on the encoded grid.
        sens: complex (C, H, W) coil maps.
        noise_std: per-coil noise standard deviation (complex: each of real/imag has std/sqrt 2).
        noise_chol: complex (C, C) lower-triangular Cholesky factor of the coil-noise covariance.
        rng: the volume's generator.
        padding: (padding_left, padding_right) acquired phase-encoding columns; others are zeroed.
        window: optional (H, W) apodisation applied to the acquired data.

    Returns:
        complex64 (C, H, W) k-space.
    """
    C, H, W = sens.shape
    k = fft2c_np((sens * obj[None]).astype(np.complex64, copy=False))
    white = rng.standard_normal((C, H, W, 2), dtype=np.float32)
    white *= np.float32(noise_std / np.sqrt(2.0))
    noise = white.view(np.complex64)[..., 0]  # (C, H, W): real/imag pairs, no copy
    # correlate across coils: k_c += sum_j L_cj n_j (an explicit loop: no BLAS threads, exact
    # and identical in every process)
    chol = noise_chol.astype(np.complex64)
    for c in range(C):
        for j in range(c + 1):
            if chol[c, j] != 0:
                k[c] += chol[c, j] * noise[j]
    left, right = padding
    k[..., :left] = 0
    k[..., right:] = 0
    if window is not None:
        k *= window.astype(np.float32)
    return k


def rss_target(kspace: np.ndarray, recon: tuple[int, int]) -> np.ndarray:
    """fastMRI's ``reconstruction_rss``: centre-cropped RSS of the IFFT of the full k-space.

    Computed in double precision from the stored complex64 k-space and rounded to float32, so it
    equals ``fastmri.rss(fastmri.complex_abs(fastmri.ifft2c(to_tensor(kspace))), dim=0)``
    centre-cropped to float32 precision (and does not depend on any thread pool).

    Args:
        kspace: complex64 (S, C, H, W).
        recon: (h, w) reconSpace matrix.

    Returns:
        float32 (S, h, w).
    """
    out = np.empty((kspace.shape[0], *recon), dtype=np.float32)
    for s in range(kspace.shape[0]):
        img = ifft2c_np(kspace[s].astype(np.complex128))
        out[s] = crop_center(np.sqrt((img.real**2 + img.imag**2).sum(0)), recon)
    return out


def finalize(
    kspace: np.ndarray, recon: tuple[int, int], target_max: float, peak: float
) -> tuple[np.ndarray, np.ndarray]:
    """Scale a volume's k-space to fastMRI's intensity range and compute its RSS target.

    Args:
        kspace: complex (S, C, H, W) k-space.
        recon: (h, w) reconSpace matrix.
        target_max: wanted volume maximum of the target (fastMRI multicoil: ~1e-4 .. 1e-3).
        peak: the volume maximum of the unscaled coil-combined object within the recon FOV
            (with normalised coil maps the RSS target's maximum up to noise and filtering).

    Returns:
        ``(kspace, target)``: complex64 (S, C, H, W) and float32 (S, h, w), where ``target`` is
        :func:`rss_target` of the returned complex64 k-space (fastMRI's recipe).
    """
    if not peak > 0:
        raise ValueError(f"expected a positive peak, got {peak}")
    k64 = (kspace * np.float32(target_max / peak)).astype(np.complex64, copy=False)
    return k64, rss_target(k64, recon)
