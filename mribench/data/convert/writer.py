"""Scans as readers return them, and the writer of fastMRI-format files (one per scan and view)."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mribench.data.convert.transforms import (
    DEFAULT_LEVEL,
    DEFAULT_PERCENTILE,
    View,
    acquired_columns,
    flip_kspace,
    rss_images,
    view_kspace,
    volume_scale,
)
from mribench.data.fastmri_io import write_volume
from mribench.data.header import AcquisitionHeader
from mribench.errors import DataError
from mribench.physics.fft import center_crop


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
    if meta.get("anatomy") is not None:
        attrs["anatomy"] = str(meta["anatomy"])
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
    dataset_names: dict[str, str] | None = None,
) -> list[Path]:
    """Write one fastMRI file per view of a 3D scan.

    Files go to ``out_dir/<view>/<dataset>_<scan>_<view>.h5`` (names are unique across views, since
    the slice index and the splits key volumes by file name).

    Args:
        volume: the scan.
        out_dir: output root.
        views: views to write.
        dataset: the converter's name (file-name prefix; the ``dataset`` attr unless ``dataset_names``
            names the view).
        dataset_names: the ``dataset`` attr per view (Lin & Heckel's names, e.g. ``7T_sag``).
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
            "dataset": (dataset_names or {}).get(view.name, dataset),
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
    dataset_name: str | None = None,
    view: str = "native",
) -> Path:
    """Write a 2D-slice scan (already fastMRI-like) rescaled, optionally flipped and trimmed.

    The file goes to ``out_dir/<dataset>_<scan>.h5`` (``<dataset>_<scan>_<view>.h5`` for a named
    view); its ``dataset`` attr is ``dataset_name`` (default ``dataset``).
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
        "dataset": dataset_name or dataset,
        "view": view,
        "source_scan": scan.name,
        "scale": float(factor),
        "trim_first": int(first),
        "trim_last": int(last),
    }
    path = Path(out_dir) / (f"{dataset}_{scan.name}.h5" if view == "native" else f"{dataset}_{scan.name}_{view}.h5")
    return _write(path, (k * np.float32(factor)).astype(np.complex64), target, recon, scan.acquired, meta, extra)
