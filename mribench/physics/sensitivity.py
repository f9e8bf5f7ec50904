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
"""

from __future__ import annotations

import contextlib
import hashlib
import threading
from collections import OrderedDict
from collections.abc import Iterator

import numpy as np
import torch

#: sigpy's and BART's defaults.
DEFAULT_CROP = 0.95
DEFAULT_THRESH = 0.02
MAX_KERNEL_WIDTH = 6


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


def _cache_key(kspace: np.ndarray, num_low_frequencies: int, crop: float, thresh: float, max_iter: int) -> str:
    """Hash of the inputs ESPIRiT reads: the calibration block, the shape and the settings."""
    start, _ = acs_columns(kspace.shape[-1], num_low_frequencies)
    block = np.ascontiguousarray(kspace[:, :, start : start + min(num_low_frequencies, kspace.shape[-2])])
    h = hashlib.blake2b(block.tobytes(), digest_size=20)
    h.update(repr((kspace.shape, str(kspace.dtype), num_low_frequencies, crop, thresh, max_iter)).encode())
    return h.hexdigest()


def _espirit_cached(
    kspace: np.ndarray, num_low_frequencies: int, crop: float, thresh: float, max_iter: int
) -> np.ndarray:
    cache = _CACHE
    if cache is None:
        return _espirit_one(kspace, num_low_frequencies, crop, thresh, max_iter)
    key = _cache_key(kspace, num_low_frequencies, crop, thresh, max_iter)
    maps = cache.get(key)
    if maps is None:
        maps = _espirit_one(kspace, num_low_frequencies, crop, thresh, max_iter)
        cache.put(key, maps)
    return maps.copy()


def _espirit_one(kspace: np.ndarray, num_low_frequencies: int, crop: float, thresh: float, max_iter: int) -> np.ndarray:
    """ESPIRiT maps of one slice. complex (C, H, W) -> complex64 (C, H, W)."""
    import sigpy.mri  # imported lazily: numba compilation makes the import take seconds

    num_coils, num_rows, num_cols = kspace.shape
    start, stop = acs_columns(num_cols, num_low_frequencies)
    calib_width = min(num_low_frequencies, num_rows)
    block = kspace[:, :, start : start + calib_width]
    if not np.all(np.any(block != 0, axis=(0, 1))):
        raise ValueError(
            f"expected fully sampled auto-calibration columns {start}..{stop - 1}, got unsampled (all-zero) "
            f"columns among them (hint: pass the mask's num_low_frequencies)"
        )
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
) -> torch.Tensor:
    """ESPIRiT coil sensitivities from the fully sampled centre of under-sampled k-space.

    Args:
        masked_kspace: complex (C, H, W) or (B, C, H, W), zeros where not sampled; the
            ``num_low_frequencies`` central columns (fastmri's convention) must be sampled.
        num_low_frequencies: number of fully sampled central phase-encoding columns.
        crop: maps are zeroed where the ESPIRiT eigenvalue is below this (outside the object).
        thresh: relative singular-value threshold of the calibration matrix.
        max_iter: power iterations per pixel.

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
    batch = masked_kspace if masked_kspace.ndim == 4 else masked_kspace.unsqueeze(0)
    data = batch.detach().to("cpu", torch.complex64).numpy()
    maps = np.stack([_espirit_cached(k, int(num_low_frequencies), crop, thresh, max_iter) for k in data])
    out = torch.from_numpy(maps).to(masked_kspace.device)
    return out if masked_kspace.ndim == 4 else out[0]
