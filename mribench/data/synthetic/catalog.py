"""Which volumes MRIBench-Sim holds at each size (``default`` and ``tiny``), and where they lie.

The default catalog serves every shipped task (``tasks/d22-*``, ``tasks/lh24-*``) in all four
splits: fastMRI-like knees (CORPD_FBK and CORPDFS_FBK on Skyra, Prisma_fit and Aera, 15 coils),
Stanford-like knees (GE DISCOVERY MR750, 8 coils, PDFS, recorded as dataset ``stanford_3d_sag``)
and fastMRI-like brains in five contrasts on Skyra, Prisma_fit, TrioTim (3T) and Aera, Avanto
(1.5T) with 4 to 20 coils, some with lesions (fastMRI+-style boxes; the others are labelled
"Normal for age").

The layout is fastMRI's: each volume lies in ``multicoil_train/`` or ``multicoil_val/`` (the
catalog says which; test splits come from the validation folder), and file names follow fastMRI
(knee ``file1000123.h5``; brain ``file_brain_AXT2_201_6000123.h5``) or mribench's Stanford
converter (``stanford3d_<scan>_sagittal.h5``).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from mribench.data.synthetic.sites import SCANNER_FIELD, SCANNER_SITE, SCANNERS
from mribench.data.synthetic.tissues import PROTOCOLS

SIZES = ("default", "tiny", "fastmri")
"""Dataset sizes (``fastmri``: the default's volumes at fastMRI's matrices and coil counts)."""

SPLIT_FOLDERS = {"train": "multicoil_train", "val": "multicoil_val"}
"""Folder of each official split (fastMRI's names)."""

STANFORD_PROTOCOL = "3D_FSE_PDFS"
"""protocolName of the Stanford-like knees (what ``mribench data convert stanford3d`` writes by default)."""


@dataclass(frozen=True)
class VolumeSpec:
    """One volume of the catalog.

    Attributes:
        name: file name (``*.h5``).
        anatomy: ``brain`` or ``knee``.
        protocol: the simulated protocol (key of ``tissues.PROTOCOLS``: ``AXT2``, ``CORPD_FBK``, ...).
        site: the simulator's acquisition profile (``SITE_A`` fastMRI-like, ``SITE_B`` Stanford-like;
            physics only, never written to the files).
        scanner: key of :data:`~mribench.data.synthetic.sites.SCANNERS`.
        field_t: systemFieldStrength_T.
        vendor, model, institution: header strings.
        coils: receiver channels.
        slices: number of slices.
        lesions: lesion kinds inserted (empty: a normal volume).
        dataset: the ``dataset`` attr (``fastmri_knee``, ``fastmri_brain``, ``stanford_3d_sag``).
        split: official split, ``train`` or ``val`` (its folder).
    """

    name: str
    anatomy: str
    protocol: str
    site: str
    scanner: str
    field_t: float
    vendor: str
    model: str
    institution: str
    coils: int
    slices: int
    lesions: tuple[str, ...] = ()
    dataset: str = "fastmri_brain"
    split: str = "train"

    @property
    def pathology(self) -> bool:
        """Whether the volume has lesions."""
        return bool(self.lesions)

    @property
    def field(self) -> str:
        """Field bucket (``1.5T`` / ``3T``)."""
        return "1.5T" if self.field_t < 2.2 else "3T"

    @property
    def protocol_name(self) -> str:
        """The header's protocolName (the Stanford-like knees carry their converter's name)."""
        return STANFORD_PROTOCOL if self.dataset.startswith("stanford_3d") else self.protocol

    @property
    def folder(self) -> str:
        """The folder the file lies in (``multicoil_train`` / ``multicoil_val``)."""
        return SPLIT_FOLDERS[self.split]

    @property
    def path(self) -> str:
        """Path relative to the dataset root."""
        return f"{self.folder}/{self.name}"

    def summary(self) -> dict[str, object]:
        """Metadata as plain values (the manifest's per-file record)."""
        return {
            "dataset": self.dataset,
            "split": self.split,
            "anatomy": self.anatomy,
            "protocol": self.protocol_name,
            "vendor": self.vendor,
            "model": self.model,
            "institution": self.institution,
            "field_t": self.field_t,
            "field": self.field,
            "coils": self.coils,
            "slices": self.slices,
            "pathology": self.pathology,
            "lesions": list(self.lesions),
        }


# (train, val, anatomy, protocol, scanner, coils, slices, lesions) per group; tiny in the second table.
# slices 0: the anatomy decides (knees: 20-30 slices over the whole joint, by the file name's hash).
# Coils at the default size: 4 for every volume except the 15-coil knees of the coil shift (the
# k-space budget); the ``fastmri`` size gives every volume its scanner's real count (REAL_COILS).
_Group = tuple[int, int, str, str, str, int, int, tuple[str, ...]]

_DEFAULT: list[_Group] = [
    # fastMRI-like coronal knees (D22 anatomy P / acceleration: PD; D22 dataset P: PDFS): >= 300
    # training slices each, 10 validation volumes (D22 scores their middle slices)
    (5, 4, "knee", "CORPD_FBK", "Skyra_knee", 4, 0, ()),
    (4, 3, "knee", "CORPD_FBK", "Prisma_fit_knee", 4, 0, ()),
    (4, 3, "knee", "CORPD_FBK", "Aera_knee", 4, 0, ()),
    (5, 4, "knee", "CORPDFS_FBK", "Skyra_knee", 4, 0, ()),
    (4, 3, "knee", "CORPDFS_FBK", "Prisma_fit_knee", 4, 0, ()),
    (4, 3, "knee", "CORPDFS_FBK", "Aera_knee", 4, 0, ()),
    # the coil shift's 15-coil knees (LH24 App. C.2)
    (1, 1, "knee", "CORPDFS_FBK", "Skyra_knee", 15, 20, ()),
    # Stanford-like sagittal 3D FSE PDFS knees (D22 dataset Q)
    (12, 10, "knee", "CORPDFS_FBK", "MR750", 4, 0, ()),
    # fastMRI-like brains, normal ("Normal for age"): AXT2 (D22 anatomy Q, modality P), AXT1PRE
    # (D22 modality Q), and the other contrasts and scanners the LH24 tasks use
    (7, 3, "brain", "AXT2", "Skyra", 4, 16, ()),
    (6, 3, "brain", "AXT2", "Prisma_fit", 4, 16, ()),
    (4, 2, "brain", "AXT2", "Aera", 4, 16, ()),
    (2, 1, "brain", "AXT2", "Avanto", 4, 16, ()),
    (1, 1, "brain", "AXT2", "TrioTim", 4, 16, ()),
    (8, 4, "brain", "AXT1PRE", "Skyra", 4, 16, ()),
    (3, 1, "brain", "AXT1PRE", "Skyra_TH", 4, 16, ()),
    (4, 2, "brain", "AXT1PRE", "Prisma_fit", 4, 16, ()),
    (3, 2, "brain", "AXT1PRE", "Aera", 4, 16, ()),
    (2, 1, "brain", "AXT1PRE", "TrioTim", 4, 16, ()),
    (1, 1, "brain", "AXT1", "Skyra", 4, 16, ()),
    (1, 0, "brain", "AXT1", "Skyra_TH", 4, 16, ()),
    (1, 1, "brain", "AXT1", "Aera", 4, 16, ()),
    (1, 1, "brain", "AXT1POST", "Prisma_fit", 4, 16, ()),
    (1, 0, "brain", "AXT1POST", "Skyra", 4, 16, ()),
    (0, 1, "brain", "AXT1POST", "Skyra_TH", 4, 16, ()),
    (1, 1, "brain", "AXT1POST", "Aera", 4, 16, ()),
    (1, 1, "brain", "AXT1POST", "Avanto", 4, 16, ()),
    (1, 0, "brain", "AXT1POST", "TrioTim", 4, 16, ()),
    (2, 1, "brain", "AXFLAIR", "Skyra", 4, 16, ()),
    (1, 0, "brain", "AXFLAIR", "Prisma_fit", 4, 16, ()),
    (1, 1, "brain", "AXFLAIR", "Aera", 4, 16, ()),
    # brains with lesions (FLAIR / T2), 3T: fastMRI+-style boxes
    (1, 1, "brain", "AXFLAIR", "Skyra", 4, 16, ("mass",)),
    (1, 1, "brain", "AXFLAIR", "Skyra", 4, 16, ("nonspecific", "nonspecific", "lacune")),
    (1, 0, "brain", "AXFLAIR", "Prisma_fit", 4, 16, ("nonspecific", "mass")),
    (1, 1, "brain", "AXT2", "Skyra", 4, 16, ("mass",)),
    (0, 1, "brain", "AXT2", "Prisma_fit", 4, 16, ("nonspecific", "lacune")),
    (1, 0, "brain", "AXT2", "Skyra", 4, 16, ("nonspecific", "nonspecific")),
]

_TINY: list[_Group] = [
    (1, 1, "knee", "CORPD_FBK", "Skyra_knee", 15, 2, ()),
    (1, 1, "knee", "CORPDFS_FBK", "Skyra_knee", 15, 2, ()),
    (1, 1, "knee", "CORPDFS_FBK", "MR750", 8, 2, ()),
    (1, 1, "brain", "AXT2", "Skyra", 16, 2, ()),
    (1, 1, "brain", "AXT2", "Prisma_fit", 16, 2, ()),
    (1, 1, "brain", "AXT2", "Aera", 16, 2, ()),
    (1, 1, "brain", "AXT2", "Avanto", 4, 2, ()),
    (1, 1, "brain", "AXT1PRE", "Skyra", 12, 2, ()),
    (1, 0, "brain", "AXFLAIR", "Skyra", 16, 2, ()),
    (0, 1, "brain", "AXT1", "Prisma_fit", 20, 2, ()),
    (1, 0, "brain", "AXT1POST", "Skyra", 16, 2, ()),
    (1, 0, "brain", "AXFLAIR", "Skyra", 16, 2, ("mass",)),
    (0, 1, "brain", "AXT2", "Skyra", 16, 2, ("mass", "nonspecific")),
]

REAL_COILS = {"Skyra": 16, "Skyra_TH": 12, "Prisma_fit": 20, "Aera": 16, "Avanto": 4, "TrioTim": 4}
"""Receive channels of the ``fastmri`` size: knees 15 (fastMRI) or 8 (Stanford), brains per scanner."""

KNEE_SLICES = {"SITE_A": (20, 30), "SITE_B": (22, 28)}
"""Range of slices of a knee volume (coronal: patella to posterior capsule; sagittal: medial to lateral)."""


def _dataset(anatomy: str, scanner_key: str) -> str:
    if SCANNER_SITE[scanner_key] == "SITE_B":
        return "stanford_3d_sag"
    return f"fastmri_{anatomy}"


def _name(dataset: str, protocol: str, code: int, vid: int) -> str:
    if dataset == "fastmri_knee":
        return f"file{vid:07d}.h5"
    if dataset == "fastmri_brain":
        return f"file_brain_{protocol}_{code}_{vid:07d}.h5"
    scan = hashlib.sha256(f"stanford:{vid}".encode()).hexdigest()
    return f"stanford3d_{scan[:8]}-{scan[8:12]}-{scan[12:16]}-{scan[16:20]}-{scan[20:32]}_sagittal.h5"


def _knee_slices(name: str, site: str) -> int:
    lo, hi = KNEE_SLICES[site]
    return lo + int.from_bytes(hashlib.sha256(f"slices:{name}".encode()).digest()[:4], "little") % (hi - lo + 1)


def _expand(groups: list[_Group], id_base: int, size: str) -> list[VolumeSpec]:
    """Catalog entries with fastMRI-like ids (spread so that names look unrelated); the first
    ``train`` volumes of a group go to ``multicoil_train``, the rest to ``multicoil_val``.
    Deterministic: the catalog is a pure function of the tables (the ``fastmri`` size has the
    default's volumes with their scanners' real coil counts)."""
    specs: list[VolumeSpec] = []
    next_j: dict[str, int] = {}
    for n_train, n_val, anatomy, protocol, scanner_key, coils, slices, lesions in groups:
        if protocol not in PROTOCOLS or PROTOCOLS[protocol].anatomy != anatomy:
            raise ValueError(f"expected a {anatomy} protocol, got {protocol!r}")
        sc = SCANNERS[scanner_key]
        site = SCANNER_SITE[scanner_key]
        dataset = _dataset(anatomy, scanner_key)
        if size == "fastmri":
            coils = (15 if site == "SITE_A" else 8) if anatomy == "knee" else REAL_COILS[scanner_key]
        for i in range(n_train + n_val):
            j = next_j.get(dataset, 0)
            next_j[dataset] = j + 1
            # fastMRI-like ids: brain 6xxxxxx, knee 1xxxxxx
            vid = (6 if anatomy == "brain" else 1) * 1_000_000 + id_base + (j * 7919) % 100_000
            name = _name(dataset, protocol, sc.code, vid)
            specs.append(
                VolumeSpec(
                    name=name,
                    anatomy=anatomy,
                    protocol=protocol,
                    site=site,
                    scanner=scanner_key,
                    field_t=SCANNER_FIELD[scanner_key],
                    vendor=sc.vendor,
                    model=sc.model,
                    institution=sc.institution,
                    coils=coils,
                    slices=slices or _knee_slices(name, site),
                    lesions=lesions,
                    dataset=dataset,
                    split="train" if i < n_train else "val",
                )
            )
    return specs


def catalog(size: str = "default") -> list[VolumeSpec]:
    """The volumes of a dataset size, in generation order.

    Args:
        size: ``default`` (~150 volumes, 256x256 targets), ``fastmri`` (the same volumes at
            fastMRI's matrices and coil counts) or ``tiny`` (~20 volumes, 64-80 px, 2 slices).

    Raises:
        ValueError: for an unknown size.
    """
    if size in ("default", "fastmri"):
        return _expand(_DEFAULT, 0, size)
    if size == "tiny":
        return _expand(_TINY, 100_000, size)
    raise ValueError(f"expected size in {list(SIZES)}, got {size!r}")
