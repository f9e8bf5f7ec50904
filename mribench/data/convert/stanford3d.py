"""Stanford Fullysampled 3D FSE Knees (mridata.org; Epperson et al. 2013), Darestani et al.'s Q of
the dataset shift.

The scans (GE DISCOVERY MR750 3T, 8-channel knee coil, 3D FSE CUBE, proton density with fat
suppression) are distributed as ISMRMRD files whose acquisitions are already 2D: the read-out
was inverse-Fourier-transformed by the scanner, each acquisition is one phase-encoding line
(``kspace_encode_step_1``) of one sagittal slice (``idx.slice``). The reader follows the conversion
script that Lin & Heckel (MLI-lab/mri_data_diversity, ``convert_datasets/stanford_3d/convert.py``)
and MRAugment use:

- lines are noise-weighted by the ``rec_std`` array when the file has one (``w = 1 / rec_std^2``,
  normalised, ``sqrt``), as their ``load_ismrmrd_to_np`` does;
- the ``ChopY`` / ``ChopZ`` user parameters undo the scanner's k-space chopping: a line is
  multiplied by ``(-1) ** (ky * (1 - ChopY) + kz * (1 - ChopZ))``;
- slice axis first, then (coils, kx, ky) with ky the phase-encoding (masked) axis placed at
  fastMRI's padding given by the encoding limits; RSS targets centre-cropped to the reconSpace
  matrix; flipped vertically exactly in k-space, as their ``convert_flip.py`` does.

Files record ``dataset = stanford_3d_sag`` (Lin & Heckel's name of this native sagittal view),
``anatomy = knee`` and, unless the header says otherwise, protocol ``3D_FSE_PDFS``, vendor GE.
Scaling follows mribench's rule (:func:`mribench.data.convert.transforms.volume_scale`) rather than
their fixed ``1e-7``. The layout could only be checked against those public scripts, not against
the files themselves: compare a converted slice with mridata.org's preview before relying on it.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from mribench.data.convert.registry import CONVERTERS, ConverterSpec
from mribench.data.convert.writer import Scan, Slices2D
from mribench.data.header import ISMRMRD_NS, parse_header
from mribench.errors import DataError

DATASET = "stanford_3d_sag"
PROTOCOL = "3D_FSE_PDFS"


def _user_parameters(xml: str | bytes) -> dict[str, str]:
    """``userParameters`` of an ISMRMRD header as ``{name: value}`` (long, double and string)."""
    try:
        root = ET.fromstring(xml)
    except ET.ParseError as e:
        raise DataError(f"expected a well-formed ISMRMRD XML header, got a parse error: {e}") from None
    out: dict[str, str] = {}
    up = root.find(f"{{{ISMRMRD_NS}}}userParameters")
    if up is None:
        return out
    for el in up:
        name, value = el.find(f"{{{ISMRMRD_NS}}}name"), el.find(f"{{{ISMRMRD_NS}}}value")
        if name is not None and value is not None and name.text is not None and value.text is not None:
            out[name.text.strip()] = value.text.strip()
    return out


def read_stanford3d(path: Path) -> Iterator[Scan]:
    """One Stanford 3D FSE scan as 2D sagittal slices (S, coils, kx, ky); needs ``ismrmrd``."""
    try:
        import ismrmrd
    except ImportError:
        raise DataError(
            "expected the optional 'ismrmrd' package to read ISMRMRD files, got none (hint: pip install ismrmrd)"
        ) from None
    skip = [
        getattr(ismrmrd, f)
        for f in ("ACQ_IS_NOISE_MEASUREMENT", "ACQ_IS_PARALLEL_CALIBRATION", "ACQ_IS_NAVIGATION_DATA")
    ]
    dset = ismrmrd.Dataset(str(path), "dataset", create_if_needed=False)
    try:
        xml = dset.read_xml_header()
        h = parse_header(xml)
        params = _user_parameters(xml)
        chop_y = 1 - int(float(params.get("ChopY", 1)))
        chop_z = 1 - int(float(params.get("ChopZ", 1)))
        nx, ny = h.encoded_size[0], h.encoded_size[1]
        left = h.padding_left
        acquired = h.enc_limits_max + 1
        if h.receiver_channels is None:
            raise DataError(f"expected receiverChannels in the ISMRMRD header of {path.name}, got none")
        coils = int(h.receiver_channels)
        try:
            rec_std = np.asarray(dset.read_array("rec_std", 0), dtype=np.float64).reshape(-1)
            weight = 1.0 / rec_std**2
            weight = np.sqrt(weight / weight.sum())
        except Exception:  # noqa: BLE001 - ismrmrd raises a bare Exception for a missing array
            weight = np.ones(coils)
        if weight.shape != (coils,):
            raise DataError(f"expected rec_std of {coils} coils in {path.name}, got {weight.shape}")
        lines: dict[int, dict[int, np.ndarray]] = {}
        for i in range(dset.number_of_acquisitions()):
            acq = dset.read_acquisition(i)
            if any(acq.is_flag_set(f) for f in skip):
                continue
            ky, kz, s = int(acq.idx.kspace_encode_step_1), int(acq.idx.kspace_encode_step_2), int(acq.idx.slice)
            if kz != 0 or not 0 <= ky < acquired:
                continue  # the scripts keep kz = 0 and the encoded lines only
            data = np.asarray(acq.data)
            if data.shape != (coils, nx):
                raise DataError(f"expected acquisitions of shape {(coils, nx)} in {path.name}, got {data.shape}")
            sign = (-1.0) ** (ky * chop_y + kz * chop_z)
            lines.setdefault(s, {})[ky] = (weight[:, None] * data * sign).astype(np.complex64)
    finally:
        dset.close()
    if not lines:
        raise DataError(f"expected imaging acquisitions in {path.name}, got none")
    slices = sorted(lines)
    k = np.zeros((len(slices), coils, nx, ny), dtype=np.complex64)
    for j, s in enumerate(slices):
        for ky, line in lines[s].items():
            k[j, :, :, left + ky] = line
    meta: dict[str, Any] = {
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
    yield Slices2D(
        path.stem,
        k,
        (h.recon_size[0], h.recon_size[1]),
        (left, left + acquired),
        {key: v for key, v in meta.items() if v is not None},
    )


CONVERTERS.register(
    "stanford3d",
    ConverterSpec(
        "stanford3d",
        "Stanford Fullysampled 3D FSE Knees (mridata.org, Epperson et al. 2013)",
        True,
        read_stanford3d,
        "2d",
        pattern="*.h5",
        flip_rows=True,
        metadata={
            "anatomy": "knee",
            "protocol": PROTOCOL,
            "vendor": "GE MEDICAL SYSTEMS",
            "model": "DISCOVERY MR750",
            "field": 3.0,
        },
        layout="ISMRMRD HDF5 ('dataset' group); read-out already in image space; one acquisition per "
        "(sagittal slice, phase-encoding line); ChopY/ChopZ user parameters; optional rec_std array",
        source="http://mridata.org/list?project=Stanford%20Fullysampled%203D%20FSE%20Knees",
        licence="see the project page on mridata.org",
        note="needs the optional 'ismrmrd' package; native sagittal slices only (Lin & Heckel's coronal/axial "
        "reformats are not written); header values override the defaults (protocol 3D_FSE_PDFS, GE, 3T); "
        "layout checked against Lin & Heckel's / MRAugment's scripts, not the files",
        dataset_names={"sagittal": DATASET},
        view_name="sagittal",
    ),
)

__all__ = ["DATASET", "PROTOCOL", "read_stanford3d"]
