"""Compiled CPU kernel for fastMRI's SSIM (mean over the valid region of the 7x7 uniform-window map).

Why a hand-written kernel: the reference (``skimage.metrics.structural_similarity``, which
``fastmri.evaluate.ssim`` calls) filters five full-size images and runs ~20 whole-image NumPy passes
per slice; composing the same algebra from torch operators costs ~150 operator calls per slice,
each paying dispatch overhead and a trip through memory, and the Python-side dispatch holds the GIL,
so threads do not scale. One fused loop over the pixels (numba, compiled once and cached on disk)
reads each input pixel a few times from cache and never materialises a filtered image.

Arithmetic: every window sum is formed directly from its 49 pixels in float64 (column sums of 7
rows, then 7 adjacent column sums), so no error accumulates along the image, non-finite pixels
only affect the windows that contain them (as in the reference filter), and values agree with
skimage to ~1e-9.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numba import njit

WIN = 7
NP = WIN * WIN


def _jit(fn: Any) -> Any:
    """Compile without the GIL, cached on disk; per process when no cache folder is writable."""
    try:
        return njit(nogil=True, cache=True)(fn)
    except RuntimeError:  # numba found no writable cache location (read-only install and home)
        return njit(nogil=True)(fn)


@_jit
def _ssim_slice(x: np.ndarray, y: np.ndarray, data_range: float, k1: float, k2: float, col: np.ndarray) -> float:
    """Mean SSIM of one (H, W) pair; ``col`` is a (4, W) float64 scratch buffer."""
    h, w = x.shape
    oh = h - WIN + 1
    ow = w - WIN + 1
    c1 = (k1 * data_range) ** 2
    c2 = (k2 * data_range) ** 2
    cov_norm = NP / (NP - 1.0)
    inv = 1.0 / NP
    total = 0.0
    for r in range(oh):
        # Column sums over rows r .. r + 6 of x, y, x^2 + y^2 (only vx + vy enters SSIM) and xy.
        for j in range(w):
            sx = 0.0
            sy = 0.0
            sq = 0.0
            sp = 0.0
            for k in range(WIN):
                a = np.float64(x[r + k, j])
                b = np.float64(y[r + k, j])
                sx += a
                sy += b
                sq += a * a + b * b
                sp += a * b
            col[0, j] = sx
            col[1, j] = sy
            col[2, j] = sq
            col[3, j] = sp
        row = 0.0
        for j in range(ow):
            sx = 0.0
            sy = 0.0
            sq = 0.0
            sp = 0.0
            for k in range(WIN):
                sx += col[0, j + k]
                sy += col[1, j + k]
                sq += col[2, j + k]
                sp += col[3, j + k]
            # skimage's formula: means u, sample (co)variances v = NP / (NP - 1) * (E[..] - u u).
            ux = sx * inv
            uy = sy * inv
            uxuy = ux * uy
            b1 = ux * ux + uy * uy
            a1 = 2.0 * uxuy + c1
            a2 = 2.0 * cov_norm * (sp * inv - uxuy) + c2
            b2 = cov_norm * (sq * inv - b1) + c2
            row += (a1 * a2) / ((b1 + c1) * b2)
        total += row
    return total / (oh * ow)


@_jit
def ssim_batch(x: np.ndarray, y: np.ndarray, data_range: np.ndarray, k1: float, k2: float, out: np.ndarray) -> None:
    """Write the mean SSIM of each slice pair into ``out``.

    Args:
        x: (B, H, W) float32 or float64 targets, C-contiguous, H and W >= 7.
        y: (B, H, W) reconstructions, same dtype and shape.
        data_range: (B,) float64 ``L`` of the SSIM constants.
        k1: SSIM's K1 (0.01).
        k2: SSIM's K2 (0.03).
        out: (B,) float64 output.
    """
    col = np.empty((4, x.shape[2]), dtype=np.float64)
    for i in range(x.shape[0]):
        out[i] = _ssim_slice(x[i], y[i], data_range[i], k1, k2, col)
