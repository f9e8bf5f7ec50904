"""Calgary-Campinas (CC-359) multi-channel raw data."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import h5py
import numpy as np

from mribench.data.convert.registry import CONVERTERS, ConverterSpec
from mribench.data.convert.transforms import View, fft1c, uncentred_to_centred
from mribench.data.convert.writer import Scan, Volume3D
from mribench.errors import DataError


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
    k = uncentred_to_centred(k, (2, 3))
    k = fft1c(k, axis=1)  # x back to k-space: full centred 3D k-space
    yield Volume3D(path.stem, np.ascontiguousarray(k, dtype=np.complex64))


CC359_VIEWS = {
    "axial": View("axial", 0, 1, 2, flip_rows=True, trim=(50, 50)),
    "coronal": View("coronal", 1, 0, 2, flip_rows=True),
    "sagittal": View("sagittal", 2, 0, 1, flip_rows=True),
}
# SKM-TEA (x, y, z) = (SI, AP, LR); Lin & Heckel's skm-tea/convert.py writes sagittal slices (along

CONVERTERS.register(
    "cc359",
    ConverterSpec(
        "cc359",
        "Calgary-Campinas (CC-359) multi-channel MR reconstruction data",
        True,
        read_cc359,
        "3d",
        CC359_VIEWS,
        ("axial", "coronal", "sagittal"),
        "*.h5",
        metadata={"anatomy": "brain", "protocol": "T1_3D", "sequence_type": "3D T1-weighted"},
        layout="HDF5 'kspace' float (x, ky, kz, 2*coils), real/imaginary interleaved; hybrid (x in image space); "
        "(ky, kz) with the non-centred FFT",
        source="https://www.ccdataset.com/mr-reconstruction-challenge",
        note="1 mm isotropic 3D T1-weighted brain scans (12- and 32-channel coils); the axial view drops "
        "50 slices at each end as DIRECT does (override with --trim); vendor/field: pass them as options",
        dataset_names={"axial": "cc-359_ax", "coronal": "cc-359_cor", "sagittal": "cc-359_sag"},
    ),
)
