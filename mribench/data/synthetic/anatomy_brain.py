"""Axial brain anatomy from the MNI152 2009a template shipped inside nilearn (no download).

The grey- and white-matter probability maps and the (skull-stripped) T1 template of
``nilearn/datasets/data/mni_icbm152_*_tal_nlin_sym_09a_converted.nii.gz`` give the brain; CSF is
the brain mask minus GM minus WM. Each subject is a smooth random deformation of the template
(anisotropic scaling, rotation, translation, low-frequency warps, ventricle enlargement). The
intracranial CSF rim, dura, skull (inner table, fatty diploe, outer table) and scalp (muscle,
subcutaneous fat, skin) are added procedurally around the brain of each slice. Lesions (masses,
nonspecific lesions, lacunar infarcts) are irregular ellipsoids in white matter.

Image orientation follows fastMRI brain data: rows are the read-out direction with anterior at the
top, columns the phase-encoding direction in radiological convention (patient right on the left).
"""

from __future__ import annotations

import functools
import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy import ndimage

from mribench.errors import DataError

_FILES = {
    "t1": "mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz",
    "gm": "mni_icbm152_gm_tal_nlin_sym_09a_converted.nii.gz",
    "wm": "mni_icbm152_wm_tal_nlin_sym_09a_converted.nii.gz",
}
_CENTER_MNI = np.array([0.0, -17.0, 15.0])  # head centre of the image plane (x, y, z) in MNI mm
_CHOROID_MNI = [np.array([27.0, -38.0, 14.0]), np.array([-27.0, -38.0, 14.0])]  # glomus of the choroid plexus

LESION_LABELS = {"mass": "Mass", "nonspecific": "Nonspecific lesion", "lacune": "Lacunar infarct"}
"""fastMRI+-style label of each lesion kind."""


def template_dir() -> Path:
    """Folder of nilearn's bundled MNI152 files (located without importing nilearn).

    Raises:
        DataError: if nilearn is not installed or lacks the bundled template.
    """
    spec = importlib.util.find_spec("nilearn")
    if spec is None or not spec.submodule_search_locations:
        raise DataError(
            "expected nilearn to be installed (it ships the MNI152 template), got none (hint: pip install nilearn)"
        )
    d = Path(next(iter(spec.submodule_search_locations))) / "datasets" / "data"
    missing = [f for f in _FILES.values() if not (d / f).is_file()]
    if missing:
        raise DataError(f"expected nilearn's bundled MNI152 files in {d}, got none of {missing}")
    return d


@dataclass(frozen=True)
class BrainTemplate:
    """The MNI152 maps, smoothed through-plane by a slice profile.

    Attributes:
        gm, wm, brain: float32 (X, Y, Z) probability / mask volumes in [0, 1] on the 1 mm grid.
        raw_wm: float32 (X, Y, Z) white matter before through-plane smoothing (lesion placement).
        origin: voxel index of MNI (0, 0, 0).
    """

    gm: np.ndarray
    wm: np.ndarray
    brain: np.ndarray
    raw_wm: np.ndarray
    origin: np.ndarray


_Z_RANGE_MNI = (-62.0, 88.0)
EDGE_MM = 1.5
"""Width (mm) of the partial-volume edges of the procedural head layers (skull, scalp, dura)."""  # the slab of the template the slices can reach (axial levels used +- margins)


