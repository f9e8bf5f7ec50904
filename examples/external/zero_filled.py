"""Zero-filled reconstructions of ``mribench export-inputs`` files, written in fastMRI's submission layout.

A template for models outside mribench: it uses only h5py, numpy and fastmri. Replace
``reconstruct`` with your model (or call BART, TensorFlow, JAX, MATLAB, ... there).

    mribench export-inputs --task anatomy --output inputs/
    python zero_filled.py inputs/ recons/
    mribench score --task anatomy recons/ --inputs inputs/
"""

from __future__ import annotations

import sys
import xml.etree.ElementTree as etree
from pathlib import Path

import fastmri
import h5py
import numpy as np
from fastmri.data import transforms as T
from fastmri.data.mri_data import et_query


def recon_size(header: bytes) -> tuple[int, int]:
    """The reconstruction size (h, w) from the ISMRMRD header, as fastmri's SliceDataset reads it."""
    root = etree.fromstring(header)
    rec = ["encoding", "reconSpace", "matrixSize"]
    return int(et_query(root, [*rec, "x"])), int(et_query(root, [*rec, "y"]))


def reconstruct(kspace: np.ndarray, mask: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Masked k-space complex (slices, coils, H, W) -> real images (slices, h, w)."""
    image = fastmri.ifft2c(T.to_tensor(kspace))  # (slices, coils, H, W, 2)
    return T.center_crop(fastmri.rss_complex(image, dim=1), size).numpy()


def main(inputs: str | Path, outputs: str | Path) -> None:
    """Reconstruct every ``<split>/<file>.h5`` under ``inputs`` into the same path under ``outputs``."""
    inputs, outputs = Path(inputs), Path(outputs)
    for src in sorted(inputs.glob("*/*.h5")):
        with h5py.File(src, "r") as hf:
            kspace, mask = hf["kspace"][()], hf["mask"][()]
            size = recon_size(hf["ismrmrd_header"][()])
        dst = outputs / src.relative_to(inputs)
        dst.parent.mkdir(parents=True, exist_ok=True)
        with h5py.File(dst, "w") as hf:
            hf.create_dataset("reconstruction", data=reconstruct(kspace, mask, size))


if __name__ == "__main__":
    main(*sys.argv[1:3])
