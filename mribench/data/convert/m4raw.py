"""M4Raw low-field (0.3 T) brain k-space, already fastMRI-like 2D slices."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import h5py
import numpy as np

from mribench.data.convert.registry import CONVERTERS, ConverterSpec
from mribench.data.convert.writer import Scan, Slices2D
from mribench.data.header import parse_header
from mribench.errors import DataError


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
        dataset_names={"native": "m4raw"},
    ),
)
