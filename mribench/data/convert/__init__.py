"""Convert volumetric and foreign MRI datasets to the fastMRI multi-coil convention.

The conversion follows Lin & Heckel (2024), appendix and public conversion scripts
(MLI-lab/mri_data_diversity, ``convert_datasets/``):

1. A reader turns one source file into centred 3D k-space ``(coils, kx, ky, kz)`` (3D datasets) or
   into 2D slices ``(slices, coils, H, W)`` (2D datasets already close to fastMRI, e.g. M4Raw).
2. Per view (sagittal / coronal / axial): a 1D centred inverse FFT along the slice axis; each slice's
   2D k-space is then the remaining two axes, transposed to ``(rows, cols) = (H, W)``; W is the
   phase-encoding axis that masks under-sample.
3. Optional flips, applied *exactly in k-space* (:func:`flip_kspace`), and per-dataset trimming of
   the first/last slices.
4. Scaling into fastMRI's range (:func:`volume_scale`): k-space is multiplied by
   ``level / q`` where ``q`` is the ``percentile`` (99.9th) of the volume's RSS image (the full 3D
   RSS, all voxels, before cropping and trimming) and ``level`` defaults to
   :data:`DEFAULT_LEVEL`. One factor per scan, so every view of a scan has the same scale; the factor
   is stored in the ``scale`` attr.
5. RSS targets (``reconstruction_rss``) centre-cropped to the recon matrix, the ``max`` attr and an
   ISMRMRD header (matrix sizes, encoding limits from the acquired columns, protocol, vendor, field,
   coils) are written with :func:`mribench.data.fastmri_io.write_volume`; the ``dataset`` attr
   records where a file came from, in Lin & Heckel's ``datasetName`` vocabulary
   (:mod:`mribench.data.datasets`), so tasks can select it.

One module per dataset (``generic3d``, ``seven_t``, ``cc359``, ``skmtea``, ``m4raw``, ``stanford3d``)
registers its reader in :data:`CONVERTERS`; only datasets whose native layout could be checked against
public documentation or code have a reader (``supported=True``); the others say why not.
"""

from __future__ import annotations

from mribench.data.convert import cc359, generic3d, m4raw, seven_t, skmtea, stanford3d, unsupported
from mribench.data.convert.cc359 import read_cc359
from mribench.data.convert.driver import ConversionReport, convert_dataset
from mribench.data.convert.generic3d import read_generic3d
from mribench.data.convert.m4raw import read_m4raw
from mribench.data.convert.registry import CONVERTERS, ConverterSpec
from mribench.data.convert.seven_t import read_ismrmrd3d
from mribench.data.convert.skmtea import read_skmtea
from mribench.data.convert.stanford3d import read_stanford3d
from mribench.data.convert.transforms import (
    DEFAULT_LEVEL,
    DEFAULT_PERCENTILE,
    View,
    acquired_columns,
    fft1c,
    flip_kspace,
    ifft1c,
    reference_level,
    rss_images,
    view_kspace,
    volume_scale,
)
from mribench.data.convert.writer import (
    METADATA_KEYS,
    Slices2D,
    Volume3D,
    convert_slices,
    convert_volume,
)

del cc359, generic3d, m4raw, seven_t, skmtea, stanford3d, unsupported  # imported to register their readers

__all__ = [
    "CONVERTERS",
    "DEFAULT_LEVEL",
    "DEFAULT_PERCENTILE",
    "METADATA_KEYS",
    "ConversionReport",
    "ConverterSpec",
    "Slices2D",
    "View",
    "Volume3D",
    "acquired_columns",
    "convert_dataset",
    "convert_slices",
    "convert_volume",
    "fft1c",
    "flip_kspace",
    "ifft1c",
    "read_cc359",
    "read_generic3d",
    "read_ismrmrd3d",
    "read_m4raw",
    "read_skmtea",
    "read_stanford3d",
    "reference_level",
    "rss_images",
    "view_kspace",
    "volume_scale",
]
