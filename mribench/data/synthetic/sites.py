"""Sites and scanners of MRIBench-Sim: how each acquires (matrix, oversampling, filters, noise).

Two sites differ the way real datasets do:

These profiles are the simulator's own (physics); the files record only what real files carry
(header fields, the ``dataset`` a converter would record, fastMRI's folders).

- ``SITE_A`` "fastMRI-like": Siemens scanners at an NYU-like institution, 2x read-out
  oversampling, phase-encoding padding columns (zero k-space described by the encoding limits),
  thicker slices, weakly correlated coil noise.
- ``SITE_B`` "Stanford-like": a GE DISCOVERY MR750 at 3T, no read-out oversampling, a different
  square matrix, a Fermi k-space apodisation window, thinner slices, an 8-channel knee coil with
  more strongly correlated noise.
"""

from __future__ import annotations

from dataclasses import dataclass

from mribench.data.synthetic.tissues import FIELD_3T_BRAIN, FIELD_3T_KNEE, FIELD_15T


@dataclass(frozen=True)
class Scanner:
    """A scanner as written to the ISMRMRD header, plus the fastMRI-style file-name code."""

    vendor: str
    model: str
    institution: str
    code: int
    """Three-digit scanner code of the file name (``file_brain_AXT2_<code>_<id>.h5``)."""


@dataclass(frozen=True)
class Matrix:
    """The acquisition matrix of one site and anatomy at one dataset size.

    Attributes:
        recon: (h, w) reconSpace matrix = target size.
        kspace: (H, W) encoded matrix = kspace size (H read-out incl. oversampling, W phase).
        padding_left: zero (unacquired) phase-encoding columns on the left.
        acquired: number of acquired phase-encoding columns (``enc_limits_max + 1``).
        fov_mm: reconSpace field of view (read, phase) in mm; pixels are square.
    """

    recon: tuple[int, int]
    kspace: tuple[int, int]
    padding_left: int
    acquired: int
    fov_mm: float

    @property
    def pixel_mm(self) -> float:
        """Pixel size in mm (same in both directions)."""
        return self.fov_mm / self.recon[0]

    @property
    def padding_right(self) -> int:
        """One past the last acquired column (fastmri's ``padding_right``)."""
        return self.padding_left + self.acquired

    @property
    def enc_limits_center(self) -> int:
        """``encodingLimits/kspace_encoding_step_1/center`` giving :attr:`padding_left`."""
        return self.kspace[1] // 2 - self.padding_left

    @property
    def read_oversampling(self) -> int:
        """Read-out oversampling factor (``H / h``)."""
        return self.kspace[0] // self.recon[0]


@dataclass(frozen=True)
class Site:
    """How one site acquires.

    Attributes:
        name: the simulator's profile name (``SITE_A`` / ``SITE_B``; never written to the files).
        description: one line.
        read_oversampling: 2 (fastMRI) or 1, at the ``fastmri`` size (:func:`matrix_for` says per size).
        apodisation: ``None`` or ``("fermi", radius, width)`` in units of k_max.
        slice_thickness_mm: per anatomy.
        slice_gap_mm: distance between slice centres minus thickness (brain; knee slices are
            spread over the organ, see :mod:`~mribench.data.synthetic.anatomy_knee`).
        view: slice orientation of the knees (``coronal`` / ``sagittal``).
        noise_coupling: strength of the random coil-noise correlation.
        snr_3t: image SNR of a fully relaxed PD-1 tissue at 3T on the ``default`` matrix (1.5T:
            about half; smaller voxels: proportionally less).
        timing_scale: (TR, TE) factors of this site's protocol variants.
        fat_residual: (low, high) fraction of fat signal left by fat suppression.
        bandwidth_hz_px: (low, high) read-out bandwidth per pixel (chemical shift of fat).
    """

    name: str
    description: str
    read_oversampling: int
    apodisation: tuple[str, float, float] | None
    slice_thickness_mm: dict[str, float]
    slice_gap_mm: dict[str, float]
    view: str
    noise_coupling: float
    snr_3t: float
    timing_scale: tuple[float, float]
    fat_residual: tuple[float, float]
    bandwidth_hz_px: tuple[float, float]


SITES: dict[str, Site] = {
    "SITE_A": Site(
        name="SITE_A",
        description="fastMRI-like: Siemens 2D TSE, coronal knees, 3 mm knee / 5 mm brain slices, phase padding",
        read_oversampling=2,
        apodisation=None,
        slice_thickness_mm={"knee": 3.0, "brain": 5.0},
        slice_gap_mm={"knee": 0.3, "brain": 1.5},
        view="coronal",
        noise_coupling=0.12,
        snr_3t=50.0,
        timing_scale=(1.0, 1.0),
        fat_residual=(0.05, 0.10),
        bandwidth_hz_px=(180.0, 300.0),
    ),
    "SITE_B": Site(
        name="SITE_B",
        description="Stanford-like: GE 3D FSE, sagittal 0.6 mm knee slices, Fermi apodisation, no oversampling",
        read_oversampling=1,
        apodisation=("fermi", 0.78, 0.05),
        slice_thickness_mm={"knee": 0.6, "brain": 3.0},
        slice_gap_mm={"knee": 0.0, "brain": 0.5},
        view="sagittal",
        noise_coupling=0.35,
        snr_3t=50.0,
        timing_scale=(1.07, 0.85),
        fat_residual=(0.10, 0.15),
        bandwidth_hz_px=(350.0, 420.0),
    ),
}
"""The two sites."""

