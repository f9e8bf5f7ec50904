"""Which volumes MRIBench-Sim holds at each size (``default`` and ``tiny``).

The default catalog gives every shift task of ``tasks/`` several volumes on each side: knee PD and
PDFS at site A (3T, 15 coils), knee at site B (GE, 8 coils), brain at site A in five contrasts at 3T
and 1.5T with 4, 8, 12, 16 and 20 coils, and brains with lesions (FLAIR / T2). Names follow
fastMRI (``file_brain_AXT2_201_6000123.h5``; knee ``file_knee_CORPD_FBK_101_1000123.h5``).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from mribench.data.synthetic.sites import SCANNER_FIELD, SCANNER_SITE, SCANNERS
from mribench.data.synthetic.tissues import PROTOCOLS

SIZES = ("default", "tiny")
"""Dataset sizes."""


@dataclass(frozen=True)
class VolumeSpec:
    """One volume of the catalog.

    Attributes:
        name: file name (``*.h5``).
        anatomy: ``brain`` or ``knee``.
        protocol: protocolName (``AXT2``, ``CORPD_FBK``, ...).
        site: ``SITE_A`` or ``SITE_B``.
        scanner: key of :data:`~mribench.data.synthetic.sites.SCANNERS`.
        field_t: systemFieldStrength_T.
        vendor, model, institution: header strings.
        coils: receiver channels.
        slices: number of slices.
        lesions: lesion kinds inserted (empty: a normal volume).
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

    @property
    def pathology(self) -> bool:
        """Whether the volume has lesions."""
        return bool(self.lesions)

    @property
    def field(self) -> str:
        """Field bucket (``1.5T`` / ``3T``)."""
        return "1.5T" if self.field_t < 2.2 else "3T"

    def summary(self) -> dict[str, object]:
        """Metadata as plain values (the manifest's per-file record)."""
        return {
            "anatomy": self.anatomy,
            "protocol": self.protocol,
            "site": self.site,
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


# (count, anatomy, protocol, scanner, coils, slices, lesions) per group; tiny in the second table
_Group = tuple[int, str, str, str, int, int, tuple[str, ...]]

_DEFAULT: list[_Group] = [
    # knee, site A, 3T, 15 coils (PD and PDFS)
    (9, "knee", "CORPD_FBK", "Skyra_knee", 15, 3, ()),
    (6, "knee", "CORPD_FBK", "Prisma_fit_knee", 15, 3, ()),
    (4, "knee", "CORPDFS_FBK", "Skyra_knee", 15, 3, ()),
    (3, "knee", "CORPDFS_FBK", "Prisma_fit_knee", 15, 3, ()),
    # knee, site B (GE, 8 coils)
    (12, "knee", "CORPD_FBK", "MR750", 8, 4, ()),
    # brain, site A, 3T, normal
    (7, "brain", "AXT2", "Skyra", 16, 3, ()),
    (4, "brain", "AXT2", "Prisma_fit", 16, 3, ()),
    (5, "brain", "AXT1PRE", "Skyra", 16, 3, ()),
    (2, "brain", "AXT1PRE", "Skyra_TH", 16, 3, ()),
    (2, "brain", "AXT1PRE", "Prisma_fit", 12, 3, ()),
    (2, "brain", "AXT1", "Skyra", 16, 3, ()),
    (1, "brain", "AXT1", "Skyra_TH", 8, 3, ()),
    (2, "brain", "AXT1POST", "Prisma_fit", 16, 3, ()),
    (1, "brain", "AXT1POST", "Skyra", 20, 3, ()),
    (1, "brain", "AXT1POST", "Skyra_TH", 12, 3, ()),
    (3, "brain", "AXFLAIR", "Skyra", 16, 3, ()),
    (1, "brain", "AXFLAIR", "Prisma_fit", 8, 3, ()),
    # brain, 1.5T (mixed contrasts and coils)
    (2, "brain", "AXT2", "Aera", 16, 3, ()),
    (1, "brain", "AXT2", "Aera", 20, 3, ()),
    (2, "brain", "AXT1", "Aera", 12, 3, ()),
    (1, "brain", "AXT1PRE", "Aera", 16, 3, ()),
    (2, "brain", "AXT1POST", "Aera", 12, 3, ()),
    (2, "brain", "AXFLAIR", "Aera", 16, 3, ()),
    # brain, 4 coils (TrioTim 3T, Avanto 1.5T)
    (2, "brain", "AXT2", "TrioTim", 4, 4, ()),
    (2, "brain", "AXT1PRE", "TrioTim", 4, 4, ()),
    (1, "brain", "AXT1POST", "TrioTim", 4, 4, ()),
    (2, "brain", "AXT2", "Avanto", 4, 4, ()),
    (1, "brain", "AXT1POST", "Avanto", 4, 4, ()),
    # brain with lesions (FLAIR / T2), 3T
    (2, "brain", "AXFLAIR", "Skyra", 16, 3, ("mass",)),
    (2, "brain", "AXFLAIR", "Skyra", 16, 3, ("nonspecific", "nonspecific", "lacune")),
    (1, "brain", "AXFLAIR", "Prisma_fit", 20, 3, ("nonspecific", "mass")),
    (2, "brain", "AXT2", "Skyra", 16, 3, ("mass",)),
    (1, "brain", "AXT2", "Prisma_fit", 16, 3, ("nonspecific", "lacune")),
    (1, "brain", "AXT2", "Skyra", 12, 3, ("nonspecific", "nonspecific")),
]

_TINY: list[_Group] = [
    (4, "knee", "CORPD_FBK", "Skyra_knee", 15, 2, ()),
    (2, "knee", "CORPDFS_FBK", "Skyra_knee", 15, 2, ()),
    (2, "knee", "CORPD_FBK", "MR750", 8, 2, ()),
    (3, "brain", "AXT2", "Skyra", 16, 2, ()),
    (2, "brain", "AXT1PRE", "Skyra", 12, 2, ()),
    (1, "brain", "AXT1", "Prisma_fit", 20, 2, ()),
    (1, "brain", "AXT1POST", "Skyra", 16, 2, ()),
    (1, "brain", "AXFLAIR", "Skyra", 16, 2, ()),
    (2, "brain", "AXT2", "Aera", 16, 2, ()),
    (2, "brain", "AXT2", "TrioTim", 4, 2, ()),
    (1, "brain", "AXFLAIR", "Skyra", 16, 2, ("mass",)),
    (1, "brain", "AXT2", "Skyra", 16, 2, ("mass", "nonspecific")),
]


_TEST_FRACTION = 0.4  # the shipped tasks' test_fraction (0.4; pathology 0.5)
_CELL_TARGET = (0.3, 0.2, 0.3, 0.2)  # (side P, train), (P, test), (Q, train), (Q, test)


def _unit_hash(key: str) -> float:
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big") / 2**64


def split_cell(name: str) -> int:
    """Where mribench's volume-level split hashing (split seed 0) puts a file.

    Mirrors :func:`mribench.tasks.make_splits`: side ``Q`` when ``hash("0:side:" + file) < 0.5``
    (only used when a volume matches both P and Q), test when ``hash("0:" + file) <
    test_fraction``.

    Returns:
        ``2 * side_q + test`` in 0..3, where test means ``hash < 0.4`` and train ``hash >= 0.5``
        (so a file is on the same side of both test fractions the tasks use, 0.4 and 0.5); -1 for
        ``0.4 <= hash < 0.5``.
    """
    u = _unit_hash(f"0:{name}")
    if 0.4 <= u < 0.5:
        return -1
    return 2 * int(_unit_hash(f"0:side:{name}") < 0.5) + int(u < 0.4)


def _strata(
    anatomy: str, protocol: str, site: str, field: str, coils: int, pathology: bool
) -> list[tuple[object, ...]]:
    """The volume pools the shipped tasks filter on, coarse and fine."""
    return [
        ("site-field", anatomy, site, field, pathology),
        ("protocol", anatomy, protocol, pathology),
        ("coils", anatomy, coils, pathology),
        ("site-protocol", anatomy, site, protocol),
        ("pathology", anatomy, pathology),
    ]


def _imbalance(cell: int, keys: list[tuple[object, ...]], counts: dict[tuple[object, ...], list[int]]) -> float:
    """How far the pools ``keys`` would be from balanced splits with one more volume in ``cell``:
    test/train balance first, side balance second, the joint cells a little."""
    total = 0.0
    for k in keys:
        c = counts.get(k, [0, 0, 0, 0])
        n = sum(c) + 1
        test = c[1] + c[3] + (cell % 2)
        side = c[2] + c[3] + (cell // 2)
        joint = sum((c[i] + (i == cell) - _CELL_TARGET[i] * n) ** 2 for i in range(4))
        total += 2.0 * (test - _TEST_FRACTION * n) ** 2 + 0.5 * (side - 0.5 * n) ** 2 + 0.15 * joint
    return total


def _expand(groups: list[_Group], id_base: int) -> list[VolumeSpec]:
    """Catalog entries with fastMRI-like ids chosen so that hash-based splits are balanced.

    Splits are assigned elsewhere by hashing file names; with ~10 volumes per pool plain luck can
    leave a split empty. Each new volume therefore takes the next free id whose split cell
    (:func:`split_cell`) best keeps every pool it belongs to near the 60/40 train/test (and 50/50
    side) proportions. Deterministic: the catalog is a pure function of the tables.
    """
    specs: list[VolumeSpec] = []
    counts: dict[tuple[object, ...], list[int]] = {}
    next_j: dict[str, int] = {}
    used: set[str] = set()
    for count, anatomy, protocol, scanner_key, coils, slices, lesions in groups:
        if protocol not in PROTOCOLS or PROTOCOLS[protocol].anatomy != anatomy:
            raise ValueError(f"expected a {anatomy} protocol, got {protocol!r}")
        sc = SCANNERS[scanner_key]
        field_t = SCANNER_FIELD[scanner_key]
        keys = _strata(
            anatomy, protocol, SCANNER_SITE[scanner_key], "1.5T" if field_t < 2.2 else "3T", coils, bool(lesions)
        )
        for _ in range(count):
            want = min(range(4), key=lambda cell: (_imbalance(cell, keys, counts), cell))
            j = next_j.get(anatomy, 0)
            for tries in range(10_000):
                # fastMRI-like ids: brain 6xxxxxx, knee 1xxxxxx, spread so that names look unrelated
                vid = (6 if anatomy == "brain" else 1) * 1_000_000 + id_base + ((j + tries) * 7919) % 100_000
                name = f"file_{anatomy}_{protocol}_{sc.code}_{vid:07d}.h5"
                if name not in used and split_cell(name) == want:
                    break
            else:  # pragma: no cover - 10k tries never all miss a cell of probability >= 0.2
                raise RuntimeError("no file id found for a split cell")
            next_j[anatomy] = j + 1
            used.add(name)
            for k in keys:
                counts.setdefault(k, [0, 0, 0, 0])[want] += 1
            specs.append(
                VolumeSpec(
                    name=name,
                    anatomy=anatomy,
                    protocol=protocol,
                    site=SCANNER_SITE[scanner_key],
                    scanner=scanner_key,
                    field_t=field_t,
                    vendor=sc.vendor,
                    model=sc.model,
                    institution=sc.institution,
                    coils=coils,
                    slices=slices,
                    lesions=lesions,
                )
            )
    return specs


def catalog(size: str = "default") -> list[VolumeSpec]:
    """The volumes of a dataset size, in generation order.

    Args:
        size: ``default`` (~100 volumes, 128-160 px) or ``tiny`` (~20 volumes, 64-80 px, 2 slices).

    Raises:
        ValueError: for an unknown size.
    """
    if size == "default":
        return _expand(_DEFAULT, 0)
    if size == "tiny":
        return _expand(_TINY, 100_000)
    raise ValueError(f"expected size in {list(SIZES)}, got {size!r}")
