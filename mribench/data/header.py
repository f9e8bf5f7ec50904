"""ISMRMRD XML header (the ``ismrmrd_header`` dataset of fastMRI files): parse and build.

Only the fields mribench uses are read or written; parsing is tolerant of missing optional
fields (they come back as ``None``) and strict about the ones fastMRI itself needs.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import asdict, dataclass, field
from typing import Any

from mribench.errors import DataError

ISMRMRD_NS = "http://www.ismrm.org/ISMRMRD"
_NS = {"ism": ISMRMRD_NS}


@dataclass(frozen=True)
class AcquisitionHeader:
    """The header fields mribench reads from (and writes to) a fastMRI file.

    ``encoded_size`` and ``recon_size`` are (x, y, z) matrix sizes: x is the read-out direction
    (kspace dim -2), y the phase-encoding direction (kspace dim -1).
    """

    encoded_size: tuple[int, int, int]
    recon_size: tuple[int, int, int]
    enc_limits_center: int
    enc_limits_max: int
    protocol_name: str | None = None
    system_vendor: str | None = None
    system_model: str | None = None
    field_strength_t: float | None = None
    receiver_channels: int | None = None
    institution_name: str | None = None
    sequence_type: str | None = None
    tr_ms: float | None = None
    te_ms: float | None = None
    ti_ms: float | None = None
    encoded_fov_mm: tuple[float, float, float] | None = None
    recon_fov_mm: tuple[float, float, float] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def padding_left(self) -> int:
        """First acquired phase-encoding column, computed exactly as fastmri's SliceDataset does."""
        return self.encoded_size[1] // 2 - self.enc_limits_center

    @property
    def padding_right(self) -> int:
        """One past the last acquired phase-encoding column (fastmri's convention)."""
        return self.padding_left + self.enc_limits_max + 1

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["padding_left"] = self.padding_left
        d["padding_right"] = self.padding_right
        return d


def _find(root: ET.Element, path: str) -> ET.Element | None:
    qpath = "/".join(f"ism:{p}" for p in path.split("/"))
    return root.find(qpath, _NS)


def _text(root: ET.Element, path: str) -> str | None:
    el = _find(root, path)
    return el.text.strip() if el is not None and el.text is not None else None


def _num(root: ET.Element, path: str, cast: type = float) -> Any:
    t = _text(root, path)
    if t is None:
        return None
    try:
        return cast(float(t)) if cast is int else cast(t)
    except ValueError:
        return None


def _required_int(root: ET.Element, path: str) -> int:
    v = _num(root, path, int)
    if v is None:
        raise DataError(f"expected ISMRMRD header field {path}, got none")
    return int(v)


def parse_header(xml: str | bytes) -> AcquisitionHeader:
    """Parse an ISMRMRD XML header.

    Args:
        xml: the header text (``hf["ismrmrd_header"][()]``).

    Returns:
        The parsed :class:`AcquisitionHeader`.

    Raises:
        DataError: if the XML is malformed or lacks the matrix sizes / encoding limits.
    """
    try:
        root = ET.fromstring(xml)
    except ET.ParseError as e:
        raise DataError(f"expected a well-formed ISMRMRD XML header, got a parse error: {e}") from None
    enc = "encoding/encodedSpace/matrixSize"
    rec = "encoding/reconSpace/matrixSize"
    lim = "encoding/encodingLimits/kspace_encoding_step_1"

    def fov(path: str) -> tuple[float, float, float] | None:
        vals = [_num(root, f"{path}/{a}") for a in "xyz"]
        return None if any(v is None for v in vals) else (vals[0], vals[1], vals[2])

    tr = _num(root, "sequenceParameters/TR")
    te = _num(root, "sequenceParameters/TE")
    ti = _num(root, "sequenceParameters/TI")
    return AcquisitionHeader(
        encoded_size=(
            _required_int(root, f"{enc}/x"),
            _required_int(root, f"{enc}/y"),
            _required_int(root, f"{enc}/z"),
        ),
        recon_size=(_required_int(root, f"{rec}/x"), _required_int(root, f"{rec}/y"), _required_int(root, f"{rec}/z")),
        enc_limits_center=_required_int(root, f"{lim}/center"),
        enc_limits_max=_required_int(root, f"{lim}/maximum"),
        protocol_name=_text(root, "measurementInformation/protocolName"),
        system_vendor=_text(root, "acquisitionSystemInformation/systemVendor"),
        system_model=_text(root, "acquisitionSystemInformation/systemModel"),
        field_strength_t=_num(root, "acquisitionSystemInformation/systemFieldStrength_T"),
        receiver_channels=_num(root, "acquisitionSystemInformation/receiverChannels", int),
        institution_name=_text(root, "acquisitionSystemInformation/institutionName"),
        sequence_type=_text(root, "sequenceParameters/sequence_type"),
        tr_ms=tr,
        te_ms=te,
        ti_ms=ti,
        encoded_fov_mm=fov("encoding/encodedSpace/fieldOfView_mm"),
        recon_fov_mm=fov("encoding/reconSpace/fieldOfView_mm"),
    )


