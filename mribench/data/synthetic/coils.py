"""Receive-coil sensitivity maps and coil-noise covariances.

Each element is a smooth magnitude bump (a loop's Biot-Savart-like fall-off, ``(1 + d^2/r^2)^-1.5``
with ``d`` the 3D distance from the element) placed on an ellipse around the object, arrays of 12
or more elements in two rings above and below the slice (birdcage-like). Each map carries a smooth
phase (the element's angle plus a gentle linear ramp and a low-order term). Maps are normalised so
that the sum of squared magnitudes is flat over the field of view; inhomogeneity is left to the
separate bias field of the anatomy.
"""

from __future__ import annotations

import hashlib

import numpy as np


def coil_maps(
    n_coils: int,
    shape: tuple[int, int],
    pixel_mm: float,
    semi_axes_mm: tuple[float, float],
    rng: np.random.Generator,
    center_mm: tuple[float, float] = (0.0, 0.0),
) -> np.ndarray:
    """Complex coil sensitivity maps.

    Args:
        n_coils: number of receive elements (>= 1).
        shape: (H, W) grid; pixel ``(i, j)`` sits at ``((i - H//2) p, (j - W//2) p)`` mm.
        pixel_mm: pixel size ``p`` in mm.
        semi_axes_mm: (read, phase) semi-axes of the object the array surrounds.
        rng: the volume's generator (element jitter and phase terms).
        center_mm: (read, phase) centre of the array in mm.

    Returns:
        complex64 (C, H, W) maps with ``sum_c |S_c|^2 == 1`` everywhere.

    Raises:
        ValueError: for fewer than one coil or a non-positive pixel size.
    """
    if n_coils < 1:
        raise ValueError(f"expected at least one coil, got {n_coils}")
    if not pixel_mm > 0:
        raise ValueError(f"expected a positive pixel size, got {pixel_mm}")
    H, W = shape
    y = (np.arange(H, dtype=np.float64) - H // 2)[:, None] * pixel_mm - center_mm[0]
    x = (np.arange(W, dtype=np.float64) - W // 2)[None, :] * pixel_mm - center_mm[1]
    rings = 2 if n_coils >= 12 else 1
    per_ring = [n_coils // rings + (1 if r < n_coils % rings else 0) for r in range(rings)]
    ay, ax = semi_axes_mm[0] * 1.25 + 15.0, semi_axes_mm[1] * 1.25 + 15.0
    circumference = np.pi * (ay + ax)
    maps = np.empty((n_coils, H, W), dtype=np.complex128)
    c = 0
    start = rng.uniform(0, 2 * np.pi)
    for r, n in enumerate(per_ring):
        z = 0.0 if rings == 1 else (-1) ** r * rng.uniform(30.0, 45.0)
        radius = max(circumference / max(n, 1) * 0.55, 35.0)
        for k in range(n):
            theta = start + 2 * np.pi * (k + 0.5 * r) / n + rng.normal(0, 0.08)
            cy, cx = ay * np.sin(theta), ax * np.cos(theta)
            d2 = (y - cy) ** 2 + (x - cx) ** 2 + z**2
            mag = (1.0 + d2 / radius**2) ** -1.5
            ramp = rng.uniform(0.5, 1.5) / max(ay, ax)
            phase = (
                theta
                + ramp * ((y - cy) * np.sin(theta) + (x - cx) * np.cos(theta))
                + rng.normal(0, 0.3) * (y * x) / (ay * ax)
            )
            maps[c] = mag * np.exp(1j * phase)
            c += 1
    sos = np.sqrt((np.abs(maps) ** 2).sum(0))
    return (maps / sos).astype(np.complex64)


def noise_covariance(n_coils: int, coupling: float, key: str) -> np.ndarray:
    """A site's random (fixed) complex coil-noise covariance.

    Neighbouring elements couple more than distant ones; variances differ a little per element.
    The matrix depends only on ``(n_coils, coupling, key)``, never on a global RNG.

    Args:
        n_coils: number of coils.
        coupling: strength of the correlation (0 gives the identity).
        key: stable seed text (e.g. ``"SITE_A:15"``).

    Returns:
        complex128 (C, C) Hermitian positive-definite matrix with mean diagonal 1.
    """
    if n_coils < 1:
        raise ValueError(f"expected at least one coil, got {n_coils}")
    seed = int.from_bytes(hashlib.sha256(f"noise-cov:{key}:{n_coils}".encode()).digest()[:8], "little")
    rng = np.random.default_rng(seed)
    idx = np.arange(n_coils)
    dist = np.minimum(np.abs(idx[:, None] - idx[None, :]), n_coils - np.abs(idx[:, None] - idx[None, :]))
    a = np.eye(n_coils, dtype=np.complex128)
    g = (rng.standard_normal((n_coils, n_coils)) + 1j * rng.standard_normal((n_coils, n_coils))) / np.sqrt(2)
    a += coupling * g * np.exp(-dist / 1.5) * (1 - np.eye(n_coils))
    scale = np.sqrt(rng.uniform(0.8, 1.25, n_coils))
    cov = np.einsum("ik,jk->ij", a, a.conj())
    cov = scale[:, None] * cov * scale[None, :]
    return cov / np.mean(np.diag(cov).real)


def cholesky(a: np.ndarray) -> np.ndarray:
    """Lower Cholesky factor of a small Hermitian positive-definite matrix (C, C), without LAPACK.

    Plain loops keep it free of BLAS/LAPACK thread pools and identical on every machine.
    """
    n = a.shape[0]
    if a.shape != (n, n):
        raise ValueError(f"expected a square matrix, got shape {a.shape}")
    low = np.zeros((n, n), dtype=np.complex128)
    for i in range(n):
        for j in range(i + 1):
            s = a[i, j] - (low[i, :j] * low[j, :j].conj()).sum()
            if i == j:
                if not s.real > 0:
                    raise ValueError("expected a positive-definite matrix, got a non-positive pivot")
                low[i, i] = np.sqrt(s.real)
            else:
                low[i, j] = s / low[j, j]
    return low
