"""Which dataset a file belongs to: names, what is known of each, and how a file says it.

Names follow Lin & Heckel's ``datasetName`` vocabulary (their split CSVs, public code
MLI-lab/mri_data_diversity) wherever it has one; views of a 3D dataset are separate names there
(``stanford_3d_sag``). A file's dataset comes, in this order, from

1. its ``dataset`` HDF5 attr (written by mribench's converters and by MRIBench-Sim, as a converter
   records where a file came from),
2. fastMRI's file naming (``file_brain_AXT2_200_6002026.h5`` -> ``fastmri_brain``,
   ``file1000000.h5`` -> ``fastmri_knee``, ``file_prostate_*`` -> ``fastmri_prostate``),
3. otherwise ``unknown``.

The official split of a file (``train`` / ``val`` / ``test``) comes from the folder it lies in:
fastMRI's ``multicoil_train`` / ``multicoil_val`` / ``multicoil_test`` (and ``singlecoil_*``,
``*_flip``, ``multicoil_test_full``), or the plain ``train`` / ``val`` / ``test`` folders of Lin &
Heckel's converted datasets.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import PurePath


@dataclass(frozen=True)
class DatasetInfo:
    """What is known about a dataset whatever its files' headers say.

    Attributes:
        name: the ``dataset`` value.
        title: the dataset's name in words.
        anatomy: its anatomy.
        manufacturer: the scanners' manufacturer (``SIEMENS``, ``GE``, ...), ``""`` when mixed.
        source: where it is distributed.
    """

    name: str
    title: str
    anatomy: str
    manufacturer: str
    source: str


_ENTRIES = [
    DatasetInfo("fastmri_knee", "fastMRI knee (multi-coil)", "knee", "SIEMENS", "https://fastmri.med.nyu.edu"),
    DatasetInfo("fastmri_brain", "fastMRI brain (multi-coil)", "brain", "SIEMENS", "https://fastmri.med.nyu.edu"),
    DatasetInfo("fastmri_prostate", "fastMRI prostate", "prostate", "SIEMENS", "https://fastmri.med.nyu.edu"),
    DatasetInfo("fastmri_prostate_T2", "fastMRI prostate T2", "prostate", "SIEMENS", "https://fastmri.med.nyu.edu"),
    *(
        DatasetInfo(
            f"stanford_3d_{v}",
            f"Stanford Fullysampled 3D FSE Knees, {w} view (Epperson et al. 2013)",
            "knee",
            "GE",
            "http://mridata.org/list?project=Stanford%20Fullysampled%203D%20FSE%20Knees",
        )
        for v, w in (("sag", "sagittal (native)"), ("cor", "coronal"), ("ax", "axial"))
    ),
    DatasetInfo("stanford_2d", "Stanford 2D FSE", "knee", "GE", "http://mridata.org"),
    DatasetInfo("nyu", "NYU machine learning data (mridata.org)", "knee", "SIEMENS", "http://mridata.org"),
    DatasetInfo(
        "skm-tea",
        "Stanford Knee MRI Multi-Task Evaluation (SKM-TEA), raw-data track",
        "knee",
        "GE",
        "https://stanfordaimi.azurewebsites.net/datasets/4aaeafb9-c6e6-4e3c-9188-3aaaf0e0a9e7",
    ),
    *(
        DatasetInfo(
            f"cc-359_{v}",
            f"Calgary-Campinas CC-359 multi-channel, {w} view",
            "brain",
            "",
            "https://www.ccdataset.com/mr-reconstruction-challenge",
        )
        for v, w in (("ax", "axial (native)"), ("cor", "coronal"), ("sag", "sagittal"))
    ),
    DatasetInfo("m4raw", "M4Raw low-field (0.3 T) brain", "brain", "XGY", "https://doi.org/10.5281/zenodo.7523691"),
    *(
        DatasetInfo(
            f"7T_{v}",
            f"7T sub-millimeter raw MRI database, {w} view",
            "brain",
            "SIEMENS",
            "https://dataverse.nl/dataset.xhtml?persistentId=doi:10.34894/IHZGQM",
        )
        for v, w in (("sag", "sagittal"), ("cor", "coronal"), ("ax", "axial"))
    ),
]

DATASETS: dict[str, DatasetInfo] = {d.name: d for d in _ENTRIES}
"""Known dataset names (other names are allowed; they carry no defaults)."""

#: Canonical manufacturer names by a header's ``systemVendor`` (upper case, first word).
_MANUFACTURERS = {"SIEMENS": "SIEMENS", "GE": "GE", "PHILIPS": "PHILIPS", "TOSHIBA": "CANON", "CANON": "CANON"}

_FASTMRI_NAME = re.compile(r"^file_(brain|knee|prostate)_", re.IGNORECASE)
_FASTMRI_KNEE = re.compile(r"^file\d+\.h5$")
_FASTMRI_FOLDER = re.compile(r"^(?:multicoil|singlecoil)_(train|val|test)(?:_[a-z0-9]+)*$")  # *_flip, *_full
_PLAIN_FOLDER = re.compile(r"^(train|val|validation|test)$")


def dataset_from_name(file_name: str) -> str:
    """The dataset fastMRI's file naming implies, or ``unknown``."""
    m = _FASTMRI_NAME.match(file_name)
    if m:
        return f"fastmri_{m.group(1).lower()}"
    if _FASTMRI_KNEE.match(file_name):
        return "fastmri_knee"
    return "unknown"


def official_split(relative: PurePath | str, root_name: str = "") -> str:
    """``train``, ``val``, ``test`` or ``unknown`` from the folders a file lies in (innermost first).

    Args:
        relative: the file's path relative to the data root.
        root_name: the data root's own folder name; it counts only in fastMRI's form
            (``--data-root .../multicoil_val``), as a plain ``test`` could be anything.
    """
    folders = PurePath(relative).parts[:-1]
    for folder in reversed(folders):
        m = _FASTMRI_FOLDER.match(folder.lower()) or _PLAIN_FOLDER.match(folder.lower())
        if m:
            return "val" if m.group(1) == "validation" else m.group(1)
    m = _FASTMRI_FOLDER.match(root_name.lower())
    return m.group(1) if m else "unknown"


def manufacturer(vendor: str | None, dataset: str) -> str:
    """Canonical manufacturer: from the header's ``systemVendor``, else the dataset's known one."""
    if vendor:
        first = re.split(r"[\s_]+", vendor.strip().upper())[0]
        return _MANUFACTURERS.get(first, first)
    info = DATASETS.get(dataset)
    return info.manufacturer if info is not None and info.manufacturer else "unknown"


__all__ = ["DATASETS", "DatasetInfo", "dataset_from_name", "manufacturer", "official_split"]
