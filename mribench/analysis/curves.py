"""Robustness curves: a metric as a function of a shift axis (acceleration, coil count, SNR).

The area under a curve is computed with the trapezoid rule after mapping the x range
``[x_low, x_high]`` onto [0, 1] (``log_x=True`` maps ``log x`` instead, natural for acceleration
factors 2, 4, 8), so the area equals the *average metric over the range* and is comparable between
axes and units. Curves are compared on a common ``x_range``; the curve is linearly interpolated (in
the chosen x scale) at the range ends and never extrapolated.

The SNR axis is produced by :func:`add_noise`: complex white Gaussian noise on the acquired k-space
samples, ``SNR_dB = 20 log10(RMS(acquired k-space) / sigma)`` with ``sigma^2 = E|noise|^2``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
import torch

from mribench.analysis._checks import AnalysisInputError


def _curve_arrays(curve: Mapping[float, float], log_x: bool) -> tuple[np.ndarray, np.ndarray]:
    if len(curve) < 2:
        raise AnalysisInputError(f"expected a curve with at least 2 points, got {len(curve)}")
    xs = np.array(sorted(float(x) for x in curve))
    ys = np.array([float(curve[x]) for x in sorted(curve, key=float)])
    if not (np.isfinite(xs).all() and np.isfinite(ys).all()):
        raise AnalysisInputError(
            f"expected finite x and metric values, got {dict(zip(xs.tolist(), ys.tolist(), strict=True))}"
        )
    if log_x:
        if (xs <= 0).any():
            raise AnalysisInputError(f"expected positive x values with log_x=True, got {xs.min()}")
        xs = np.log(xs)
    return xs, ys


def robustness_auc(
    curve: Mapping[float, float], x_range: tuple[float, float] | None = None, log_x: bool = False
) -> float:
    """Normalised area under a robustness curve (= average metric over the x range).

    Args:
        curve: ``{x: mean metric}`` with at least two points, e.g. ``{2: 0.93, 4: 0.90, 8: 0.84}``.
        x_range: ``(x_low, x_high)`` inside the curve's x span; default the span itself.
        log_x: integrate over ``log x`` instead of ``x``.

    Returns:
        Trapezoid-rule area over the x range mapped to [0, 1], in metric units.
    """
    xs, ys = _curve_arrays(curve, log_x)
    lo, hi = (xs[0], xs[-1]) if x_range is None else (float(x_range[0]), float(x_range[1]))
    if x_range is not None and log_x:
        if min(x_range) <= 0:
            raise AnalysisInputError(f"expected a positive x_range with log_x=True, got {x_range}")
        lo, hi = math.log(lo), math.log(hi)
    if not lo < hi:
        raise AnalysisInputError(f"expected x_range with low < high, got {x_range}")
    if lo < xs[0] - 1e-12 or hi > xs[-1] + 1e-12:
        raise AnalysisInputError(f"expected x_range within the curve's x span {(xs[0], xs[-1])}, got {(lo, hi)}")
    inner = (xs > lo) & (xs < hi)
    grid = np.concatenate([[lo], xs[inner], [hi]])
    vals = np.interp(grid, xs, ys)
    u = (grid - lo) / (hi - lo)
    return float(np.sum(0.5 * (vals[1:] + vals[:-1]) * np.diff(u)))


def add_noise(
    kspace: torch.Tensor,
    snr_db: float,
    seed: int,
    mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """Add complex white Gaussian noise at a given SNR to the acquired k-space samples.

    The noise is drawn on the CPU from ``torch.Generator().manual_seed(seed)`` (same noise on every
    device), scaled to ``sigma = RMS / 10**(snr_db / 20)`` where RMS is over the acquired samples,
    and added to acquired samples only (unacquired zeros stay zero). Derive ``seed`` from a stable id
    (the file name) so every model sees the same noise.

    Args:
        kspace: complex (C, H, W) (any leading dims) k-space.
        snr_db: target SNR in dB; ``inf`` returns an unchanged copy.
        seed: seed of the local generator.
        mask: optional bool/0-1 mask broadcastable to ``kspace`` marking acquired samples; default
            the non-zero samples.

    Returns:
        Noisy complex k-space, same shape, dtype and device as ``kspace``.
    """
    if not isinstance(kspace, torch.Tensor) or not kspace.is_complex():
        raise AnalysisInputError(
            f"expected a complex k-space tensor, got {getattr(kspace, 'dtype', type(kspace).__name__)}"
        )
    snr = float(snr_db)
    if math.isnan(snr) or snr == -math.inf:
        raise AnalysisInputError(f"expected a finite SNR in dB (or inf), got {snr_db}")
    if snr == math.inf:
        return kspace.clone()
    if mask is None:
        acquired = kspace != 0
    else:
        try:
            acquired = torch.broadcast_to(mask.to(kspace.device).bool(), kspace.shape)
        except RuntimeError:
            raise AnalysisInputError(
                f"expected a mask broadcastable to {tuple(kspace.shape)}, got {tuple(mask.shape)}"
            ) from None
    n_acq = int(acquired.sum())
    if n_acq == 0:
        raise AnalysisInputError("expected k-space with acquired (non-zero) samples, got none")
    rms = torch.sqrt((kspace.abs() ** 2)[acquired].double().mean())
    sigma = float(rms) / 10 ** (snr / 20)
    gen = torch.Generator().manual_seed(int(seed))
    noise = torch.randn(kspace.shape, generator=gen, dtype=torch.complex128)  # E|n|^2 = 1
    noise = noise.to(device=kspace.device, dtype=kspace.dtype) * sigma
    return kspace + noise * acquired
