"""Any fully sampled 3D Cartesian scan as a ``.npy`` array or an HDF5 ``kspace`` dataset."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import h5py
import numpy as np

from mribench.data.convert.registry import CONVERTERS, ConverterSpec
from mribench.data.convert.transforms import ISMRMRD_VIEWS
from mribench.data.convert.writer import Scan, Volume3D
from mribench.errors import DataError


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


CONVERTERS.register(
    "generic3d",
    ConverterSpec(
        "generic3d",
        "Any fully sampled 3D Cartesian scan",
        True,
        read_generic3d,
        "3d",
        ISMRMRD_VIEWS,
        ("sagittal", "coronal", "axial"),
        "*",
        layout="one scan per .npy file (complex (coils, kx, ky, kz), centred) or .h5 file with a 'kspace' dataset "
        "of that shape; view names assume the ISMRMRD axes of the 7T database: check the orientation",
        source="your own data",
        licence="yours",
        note="metadata (protocol, anatomy, vendor, field, ...) comes from the CLI options",
    ),
)
