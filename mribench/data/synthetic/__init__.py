"""MRIBench-Sim: the embedded, deterministic synthetic benchmark in the fastMRI multi-coil format.

It serves every shipped task (D22 and LH24 families) in all four splits, with the metadata and
folder layout of real files (fastMRI's ``multicoil_train`` / ``multicoil_val``; the ``dataset`` a
converter would record), and covers every shift axis: anatomy (axial brain from the MNI152 template
shipped by nilearn, procedural coronal knee), contrast (T1, T1PRE, T1POST, T2, FLAIR; PD, PDFS),
field strength (1.5T vs 3T relaxation and SNR), dataset (fastMRI-like Siemens vs Stanford-like GE:
oversampling, matrix, apodisation, noise correlation, slice thickness, coils), coil count
(4, 8, 12, 15, 16, 20) and pathology (brain lesions with fastMRI+-style boxes; "Normal for age"
study-level labels on the other brains).

Usage::

    from mribench.data.synthetic import ensure_synthetic
    root = ensure_synthetic("tiny")          # generated once into the cache
    # root/multicoil_train/*.h5, root/multicoil_val/*.h5, root/annotations.csv, root/manifest.json
"""

from __future__ import annotations

from mribench.data.synthetic.catalog import SIZES, SPLIT_FOLDERS, VolumeSpec, catalog
from mribench.data.synthetic.generate import SIM_VERSION, default_root, ensure_synthetic, generate
from mribench.data.synthetic.manifest import ANNOTATIONS, DATA_SUBDIRS, MANIFEST, SimManifest, verify_synthetic

__all__ = [
    "ANNOTATIONS",
    "DATA_SUBDIRS",
    "MANIFEST",
    "SIM_VERSION",
    "SIZES",
    "SPLIT_FOLDERS",
    "SimManifest",
    "VolumeSpec",
    "catalog",
    "default_root",
    "ensure_synthetic",
    "generate",
    "verify_synthetic",
]
