"""Simulate one catalog volume: subject, contrast, coils, k-space, target, header and lesion boxes.

Pure computation (no I/O). Every random draw comes from ``np.random.default_rng(volume_seed(seed,
name))``, so a volume depends only on the generation seed and its file name, never on the order of
generation, the number of workers or the global RNGs.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from mribench.data.header import AcquisitionHeader
from mribench.data.synthetic import anatomy_brain, anatomy_knee, texture
from mribench.data.synthetic.acquisition import band_limit, coil_kspace, crop_center, fermi_window, finalize
from mribench.data.synthetic.catalog import VolumeSpec
from mribench.data.synthetic.coils import cholesky, coil_maps, noise_covariance
from mribench.data.synthetic.sites import SITES, Matrix, matrix_for
from mribench.data.synthetic.tissues import (
    FAT_TISSUES,
    FIELD_3T_BRAIN,
    PROTOCOLS,
    draw_subject_tissues,
    is_3t,
    tissue_signals,
)

FINE_FACTOR = 1.5
"""The object is built on a grid this much finer than the encoded matrix (then k-space cropped)."""

TARGET_MAX_RANGE = (2.5e-4, 8e-4)
"""Volume maxima of the targets are drawn log-uniformly in this range (fastMRI multicoil scale)."""


@dataclass(frozen=True)
class LesionBox:
    """A fastMRI+-style box: pixels of the target flipped vertically (``np.flipud(target)``)."""

    slice: int
    x: int
    y: int
    width: int
    height: int
    label: str


@dataclass(frozen=True)
class SimVolume:
    """A simulated volume, ready for :func:`mribench.data.fastmri_io.write_volume`.

    Attributes:
        kspace: complex64 (S, C, H, W).
        target: float32 (S, h, w) = centre-cropped RSS of the IFFT of ``kspace``.
        header: the ISMRMRD header fields.
        attrs: extra HDF5 attrs (dataset, generator, slice thickness; anatomy and view for converted datasets).
        patient_id: the ``patient_id`` attr.
        boxes: lesion boxes.
        tissues: ``{tissue: float32 (S, h, w)}`` partial-volume fractions on the target grid
            (unflipped), when requested; ``None`` otherwise.
    """

    kspace: np.ndarray
    target: np.ndarray
    header: AcquisitionHeader
    attrs: dict[str, object]
    patient_id: str
    boxes: tuple[LesionBox, ...]
    tissues: dict[str, np.ndarray] | None = None


def volume_seed(seed: int, name: str) -> int:
    """Stable 64-bit seed of a volume from the generation seed and its file name."""
    return int.from_bytes(hashlib.sha256(f"mribench-sim:{seed}:{name}".encode()).digest()[:8], "little")


def _smooth_field(
    rng: np.random.Generator, shape: tuple[int, int], half_fov: tuple[float, float], px: float, amp: float
) -> np.ndarray:
    """exp of a random quadratic polynomial over the recon FOV: a smooth multiplicative field (H, W)."""
    H, W = shape
    yn = ((np.arange(H) - H // 2) * px / half_fov[0])[:, None]
    xn = ((np.arange(W) - W // 2) * px / half_fov[1])[None, :]
    c = rng.normal(0.0, amp, 5)
    return np.exp(c[0] * yn + c[1] * xn + c[2] * yn * xn + (c[3] - amp) * yn**2 + (c[4] - amp) * xn**2)


def _object_phase(
    rng: np.random.Generator, shape: tuple[int, int], half_fov: tuple[float, float], px: float
) -> np.ndarray:
    """Smooth low-order background phase (radians), (H, W)."""
    H, W = shape
    yn = ((np.arange(H) - H // 2) * px / half_fov[0])[:, None]
    xn = ((np.arange(W) - W // 2) * px / half_fov[1])[None, :]
    c = rng.normal(0.0, 0.6, 5)
    return rng.uniform(-np.pi, np.pi) + c[0] * yn + c[1] * xn + c[2] * yn * xn + 0.5 * c[3] * yn**2 + 0.5 * c[4] * xn**2


FAT_SHIFT_HZ_PER_T = 3.4e-6 * 42.577e6
"""Fat-water frequency difference per tesla (3.4 ppm x 42.58 MHz/T, about 145 Hz/T)."""

REFERENCE_VOXEL = {"SITE_A": 256, "SITE_B": 256}
"""Recon matrix at which ``Site.snr_3t`` holds (the smaller pixels of the ``fastmri`` size get less
SNR; the ``tiny`` test size keeps the default's image SNR, so that its noise stays measurable)."""


def _chemical_shift(fat: np.ndarray, shift_px: float) -> np.ndarray:
    """The fat image displaced by ``shift_px`` fine pixels along the read-out (rows), linearly
    interpolated, edges repeated (no wrap-around: the scanner's read-out oversampling keeps the
    displaced fat inside the field of view)."""
    if not shift_px:
        return fat
    return ndimage.shift(fat, (shift_px, 0.0), order=1, mode="nearest", prefilter=False).astype(np.float32)


def _boxes(per_lesion: list[tuple[str, np.ndarray]], slice_index: int, m: Matrix) -> list[LesionBox]:
    """One box per lesion around its pixels (>= 50 % lesion), on the vertically flipped target grid."""
    out: list[LesionBox] = []
    h, w = m.recon
    for kind, frac in per_lesion:
        if not frac.any():
            continue
        coarse = crop_center(band_limit(frac.astype(np.float64), m.kspace).real, m.recon)
        rows, cols = np.nonzero(coarse >= 0.5)
        if rows.size < 3:
            continue  # the lesion barely touches this slice
        r0, r1 = max(int(rows.min()) - 1, 0), min(int(rows.max()) + 2, h)  # rows [r0, r1), 1 px margin
        c0, c1 = max(int(cols.min()) - 1, 0), min(int(cols.max()) + 2, w)
        out.append(LesionBox(slice_index, c0, h - r1, c1 - c0, r1 - r0, anatomy_brain.LESION_LABELS[kind]))
    return out


def simulate_volume(spec: VolumeSpec, size: str, seed: int, *, tissue_maps: bool = False) -> SimVolume:
    """Simulate one catalog volume.

    Args:
        spec: the volume.
        size: dataset size (selects the matrix).
        seed: generation seed.
        tissue_maps: also return the tissue fractions on the target grid (ground truth for
            checks; does not change the volume).

    Returns:
        The volume.
    """
    rng = np.random.default_rng(volume_seed(seed, spec.name))
    site = SITES[spec.site]
    m = matrix_for(spec.site, spec.anatomy, size)
    proto = PROTOCOLS[spec.protocol]
    H, W = m.kspace
    px = m.pixel_mm
    fine_shape = (int(H * FINE_FACTOR) // 2 * 2, int(W * FINE_FACTOR) // 2 * 2)
    fpx = px * H / fine_shape[0]
    thickness = site.slice_thickness_mm[spec.anatomy]
    spacing = thickness + site.slice_gap_mm[spec.anatomy]

    # acquisition timing (a site's variant of the protocol, a little jitter per exam)
    tr = round(proto.tr * site.timing_scale[0] * rng.uniform(0.96, 1.04), -1)
    te = round(proto.te * site.timing_scale[1] * rng.uniform(0.97, 1.03) * 2) / 2
    ti = None if proto.ti is None else round(proto.ti * rng.uniform(0.98, 1.02), -1)
    fat_residual = float(rng.uniform(*site.fat_residual))
    bandwidth = float(rng.uniform(*site.bandwidth_hz_px))
    fat_shift_mm = FAT_SHIFT_HZ_PER_T * spec.field_t / bandwidth * px  # chemical shift along the read-out

    tissues = draw_subject_tissues(rng, spec.field_t)
    signal = tissue_signals(tissues, proto, tr=tr, te=te, ti=ti, fat_residual=fat_residual)
    texture_scale = float(rng.uniform(0.8, 1.25))
    if spec.anatomy == "knee":
        texture_scale *= texture.KNEE_TEXTURE_SCALE

    # subject
    if spec.anatomy == "brain":
        brain = anatomy_brain.draw_brain_subject(rng, spec.slices, spacing, spec.lesions)
        template = anatomy_brain.brain_template(thickness)
        extent = anatomy_brain.brain_extent_mm()
        center = (float(brain.shift_mm[0]), float(brain.shift_mm[1]))
    else:
        knee = anatomy_knee.draw_knee_subject(rng, site.view, spec.slices, thickness)
        extent = anatomy_knee.knee_extent_mm(site.view)
        center = (float(knee.shift[0]), float(knee.shift[1]))
        cover = anatomy_knee.coverage(fine_shape, fpx)

    # coils, noise, inhomogeneity, phase, filters
    sens = coil_maps(spec.coils, m.kspace, px, extent, rng, center)
    chol = cholesky(noise_covariance(spec.coils, site.noise_coupling, f"{spec.site}:{spec.scanner}"))
    voxel = 1.0 if size == "tiny" else (m.recon[0] / REFERENCE_VOXEL[spec.site]) ** -2  # relative voxel area
    snr = site.snr_3t * (spec.field_t / FIELD_3T_BRAIN) * proto.efficiency * voxel * rng.uniform(0.85, 1.15)
    half_fov = (m.fov_mm / 2, m.fov_mm / 2)
    bias = _smooth_field(rng, m.kspace, half_fov, px, 0.12 if is_3t(spec.field_t) else 0.06)
    phase = _object_phase(rng, m.kspace, half_fov, px)
    modulation = (bias * np.exp(1j * phase)).astype(np.complex64)
    window = None if site.apodisation is None else fermi_window(m.kspace, site.apodisation[1], site.apodisation[2])
    target_max = float(np.exp(rng.uniform(*np.log(TARGET_MAX_RANGE))))

    kspace = np.empty((spec.slices, spec.coils, H, W), dtype=np.complex64)
    boxes: list[LesionBox] = []
    maps: dict[str, np.ndarray] = {}
    peak = 0.0
    for s in range(spec.slices):
        if spec.anatomy == "brain":
            frac, per_lesion = anatomy_brain.brain_slice(brain, s, template, fine_shape, fpx, thickness)
            boxes.extend(_boxes(per_lesion, s, m))
        else:
            frac = anatomy_knee.knee_slice(knee, s, fine_shape, fpx, thickness)
        fields = texture.texture_fields(rng, fine_shape, fpx)
        water = np.zeros(fine_shape, dtype=np.float32)
        fat = np.zeros(fine_shape, dtype=np.float32)
        for t in sorted(frac):
            part = frac[t] * np.float32(signal[t])
            mod = texture.tissue_modulation(fields, t, texture_scale)
            if mod is not None:
                if spec.anatomy == "knee":
                    mod = texture.strengthen_lines(mod, fields, t, texture_scale, texture.KNEE_LINE_GAIN)
                part = part * mod
            if t in FAT_TISSUES:
                fat += part
            else:
                water += part
        if spec.anatomy == "knee":
            water *= cover
            fat *= cover
        obj = band_limit(water + _chemical_shift(fat, fat_shift_mm / fpx), m.kspace) * modulation
        peak = max(peak, float(np.abs(crop_center(obj, m.recon)).max()))
        if tissue_maps:
            for t, f in frac.items():
                maps.setdefault(t, np.zeros((spec.slices, *m.recon), dtype=np.float32))[s] = crop_center(
                    band_limit(f.astype(np.float64), m.kspace).real, m.recon
                )
        kspace[s] = coil_kspace(
            obj, sens, 1.0 / snr, chol, rng, padding=(m.padding_left, m.padding_right), window=window
        )
    k64, target = finalize(kspace, m.recon, target_max, peak)

    header = AcquisitionHeader(
        encoded_size=(H, W, 1),
        recon_size=(m.recon[0], m.recon[1], 1),
        enc_limits_center=m.enc_limits_center,
        enc_limits_max=m.acquired - 1,
        protocol_name=spec.protocol_name,
        system_vendor=spec.vendor,
        system_model=spec.model,
        field_strength_t=spec.field_t,
        receiver_channels=spec.coils,
        institution_name=spec.institution,
        sequence_type=proto.sequence_type,
        tr_ms=float(tr),
        te_ms=float(te),
        ti_ms=None if ti is None else float(ti),
        encoded_fov_mm=(round(H * px, 3), round(W * px, 3), thickness),
        recon_fov_mm=(round(m.recon[0] * px, 3), round(m.recon[1] * px, 3), thickness),
    )
    # what a real file carries: the dataset a converter records (and, for converted 3D data, the
    # anatomy and view), plus the provenance mark of a generated file; nothing only MRIBench-Sim knows
    attrs: dict[str, object] = {
        "dataset": spec.dataset,
        "generator": "MRIBench-Sim",
        "slice_thickness_mm": float(thickness),
    }
    if not spec.dataset.startswith("fastmri"):
        attrs.update(anatomy=spec.anatomy, view="sagittal")
    patient_id = hashlib.sha256(f"patient:{seed}:{spec.name}".encode()).hexdigest()[:40]
    return SimVolume(k64, target, header, attrs, patient_id, tuple(boxes), maps if tissue_maps else None)
