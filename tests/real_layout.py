"""A small fastMRI-layout data root with real header conventions and names, built in a test.

Files are written the way fastMRI's are (``kspace``, ``reconstruction_rss``, ``ismrmrd_header`` from a
real header with only the values changed, attrs ``max``, ``norm``, ``acquisition``, ``patient_id``;
no mribench-only attrs), in fastMRI's ``multicoil_train`` / ``multicoil_val`` / ``multicoil_test``
folders, with fastMRI names (``file1000123.h5``, ``file_brain_AXT2_200_6000123.h5``). Matrices
are shrunk to a few dozen pixels so that the root is small.
"""

from __future__ import annotations

import re
from pathlib import Path

import h5py
import numpy as np
import torch

from mribench.physics.fft import center_crop, fft2c, ifft2c, rss

DATA = Path(__file__).parent / "data"
HEADERS = {"knee": DATA / "fastmri_knee_header.xml", "brain": DATA / "fastmri_brain_header.xml"}
ENC, RECON, ACQUIRED = (32, 24), (16, 16), 22  # encoded (H, W), recon (h, w), acquired columns

# (anatomy, protocol, systemModel, systemFieldStrength_T, coils, institution)
KNEE = [
    ("knee", "CORPD_FBK", "Skyra", 2.89362, 15, "NYU"),
    ("knee", "CORPD_FBK", "Aera", 1.494, 15, "NYU"),
    ("knee", "CORPDFS_FBK", "Skyra", 2.89362, 15, "NYU"),
    ("knee", "CORPDFS_FBK", "Aera", 1.494, 15, "NYU"),
]
BRAIN = [
    ("brain", "AXT2", "Prisma_fit", 2.8936, 16, "NYU LANGONE CBI"),
    ("brain", "AXT2", "Skyra", 2.8936, 16, "TH RADIOLOGY"),
    ("brain", "AXT2", "Avanto", 1.494, 4, "NYU"),
    ("brain", "AXT1PRE", "Skyra", 2.8936, 16, "NYU LANGONE CBI"),
    ("brain", "AXFLAIR", "Skyra", 2.8936, 16, "TH RADIOLOGY"),
    ("brain", "AXT1", "Aera", 1.494, 16, "NYU"),
    ("brain", "AXT1POST", "Aera", 1.494, 12, "NYU"),
]


def _set(xml: str, tag: str, value: object) -> str:
    return re.sub(f"<{tag}>[^<]*</{tag}>", f"<{tag}>{value}</{tag}>", xml, count=1)


def _in_block(xml: str, block: str, fn: object) -> str:
    m = re.search(f"<{block}>.*?</{block}>", xml, re.S)
    assert m is not None, block
    return xml.replace(m.group(0), fn(m.group(0)))  # type: ignore[operator]


def header_xml(
    anatomy: str, protocol: str, model: str, field: float, coils: int, institution: str, vendor: str = "SIEMENS"
) -> str:
    """A real fastMRI header with these values and the small test matrices."""
    xml = HEADERS[anatomy].read_text()
    for tag, value in [
        ("systemVendor", vendor),
        ("protocolName", protocol),
        ("systemModel", model),
        ("systemFieldStrength_T", field),
        ("receiverChannels", coils),
        ("institutionName", institution),
    ]:
        xml = _set(xml, tag, value)
    xml = _in_block(xml, "encodedSpace", lambda b: _set(_set(b, "x", ENC[0]), "y", ENC[1]))
    xml = _in_block(xml, "reconSpace", lambda b: _set(_set(b, "x", RECON[0]), "y", RECON[1]))
    center = ENC[1] // 2 - 1  # padding_left 1, padding_right 1 + ACQUIRED
    return _in_block(xml, "kspace_encoding_step_1", lambda b: _set(_set(b, "maximum", ACQUIRED - 1), "center", center))