@functools.lru_cache(maxsize=1)
def _raw_template() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(gm, wm, brain, origin): float32 maps cropped to the head, and the voxel index of MNI 0."""
    import nibabel as nib

    d = template_dir()
    raw = {}
    affine = None
    for key, fname in _FILES.items():
        img: Any = nib.load(str(d / fname))
        dataobj = img.dataobj
        if getattr(dataobj, "slope", 1.0) == 1.0 and getattr(dataobj, "inter", 0.0) == 0.0:
            raw[key] = np.asarray(dataobj)
        else:
            raw[key] = np.asarray(img.get_fdata(dtype=np.float32))
        affine = img.affine
    assert affine is not None
    if not np.allclose(np.diag(affine)[:3], 1.0):
        raise DataError(f"expected the 1 mm RAS MNI152 template, got affine {affine.tolist()}")
    origin = -affine[:3, 3]
    mask = raw["t1"] > 0  # the template is skull-stripped (no holes inside)
    idx = np.argwhere(mask)
    lo = np.maximum(idx.min(0) - 4, 0)
    hi = np.minimum(idx.max(0) + 5, mask.shape)
    lo[2] = max(lo[2], int(origin[2] + _Z_RANGE_MNI[0]))
    hi[2] = min(hi[2], int(origin[2] + _Z_RANGE_MNI[1]))
    box = tuple(slice(int(a), int(b)) for a, b in zip(lo, hi, strict=True))
    scale = {k: np.float32(1.0 / max(float(raw[k].max()), 1e-6)) for k in ("gm", "wm")}
    gm = raw["gm"][box].astype(np.float32) * scale["gm"]
    wm = raw["wm"][box].astype(np.float32) * scale["wm"]
    brain = ndimage.gaussian_filter(mask[box].astype(np.float32), 0.6)
    over = np.maximum((gm + wm) / np.maximum(brain, np.float32(1e-6)), np.float32(1.0))  # keep gm + wm <= brain
    gm /= over
    wm /= over
    return gm, wm, brain, (origin - lo).astype(np.float64)


@functools.lru_cache(maxsize=4)
def brain_template(thickness_mm: float) -> BrainTemplate:
    """The template smoothed along z by a Gaussian slice profile of FWHM ``thickness_mm``.

    Cached per process (loading and smoothing take ~0.5 s).
    """
    if not thickness_mm > 0:
        raise ValueError(f"expected a positive slice thickness, got {thickness_mm}")
    gm, wm, brain, origin = _raw_template()
    sigma = thickness_mm / 2.355
    sm = [ndimage.gaussian_filter1d(v, sigma, axis=2, mode="constant") for v in (gm, wm, brain)]
    return BrainTemplate(sm[0], sm[1], sm[2], wm, origin)


@dataclass(frozen=True)
class Lesion:
    """An irregular ellipsoid lesion in template (MNI) space.

    Attributes:
        kind: ``mass``, ``nonspecific`` or ``lacune``.
        center: (3,) MNI mm.
        radii: (3,) semi-axes in mm.
        rotation: (3, 3) orientation.
        wobble: (4,) amplitudes and phases of the boundary irregularity.
    """

    kind: str
    center: np.ndarray
    radii: np.ndarray
    rotation: np.ndarray
    wobble: np.ndarray


@dataclass(frozen=True)
class BrainSubject:
    """One simulated head: the random transform from image to template space and its add-ons."""

    scale: np.ndarray  # (3,) head size factors (x, y, z)
    rotation: np.ndarray  # (3, 3)
    shift_mm: np.ndarray  # (2,) in-plane position of the head (read, phase)
    warp_k: np.ndarray  # (K, 3) wave vectors (rad/mm)
    warp_amp: np.ndarray  # (K, 3) displacement amplitudes (mm)
    warp_phase: np.ndarray  # (K,)
    atrophy: float  # ventricle enlargement (pull of sample points towards the centre)
    skull: np.ndarray  # (7,) thicknesses: inner table, diploe, outer table, scalp muscle, temporalis, fat, skin
    lesions: tuple[Lesion, ...]
    slice_z: np.ndarray  # (S,) slice positions (MNI z, mm)
    vessels: np.ndarray  # (V, 3) MNI mm: cortical veins in sulcal CSF (enhance after contrast)
    sulci: float = 0.5  # strength of the subject's own sulcal pattern (widening with age)
    folding_seed: int = 0  # seed of the per-slice folding and small-vessel fields


def _rotation(rng: np.random.Generator, yaw_deg: float, tilt_deg: float) -> np.ndarray:
    a, b, c = np.deg2rad(
        [rng.uniform(-yaw_deg, yaw_deg), rng.uniform(-tilt_deg, tilt_deg), rng.uniform(-tilt_deg, tilt_deg)]
    )
    rz = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])
    rx = np.array([[1, 0, 0], [0, np.cos(b), -np.sin(b)], [0, np.sin(b), np.cos(b)]])
    ry = np.array([[np.cos(c), 0, np.sin(c)], [0, 1, 0], [-np.sin(c), 0, np.cos(c)]])
    return np.einsum("ij,jk,kl->il", rz, rx, ry)  # plain loops: no BLAS


def draw_brain_subject(
    rng: np.random.Generator, n_slices: int, spacing_mm: float, lesion_kinds: tuple[str, ...] = ()
) -> BrainSubject:
    """Draw a head.

    Args:
        rng: the volume's generator.
        n_slices: number of axial slices.
        spacing_mm: distance between slice centres.
        lesion_kinds: kinds of lesions to insert (:data:`LESION_LABELS` keys), placed in white
            matter within the slab so that each crosses at least one slice.

    Returns:
        The subject.
    """
    for k in lesion_kinds:
        if k not in LESION_LABELS:
            raise ValueError(f"expected a lesion kind in {sorted(LESION_LABELS)}, got {k!r}")
    # from the posterior fossa (cerebellum, temporal lobes) towards the vertex
    top = min(_Z_RANGE_MNI[1] - 16.0, rng.uniform(-36.0, -26.0) + spacing_mm * (n_slices - 1))
    z0 = top - spacing_mm * (n_slices - 1)
    slice_z = z0 + spacing_mm * np.arange(n_slices)
    K = 7
    lam = rng.uniform(35.0, 130.0, K)
    dirs = rng.standard_normal((K, 3))
    dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
    size = float(np.clip(rng.normal(1.0, 0.05), 0.88, 1.12))
    subject = BrainSubject(
        scale=size * np.clip(rng.normal(1.0, 0.035, 3), 0.93, 1.07),
        rotation=_rotation(rng, 8.0, 8.0),
        shift_mm=rng.uniform(-10.0, 10.0, 2),
        warp_k=dirs * (2 * np.pi / lam)[:, None],
        warp_amp=rng.uniform(-4.5, 4.5, (K, 3)) * np.minimum(lam / 60.0, 1.0)[:, None],
        warp_phase=rng.uniform(0, 2 * np.pi, K),
        atrophy=float(rng.choice([0.0, 0.1, 0.25]) + rng.uniform(-0.05, 0.1)),
        skull=np.array(
            [
                rng.uniform(1.2, 2.0),
                rng.uniform(1.5, 3.5),
                rng.uniform(1.2, 2.0),
                rng.uniform(1.0, 2.0),
                rng.uniform(3.0, 7.0),
                rng.uniform(2.0, 5.0),
                rng.uniform(1.2, 2.0),
            ]
        ),
        lesions=(),
        slice_z=slice_z,
        vessels=_draw_vessels(rng, slice_z),
        sulci=float(rng.uniform(0.2, 1.0)),
        folding_seed=int(rng.integers(1 << 62)),
    )
    if lesion_kinds:
        lesions = []
        wm = _raw_template()[1]
        origin = _raw_template()[3]
        for j, kind in enumerate(lesion_kinds):
            r0 = {"mass": (9.0, 15.0), "nonspecific": (3.0, 6.0), "lacune": (2.0, 3.5)}[kind]
            radii = rng.uniform(*r0, 3) * np.array([1.0, 1.0, 0.8])
            # aim at a slice (spread over the slab), then find white matter near it
            zc = slice_z[(j * max(1, n_slices // max(1, len(lesion_kinds))) + n_slices // 2) % n_slices]
            center = None
            for _ in range(200):
                c = np.array([rng.uniform(-45, 45), rng.uniform(-70, 40), zc + rng.uniform(-1.5, 1.5)])
                v = np.clip(np.round(c + origin).astype(int), 0, np.array(wm.shape) - 1)
                if wm[v[0], v[1], v[2]] > (0.75 if kind != "mass" else 0.5):
                    center = c
                    break
            if center is None:
                center = np.array([rng.choice([-1.0, 1.0]) * 25.0, -10.0, zc])
            lesions.append(Lesion(kind, center, radii, _rotation(rng, 180.0, 20.0), rng.uniform(0, 1, 4)))
        subject = BrainSubject(**{**subject.__dict__, "lesions": tuple(lesions)})
    return subject


def _draw_vessels(rng: np.random.Generator, slice_z: np.ndarray, n: int = 16) -> np.ndarray:
    """Points in sulcal CSF (away from the ventricles) near the slices: cortical veins, (<= n, 3) MNI mm."""
    gm, wm, brain, origin = _raw_template()
    m = 60 * n
    c = np.stack(
        [rng.uniform(-70, 70, m), rng.uniform(-100, 68, m), rng.choice(slice_z, m) + rng.uniform(-2.0, 2.0, m)], 1
    )
    v = np.clip(np.round(c + origin).astype(int), 0, np.array(gm.shape) - 1)
    i, j, k = v.T
    ok = (
        (brain[i, j, k] > 0.5)
        & (brain[i, j, k] - gm[i, j, k] - wm[i, j, k] > 0.5)
        & (np.hypot(c[:, 0], c[:, 1] + 17) > 45)
    )
    return c[ok][:n].astype(np.float64)


def _ramp(d: np.ndarray, edge: float, px: float) -> np.ndarray:
    """Partial-volume step: 0 for d << edge, 1 for d >> edge (linear over one pixel)."""
    return np.clip((d - edge) / px + 0.5, 0.0, 1.0)


def _template_coords(
    subject: BrainSubject, grid_shape: tuple[int, int], px: float, z_mni: float, dz: float = 0.0
) -> np.ndarray:
    """MNI mm coordinates (3, fH, fW) of the fine grid pixels of one slice."""
    fH, fW = grid_shape
    a = ((np.arange(fH) - fH // 2) * px - subject.shift_mm[0]).astype(np.float32)  # read: + posterior
    b = ((np.arange(fW) - fW // 2) * px - subject.shift_mm[1]).astype(np.float32)  # phase: + patient left
    # subject frame (x, y, z) = (-b, -a, z) scaled, then rotated: q = R @ local (separable in a and b)
    rs = (subject.rotation / subject.scale[None, :]).astype(np.float32)
    zc = np.float32(z_mni - _CENTER_MNI[2] + dz)
    q = -rs[:, 1, None, None] * a[None, :, None] - rs[:, 0, None, None] * b[None, None, :] + rs[:, 2, None, None] * zc
    for k in range(len(subject.warp_phase)):
        arg = np.float32(subject.warp_phase[k]) + np.einsum("j,jhw->hw", subject.warp_k[k].astype(np.float32), q)
        q = q + subject.warp_amp[k].astype(np.float32)[:, None, None] * np.sin(arg)[None]
    # ventricle enlargement: sample closer to the centre near the ventricles
    r2 = (q**2).sum(0)
    q = q * (1.0 - np.float32(subject.atrophy) * np.exp(r2 * np.float32(-1.0 / (2 * 25.0**2))))[None]
    return q + _CENTER_MNI.astype(np.float32)[:, None, None]


def _lesion_fraction(les: Lesion, q: np.ndarray, px: float) -> np.ndarray:
    rot, center, radii = (v.astype(np.float32) for v in (les.rotation, les.center, les.radii))
    rel = np.einsum("ji,jhw->ihw", rot, q - center[:, None, None])
    m = np.sqrt(((rel / radii[:, None, None]) ** 2).sum(0))
    theta = np.arctan2(rel[1], rel[0])
    wob = (
        1.0
        + 0.15 * les.wobble[0] * np.sin(2 * theta + 6.28 * les.wobble[1])
        + 0.1 * les.wobble[2] * np.sin(3 * theta + 6.28 * les.wobble[3])
    )
    r_mean = float(les.radii.mean())
    core = np.clip((1.0 - m / wob) * r_mean / px + 0.5, 0.0, 1.0)
    if les.kind == "mass":  # perilesional oedema: a fainter halo
        halo = np.clip((1.45 - m / wob) * r_mean / px + 0.5, 0.0, 1.0) * 0.45
        core = np.maximum(core, halo)
    return core


SULCUS_SPACING_MM = 2.8
"""Smoothing of the sulcal field along the arc, at a radius of 70 mm (clefts about 12 mm apart)."""
SULCUS_TORTUOSITY_MM = 9.0
"""Smoothing of the sulcal field along the radius (how slowly a cleft changes direction)."""
SULCUS_DEPTH_MM = 18.0
"""Sulci reach this far below the brain's convex hull (tapering over the last 4 mm)."""


