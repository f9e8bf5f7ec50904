"""Read and write multi-coil fastMRI-format HDF5 files.

Layout (identical to the public fastMRI multi-coil files, so ``fastmri.data.SliceDataset`` reads
what we write):

- ``kspace``: complex64 (slices, coils, H, W), H the read-out (with oversampling), W phase encoding;
- ``reconstruction_rss``: float32 (slices, h, w), RSS of the IFFT of the full k-space, centre-cropped
  to the reconSpace matrix;
- ``ismrmrd_header``: ISMRMRD XML bytes;
- attrs: ``max`` (volume max of the RSS target), ``norm`` (its Frobenius norm), ``acquisition``,
  ``patient_id`` and any extra attrs.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from mribench.data.header import AcquisitionHeader, build_header, parse_header
from mribench.errors import DataError


@dataclass(frozen=True)
class VolumeInfo:
    """Metadata of one fastMRI file, read without loading k-space.

    Attributes:
        path: the file.
        num_slices: number of slices.
        kspace_shape: (slices, coils, H, W).
        target_shape: (h, w) of ``reconstruction_rss`` or ``None`` for test files without targets.
        header: parsed ISMRMRD header.
        attrs: HDF5 attributes (numbers converted to Python types).
    """

    path: Path
    num_slices: int
    kspace_shape: tuple[int, int, int, int]
    target_shape: tuple[int, int] | None
    header: AcquisitionHeader
    attrs: dict[str, Any]


def _py(v: Any) -> Any:
    if isinstance(v, bytes):
        return v.decode("utf-8", "replace")
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, np.ndarray):
        return v.tolist()
    return v


def read_info(path: str | os.PathLike[str]) -> VolumeInfo:
    """Read the metadata of a multi-coil fastMRI file.

    Raises:
        DataError: if the file is unreadable, truncated, single-coil or not in the fastMRI format.
    """
    p = Path(path)
    try:
        with h5py.File(p, "r") as hf:
            if "kspace" not in hf:
                raise DataError(f"expected a 'kspace' dataset in {p.name}, got keys {sorted(hf.keys())}")
            ks = hf["kspace"]
            if ks.ndim == 3:
                raise DataError(
                    f"expected multi-coil k-space (slices, coils, H, W) in {p.name}, got single-coil "
                    f"shape {ks.shape} (hint: mribench supports the multi-coil fastMRI challenge only)"
                )
            if ks.ndim != 4 or not np.issubdtype(ks.dtype, np.complexfloating):
                raise DataError(
                    f"expected complex k-space of shape (slices, coils, H, W) in {p.name}, got {ks.dtype} {ks.shape}"
                )
            if "ismrmrd_header" not in hf:
                raise DataError(f"expected an 'ismrmrd_header' dataset in {p.name}, got none")
            header = parse_header(hf["ismrmrd_header"][()])
            tshape = None
            if "reconstruction_rss" in hf:
                t = hf["reconstruction_rss"]
                if t.ndim != 3 or t.shape[0] != ks.shape[0]:
                    raise DataError(
                        f"expected reconstruction_rss of shape ({ks.shape[0]}, h, w) in {p.name}, got {t.shape}"
                    )
                tshape = (int(t.shape[1]), int(t.shape[2]))
            attrs = {k: _py(v) for k, v in hf.attrs.items()}
            shape = tuple(int(s) for s in ks.shape)
            return VolumeInfo(p, shape[0], shape, tshape, header, attrs)  # type: ignore[arg-type]
    except DataError:
        raise
    except (OSError, KeyError, ValueError, TypeError) as e:
        raise DataError(f"expected a readable fastMRI HDF5 file, got {p.name}: {type(e).__name__}: {e}") from None


def read_slice(path: str | os.PathLike[str], index: int) -> tuple[np.ndarray, np.ndarray | None, dict[str, Any]]:
    """Read one slice.

    Returns:
        ``(kspace, target, attrs)``: kspace complex64 (C, H, W); target float32 (h, w) or ``None``;
        the file's attrs.

    Raises:
        DataError: on unreadable data or an out-of-range index.
    """
    p = Path(path)
    try:
        with h5py.File(p, "r") as hf:
            n = hf["kspace"].shape[0]
            if not 0 <= index < n:
                raise DataError(f"expected a slice index in [0, {n}) for {p.name}, got {index}")
            kspace = np.asarray(hf["kspace"][index], dtype=np.complex64)
            target = (
                np.asarray(hf["reconstruction_rss"][index], dtype=np.float32) if "reconstruction_rss" in hf else None
            )
            attrs = {k: _py(v) for k, v in hf.attrs.items()}
    except DataError:
        raise
    except (OSError, KeyError, ValueError, TypeError) as e:
        raise DataError(f"expected a readable slice {index} of {p.name}, got {type(e).__name__}: {e}") from None
    return kspace, target, attrs


def write_volume(
    path: str | os.PathLike[str],
    kspace: np.ndarray,
    target: np.ndarray,
    header: AcquisitionHeader,
    *,
    acquisition: str,
    patient_id: str,
    extra_attrs: dict[str, Any] | None = None,
) -> None:
    """Write a multi-coil volume in the fastMRI format, atomically.

    Args:
        path: destination ``.h5`` file.
        kspace: complex (slices, coils, H, W).
        target: float (slices, h, w) RSS targets.
        header: acquisition header; its encoded/recon sizes must match the arrays.
        acquisition: the ``acquisition`` attr (e.g. ``CORPD_FBK``, ``AXT2``).
        patient_id: the ``patient_id`` attr.
        extra_attrs: further attrs (numbers or strings).

    Raises:
        ValueError: if the shapes disagree with each other or with the header.
    """
    if kspace.ndim != 4:
        raise ValueError(f"expected kspace of shape (slices, coils, H, W), got {kspace.shape}")
    if target.ndim != 3 or target.shape[0] != kspace.shape[0]:
        raise ValueError(f"expected target of shape ({kspace.shape[0]}, h, w), got {target.shape}")
    if (header.encoded_size[0], header.encoded_size[1]) != kspace.shape[-2:]:
        raise ValueError(f"expected header encoded size {header.encoded_size[:2]} to equal kspace {kspace.shape[-2:]}")
    if (header.recon_size[0], header.recon_size[1]) != target.shape[-2:]:
        raise ValueError(f"expected header recon size {header.recon_size[:2]} to equal target {target.shape[-2:]}")
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_name(f".{p.name}.tmp{os.getpid()}")
    target = np.asarray(target, dtype=np.float32)
    with h5py.File(tmp, "w") as hf:
        hf.create_dataset("kspace", data=np.asarray(kspace, dtype=np.complex64))
        hf.create_dataset("reconstruction_rss", data=target)
        hf.create_dataset("ismrmrd_header", data=np.bytes_(build_header(header).encode("utf-8")))
        hf.attrs["max"] = np.float64(target.max())
        hf.attrs["norm"] = np.float64(np.linalg.norm(target))
        hf.attrs["acquisition"] = acquisition
        hf.attrs["patient_id"] = patient_id
        for k, v in (extra_attrs or {}).items():
            hf.attrs[k] = v
    os.replace(tmp, p)


def read_rows(hf: h5py.File, name: str, rows: slice | list[int], dtype: np.dtype[Any]) -> np.ndarray:
    """Rows of a dataset (slices along its first axis) as a new array of ``dtype``.

    A dataset stored contiguously, unfiltered and already in ``dtype`` (as fastMRI's files and the
    embedded benchmark are) is read with ``os.preadv``, which releases the GIL: h5py holds it for the
    whole read, which stalls the evaluator's model thread while its reader thread works. Anything
    else (chunked, compressed, other byte orders, a list of rows) goes through h5py.

    Args:
        hf: the open file.
        name: dataset name, e.g. ``kspace`` (S, C, H, W) or ``reconstruction_rss`` (S, H, W).
        rows: a slice with step 1, or row indices.
        dtype: the wanted dtype.

    Returns:
        (len(rows), *shape[1:]) array.
    """
    ds = hf[name]
    if isinstance(rows, slice) and rows.step in (None, 1) and ds.ndim >= 1:
        start, stop, _ = rows.indices(ds.shape[0])
        raw = _raw_extent(ds, np.dtype(dtype))
        if raw is not None and stop > start and hasattr(os, "preadv"):  # POSIX
            offset, row_bytes = raw
            out = np.empty((stop - start, *ds.shape[1:]), dtype=dtype)
            buf = out.data.cast("B")  # the array's own buffer (C-contiguous), as bytes
            fd = os.open(hf.filename, os.O_RDONLY)
            try:
                done, pos = 0, offset + start * row_bytes
                while done < len(buf):
                    n = os.preadv(fd, [buf[done:]], pos + done)
                    if n <= 0:
                        break
                    done += n
            finally:
                os.close(fd)
            if done == len(buf):
                return out
    return np.asarray(ds[rows], dtype=dtype)


def _raw_extent(ds: h5py.Dataset, dtype: np.dtype[Any]) -> tuple[int, int] | None:
    """(file offset, bytes per row) of a contiguous, unfiltered dataset stored as ``dtype``; else None."""
    if ds.dtype != dtype or not dtype.isnative or ds.chunks is not None or ds.is_virtual:
        return None
    dcpl = ds.id.get_create_plist()
    if dcpl.get_layout() != h5py.h5d.CONTIGUOUS or dcpl.get_nfilters() or dcpl.get_external_count():
        return None
    offset = ds.id.get_offset()
    if offset is None or ds.id.get_storage_size() != ds.size * dtype.itemsize:
        return None
    return int(offset), int(np.prod(ds.shape[1:], dtype=np.int64)) * dtype.itemsize