def _fmt(v: float) -> str:
    return repr(float(v)) if not float(v).is_integer() else str(int(v)) if abs(v) < 1e15 else repr(v)


def build_header(h: AcquisitionHeader) -> str:
    """Serialise ``h`` as an ISMRMRD XML header laid out like the real fastMRI files."""
    E = ET.Element

    def sub(parent: ET.Element, tag: str, text: Any = None) -> ET.Element:
        el = ET.SubElement(parent, tag)
        if text is not None:
            el.text = _fmt(text) if isinstance(text, (int, float)) and not isinstance(text, bool) else str(text)
        return el

    root = E("ismrmrdHeader", {"xmlns": ISMRMRD_NS})
    mi = sub(root, "measurementInformation")
    if h.protocol_name is not None:
        sub(mi, "protocolName", h.protocol_name)
    asi = sub(root, "acquisitionSystemInformation")
    for tag, val in [
        ("systemVendor", h.system_vendor),
        ("systemModel", h.system_model),
        ("systemFieldStrength_T", h.field_strength_t),
        ("receiverChannels", h.receiver_channels),
        ("institutionName", h.institution_name),
    ]:
        if val is not None:
            sub(asi, tag, val)
    ec = sub(root, "experimentalConditions")
    sub(ec, "H1resonanceFrequency_Hz", int(round(42577478.5 * (h.field_strength_t or 3.0))))
    encoding = sub(root, "encoding")
    for space, size, fov in [
        ("encodedSpace", h.encoded_size, h.encoded_fov_mm),
        ("reconSpace", h.recon_size, h.recon_fov_mm),
    ]:
        sp = sub(encoding, space)
        ms = sub(sp, "matrixSize")
        for a, v in zip("xyz", size):
            sub(ms, a, int(v))
        fv = sub(sp, "fieldOfView_mm")
        for a, mm in zip("xyz", fov or (float(size[0]), float(size[1]), 3.0)):
            sub(fv, a, float(mm))
    lim = sub(encoding, "encodingLimits")
    ks1 = sub(lim, "kspace_encoding_step_1")
    sub(ks1, "minimum", 0)
    sub(ks1, "maximum", int(h.enc_limits_max))
    sub(ks1, "center", int(h.enc_limits_center))
    sub(encoding, "trajectory", "cartesian")
    sp = sub(root, "sequenceParameters")
    for tag, val in [("TR", h.tr_ms), ("TE", h.te_ms), ("TI", h.ti_ms)]:
        if val is not None:
            sub(sp, tag, val)
    if h.sequence_type is not None:
        sub(sp, "sequence_type", h.sequence_type)
    ET.indent(root)
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(root, encoding="unicode")
