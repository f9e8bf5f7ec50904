"""Multi-scale random textures of MRIBench-Sim (tissue heterogeneity below and around the voxel size).

Real MR images are not piecewise constant: fatty marrow shows the trabecular network, muscle its
fibres and fat septa, subcutaneous fat fibrous septa, parenchyma a faint mottle, and every tissue
slow intensity variations. Each field here is a zero-mean, unit-variance random image on the fine
simulation grid, band-limited in physical units (mm), drawn from the volume's generator with
NumPy's FFT (no BLAS, no threads: identical in every process). :func:`tissue_modulation` combines
them into one multiplicative modulation per tissue.

Spectra are shaped in the Fourier domain of a real white-noise image (``rfft2`` / ``irfft2``), so
a field costs two small FFTs on the fine grid.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.fft as sfft


def _freqs(shape: tuple[int, int], px: float) -> tuple[np.ndarray, np.ndarray]:
    """Spatial frequencies (cycles/mm) of ``rfft2`` on a grid of pixel size ``px``: (fH, 1), (1, fW//2+1)."""
    fy = sfft.fftfreq(shape[0], d=px).astype(np.float32)[:, None]
    fx = sfft.rfftfreq(shape[1], d=px).astype(np.float32)[None, :]
    return fy, fx


def _white_spectrum(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    """``rfft2`` of a unit white-noise image, complex64 (fH, fW//2+1)."""
    w = rng.standard_normal(shape, dtype=np.float32)
    return sfft.rfft2(w, workers=1).astype(np.complex64, copy=False)


def _finish(spec: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    out = sfft.irfft2(spec, s=shape, workers=1).astype(np.float32, copy=False)
    out -= np.float32(out.mean())
    sd = float(out.std())
    return out * np.float32(1.0 / sd) if sd > 0 else out


def bandpass(
    rng: np.random.Generator, shape: tuple[int, int], px: float, lo_mm: float, hi_mm: float, beta: float = 0.0
) -> np.ndarray:
    """Isotropic random field with structures between ``lo_mm`` and ``hi_mm`` (wavelengths).

    The spectrum is ``f^-beta`` (``beta = 0``: flat; ``1``: 1/f, fractal-like) between the cut-offs,
    with smooth (Gaussian) roll-offs.

    Returns:
        float32 (fH, fW), zero mean, unit standard deviation.
    """
    if not 0 < lo_mm < hi_mm:
        raise ValueError(f"expected 0 < lo_mm < hi_mm, got {lo_mm}, {hi_mm}")
    fy, fx = _freqs(shape, px)
    f = np.sqrt(fy * fy + fx * fx)
    f_hi, f_lo = 1.0 / lo_mm, 1.0 / hi_mm
    gain = np.exp(-0.5 * (f / f_hi) ** 2) * (1.0 - np.exp(-0.5 * (f / f_lo) ** 2))
    if beta:
        gain = gain * np.maximum(f, np.float32(f_lo * 0.5)) ** np.float32(-beta)
    return _finish(_white_spectrum(rng, shape) * gain.astype(np.float32), shape)


def oriented(
    rng: np.random.Generator,
    shape: tuple[int, int],
    px: float,
    angle: np.ndarray | float,
    along_mm: float,
    across_mm: float,
) -> np.ndarray:
    """Anisotropic random field: streaks ``along_mm`` long and ``across_mm`` wide (muscle fibres).

    Args:
        angle: streak direction in radians from the row axis (0: vertical streaks along the rows).

    Returns:
        float32 (fH, fW), zero mean, unit standard deviation.
    """
    fy, fx = _freqs(shape, px)
    c, s = float(np.cos(angle)), float(np.sin(angle))
    f_along = fy * c + fx * s
    f_across = -fy * s + fx * c
    gain = np.exp(-2.0 * np.pi**2 * ((along_mm / 2.355) ** 2 * f_along**2 + (across_mm / 2.355) ** 2 * f_across**2))
    return _finish(_white_spectrum(rng, shape) * gain.astype(np.float32), shape)


def network(field: np.ndarray, width: float) -> np.ndarray:
    """Thin connected lines along the zero crossings of a random field (trabeculae, septa).

    Args:
        field: a unit-variance random field (:func:`bandpass`).
        width: relative line width (0.1-0.4).

    Returns:
        float32 in [0, 1]: 1 on the lines.
    """
    return np.exp(-((field / np.float32(width)) ** 2)).astype(np.float32)


@dataclass(frozen=True)
class TextureSpec:
    """Amplitudes of one tissue's texture components (relative signal modulation, standard deviations).

    Attributes:
        slow: 1/f variation over 8-60 mm (coil-independent intensity drifts within a tissue).
        mottle: isotropic heterogeneity over 0.6-4 mm (parenchyma, cartilage).
        fibres: oriented streaks (muscle fibres, tendons).
        septa: dark (negative) or bright (positive) thin network (trabeculae, fat septa).
    """

    slow: float = 0.0
    mottle: float = 0.0
    fibres: float = 0.0
    septa: float = 0.0


TEXTURES: dict[str, TextureSpec] = {
    # fatty marrow: trabecular network (dark lines) over a slightly mottled background
    "marrow": TextureSpec(slow=0.03, mottle=0.04, septa=-0.22),
    "fat": TextureSpec(slow=0.025, mottle=0.03, septa=-0.25),  # subcutaneous fat: fibrous septa
    "muscle": TextureSpec(slow=0.04, mottle=0.04, fibres=0.09, septa=0.25),  # fibres, intramuscular fat
    "cartilage": TextureSpec(slow=0.03, mottle=0.05),
    "meniscus": TextureSpec(mottle=0.10),
    "fluid": TextureSpec(slow=0.02),
    "skin": TextureSpec(mottle=0.05),
    "gm": TextureSpec(slow=0.03, mottle=0.05),
    "wm": TextureSpec(slow=0.03, mottle=0.04),
    "csf": TextureSpec(slow=0.02, mottle=0.02),
    "lesion": TextureSpec(slow=0.05, mottle=0.08),
    "enhancing": TextureSpec(mottle=0.05),
    "bone": TextureSpec(mottle=0.2),
    "vessel": TextureSpec(mottle=0.1),
}
"""Texture amplitudes per tissue (unlisted tissues: none)."""


KNEE_TEXTURE_SCALE = 0.5
"""3.2: every texture amplitude of a knee is halved (the subject's scale times this), calibrated so
that a knee-trained U-Net transfers to brains about as in Darestani et al. (docs/simulation-fidelity.md)."""
KNEE_LINE_GAIN = 3.0
"""3.2: a knee's line networks (marrow trabeculae, fat and muscle septa) are this much stronger than
the halved texture would give them (1.5 times 3.1's), for the same calibration."""


def texture_fields(
    rng: np.random.Generator, shape: tuple[int, int], px: float, fibre_angle: float = 0.0
) -> dict[str, np.ndarray]:
    """The shared random fields of one slice: ``slow``, ``mottle``, ``fibres``, ``trabecular``, ``septa``.

    Args:
        rng: the volume's generator.
        shape: fine grid (fH, fW).
        px: fine pixel size in mm.
        fibre_angle: main fibre direction (radians from the row axis).

    Returns:
        ``{name: float32 (fH, fW)}``: the unit-variance fields, and the line networks in [0, 1].
    """
    return {
        "slow": bandpass(rng, shape, px, 8.0, 60.0, beta=1.0),
        "mottle": bandpass(rng, shape, px, 0.6, 4.0, beta=0.5),
        "fibres": oriented(rng, shape, px, fibre_angle + rng.normal(0, 0.15), 12.0, 0.7),
        "trabecular": network(bandpass(rng, shape, px, 1.3, 4.0), 0.25),
        "septa": network(oriented(rng, shape, px, fibre_angle + rng.normal(0, 0.3), 40.0, 9.0), 0.05)
        * np.clip(bandpass(rng, shape, px, 6.0, 30.0) - 0.4, 0.0, 1.0),  # in fragments
    }


def tissue_modulation(fields: dict[str, np.ndarray], tissue: str, scale: float = 1.0) -> np.ndarray | None:
    """Multiplicative modulation ``1 + texture`` of one tissue (``None``: the tissue has no texture).

    Marrow uses the trabecular network as its septa, the other tissues the oriented septa.

    Args:
        fields: :func:`texture_fields`.
        tissue: a tissue name (key of :data:`TEXTURES`).
        scale: multiplies every amplitude (a subject's or protocol's texture strength).

    Returns:
        float32 (fH, fW), positive, or ``None``.
    """
    spec = TEXTURES.get(tissue)
    if spec is None:
        return None
    m = np.ones_like(fields["slow"])
    if spec.slow:
        m += np.float32(spec.slow * scale) * fields["slow"]
    if spec.mottle:
        m += np.float32(spec.mottle * scale) * fields["mottle"]
    if spec.fibres:
        m += np.float32(spec.fibres * scale) * fields["fibres"]
    if spec.septa:
        m += np.float32(spec.septa * min(scale, 1.5)) * _line_network(fields, tissue)
    return np.maximum(m, np.float32(0.05))


def _line_network(fields: dict[str, np.ndarray], tissue: str) -> np.ndarray:
    """The line network of a tissue: marrow's trabeculae, the oriented septa of the others."""
    return fields["trabecular"] if tissue == "marrow" else fields["septa"]


def strengthen_lines(
    modulation: np.ndarray, fields: dict[str, np.ndarray], tissue: str, scale: float, gain: float
) -> np.ndarray:
    """Make a tissue's line network (trabeculae or septa) ``gain`` times as strong.

    Adds ``gain - 1`` times the network term of :func:`tissue_modulation` to its output; tissues
    without a network are returned unchanged.

    Args:
        modulation: :func:`tissue_modulation` of ``tissue``, float32 (fH, fW).
        fields: :func:`texture_fields`.
        tissue: a tissue name.
        scale: the ``scale`` given to :func:`tissue_modulation`.
        gain: the network's total strength relative to :func:`tissue_modulation`'s.

    Returns:
        float32 (fH, fW), at least 0.05.
    """
    spec = TEXTURES.get(tissue)
    if spec is None or not spec.septa or gain == 1.0:
        return modulation
    extra = np.float32((gain - 1.0) * spec.septa * min(scale, 1.5)) * _line_network(fields, tissue)
    return np.maximum(modulation + extra, np.float32(0.05))
