"""The 7T sub-millimeter raw MRI database (ISMRMRD, fully sampled 3D Cartesian)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np

from mribench.data.convert.registry import CONVERTERS, ConverterSpec
from mribench.data.convert.transforms import ISMRMRD_VIEWS
from mribench.data.convert.writer import Scan, Volume3D
from mribench.data.header import parse_header
from mribench.errors import DataError


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


CONVERTERS.register(
    "7t",
    ConverterSpec(
        "7t",
        "Quantitative motion-corrected 7T sub-millimeter raw MRI database of the adult lifespan",
        True,
        read_ismrmrd3d,
        "3d",
        ISMRMRD_VIEWS,
        ("sagittal", "coronal", "axial"),
        "*.h5",
        layout="ISMRMRD HDF5 ('dataset' group), fully sampled 3D Cartesian; acquisitions placed by "
        "kspace_encode_step_1/2 into (coils, kx, ky, kz), as in Lin & Heckel's 7T/convert.py",
        source="https://dataverse.nl/dataset.xhtml?persistentId=doi:10.34894/IHZGQM",
        note="needs the optional 'ismrmrd' package; protocol/vendor/field come from each file's ISMRMRD header; "
        "not flipped (as in Lin & Heckel); pass --anatomy",
        dataset_names={"sagittal": "7T_sag", "coronal": "7T_cor", "axial": "7T_ax"},
    ),
)
