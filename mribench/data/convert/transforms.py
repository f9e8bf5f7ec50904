"""Array operations of the converters: centred 1D FFTs, exact k-space flips, views of 3D k-space,
RSS images, fastMRI-range scaling and acquired-column detection.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
import scipy.fft as sfft
import torch

from mribench.errors import DataError
from mribench.physics.fft import center_crop, ifft2c, rss

#: Default 99.9th percentile of a converted scan's RSS image. A mribench convention of the order of
#: fastMRI multi-coil targets, not a fastMRI constant: calibrate it on your own fastMRI copy with
#: :func:`reference_level` and pass the value as ``level``.
DEFAULT_LEVEL = 3e-4
DEFAULT_PERCENTILE = 99.9


def fft1c(x: np.ndarray, axis: int) -> np.ndarray:
    """Centred orthonormal 1D FFT along ``axis`` (fastmri's shift order).

    Hand-written because fastmri only offers 2D transforms; uses scipy.fft, which keeps complex64.
    """
    return sfft.fftshift(sfft.fft(sfft.ifftshift(x, axes=axis), axis=axis, norm="ortho", workers=-1), axes=axis)


def ifft1c(x: np.ndarray, axis: int) -> np.ndarray:
    """Centred orthonormal 1D inverse FFT along ``axis`` (fastmri's shift order)."""
    return sfft.fftshift(sfft.ifft(sfft.ifftshift(x, axes=axis), axis=axis, norm="ortho", workers=-1), axes=axis)


def flip_kspace(kspace: np.ndarray, axis: int) -> np.ndarray:
    """The k-space whose centred inverse FFT is the image flipped (``np.flip``) along ``axis``.

    With the centred convention (index centre ``n // 2``), ``np.flip`` maps the centred image
    coordinate ``m`` to ``-m - 1`` for even ``n`` and to ``-m`` for odd ``n``. Hence, with
    ``k = index - n // 2``:

    - odd ``n``: ``K'[k] = K[-k]``, i.e. ``np.flip(K)``;
    - even ``n``: ``K'[k] = exp(2 pi i k / n) K[-k]``, i.e. ``np.flip(K)`` rolled by one sample
      (so that index ``-k`` lines up) times a linear phase ramp (the one-pixel shift).

    Lin & Heckel's ``convert_flip.py`` (``np.flip`` then ``scipy.ndimage.fourier_shift(-1)``) gives
    the same magnitude image but multiplies it by a linear phase; this version is exact.

    Args:
        kspace: complex array, any shape.
        axis: the axis to flip.

    Returns:
        complex64 array of the same shape.
    """
    n = kspace.shape[axis]
    out = np.flip(kspace, axis)
    if n % 2 == 1:
        return np.ascontiguousarray(out, dtype=np.complex64)
    out = np.roll(out, 1, axis=axis)
    shape = [1] * kspace.ndim
    shape[axis] = n
    ramp = np.exp(2j * np.pi * (np.arange(n) - n // 2) / n).reshape(shape)
    return (out * ramp).astype(np.complex64)


@dataclass(frozen=True)
class View:
    """A 2D view of a 3D scan.

    Spatial axes are numbered 0, 1, 2 for the ``kx, ky, kz`` axes of ``(coils, kx, ky, kz)``.

    Attributes:
        name: ``sagittal``, ``coronal`` or ``axial`` (or any label).
        slice_axis: the axis sliced (1D inverse FFT along it).
        row_axis: the axis that becomes the image rows (k-space H, the read-out in fastMRI).
        col_axis: the axis that becomes the columns (k-space W, phase encoding: masked).
        flip_rows: flip the image vertically (done exactly in k-space).
        flip_cols: flip the image horizontally.
        trim: number of (first, last) slices dropped.
    """

    name: str
    slice_axis: int
    row_axis: int
    col_axis: int
    flip_rows: bool = False
    flip_cols: bool = False
    trim: tuple[int, int] = (0, 0)

    def __post_init__(self) -> None:
        if sorted((self.slice_axis, self.row_axis, self.col_axis)) != [0, 1, 2]:
            raise ValueError(
                f"expected slice/row/col axes to be a permutation of (0, 1, 2), "
                f"got {(self.slice_axis, self.row_axis, self.col_axis)}"
            )
        if len(self.trim) != 2 or min(self.trim) < 0:
            raise ValueError(f"expected trim as two non-negative ints (first, last), got {self.trim}")


def view_kspace(kspace3d: np.ndarray, view: View, *, trim: tuple[int, int] | None = None) -> np.ndarray:
    """Slice a 3D k-space into the 2D k-spaces of one view.

    Args:
        kspace3d: complex (C, kx, ky, kz), centred.
        view: the view.
        trim: (first, last) slices to drop; default ``view.trim``.

    Returns:
        complex64 (S, C, H, W): slice s of the view, its 2D centred k-space over (row, col) axes.

    Raises:
        ValueError: for a non-4D input or a trim that leaves no slice.
    """
    if kspace3d.ndim != 4:
        raise ValueError(f"expected 3D k-space of shape (coils, kx, ky, kz), got {kspace3d.shape}")
    first, last = view.trim if trim is None else trim
    sa = 1 + view.slice_axis
    n = kspace3d.shape[sa]
    if first < 0 or last < 0 or first + last >= n:
        raise ValueError(f"expected a trim (first, last) leaving slices out of {n}, got {(first, last)}")
    hybrid = ifft1c(kspace3d.astype(np.complex64, copy=False), axis=sa)
    out = hybrid.transpose(sa, 0, 1 + view.row_axis, 1 + view.col_axis)[first : n - last]
    if view.flip_rows:
        out = flip_kspace(out, 2)
    if view.flip_cols:
        out = flip_kspace(out, 3)
    return np.ascontiguousarray(out, dtype=np.complex64)


def rss_images(kspace2d: np.ndarray, crop: tuple[int, int] | None = None, chunk: int = 8) -> np.ndarray:
    """RSS of the centred 2D inverse FFT (mribench.physics, i.e. fastmri), slice chunk by chunk.

    Args:
        kspace2d: complex (S, C, H, W).
        crop: centre-crop (h, w) with fastmri's convention; ``None`` keeps (H, W).
        chunk: slices per FFT call (bounds memory).

    Returns:
        float32 (S, h, w).
    """
    s, _, hh, ww = kspace2d.shape
    h, w = crop or (hh, ww)
    out = np.empty((s, h, w), dtype=np.float32)
    for i in range(0, s, chunk):
        img = rss(ifft2c(torch.from_numpy(np.ascontiguousarray(kspace2d[i : i + chunk]))))
        out[i : i + chunk] = center_crop(img, (h, w)).numpy()
    return out


def volume_scale(
    rss_volume: np.ndarray, *, level: float = DEFAULT_LEVEL, percentile: float = DEFAULT_PERCENTILE
) -> float:
    """Factor that brings a scan into fastMRI's range: ``level / percentile(rss_volume)``.

    Args:
        rss_volume: the scan's RSS image, any shape (all voxels, uncropped).
        level: the wanted value of the percentile after scaling.
        percentile: in (0, 100].

    Raises:
        ValueError: for a non-positive level or a percentile outside (0, 100].
        DataError: if the scan's percentile is not positive (an empty scan).
    """
    if not level > 0:
        raise ValueError(f"expected a positive scaling level, got {level}")
    if not 0 < percentile <= 100:
        raise ValueError(f"expected a percentile in (0, 100], got {percentile}")
    q = float(np.percentile(rss_volume, percentile))
    if not q > 0 or not np.isfinite(q):
        raise DataError(f"expected a scan with signal, got an RSS {percentile}th percentile of {q}")
    return level / q


def reference_level(paths: list[str | os.PathLike[str]], percentile: float = DEFAULT_PERCENTILE) -> float:
    """Median over fastMRI files of their targets' percentile: a ``level`` calibrated on real data.

    Raises:
        DataError: if a file has no ``reconstruction_rss``.
    """
    if not paths:
        raise ValueError("expected at least one fastMRI file, got none")
    values = []
    for p in paths:
        with h5py.File(p, "r") as hf:
            if "reconstruction_rss" not in hf:
                raise DataError(f"expected reconstruction_rss in {Path(p).name}, got keys {sorted(hf.keys())}")
            values.append(float(np.percentile(hf["reconstruction_rss"][()], percentile)))
    return float(np.median(values))


def acquired_columns(kspace2d: np.ndarray) -> tuple[int, int]:
    """(first, one past last) phase-encoding column holding any non-zero sample (zero padding at the edges)."""
    nz = np.flatnonzero(np.abs(kspace2d).reshape(-1, kspace2d.shape[-1]).max(axis=0) > 0)
    if nz.size == 0:
        raise DataError("expected k-space with non-zero samples, got all zeros")
    return int(nz[0]), int(nz[-1]) + 1


# Views of (coils, kx, ky, kz) with the ISMRMRD axes of the 7T database, as in Lin & Heckel's
# 7T/convert.py: sagittal slices along x (rows z, cols y), coronal along y (rows z, cols x),
# axial along z (rows y, cols x).
ISMRMRD_VIEWS = {
    "sagittal": View("sagittal", 0, 2, 1),
    "coronal": View("coronal", 1, 2, 0),
    "axial": View("axial", 2, 1, 0),
}


def uncentred_to_centred(x: np.ndarray, axes: tuple[int, ...]) -> np.ndarray:
    """Re-centre k-space stored with the non-centred FFT (image = plain ``ifft``) along ``axes``."""
    for a in axes:
        x = fft1c(sfft.ifft(x, axis=a, norm="ortho", workers=-1), axis=a)
    return x