def write_fastmri_file(
    path: Path,
    volume: tuple[str, str, str, float, int, str],
    *,
    slices: int = 3,
    seed: int = 0,
    target: bool = True,
    attrs: dict[str, object] | None = None,
    vendor: str = "SIEMENS",
) -> Path:
    """One multi-coil file as fastMRI writes them (k-space zero outside the acquired columns)."""
    anatomy, protocol, model, field, coils, institution = volume
    rng = np.random.default_rng(seed)
    h, w = ENC
    yy, xx = np.mgrid[-1 : 1 : h * 1j, -1 : 1 : w * 1j]
    obj = ((yy / 0.5) ** 2 + (xx / 0.6) ** 2 < 1) * (1 + 0.3 * rng.random((slices, h, w)))
    sens = np.stack([np.exp(-((yy - np.cos(c)) ** 2 + (xx - np.sin(c)) ** 2)) for c in range(coils)])
    img = (obj[:, None] * sens[None]).astype(np.complex64) * 1e-4
    k = fft2c(torch.from_numpy(img)).numpy()
    k[..., :1] = 0
    k[..., 1 + ACQUIRED :] = 0
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as hf:
        hf.create_dataset("kspace", data=k.astype(np.complex64))
        hf.create_dataset("ismrmrd_header", data=np.bytes_(header_xml(*volume, vendor=vendor).encode()))
        if target:
            t = center_crop(rss(ifft2c(torch.from_numpy(k))), RECON).numpy().astype(np.float32)
            hf.create_dataset("reconstruction_rss", data=t)
            hf.attrs["max"] = float(t.max())
            hf.attrs["norm"] = float(np.linalg.norm(t))
        hf.attrs["acquisition"] = protocol
        hf.attrs["patient_id"] = f"{seed:040x}"
        for key, v in (attrs or {}).items():
            hf.attrs[key] = v
    return path


def build_real_layout_root(
    root: Path, *, knee: bool = True, brain: list[tuple[str, str, str, float, int, str]] | None = None
) -> Path:
    """knee/ and brain/ with multicoil_train and multicoil_val, converted Stanford knees in
    stanford_3d/train and /val, a multicoil_test file without targets, a truncated file and a
    fastMRI+ ``annotations.csv`` (boxes on two brains with lesions, "Normal for age" on the others)."""
    brain = BRAIN if brain is None else brain
    ann = ["file,slice,study_level,x,y,width,height,label"]
    n = 0
    for split in ("train", "val"):
        if knee:
            for v in KNEE:
                write_fastmri_file(root / "knee" / f"multicoil_{split}" / f"file{1000000 + n:07d}.h5", v, seed=n)
                n += 1
        for v in brain:
            name = f"file_brain_{v[1]}_{200 + n % 3}_{6000000 + n:07d}"
            write_fastmri_file(root / "brain" / f"multicoil_{split}" / f"{name}.h5", v, seed=n)
            ann.append(f"{name},,Yes,,,,,Normal for age")
            n += 1
        if brain:
            name = f"file_brain_AXFLAIR_201_{6000000 + n:07d}"
            write_fastmri_file(root / "brain" / f"multicoil_{split}" / f"{name}.h5", BRAIN[4], seed=n)
            ann.append(f"{name},1,No,4,5,5,4,Nonspecific lesion")
            n += 1
        stanford = ("knee", "3D_FSE_PDFS", "DISCOVERY MR750", 3.0, 8, "STANFORD")
        scan = f"{n:08x}-0000-4000-8000-{n:012x}"
        write_fastmri_file(
            root / "stanford_3d" / split / f"stanford3d_{scan}_sagittal.h5",
            stanford,
            seed=n,
            attrs={"dataset": "stanford_3d_sag", "anatomy": "knee", "view": "sagittal"},
            vendor="GE MEDICAL SYSTEMS",
        )
        n += 1
    if knee:
        write_fastmri_file(root / "knee" / "multicoil_test" / "file1099999.h5", KNEE[0], seed=99, target=False)
    good = next((root / ("knee" if knee else "brain") / "multicoil_train").glob("*.h5"))
    bad = good.with_name("file1099998.h5" if knee else "file_brain_AXT2_200_6099998.h5")
    bad.write_bytes(good.read_bytes()[:2000])  # a truncated download
    (root / "annotations.csv").write_text("\n".join(ann) + "\n")
    return root
