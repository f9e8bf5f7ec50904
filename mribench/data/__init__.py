"""fastMRI-format data: HDF5 read/write, ISMRMRD headers, the slice index, annotations.

The embedded synthetic benchmark lives in :mod:`mribench.data.synthetic` (imported on demand).
"""

from __future__ import annotations

from mribench.data.annotations import Box, boxes_by_slice, load_annotations
from mribench.data.fastmri_io import VolumeInfo, read_info, read_slice, write_volume
from mribench.data.header import AcquisitionHeader, build_header, parse_header
from mribench.data.index import COLUMNS, SliceIndex, apply_filter, build_index

__all__ = [
    "COLUMNS",
    "AcquisitionHeader",
    "Box",
    "SliceIndex",
    "VolumeInfo",
    "apply_filter",
    "boxes_by_slice",
    "build_header",
    "build_index",
    "load_annotations",
    "parse_header",
    "read_info",
    "read_slice",
    "write_volume",
]