def _radial_folds(
    rng: np.random.Generator, gm: np.ndarray, wm: np.ndarray, ribbon: np.ndarray, px: float
) -> tuple[np.ndarray, np.ndarray]:
    """The sulcal field of one slice: clefts that run from the brain surface inwards.

    Real axial sulci are roughly perpendicular to the cortical surface, 10-15 mm apart along it and
    15-20 mm deep. The field is white noise on a polar grid about the brain's centroid (2048 angles,
    0.5 mm radial steps), smoothed strongly along the arc and weakly along the radius, so that its
    zero crossings run mostly radially and wander a little; the cortical ribbon is cut off below
    :data:`SULCUS_DEPTH_MM` from the convex hull of the brain.

    Args:
        rng: the slice's generator.
        gm: grey-matter fraction, float32 (fH, fW).
        wm: white-matter fraction, float32 (fH, fW).
        ribbon: cortical-ribbon weight in [0, 1], float32 (fH, fW).
        px: fine pixel size in mm.

    Returns:
        ``(fold, ribbon)``: the unit-variance field and the depth-limited ribbon, float32 (fH, fW).
    """
    shape = gm.shape
    w = (gm + wm).astype(np.float64)
    yy, xx = np.mgrid[0 : shape[0], 0 : shape[1]].astype(np.float64)
    total = max(float(w.sum()), 1e-6)
    cy, cx = (w * yy).sum() / total, (w * xx).sum() / total
    r_mm = np.hypot(yy - cy, xx - cx) * px
    theta = np.arctan2(yy - cy, xx - cx)
    n_theta, dr = 2048, 0.5
    n_r = int((float(r_mm.max()) + 1.0) / dr) + 1
    white = rng.standard_normal((n_theta, n_r))
    sigma = (SULCUS_SPACING_MM / 70.0 / (2 * np.pi / n_theta), SULCUS_TORTUOSITY_MM / dr)
    polar = ndimage.gaussian_filter(white, sigma, mode=("wrap", "nearest"))
    polar = polar / polar.std()
    coords = [(theta + np.pi) / (2 * np.pi) * n_theta, r_mm / dr]
    fold = ndimage.map_coordinates(polar, coords, order=1, mode="grid-wrap").astype(np.float32)
    hull = ndimage.binary_fill_holes(ndimage.gaussian_filter(w, 2.0 / px) > 0.3)
    depth = ndimage.distance_transform_edt(hull) * px
    ribbon = ribbon * np.clip((SULCUS_DEPTH_MM - depth) / 4.0, 0.0, 1.0).astype(np.float32)
    return fold, ribbon