SCANNERS: dict[str, Scanner] = {
    # site A (NYU-like, Siemens); codes follow fastMRI's 2xx brain / 1xx knee style
    "Skyra": Scanner("SIEMENS", "Skyra", "NYU LANGONE CBI", 201),
    "Skyra_TH": Scanner("SIEMENS", "Skyra", "TH RADIOLOGY", 202),
    "Prisma_fit": Scanner("SIEMENS", "Prisma_fit", "NYU LANGONE CBI", 203),
    "TrioTim": Scanner("SIEMENS", "TrioTim", "NYU Clinical Cancer Ctr", 209),
    "Aera": Scanner("SIEMENS", "Aera", "NYU", 207),
    "Avanto": Scanner("SIEMENS", "Avanto", "NYU", 210),
    "Skyra_knee": Scanner("SIEMENS", "Skyra", "NYU", 101),
    "Prisma_fit_knee": Scanner("SIEMENS", "Prisma_fit", "NYU", 103),
    "Aera_knee": Scanner("SIEMENS", "Aera", "NYU", 102),
    # site B (Stanford-like, GE)
    "MR750": Scanner("GE MEDICAL SYSTEMS", "DISCOVERY MR750", "STANFORD LUCAS CENTER", 301),
}
"""Scanners by key (:attr:`VolumeSpec.scanner`)."""

SCANNER_FIELD: dict[str, float] = {
    "Skyra": FIELD_3T_BRAIN,
    "Skyra_TH": FIELD_3T_BRAIN,
    "Prisma_fit": FIELD_3T_BRAIN,
    "TrioTim": FIELD_3T_BRAIN,
    "Aera": FIELD_15T,
    "Avanto": FIELD_15T,
    "Skyra_knee": FIELD_3T_KNEE,
    "Prisma_fit_knee": FIELD_3T_KNEE,
    "Aera_knee": FIELD_15T,
    "MR750": 3.0,
}
"""systemFieldStrength_T of each scanner."""

SCANNER_SITE: dict[str, str] = {k: ("SITE_B" if v.vendor.startswith("GE") else "SITE_A") for k, v in SCANNERS.items()}
"""The site of each scanner."""


MATRIX_SIZES = ("default", "fastmri", "tiny")
"""Dataset sizes with their own matrices (see :func:`matrix_for`)."""


def matrix_for(site: str, anatomy: str, size: str) -> Matrix:
    """The acquisition matrix of a site and anatomy at a dataset size.

    - ``default``: 256x256 targets for both sites; site A without read-out oversampling (k-space
      256 rows), with fastMRI-like zero phase-padding columns (knee 264 columns, 250 acquired,
      like fastMRI's 368 / 334; brain 260, 256 acquired); site B 256x256, every column acquired.
    - ``fastmri``: fastMRI's matrices: site A 320x320 targets from 640-row k-space (2x read-out
      oversampling; knee 368 columns with 334 acquired, brain 336 with 320); site B 320x320.
    - ``tiny`` (tests): site A 64x64 targets with 2x read-out oversampling (128 rows; knee 72
      columns, 64 acquired; brain 68 / 64); site B 80x80.

    Raises:
        ValueError: for an unknown site, anatomy or size.
    """
    if size not in MATRIX_SIZES:
        raise ValueError(f"expected size in {MATRIX_SIZES}, got {size!r}")
    if anatomy not in ("brain", "knee"):
        raise ValueError(f"expected anatomy 'brain' or 'knee', got {anatomy!r}")
    if site == "SITE_A":
        fov = 140.0 if anatomy == "knee" else 220.0
        n, over, knee, brain = {
            "default": (256, 1, (264, 7, 250), (260, 2, 256)),
            "fastmri": (320, 2, (368, 17, 334), (336, 8, 320)),
            "tiny": (64, 2, (72, 3, 64), (68, 2, 64)),
        }[size]
        w, left, acq = knee if anatomy == "knee" else brain
        return Matrix((n, n), (over * n, w), left, acq, fov)
    if site == "SITE_B":
        n = {"default": 256, "fastmri": 320, "tiny": 80}[size]
        fov = 160.0 if anatomy == "knee" else 240.0
        return Matrix((n, n), (n, n), 0, n, fov)
    raise ValueError(f"expected site 'SITE_A' or 'SITE_B', got {site!r}")
