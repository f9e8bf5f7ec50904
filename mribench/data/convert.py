"""Convert volumetric and foreign MRI datasets to the fastMRI multi-coil convention.

The conversion follows Lin & Heckel (2024), appendix and public conversion scripts
(MLI-lab/mri_data_diversity, ``convert_datasets/``):

1. A reader turns one source file into centred 3D k-space ``(coils, kx, ky, kz)`` (3D datasets) or
   into 2D slices ``(slices, coils, H, W)`` (2D datasets already close to fastMRI, e.g. M4Raw).
2. Per view (sagittal / coronal / axial): a 1D centred inverse FFT along the slice axis; each slice's
   2D k-space is then the remaining two axes, transposed to ``(rows, cols) = (H, W)``; W is the
   phase-encoding axis that masks under-sample.
3. Optional flips, applied *exactly in k-space* (:func:`flip_kspace`), and per-dataset trimming of
   the first/last slices.
4. Scaling into fastMRI's range (:func:`volume_scale`): k-space is multiplied by
   ``level / q`` where ``q`` is the ``percentile`` (99.9th) of the volume's RSS image (the full 3D
   RSS, all voxels, before cropping and trimming) and ``level`` defaults to
   :data:`DEFAULT_LEVEL`. One factor per scan, so every view of a scan has the same scale; the factor
   is stored in the ``scale`` attr.
5. RSS targets (``reconstruction_rss``) centre-cropped to the recon matrix, the ``max`` attr and an
   ISMRMRD header (matrix sizes, encoding limits from the acquired columns, protocol, vendor, field,
   coils) are written with :func:`mribench.data.fastmri_io.write_volume`.

Datasets are listed in :data:`CONVERTERS`; only datasets whose native layout could be checked against
public documentation or code have a reader (``supported=True``); the others say why not and how to
use the generic 3D path instead.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import scipy.fft as sfft
import torch

from mribench.data.fastmri_io import write_volume
from mribench.data.header import AcquisitionHeader, parse_header
from mribench.errors import DataError
from mribench.physics.fft import center_crop, ifft2c, rss
from mribench.registry import Registry

#: Default 99.9th percentile of a converted scan's RSS image. A mribench convention of the order of
#: fastMRI multi-coil targets, not a fastMRI constant: calibrate it on your own fastMRI copy with
#: :func:`reference_level` and pass the value as ``level``.
DEFAULT_LEVEL = 3e-4
DEFAULT_PERCENTILE = 99.9

ProgressFn = Callable[[int, int, str], None]


# --------------------------------------------------------------------------- transforms


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


# --------------------------------------------------------------------------- scans


@dataclass
class Volume3D:
    """One scan as centred 3D k-space.

    Attributes:
        name: scan id (used in output file names and as ``patient_id`` by default).
        kspace: complex64 (C, kx, ky, kz), centred (fastmri's shift convention).
        metadata: header/attr values (see :data:`METADATA_KEYS`).
    """

    name: str
    kspace: np.ndarray
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass
class Slices2D:
    """One scan already made of 2D slices (a fastMRI-like dataset).

    Attributes:
        name: scan id.
        kspace: complex64 (S, C, H, W), centred.
        recon_size: (h, w) of the targets.
        acquired: (first, one past last) acquired phase-encoding column, or ``None`` to detect it.
        metadata: header/attr values.
    """

    name: str
    kspace: np.ndarray
    recon_size: tuple[int, int]
    acquired: tuple[int, int] | None = None
    metadata: dict[str, Any] = field(default_factory=dict)


#: Metadata keys understood by the writer (anything else is stored as an HDF5 attr).
METADATA_KEYS = (
    "protocol",
    "anatomy",
    "vendor",
    "model",
    "field",
    "institution",
    "site",
    "sequence_type",
    "tr",
    "te",
    "ti",
    "patient_id",
)

Scan = Volume3D | Slices2D
Reader = Callable[[Path], Iterator[Scan]]


def _header(
    shape: tuple[int, int], recon: tuple[int, int], coils: int, acquired: tuple[int, int], meta: dict[str, Any]
) -> AcquisitionHeader:
    h, w = shape
    left, right = acquired

    def num(key: str) -> float | None:
        v = meta.get(key)
        return None if v is None else float(v)

    return AcquisitionHeader(
        encoded_size=(h, w, 1),
        recon_size=(recon[0], recon[1], 1),
        enc_limits_center=w // 2 - left,
        enc_limits_max=right - left - 1,
        protocol_name=meta.get("protocol"),
        system_vendor=meta.get("vendor"),
        system_model=meta.get("model"),
        field_strength_t=num("field"),
        receiver_channels=coils,
        institution_name=meta.get("institution"),
        sequence_type=meta.get("sequence_type"),
        tr_ms=num("tr"),
        te_ms=num("te"),
        ti_ms=num("ti"),
    )


def _write(
    path: Path,
    kspace2d: np.ndarray,
    target: np.ndarray,
    recon: tuple[int, int],
    acquired: tuple[int, int] | None,
    meta: dict[str, Any],
    extra: dict[str, Any],
) -> Path:
    acq = acquired if acquired is not None else acquired_columns(kspace2d)
    header = _header(kspace2d.shape[-2:], recon, kspace2d.shape[1], acq, meta)  # type: ignore[arg-type]
    attrs = {k: v for k, v in meta.items() if k not in METADATA_KEYS and v is not None}
    for k in ("anatomy", "site"):
        if meta.get(k) is not None:
            attrs[k] = str(meta[k])
    attrs.update(extra)
    protocol = str(meta.get("protocol") or "unknown")
    write_volume(
        path,
        kspace2d,
        target,
        header,
        acquisition=protocol,
        patient_id=str(meta.get("patient_id") or extra.get("source_scan", "")),
        extra_attrs=attrs,
    )
    return path


def _recon_size(shape: tuple[int, int], recon: tuple[int, int] | None) -> tuple[int, int]:
    if recon is None:
        return shape
    h, w = min(recon[0], shape[0]), min(recon[1], shape[1])
    if h < 1 or w < 1:
        raise ValueError(f"expected a positive recon size, got {recon}")
    return h, w


def convert_volume(
    volume: Volume3D,
    out_dir: str | os.PathLike[str],
    views: list[View],
    *,
    dataset: str = "generic3d",
    recon_size: tuple[int, int] | None = None,
    level: float = DEFAULT_LEVEL,
    percentile: float = DEFAULT_PERCENTILE,
    scale: float | None = None,
) -> list[Path]:
    """Write one fastMRI file per view of a 3D scan.

    Files go to ``out_dir/<view>/<dataset>_<scan>_<view>.h5`` (names are unique across views, since
    the slice index and the splits key volumes by file name).

    Args:
        volume: the scan.
        out_dir: output root.
        views: views to write.
        dataset: dataset name (``dataset`` attr and file-name prefix).
        recon_size: (h, w) target crop; default the full (H, W) of each view.
        level, percentile: the scaling rule (:func:`volume_scale`).
        scale: a fixed factor instead of the rule.

    Returns:
        The written paths.
    """
    if not views:
        raise ValueError("expected at least one view, got none")
    k3 = volume.kspace
    if k3.ndim != 4 or not np.iscomplexobj(k3):
        raise DataError(f"expected complex 3D k-space (coils, kx, ky, kz) for {volume.name}, got {k3.dtype} {k3.shape}")
    factor = scale
    written = []
    for view in views:
        full = view_kspace(k3, view, trim=(0, 0))  # (S, C, H, W), untrimmed: the scale sees every voxel
        images = rss_images(full)  # (S, H, W) = the 3D RSS volume, permuted
        if factor is None:
            factor = volume_scale(images, level=level, percentile=percentile)
        first, last = view.trim
        if first + last >= full.shape[0]:
            raise ValueError(f"expected a trim leaving slices of {full.shape[0]} in view {view.name}, got {view.trim}")
        sel = slice(first, full.shape[0] - last)
        recon = _recon_size(full.shape[-2:], recon_size)  # type: ignore[arg-type]
        kspace2d = (full[sel] * np.float32(factor)).astype(np.complex64)
        target = (center_crop(torch.from_numpy(images[sel]), recon).numpy() * np.float32(factor)).astype(np.float32)
        meta = {**volume.metadata}
        meta.setdefault("patient_id", volume.name)
        path = Path(out_dir) / view.name / f"{dataset}_{volume.name}_{view.name}.h5"
        extra = {
            "dataset": dataset,
            "view": view.name,
            "source_scan": volume.name,
            "scale": float(factor),
            "trim_first": int(first),
            "trim_last": int(last),
        }
        written.append(_write(path, kspace2d, target, recon, None, meta, extra))
    return written


def convert_slices(
    scan: Slices2D,
    out_dir: str | os.PathLike[str],
    *,
    dataset: str,
    flip_rows: bool = False,
    trim: tuple[int, int] = (0, 0),
    level: float = DEFAULT_LEVEL,
    percentile: float = DEFAULT_PERCENTILE,
    scale: float | None = None,
) -> Path:
    """Write a 2D-slice scan (already fastMRI-like) rescaled, optionally flipped and trimmed.

    The file goes to ``out_dir/<dataset>_<scan>.h5``.
    """
    k = scan.kspace
    if k.ndim != 4 or not np.iscomplexobj(k):
        raise DataError(f"expected complex k-space (slices, coils, H, W) for {scan.name}, got {k.dtype} {k.shape}")
    first, last = trim
    if first < 0 or last < 0 or first + last >= k.shape[0]:
        raise ValueError(f"expected a trim leaving slices of {k.shape[0]}, got {trim}")
    k = np.ascontiguousarray(k[first : k.shape[0] - last], dtype=np.complex64)
    if flip_rows:
        k = flip_kspace(k, 2)
    images = rss_images(k)
    factor = scale if scale is not None else volume_scale(images, level=level, percentile=percentile)
    recon = _recon_size(k.shape[-2:], scan.recon_size)  # type: ignore[arg-type]
    target = (center_crop(torch.from_numpy(images), recon).numpy() * np.float32(factor)).astype(np.float32)
    meta = {**scan.metadata}
    meta.setdefault("patient_id", scan.name)
    extra = {
        "dataset": dataset,
        "view": "native",
        "source_scan": scan.name,
        "scale": float(factor),
        "trim_first": int(first),
        "trim_last": int(last),
    }
    path = Path(out_dir) / f"{dataset}_{scan.name}.h5"
    return _write(path, (k * np.float32(factor)).astype(np.complex64), target, recon, scan.acquired, meta, extra)


# --------------------------------------------------------------------------- readers


def _uncentred_to_centred(x: np.ndarray, axes: tuple[int, ...]) -> np.ndarray:
    """Re-centre k-space stored with the non-centred FFT (image = plain ``ifft``) along ``axes``."""
    for a in axes:
        x = fft1c(sfft.ifft(x, axis=a, norm="ortho", workers=-1), axis=a)
    return x


def read_generic3d(path: Path) -> Iterator[Scan]:
    """A ``.npy`` array or an HDF5 file with a ``kspace`` dataset: complex (coils, kx, ky, kz), centred."""
    if path.suffix not in (".npy", ".h5", ".hdf5"):
        raise DataError(f"expected a .npy or .h5 file, got {path.name}")
    if path.suffix == ".npy":
        try:
            k = np.load(path, mmap_mode="r")
        except ValueError as e:
            raise DataError(f"expected a readable .npy array in {path.name}, got {e}") from None
    else:
        with h5py.File(path, "r") as hf:
            if "kspace" not in hf:
                raise DataError(f"expected a 'kspace' dataset in {path.name}, got keys {sorted(hf.keys())}")
            k = hf["kspace"][()]
    if k.ndim != 4 or not np.iscomplexobj(k):
        raise DataError(f"expected complex (coils, kx, ky, kz) k-space in {path.name}, got {k.dtype} {k.shape}")
    yield Volume3D(path.stem, np.asarray(k, dtype=np.complex64))


def read_cc359(path: Path) -> Iterator[Scan]:
    """Calgary-Campinas (CC-359) multi-channel raw data.

    Native layout (DIRECT's ``CalgaryCampinasDataset`` and Lin & Heckel's ``cc-359/convert.py``):
    ``kspace`` float (x, ky, kz, 2 * coils) with real/imaginary parts interleaved in the last axis;
    hybrid: the read-out x is already in image space; (ky, kz) use the non-centred FFT.
    """
    with h5py.File(path, "r") as hf:
        if "kspace" not in hf:
            raise DataError(f"expected a 'kspace' dataset in {path.name}, got keys {sorted(hf.keys())}")
        raw = hf["kspace"][()]
    if raw.ndim != 4 or raw.shape[-1] % 2 or np.iscomplexobj(raw):
        raise DataError(
            f"expected real (x, ky, kz, 2*coils) CC-359 k-space in {path.name}, got {raw.dtype} {raw.shape}"
        )
    k = (raw[..., 0::2] + 1j * raw[..., 1::2]).astype(np.complex64).transpose(3, 0, 1, 2)  # (C, x, ky, kz)
    k = _uncentred_to_centred(k, (2, 3))
    k = fft1c(k, axis=1)  # x back to k-space: full centred 3D k-space
    yield Volume3D(path.stem, np.ascontiguousarray(k, dtype=np.complex64))


def read_skmtea(path: Path) -> Iterator[Scan]:
    """SKM-TEA raw-data track (``files_recon_calib-24``), one volume per echo.

    Native layout (SKM-TEA DATASET.md): ``kspace`` complex64 (x, ky, kz, echoes, coils), hybrid
    (the read-out x already inverse-FFT'd); axes in (SI, AP, LR) orientation.
    """
    with h5py.File(path, "r") as hf:
        if "kspace" not in hf:
            raise DataError(f"expected a 'kspace' dataset in {path.name}, got keys {sorted(hf.keys())}")
        ks = hf["kspace"]
        if ks.ndim != 5 or not np.issubdtype(ks.dtype, np.complexfloating):
            raise DataError(
                f"expected complex (x, ky, kz, echoes, coils) k-space in {path.name}, got {ks.dtype} {ks.shape}"
            )
        n_echo = ks.shape[3]
        for e in range(n_echo):
            k = np.asarray(ks[:, :, :, e, :], dtype=np.complex64).transpose(3, 0, 1, 2)  # (C, x, ky, kz)
            k = fft1c(k, axis=1)
            yield Volume3D(
                f"{path.stem}_E{e + 1}", np.ascontiguousarray(k, dtype=np.complex64), {"protocol": f"qDESS_E{e + 1}"}
            )


def read_ismrmrd3d(path: Path) -> Iterator[Scan]:
    """A fully sampled 3D Cartesian ISMRMRD file (as the 7T database): acquisitions placed by their
    ``kspace_encode_step_1/2`` counters into (coils, kx, ky, kz); noise, calibration and navigator
    acquisitions are skipped. Needs the optional ``ismrmrd`` package.
    """
    try:
        import ismrmrd
    except ImportError:
        raise DataError(
            "expected the optional 'ismrmrd' package to read ISMRMRD files, got none (hint: pip install ismrmrd)"
        ) from None
    skip = [
        getattr(ismrmrd, f)
        for f in (
            "ACQ_IS_NOISE_MEASUREMENT",
            "ACQ_IS_PARALLEL_CALIBRATION",
            "ACQ_IS_NAVIGATION_DATA",
            "ACQ_IS_PHASECORR_DATA",
        )
    ]
    dset = ismrmrd.Dataset(str(path), "dataset", create_if_needed=False)
    try:
        # mribench's tolerant parser instead of ismrmrd.xsd, which rejects headers lacking optional blocks
        h = parse_header(dset.read_xml_header())
        nx, ny, nz = h.encoded_size
        if h.receiver_channels is None:
            raise DataError(f"expected receiverChannels in the ISMRMRD header of {path.name}, got none")
        ncoils = int(h.receiver_channels)
        k = np.zeros((ncoils, nx, ny, nz), dtype=np.complex64)
        for i in range(dset.number_of_acquisitions()):
            acq = dset.read_acquisition(i)
            if any(acq.is_flag_set(f) for f in skip):
                continue
            data = acq.data
            if data.shape != (ncoils, nx):
                raise DataError(
                    f"expected acquisitions of shape {(ncoils, nx)} in {path.name}, got {data.shape} "
                    f"(hint: read-out oversampling must be removed first)"
                )
            k[:, :, acq.idx.kspace_encode_step_1, acq.idx.kspace_encode_step_2] = data
    finally:
        dset.close()
    meta = {
        "protocol": h.protocol_name,
        "vendor": h.system_vendor,
        "model": h.system_model,
        "field": h.field_strength_t,
        "institution": h.institution_name,
        "sequence_type": h.sequence_type,
        "tr": h.tr_ms,
        "te": h.te_ms,
        "ti": h.ti_ms,
    }
    yield Volume3D(path.stem, k, {k_: v for k_, v in meta.items() if v is not None})


def read_m4raw(path: Path) -> Iterator[Scan]:
    """M4Raw: fastMRI-format HDF5 (``kspace`` (slices, coils, H, W), ``reconstruction_rss``,
    ``ismrmrd_header``, attrs ``acquisition``/``max``/``patient_id``), at a scale far from fastMRI's.
    The GRE subset needs a different re-orientation (Lin & Heckel's ``convert_gre_rot.py``) and is
    not supported.
    """
    with h5py.File(path, "r") as hf:
        if "kspace" not in hf or "ismrmrd_header" not in hf:
            raise DataError(
                f"expected fastMRI-format keys kspace/ismrmrd_header in {path.name}, got {sorted(hf.keys())}"
            )
        acq = hf.attrs.get("acquisition", "")
        acq = acq.decode() if isinstance(acq, bytes) else str(acq)
        if "GRE" in acq.upper():
            raise DataError(
                f"expected a T1/T2/FLAIR M4Raw scan, got acquisition {acq!r} in {path.name} "
                f"(the GRE subset is not supported)"
            )
        k = np.asarray(hf["kspace"][()], dtype=np.complex64)
        header = parse_header(hf["ismrmrd_header"][()])
        pid = hf.attrs.get("patient_id", path.stem)
    if k.ndim != 4:
        raise DataError(f"expected multi-coil k-space (slices, coils, H, W) in {path.name}, got {k.shape}")
    meta = {
        "protocol": acq or header.protocol_name,
        "vendor": header.system_vendor,
        "model": header.system_model,
        "field": header.field_strength_t,
        "institution": header.institution_name,
        "sequence_type": header.sequence_type,
        "tr": header.tr_ms,
        "te": header.te_ms,
        "ti": header.ti_ms,
        "patient_id": pid.decode() if isinstance(pid, bytes) else str(pid),
    }
    yield Slices2D(
        path.stem,
        k,
        (header.recon_size[0], header.recon_size[1]),
        None,
        {k_: v for k_, v in meta.items() if v is not None},
    )


# --------------------------------------------------------------------------- registry


@dataclass(frozen=True)
class ConverterSpec:
    """A dataset mribench can (or cannot yet) convert.

    Attributes:
        name: registry name.
        title: the dataset's name.
        supported: whether a reader exists (its native layout was checked against public sources).
        reader: source file -> scans; ``None`` when unsupported.
        kind: ``3d`` (views are synthesised) or ``2d`` (slices kept).
        views: the views a 3D dataset can produce.
        default_views: views written when none are asked for.
        pattern: glob of the source files under the input folder.
        metadata: header values known for every scan of the dataset (CLI options override them).
        layout: the native layout, in words.
        source: where to obtain the data.
        licence: the licence, or a pointer to it.
        note: caveats (or why it is unsupported).
        flip_rows: for 2D datasets, flip the images vertically (fastMRI orientation).
    """

    name: str
    title: str
    supported: bool
    reader: Reader | None
    kind: str = "3d"
    views: dict[str, View] = field(default_factory=dict)
    default_views: tuple[str, ...] = ()
    pattern: str = "*.h5"
    metadata: dict[str, Any] = field(default_factory=dict)
    layout: str = ""
    source: str = "see the dataset's site"
    licence: str = "see the dataset's site"
    note: str = ""
    flip_rows: bool = False


# Views of (coils, kx, ky, kz) with the ISMRMRD axes of the 7T database, as in Lin & Heckel's
# 7T/convert.py: sagittal slices along x (rows z, cols y), coronal along y (rows z, cols x),
# axial along z (rows y, cols x).
_ISMRMRD_VIEWS = {
    "sagittal": View("sagittal", 0, 2, 1),
    "coronal": View("coronal", 1, 2, 0),
    "axial": View("axial", 2, 1, 0),
}
# CC-359 (x, y, z) as in Lin & Heckel's cc-359 convert{,_cor,_sag}.py, flipped by convert_flip.py.
# The native (axial) slicing along x: DIRECT's crop_outer_slices drops 50 slices at each end.
_CC359_VIEWS = {
    "axial": View("axial", 0, 1, 2, flip_rows=True, trim=(50, 50)),
    "coronal": View("coronal", 1, 0, 2, flip_rows=True),
    "sagittal": View("sagittal", 2, 0, 1, flip_rows=True),
}
# SKM-TEA (x, y, z) = (SI, AP, LR); Lin & Heckel's skm-tea/convert.py writes sagittal slices (along
# LR) with rows AP and columns SI, then flips them (convert_flip.py).
_SKMTEA_VIEWS = {
    "sagittal": View("sagittal", 2, 1, 0, flip_rows=True),
    "coronal": View("coronal", 1, 0, 2, flip_rows=True),
    "axial": View("axial", 0, 1, 2, flip_rows=True),
}

CONVERTERS: Registry[ConverterSpec] = Registry("dataset converter", DataError)

CONVERTERS.register(
    "generic3d",
    ConverterSpec(
        "generic3d",
        "Any fully sampled 3D Cartesian scan",
        True,
        read_generic3d,
        "3d",
        _ISMRMRD_VIEWS,
        ("sagittal", "coronal", "axial"),
        "*",
        layout="one scan per .npy file (complex (coils, kx, ky, kz), centred) or .h5 file with a 'kspace' dataset "
        "of that shape; view names assume the ISMRMRD axes of the 7T database: check the orientation",
        source="your own data",
        licence="yours",
        note="metadata (protocol, anatomy, vendor, field, ...) comes from the CLI options",
    ),
)
CONVERTERS.register(
    "7t",
    ConverterSpec(
        "7t",
        "Quantitative motion-corrected 7T sub-millimeter raw MRI database of the adult lifespan",
        True,
        read_ismrmrd3d,
        "3d",
        _ISMRMRD_VIEWS,
        ("sagittal", "coronal", "axial"),
        "*.h5",
        layout="ISMRMRD HDF5 ('dataset' group), fully sampled 3D Cartesian; acquisitions placed by "
        "kspace_encode_step_1/2 into (coils, kx, ky, kz), as in Lin & Heckel's 7T/convert.py",
        source="https://dataverse.nl/dataset.xhtml?persistentId=doi:10.34894/IHZGQM",
        note="needs the optional 'ismrmrd' package; protocol/vendor/field come from each file's ISMRMRD header; "
        "not flipped (as in Lin & Heckel); pass --anatomy",
    ),
)
CONVERTERS.register(
    "cc359",
    ConverterSpec(
        "cc359",
        "Calgary-Campinas (CC-359) multi-channel MR reconstruction data",
        True,
        read_cc359,
        "3d",
        _CC359_VIEWS,
        ("axial", "coronal", "sagittal"),
        "*.h5",
        metadata={"anatomy": "brain", "protocol": "T1_3D", "sequence_type": "3D T1-weighted"},
        layout="HDF5 'kspace' float (x, ky, kz, 2*coils), real/imaginary interleaved; hybrid (x in image space); "
        "(ky, kz) with the non-centred FFT",
        source="https://www.ccdataset.com/mr-reconstruction-challenge",
        note="1 mm isotropic 3D T1-weighted brain scans (12- and 32-channel coils); the axial view drops "
        "50 slices at each end as DIRECT does (override with --trim); vendor/field: pass them as options",
    ),
)
CONVERTERS.register(
    "skm-tea",
    ConverterSpec(
        "skm-tea",
        "Stanford Knee MRI Multi-Task Evaluation (SKM-TEA), raw-data track",
        True,
        read_skmtea,
        "3d",
        _SKMTEA_VIEWS,
        ("sagittal",),
        "*.h5",
        metadata={"anatomy": "knee", "vendor": "GE"},
        layout="HDF5 'kspace' complex64 (x, ky, kz, echoes, coils), hybrid (x in image space), axes (SI, AP, LR); "
        "one output volume per echo (qDESS, 2 echoes)",
        source="https://stanfordaimi.azurewebsites.net/datasets/4aaeafb9-c6e6-4e3c-9188-3aaaf0e0a9e7 "
        "(account required; files_recon_calib-24/)",
        note="zero-padded (ZIP2) read-out columns are detected and recorded as unacquired in the header; "
        "field strength: pass --field",
    ),
)
CONVERTERS.register(
    "m4raw",
    ConverterSpec(
        "m4raw",
        "M4Raw low-field (0.3 T) multi-contrast brain k-space",
        True,
        read_m4raw,
        "2d",
        pattern="*.h5",
        flip_rows=True,
        metadata={"anatomy": "brain", "field": 0.3, "vendor": "Xingaoyi", "model": "Oper-0.3"},
        layout="fastMRI-format HDF5 (kspace (slices, 4 coils, 256, 256), reconstruction_rss, ismrmrd_header)",
        source="https://doi.org/10.5281/zenodo.7523691",
        note="axial T1w/T2w/FLAIR at 0.3 T with a 4-channel head coil; rescaled into fastMRI's range and "
        "flipped vertically (Lin & Heckel's convert_flip.py); the GRE subset is not supported",
    ),
)
for _name, _title, _why in [
    (
        "stanford3d",
        "Stanford Fullysampled 3D FSE Knees (mridata.org)",
        "ISMRMRD files whose slices are stored already inverse-FFT'd along the read-out with chopping "
        "(ChopY/ChopZ user parameters) and noise pre-whitening; this could not be checked without the data. "
        "Export each scan's (coils, kx, ky, kz) k-space to .npy and use 'generic3d'",
    ),
    ("stanford2d", "Stanford 2D FSE (mridata.org)", "layout not verified; no reader"),
    ("nyu2d", "NYU machine learning data (mridata.org)", "layout not verified; no reader"),
]:
    CONVERTERS.register(_name, ConverterSpec(_name, _title, False, None, note=_why, source="http://mridata.org"))


# --------------------------------------------------------------------------- driver


@dataclass
class ConversionReport:
    """What a conversion did.

    Attributes:
        written: output files.
        skipped: (source file, reason) for each source that could not be converted.
    """

    written: list[Path] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)


def convert_dataset(
    dataset: str,
    src: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    *,
    views: list[str] | None = None,
    trim: tuple[int, int] | None = None,
    recon_size: tuple[int, int] | None = None,
    level: float = DEFAULT_LEVEL,
    percentile: float = DEFAULT_PERCENTILE,
    metadata: dict[str, Any] | None = None,
    limit: int | None = None,
    overwrite: bool = False,
    progress: ProgressFn | None = None,
) -> ConversionReport:
    """Convert every source file of a dataset under ``src`` into fastMRI files under ``out_dir``.

    Args:
        dataset: a :data:`CONVERTERS` name.
        src: a source file or a folder searched recursively with the dataset's pattern.
        out_dir: output root (3D datasets write one sub-folder per view).
        views: views to write (3D datasets); default the dataset's default views.
        trim: (first, last) slices dropped, overriding the dataset's per-view default.
        recon_size: (h, w) target crop; default the full slice (3D) or the header's recon size (2D).
        level, percentile: the scaling rule (:func:`volume_scale`).
        metadata: header values overriding the dataset's (protocol, anatomy, vendor, model, field, ...).
        limit: convert at most this many source files.
        overwrite: replace existing outputs (otherwise a scan whose outputs all exist is skipped).
        progress: ``progress(done, total, source file name)``.

    Raises:
        DataError: unknown or unsupported dataset, missing source.
        ValueError: unknown view, bad trim/recon size.
    """
    spec = CONVERTERS.get(dataset)
    if not spec.supported or spec.reader is None:
        raise DataError(f"expected a supported dataset, got {dataset!r}, which has no reader: {spec.note}")
    src_p = Path(src).expanduser()
    if src_p.is_file():
        files = [src_p]
    elif src_p.is_dir():
        files = sorted(p for p in src_p.rglob(spec.pattern) if p.is_file() and not p.name.startswith("."))
    else:
        raise DataError(f"expected a source file or folder, got {src_p} (not found)")
    if not files:
        raise DataError(f"expected {spec.pattern} source files under {src_p}, got none")
    if limit is not None:
        files = files[:limit]
    chosen: list[View] = []
    if spec.kind == "3d":
        names = views or list(spec.default_views)
        for v in names:
            if v not in spec.views:
                raise ValueError(f"expected views among {sorted(spec.views)} for {dataset}, got {v!r}")
            chosen.append(spec.views[v] if trim is None else replace(spec.views[v], trim=tuple(trim)))  # type: ignore[arg-type]
    overrides = {k: v for k, v in (metadata or {}).items() if v is not None}
    report = ConversionReport()
    out = Path(out_dir)
    for i, f in enumerate(files):
        try:
            for scan in spec.reader(f):
                # dataset defaults < what the file itself says < what the user passed
                scan.metadata = {**spec.metadata, **scan.metadata, **overrides}
                if isinstance(scan, Volume3D):
                    targets = [out / v.name / f"{dataset}_{scan.name}_{v.name}.h5" for v in chosen]
                    if not overwrite and all(t.is_file() for t in targets):
                        report.written.extend(targets)
                        continue
                    report.written.extend(
                        convert_volume(
                            scan,
                            out,
                            chosen,
                            dataset=dataset,
                            recon_size=recon_size,
                            level=level,
                            percentile=percentile,
                        )
                    )
                else:
                    target = out / f"{dataset}_{scan.name}.h5"
                    if not overwrite and target.is_file():
                        report.written.append(target)
                        continue
                    if recon_size is not None:
                        scan.recon_size = recon_size
                    report.written.append(
                        convert_slices(
                            scan,
                            out,
                            dataset=dataset,
                            flip_rows=spec.flip_rows,
                            trim=tuple(trim) if trim else (0, 0),  # type: ignore[arg-type]
                            level=level,
                            percentile=percentile,
                        )
                    )
        except (DataError, OSError, KeyError) as e:
            report.skipped.append((str(f), str(e)))
        if progress:
            progress(i + 1, len(files), f.name)
    return report


__all__ = [
    "CONVERTERS",
    "DEFAULT_LEVEL",
    "DEFAULT_PERCENTILE",
    "METADATA_KEYS",
    "ConversionReport",
    "ConverterSpec",
    "Slices2D",
    "View",
    "Volume3D",
    "acquired_columns",
    "convert_dataset",
    "convert_slices",
    "convert_volume",
    "fft1c",
    "flip_kspace",
    "ifft1c",
    "read_cc359",
    "read_generic3d",
    "read_ismrmrd3d",
    "read_m4raw",
    "read_skmtea",
    "reference_level",
    "rss_images",
    "view_kspace",
    "volume_scale",
]