def _individualise(
    subject: BrainSubject, index: int, gm: np.ndarray, wm: np.ndarray, csf: np.ndarray, px: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Make the template slice one person's: own sulci, a crisp and perturbed grey/white boundary,
    perivascular spaces and small sulcal vessels (random fields of this subject and slice).

    The MNI152 template is an average of 152 brains: its cortex is smooth and its grey/white
    boundary blurred. The zero crossings of a random field that varies along the arc (clefts about
    12 mm apart) and slowly along the radius open thin, connected sulcal clefts of CSF that run from
    the surface inwards within the outer 18 mm of the cortical ribbon (wider with age); another field
    moves the grey/white boundary by a few mm and sharpens it; sparse fine fields add perivascular
    spaces (CSF dots in white matter) and flow voids of small vessels in the sulcal CSF.

    Returns:
        ``(gm, wm, csf, vessel)`` float32 fractions (vessel: flow voids).
    """
    from mribench.data.synthetic.texture import bandpass, network

    rng = np.random.default_rng((subject.folding_seed, index))
    shape = gm.shape
    tissue = gm + wm
    ribbon = np.clip(gm * 1.6, 0.0, 1.0) * np.clip(1.0 - wm * 1.4, 0.0, 1.0)  # the cortex, not deep GM
    # sulci: connected CSF clefts (zero crossings of a random field), wider with age, only where the
    # cortical ribbon is; a thresholded fine field would give isolated dots. 3.1's isotropic 8-30 mm
    # field is still drawn (and discarded) so that every later draw is the one 3.2 was calibrated on
    # (docs/simulation-fidelity.md); 3.2's clefts run from the brain surface inwards.
    bandpass(rng, shape, px, 8.0, 30.0, beta=1.5)
    fold, ribbon = _radial_folds(rng, gm, wm, ribbon, px)
    sulcus = network(fold, 0.18 + 0.17 * subject.sulci) * ribbon
    moved = gm * sulcus * np.float32(0.85)
    gm = gm - moved
    csf = csf + moved
    tissue = gm + wm
    ratio = wm / np.maximum(tissue, np.float32(1e-4))
    shift = bandpass(rng, shape, px, 6.0, 30.0, beta=1.0)
    ratio = 1.0 / (1.0 + np.exp(-((ratio - 0.5) * 7.0 + 0.9 * shift)))
    wm = (tissue * ratio).astype(np.float32)
    gm = (tissue - wm).astype(np.float32)
    fine = bandpass(rng, shape, px, 1.0, 3.0)
    pvs = np.clip((fine - 3.3) / 0.4, 0.0, 1.0) * np.clip(wm * 1.5 - 0.5, 0.0, 1.0) * np.float32(0.8)
    pvs_csf = pvs * wm  # the white matter a perivascular space replaces becomes CSF (no partial-volume loss)
    wm = wm - pvs_csf
    csf = csf + pvs_csf
    vessel = np.clip((bandpass(rng, shape, px, 1.0, 3.0) - 3.0) / 0.4, 0.0, 1.0) * np.clip(csf - 0.3, 0.0, 1.0)
    vessel = (vessel * np.float32(0.9)).astype(np.float32)
    csf = csf - vessel
    return gm.astype(np.float32), wm.astype(np.float32), np.clip(csf, 0.0, 1.0).astype(np.float32), vessel


def brain_slice(
    subject: BrainSubject,
    index: int,
    template: BrainTemplate,
    grid_shape: tuple[int, int],
    px: float,
    slab_mm: float,
) -> tuple[dict[str, np.ndarray], list[tuple[str, np.ndarray]]]:
    """Tissue fractions of one axial slice on the fine grid.

    Args:
        subject: the head.
        index: slice number (``subject.slice_z[index]``).
        template: the through-plane-smoothed template (:func:`brain_template`).
        grid_shape: (fH, fW) fine grid; pixel ``(i, j)`` at ``((i - fH//2) px, (j - fW//2) px)`` mm.
        px: fine pixel size in mm.
        slab_mm: slice thickness (lesions are averaged over it).

    Returns:
        ``(fractions, lesions)``: ``{tissue: float32 (fH, fW)}`` partial-volume fractions (gm, wm,
        csf, enhancing, bone, fat, muscle, skin, lesion) and, per lesion of the subject, its kind
        and float32 (fH, fW) fraction on this slice (all zero when it misses the slice).
    """
    z = float(subject.slice_z[index])
    q = _template_coords(subject, grid_shape, px, z)
    through = (subject.rotation[:, 2] / subject.scale[2]).astype(np.float32)
    vox = q + template.origin[:, None, None]
    sample = functools.partial(ndimage.map_coordinates, order=1, mode="constant", cval=0.0, prefilter=False)
    gm = sample(template.gm, vox).astype(np.float32)
    wm = sample(template.wm, vox).astype(np.float32)
    brain = sample(template.brain, vox).astype(np.float32)
    csf = np.clip(brain - gm - wm, 0.0, 1.0)
    gm, wm, csf, vessel = _individualise(subject, index, gm, wm, csf, px)

    # intracranial space: the smoothed brain hull, filled with CSF where there is no brain
    hull = ndimage.gaussian_filter(brain, 3.0 / px) > 0.22
    inside = ndimage.distance_transform_edt(hull).astype(np.float32)
    outside = ndimage.distance_transform_edt(~hull).astype(np.float32)
    d = (outside - inside) * np.float32(px)  # signed distance to the inner skull surface, + outwards
    soft = max(px, EDGE_MM, 0.5 * slab_mm)  # oblique surfaces through the slab: partial-volume edges
    icr = 1.0 - _ramp(d, 0.0, soft)
    csf = csf + np.clip(icr - gm - wm - csf - vessel, 0.0, 1.0)

    # skull and scalp layers outward from the inner table (thickness varies around the head)
    fH, fW = grid_shape
    a = ((np.arange(fH) - fH // 2)[:, None] * px - subject.shift_mm[0]).astype(np.float32)
    b = ((np.arange(fW) - fW // 2)[None, :] * px - subject.shift_mm[1]).astype(np.float32)
    lateral = np.abs(np.cos(np.arctan2(a, b))) ** 6  # temporalis muscle on the sides
    t = subject.skull
    e1 = t[0]
    e2 = e1 + t[1] * (1 - 0.5 * lateral)  # diploe thinner in the temporal bone
    e3 = e2 + t[2]
    e4 = e3 + t[3] + t[4] * lateral
    e5 = e4 + t[5]
    e6 = e5 + t[6]
    r = [_ramp(d, e, soft) for e in (0.0, e1, e2, e3, e4, e5, e6)]
    frac = {
        "gm": gm,
        "wm": wm,
        "csf": csf,
        "bone": (r[0] - r[1]) + (r[2] - r[3]),
        "fat": (r[1] - r[2]) + (r[4] - r[5]),
        "muscle": r[3] - r[4],
        "skin": r[5] - r[6],
        "vessel": vessel,
    }

    # normally enhancing structures: dura, superior sagittal sinus, choroid plexus
    dura = np.clip(_ramp(d, -1.0, soft) - _ramp(d, 0.0, soft), 0, 1) * 0.35
    sinus = np.exp(-(b**2) / (2 * 2.5**2)) * (a > 0) * np.clip(_ramp(d, -4.0, soft) - _ramp(d, 0.0, soft), 0, 1)
    blobs = np.zeros(grid_shape, dtype=np.float32)
    for c, r_mm in [(c, 3.5) for c in _CHOROID_MNI] + [(v, 1.1) for v in subject.vessels]:
        r2 = ((q - c.astype(np.float32)[:, None, None]) ** 2).sum(0)
        blobs += np.exp(r2 * np.float32(-0.5 / r_mm**2))
    enh = np.clip(np.maximum(dura, sinus) + blobs * np.clip(csf - 0.2, 0, 1), 0.0, 0.9)
    for k in ("gm", "wm", "csf"):
        frac[k] = frac[k] * (1.0 - enh)
    frac["enhancing"] = enh

    lesion = np.zeros(grid_shape, dtype=np.float32)
    per_lesion: list[tuple[str, np.ndarray]] = []
    if subject.lesions:
        tissue = np.clip(gm + wm, 0.0, 1.0)
        for les in subject.lesions:
            acc = np.zeros(grid_shape, dtype=np.float32)
            if abs(les.center[2] - z) > les.radii.max() + slab_mm:
                per_lesion.append((les.kind, acc))
                continue
            offs = (-slab_mm / 3, 0.0, slab_mm / 3)
            for dz in offs:  # through-plane average (the warp is smooth: shift along the slice normal)
                acc += _lesion_fraction(les, q + (through * dz)[:, None, None], px)
            one = (acc / len(offs)) * tissue
            per_lesion.append((les.kind, one))
            lesion = np.maximum(lesion, one)
        lesion = np.clip(lesion, 0.0, 1.0).astype(np.float32)
        for k in ("gm", "wm", "csf", "enhancing", "vessel"):
            frac[k] = frac[k] * (1.0 - lesion)
    frac["lesion"] = lesion
    return {k: np.asarray(v, dtype=np.float32) for k, v in frac.items()}, per_lesion


def brain_extent_mm() -> tuple[float, float]:
    """(read, phase) semi-axes of a typical head in mm (for coil placement)."""
    return 100.0, 80.0
