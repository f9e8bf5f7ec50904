"""Coil sensitivity maps from the auto-calibration lines (ESPIRiT, via ``sigpy``).

Every use of sigpy in mribench goes through :func:`estimate_sensitivities`, so the estimator can be
swapped in one place. sigpy's :class:`sigpy.mri.app.EspiritCalib` is the ESPIRiT of Uecker et al.
(2014) with one set of maps: the calibration (Hankel) matrix of the fully sampled centre is
decomposed by SVD, its row space turned into per-pixel image-domain operators, and the map of each
pixel is the eigenvector of eigenvalue ~1 (power iteration). Maps are unit-norm over coils,
``sum_c |S_c|^2 = 1``, where that eigenvalue exceeds ``crop`` (the object) and zero elsewhere; the
phase is relative to the first coil.

Cost: ESPIRiT runs on the CPU in numpy: ~0.05 s for a 4-coil 64x40 slice, ~2.5 s for a 16-coil
256x132 MRIBench-Sim brain slice, ~3.5 s for 8 coils at 320x320 and ~30 s for a 15-coil 640x368
fastMRI knee slice on 2 cores. Compute the maps once per slice and cache them when training on
real-size data (training: ``sens_cache`` of :class:`mribench.workflows.training.data.TrainingSlices`; models
that estimate maps per call, e.g. the complex U-Net validated every epoch and then evaluated with
and without test-time training: :func:`cached_sensitivities`).

Two named settings (:data:`MAP_PRESETS`, :func:`sensitivities`):

- ``"bart-ecalib"`` (Darestani, Liu & Heckel 2022, who call BART 0.6.00's ``ecalib -d0 -m1`` on the
  under-sampled k-space): BART's defaults, kernel 6x6 (``-k 6``), calibration region of at most 24
  fully sampled lines (``-r 24``), null-space threshold ``-t 0.001`` and eigenvalue crop ``-c 0.8``;
  then, as their code does before applying the maps (:func:`fill_zero_entries`), every zero entry of
  a coil's map is replaced by that coil's largest magnitude.
- ``"bart-ecalib-lowres-phase"`` (ours, not Darestani et al.'s): ``"bart-ecalib"`` with another
  per-pixel phase convention (:func:`rotate_to_lowres_phase`, applied before the zero filling): the
  maps are rotated so that the coil-combined image of the auto-calibration lines alone is real and
  non-negative. Then the coil-combined image of the full data is close to its magnitude wherever
  the object phase is smooth, and a network that only sees magnitudes (D22's ``rss-real-imag``
  input) can be data-consistent with a real, non-negative output. See "phase" below for why this
  matters on MRIBench-Sim.
- ``"mribench"``: this project's earlier choice (sigpy's defaults, crop 0.95 and threshold 0.02,
  every auto-calibration line, no filling): kept for the ``ttt-fast`` variant and the networks
  trained with it.

sigpy against BART (``bart-ecalib`` is sigpy with BART's options; BART itself is no dependency):

- threshold: BART keeps the calibration kernels whose singular value exceeds ``sqrt(t)`` times the
  largest (``calib.c``, ``number_of_kernels``: ``val[i] / val[0] > sqrtf(threshold)``), sigpy those
  above ``thresh`` times the largest, so ``-t 0.001`` is sigpy's ``thresh = sqrt(0.001) = 0.0316``;
- calibration region: BART finds the largest fully sampled centred block up to 24x24; sigpy takes a
  square block of ``calib_width``. With the read-out fully sampled both are ``min(24, lines)``
  wide in the phase-encoding direction; sigpy's block is also that many rows tall (BART's 24 rows)
  when fewer than 24 lines are sampled;
- eigenvectors: BART diagonalises each pixel's coil matrix, sigpy runs ``max_iter`` power
  iterations (equal where the largest eigenvalue is separated from the next);
- phase: BART rotates it relative to the first principal component, sigpy relative to the first
  coil. The maps then differ by one phase per pixel, common to all coils: the loss
  ``|y - A f|`` is unchanged for an image whose phase follows, and the magnitude output ``|f|``
  does not see it. Whether a network *can* produce that phase depends on its input, though: D22's
  ``rss-real-imag`` input (RSS over coils of the real and of the imaginary parts) is nearly
  invariant to the object's phase when the coil phases are spread around the circle, so the
  network must learn the image phase from the data set. MRIBench-Sim draws a uniform global object
  phase and the coil-array rotation per volume (``mribench.data.synthetic``): with either
  convention the phase of the combined image is unpredictable on a new volume, and the
  self-supervised loss of a magnitude-correct image with the wrong phase exceeds 1 (measured on
  d22-anatomy test_P: 1.1-1.9 for the RSS image with zero phase, 0.27 with
  ``"bart-ecalib-lowres-phase"`` maps, 0.16 for the true complex image: the noise floor);
- kernel: a 6x6 kernel needs at least 12 calibration lines to leave a null space; with fewer
  (small embedded images), :func:`kernel_width_for` halves the region (BART would fail).
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import threading
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch

from mribench.physics.operators import combine_coils

#: sigpy's defaults (the ``"mribench"`` preset).
DEFAULT_CROP = 0.95
DEFAULT_THRESH = 0.02
MAX_KERNEL_WIDTH = 6
#: BART ``ecalib`` defaults (``-c``, ``-t``, ``-r``); ``-t`` as sigpy's threshold (see the module docstring).
BART_CROP = 0.8
BART_THRESH = 0.001
BART_CALIB_SIZE = 24


@dataclass(frozen=True)
class MapSettings:
    """ESPIRiT settings of one named preset.

    Attributes:
        crop: eigenvalue threshold below which maps are zero.
        thresh: sigpy's relative singular-value threshold of the calibration matrix.
        calib_size: most calibration lines used (``None``: every auto-calibration line).
        fill_zeros: replace zero map entries by the coil's largest magnitude (:func:`fill_zero_entries`).
        lowres_phase: rotate the maps to the phase of the auto-calibration image
            (:func:`rotate_to_lowres_phase`; ours), before any filling.
    """

    crop: float
    thresh: float
    calib_size: int | None
    fill_zeros: bool
    lowres_phase: bool = False


#: Named coil-map settings (see the module docstring).
MAP_PRESETS: dict[str, MapSettings] = {
    "bart-ecalib": MapSettings(BART_CROP, math.sqrt(BART_THRESH), BART_CALIB_SIZE, True),
    "bart-ecalib-lowres-phase": MapSettings(BART_CROP, math.sqrt(BART_THRESH), BART_CALIB_SIZE, True, True),
    "mribench": MapSettings(DEFAULT_CROP, DEFAULT_THRESH, None, False),
}


def acs_columns(num_cols: int, num_low_frequencies: int) -> tuple[int, int]:
    """The fully sampled centre columns ``[start, stop)`` of a fastmri mask.

    fastmri's mask functions sample ``num_low_frequencies`` columns starting at
    ``(num_cols - num_low_frequencies + 1) // 2``.
    """
    if not 0 < num_low_frequencies <= num_cols:
        raise ValueError(f"expected 0 < num_low_frequencies <= {num_cols}, got {num_low_frequencies}")
    start = (num_cols - num_low_frequencies + 1) // 2
    return start, start + num_low_frequencies


def kernel_width_for(calib_width: int) -> int:
    """ESPIRiT kernel width for a calibration region: sigpy's 6, else half the region (at least 2).

    A kernel as wide as the region leaves a single calibration row and the maps collapse (the
    eigenvalue never reaches the crop threshold); half the region keeps the null space estimable
    when few auto-calibration lines are acquired (e.g. 3 lines of a 40-column 4x mask, where a
    2x2 kernel still gives maps within ~7% of the true ones on the test phantoms).
    """
    return min(calib_width, max(2, min(MAX_KERNEL_WIDTH, calib_width // 2)))


class _MapCache:
    """Least-recently-used ESPIRiT maps under a byte budget, keyed by what the maps depend on.

    Hand-written because ``functools.lru_cache`` can neither hash arrays nor bound the cache by bytes.
    """

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.nbytes = 0
        self.hits = 0
        self.misses = 0
        self._maps: OrderedDict[str, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: str) -> np.ndarray | None:
        with self._lock:
            maps = self._maps.get(key)
            if maps is None:
                self.misses += 1
                return None
            self._maps.move_to_end(key)
            self.hits += 1
            return maps

    def put(self, key: str, maps: np.ndarray) -> None:
        with self._lock:
            if key in self._maps or maps.nbytes > self.max_bytes:
                return
            self._maps[key] = maps
            self.nbytes += maps.nbytes
            while self.nbytes > self.max_bytes:
                _, old = self._maps.popitem(last=False)
                self.nbytes -= old.nbytes


_CACHE: _MapCache | None = None


@contextlib.contextmanager
def cached_sensitivities(max_bytes: int = 1 << 30) -> Iterator[_MapCache]:
    """Memoise :func:`estimate_sensitivities` inside a ``with`` block.

    The maps of a slice depend only on its auto-calibration columns, the matrix size and the
    ESPIRiT settings, so the key is a hash of exactly those: re-estimating the same slice (every
    validation epoch, a second evaluation of it, with and without test-time training) returns the
    stored maps (bitwise the ones ESPIRiT gave the first time). Nested blocks share the outer cache.

    Args:
        max_bytes: memory budget of the stored maps; the least recently used are dropped beyond it.

    Yields:
        The cache (``hits``, ``misses``, ``nbytes`` for reporting).
    """
    global _CACHE
    if max_bytes < 1:
        raise ValueError(f"expected a positive max_bytes, got {max_bytes}")
    if _CACHE is not None:
        yield _CACHE
        return
    _CACHE = _MapCache(int(max_bytes))
    try:
        yield _CACHE
    finally:
        _CACHE = None


def _calib_lines(num_rows: int, num_low_frequencies: int, calib_size: int | None) -> int:
    """Calibration lines used: every auto-calibration line, or at most ``calib_size`` (centred)."""
    lines = min(num_low_frequencies, num_rows)
    return lines if calib_size is None else min(lines, calib_size)


def _cache_key(
    kspace: np.ndarray, num_low_frequencies: int, crop: float, thresh: float, max_iter: int, calib_size: int | None
) -> str:
    """Hash of the inputs ESPIRiT reads: the calibration block, the shape and the settings."""
    start, _ = acs_columns(kspace.shape[-1], num_low_frequencies)
    block = np.ascontiguousarray(kspace[:, :, start : start + min(num_low_frequencies, kspace.shape[-2])])
    h = hashlib.blake2b(block.tobytes(), digest_size=20)
    h.update(repr((kspace.shape, str(kspace.dtype), num_low_frequencies, crop, thresh, max_iter, calib_size)).encode())
    return h.hexdigest()


def _espirit_cached(
    kspace: np.ndarray, num_low_frequencies: int, crop: float, thresh: float, max_iter: int, calib_size: int | None
) -> np.ndarray:
    cache = _CACHE
    if cache is None:
        return _espirit_one(kspace, num_low_frequencies, crop, thresh, max_iter, calib_size)
    key = _cache_key(kspace, num_low_frequencies, crop, thresh, max_iter, calib_size)
    maps = cache.get(key)
    if maps is None:
        maps = _espirit_one(kspace, num_low_frequencies, crop, thresh, max_iter, calib_size)
        cache.put(key, maps)
    return maps.copy()


def _espirit_one(
    kspace: np.ndarray, num_low_frequencies: int, crop: float, thresh: float, max_iter: int, calib_size: int | None
) -> np.ndarray:
    """ESPIRiT maps of one slice. complex (C, H, W) -> complex64 (C, H, W)."""
    import sigpy.mri  # imported lazily: numba compilation makes the import take seconds

    num_coils, num_rows, num_cols = kspace.shape
    start, stop = acs_columns(num_cols, num_low_frequencies)
    if not np.all(np.any(kspace[:, :, start:stop] != 0, axis=(0, 1))):
        raise ValueError(
            f"expected fully sampled auto-calibration columns {start}..{stop - 1}, got unsampled (all-zero) "
            f"columns among them (hint: pass the mask's num_low_frequencies)"
        )
    calib_width = _calib_lines(num_rows, num_low_frequencies, calib_size)
    start += (min(num_low_frequencies, num_rows) - calib_width) // 2  # the central calib_width of the lines
    block = kspace[:, :, start : start + calib_width]
    # sigpy reads its square calibration region from the centre of its input (rows and columns
    # from n // 2 - width // 2). The rows are fully sampled; put the ACS columns where sigpy reads
    # them. ESPIRiT kernels depend on the calibration values only, not on their k-space position.
    calib = np.zeros_like(kspace)
    col0 = num_cols // 2 - calib_width // 2
    calib[:, :, col0 : col0 + calib_width] = block
    app = sigpy.mri.app.EspiritCalib(
        calib,
        calib_width=calib_width,
        kernel_width=kernel_width_for(calib_width),
        thresh=thresh,
        crop=crop,
        max_iter=max_iter,
        show_pbar=False,
    )
    return np.asarray(app.run(), dtype=np.complex64)


def estimate_sensitivities(
    masked_kspace: torch.Tensor,
    num_low_frequencies: int,
    *,
    crop: float = DEFAULT_CROP,
    thresh: float = DEFAULT_THRESH,
    max_iter: int = 100,
    calib_size: int | None = None,
) -> torch.Tensor:
    """ESPIRiT coil sensitivities from the fully sampled centre of under-sampled k-space.

    Args:
        masked_kspace: complex (C, H, W) or (B, C, H, W), zeros where not sampled; the
            ``num_low_frequencies`` central columns (fastmri's convention) must be sampled.
        num_low_frequencies: number of fully sampled central phase-encoding columns.
        crop: maps are zeroed where the ESPIRiT eigenvalue is below this (outside the object).
        thresh: relative singular-value threshold of the calibration matrix.
        max_iter: power iterations per pixel.
        calib_size: use at most this many (central) auto-calibration lines (BART's ``-r``);
            ``None``: all of them.

    Returns:
        complex64 tensor shaped like ``masked_kspace`` (on its device) with
        ``sum_c |S_c|^2 = 1`` where the object is and 0 elsewhere.

    Raises:
        ValueError: bad shapes or arguments, or auto-calibration columns that are not sampled.
    """
    if masked_kspace.ndim not in (3, 4) or not masked_kspace.is_complex():
        raise ValueError(
            f"expected complex k-space (C, H, W) or (B, C, H, W), got {masked_kspace.dtype} {tuple(masked_kspace.shape)}"
        )
    if not 0.0 <= crop < 1.0:
        raise ValueError(f"expected crop in [0, 1), got {crop}")
    if calib_size is not None and calib_size < 2:
        raise ValueError(f"expected calib_size >= 2 or None, got {calib_size}")
    batch = masked_kspace if masked_kspace.ndim == 4 else masked_kspace.unsqueeze(0)
    data = batch.detach().to("cpu", torch.complex64).numpy()
    maps = np.stack([_espirit_cached(k, int(num_low_frequencies), crop, thresh, max_iter, calib_size) for k in data])
    out = torch.from_numpy(maps).to(masked_kspace.device)
    return out if masked_kspace.ndim == 4 else out[0]


def fill_zero_entries(maps: torch.Tensor) -> torch.Tensor:
    """Darestani et al.'s treatment of the cropped maps: zero entries become the coil's maximum.

    Their code applies, per coil ``s`` of shape (H, W, 2) (real and imaginary part),
    ``s[abs(s) == 0] = abs(s).max()``: every real or imaginary component that is exactly zero (both,
    outside the crop region) is set to the largest absolute component of that coil's map. Done here on
    the real view exactly so.

    Args:
        maps: complex (C, H, W) or (B, C, H, W).

    Returns:
        complex, same shape and dtype (a new tensor).
    """
    if not maps.is_complex() or maps.ndim not in (3, 4):
        raise ValueError(f"expected complex maps (C, H, W) or (B, C, H, W), got {maps.dtype} {tuple(maps.shape)}")
    real = torch.view_as_real(maps).clone()  # (..., C, H, W, 2)
    peak = real.abs().amax(dim=(-3, -2, -1), keepdim=True)  # per coil
    real = torch.where(real == 0, peak.expand_as(real), real)
    return torch.view_as_complex(real.contiguous())


def rotate_to_lowres_phase(maps: torch.Tensor, masked_kspace: torch.Tensor, num_low_frequencies: int) -> torch.Tensor:
    """Maps rotated per pixel so that the auto-calibration image combines to a real, non-negative image.

    With ``x_lr = sum_c conj(S_c) IFFT(y_c * ACS)`` (the coil-combined image of the
    ``num_low_frequencies`` central columns only, computed from the measured data) the maps become
    ``S_c * x_lr / |x_lr|`` (unchanged where ``x_lr = 0``). The rotation is one unit phase per
    pixel, common to all coils, so the maps stay an ESPIRiT solution (same magnitudes, same
    support); combining with them removes the smooth image phase: ``sum_c conj(S'_c) IFFT(y_c * ACS)
    = |x_lr|``. This convention is ours (see the module docstring), not BART's.

    Args:
        maps: complex (C, H, W) or (B, C, H, W), zero outside the support (before any filling).
        masked_kspace: complex, the same shape; the ``num_low_frequencies`` central columns sampled.
        num_low_frequencies: fully sampled central columns (fastmri's convention, :func:`acs_columns`).

    Returns:
        complex, same shape and dtype as ``maps`` (a new tensor).
    """
    if not maps.is_complex() or maps.ndim not in (3, 4) or maps.shape != masked_kspace.shape:
        raise ValueError(
            f"expected complex maps shaped like the k-space {tuple(masked_kspace.shape)}, got {maps.dtype} "
            f"{tuple(maps.shape)}"
        )
    start, stop = acs_columns(masked_kspace.shape[-1], num_low_frequencies)
    acs = torch.zeros_like(masked_kspace)
    acs[..., start:stop] = masked_kspace[..., start:stop]
    x_lr = combine_coils(acs.to(maps.dtype), maps).unsqueeze(-3)  # (..., 1, H, W)
    mag = x_lr.abs()
    phase = torch.where(mag > 0, x_lr / mag.clamp_min(torch.finfo(mag.dtype).tiny), torch.ones_like(x_lr))
    return maps * phase


def sensitivities(masked_kspace: torch.Tensor, num_low_frequencies: int, preset: str = "bart-ecalib") -> torch.Tensor:
    """Coil maps of a named preset (:data:`MAP_PRESETS`): ESPIRiT, the preset's phase, then its zero filling.

    Args:
        masked_kspace: complex (C, H, W) or (B, C, H, W), as :func:`estimate_sensitivities`.
        num_low_frequencies: fully sampled central columns.
        preset: ``"bart-ecalib"`` (Darestani et al.), ``"bart-ecalib-lowres-phase"`` (theirs with
            our phase convention) or ``"mribench"``.

    Returns:
        complex64, shaped like ``masked_kspace``.
    """
    if preset not in MAP_PRESETS:
        raise ValueError(f"expected a coil-map preset in {sorted(MAP_PRESETS)}, got {preset!r}")
    s = MAP_PRESETS[preset]
    maps = estimate_sensitivities(
        masked_kspace, num_low_frequencies, crop=s.crop, thresh=s.thresh, calib_size=s.calib_size
    )
    if s.lowres_phase:
        maps = rotate_to_lowres_phase(maps, masked_kspace, num_low_frequencies)
    return fill_zero_entries(maps) if s.fill_zeros else maps
