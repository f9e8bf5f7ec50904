"""SKM-TEA raw-data track (Stanford knee, qDESS, GE)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import h5py
import numpy as np

from mribench.data.convert.registry import CONVERTERS, ConverterSpec
from mribench.data.convert.transforms import View, fft1c
from mribench.data.convert.writer import Scan, Volume3D
from mribench.errors import DataError


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


# LR) with rows AP and columns SI, then flips them (convert_flip.py).
SKMTEA_VIEWS = {
    "sagittal": View("sagittal", 2, 1, 0, flip_rows=True),
    "coronal": View("coronal", 1, 0, 2, flip_rows=True),
    "axial": View("axial", 0, 1, 2, flip_rows=True),
}

CONVERTERS.register(
    "skm-tea",
    ConverterSpec(
        "skm-tea",
        "Stanford Knee MRI Multi-Task Evaluation (SKM-TEA), raw-data track",
        True,
        read_skmtea,
        "3d",
        SKMTEA_VIEWS,
        ("sagittal",),
        "*.h5",
        metadata={"anatomy": "knee", "vendor": "GE"},
        layout="HDF5 'kspace' complex64 (x, ky, kz, echoes, coils), hybrid (x in image space), axes (SI, AP, LR); "
        "one output volume per echo (qDESS, 2 echoes)",
        source="https://stanfordaimi.azurewebsites.net/datasets/4aaeafb9-c6e6-4e3c-9188-3aaaf0e0a9e7 "
        "(account required; files_recon_calib-24/)",
        note="zero-padded (ZIP2) read-out columns are detected and recorded as unacquired in the header; "
        "field strength: pass --field",
        dataset_names={"sagittal": "skm-tea", "coronal": "skm-tea_cor", "axial": "skm-tea_ax"},
    ),
)
