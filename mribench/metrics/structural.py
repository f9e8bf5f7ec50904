"""SSIM exactly as fastMRI reports it (``fastmri.evaluate.ssim`` -> skimage ``structural_similarity``).

Definition (skimage defaults, which fastMRI uses): 7x7 uniform window, K1 = 0.01, K2 = 0.03, sample
covariance normalisation NP / (NP - 1) with NP = 49, constants from the given data range, and the mean
of the SSIM map over the pixels whose window lies fully inside the image (skimage computes the map
with a reflect-padded filter and then crops a (7 - 1) // 2 = 3 pixel border, so padding never enters
the mean). The mean is therefore taken over the "valid" (H - 6, W - 6) region, which is what we
compute directly.

Hand-written instead of calling skimage because skimage works on one NumPy slice at a time (no
batches, no GPU, ~4 ms per 320x320 slice); instead of ``torchmetrics``/``piq`` SSIM because those
use Gaussian windows, zero/reflect padding or population covariance and differ from fastMRI by up to
1e-2. Everything is computed in float64 so that results equal skimage's to ~1e-9.

Two implementations of the same arithmetic: on CPU (no autograd) a compiled kernel
(:mod:`mribench.metrics._ssim_kernel`, ~5x fastMRI's throughput on one core); on GPUs and when an
input requires grad, batched torch with cumulative-sum box filters (:func:`_ssim_batched`).
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch
from torch import Tensor

from mribench.metrics._checks import as_batch, as_data_range

WIN = 7
K1 = 0.01
K2 = 0.03
NP = WIN * WIN
COV_NORM = NP / (NP - 1)

_MAX_WORKERS = 8
_MIN_PIXELS_PER_WORKER = 1 << 18  # ~1 ms of kernel time: below that a second thread costs more than it saves
_GPU_CHUNK_PIXELS = 1 << 24
_POOL: ThreadPoolExecutor | None = None
_POOL_LOCK = threading.Lock()


def _pool() -> ThreadPoolExecutor:
    """One lazily created pool for the process (starting threads per call cost ~0.1-2 ms each)."""
    global _POOL
    with _POOL_LOCK:
        if _POOL is None:
            _POOL = ThreadPoolExecutor(_MAX_WORKERS, thread_name_prefix="mribench-ssim")
        return _POOL


def _ssim_cpu(target: Tensor, recon: Tensor, data_range: Tensor) -> Tensor:
    """(B, H, W) CPU pairs -> (B,) float64 with the compiled kernel, slices spread over threads.

    The kernel releases the GIL, so up to ``torch.get_num_threads()`` threads each score a
    contiguous share of the batch when the batch is large enough to gain from it.
    """
    from mribench.metrics._ssim_kernel import ssim_batch  # numba import and cache load: on first use

    dtype = target.dtype if target.dtype in (torch.float32, torch.float64) else torch.float64
    x = target.to(dtype).contiguous().numpy()
    y = recon.to(dtype).contiguous().numpy()
    dr = data_range.to(torch.float64).contiguous().numpy()
    batch, h, w = x.shape
    out = np.empty(batch, dtype=np.float64)
    workers = max(1, min(torch.get_num_threads(), _MAX_WORKERS, batch, batch * h * w // _MIN_PIXELS_PER_WORKER))
    bounds = [batch * k // workers for k in range(workers + 1)]

    def run(k: int) -> None:
        a, b = bounds[k], bounds[k + 1]
        ssim_batch(x[a:b], y[a:b], dr[a:b], K1, K2, out[a:b])

    if workers == 1:
        run(0)
    else:
        list(_pool().map(run, range(workers)))
    return torch.from_numpy(out)


def box_sum_valid(x: Tensor, dim: int, win: int = WIN) -> Tensor:
    """Sum over every window of ``win`` consecutive entries along ``dim`` ("valid" mode).

    Args:
        x: tensor of any shape with ``x.shape[dim] >= win``.
        dim: axis to sum along.
        win: window length (>= 1).

    Returns:
        Tensor like ``x`` with ``x.shape[dim] - win + 1`` entries along ``dim``.
    """
    c = torch.cumsum(x, dim=dim)
    first = c.narrow(dim, win - 1, 1)
    rest = c.narrow(dim, win, x.shape[dim] - win) - c.narrow(dim, 0, x.shape[dim] - win)
    return torch.cat((first, rest), dim=dim)


def _ssim_batched(x: Tensor, y: Tensor, data_range: Tensor) -> Tensor:
    """Whole-batch SSIM (used on GPUs and for autograd).

    Args:
        x: (b, H, W) targets, any real dtype, H and W >= 7.
        y: (b, H, W) reconstructions.
        data_range: (b,) float64.

    Returns:
        (b,) float64 SSIM.
    """
    b = x.shape[0]
    x = x.to(torch.float64)
    y = y.to(torch.float64)
    m = torch.stack((x, y, x * x + y * y, x * y), dim=1)  # (b, 4, H, W)
    s = box_sum_valid(box_sum_valid(m, -1), -2)  # (b, 4, H - 6, W - 6) window sums
    sx, sy, sq, sxy = s.unbind(1)
    dr2 = (data_range * data_range).view(b, 1, 1) * float(NP * NP)
    c1 = (K1 * K1) * dr2
    c2 = (K2 * K2) * dr2
    p = sx * sy
    q = sx * sx + sy * sy
    a1 = 2.0 * p + c1
    b1 = q + c1
    a2 = (2.0 * COV_NORM) * (NP * sxy - p) + c2
    b2 = COV_NORM * (NP * sq - q) + c2
    return ((a1 * a2) / (b1 * b2)).mean(dim=(-2, -1))


def ssim(target: Tensor, recon: Tensor, data_range: float | Tensor) -> Tensor:
    """Structural similarity per slice, equal to fastMRI's / skimage's value to ~1e-9.

    Args:
        target: reference images, (H, W) or (B, H, W), real, H and W >= 7.
        recon: reconstructions, same shape and device as ``target``.
        data_range: the ``L`` of SSIM's constants: a number or a (B,) tensor (in mribench: the
            target volume's maximum, as fastMRI uses).

    Returns:
        (B,) float64 tensor on the input device (B = 1 for a 2-D input). Differentiable when an
        input requires grad (then computed batched).

    Raises:
        ValueError: mismatched shapes, complex input, images smaller than 7x7 or a bad data range.
    """
    target, recon = as_batch(target, recon, min_size=WIN)
    batch, h, w = target.shape
    dr = as_data_range(data_range, batch, target.device)
    needs_grad = torch.is_grad_enabled() and (target.requires_grad or recon.requires_grad)
    if target.device.type == "cpu" and not needs_grad:
        return _ssim_cpu(target.detach(), recon.detach(), dr)
    chunk = max(1, _GPU_CHUNK_PIXELS // (h * w))
    parts = [
        _ssim_batched(target[i : i + chunk], recon[i : i + chunk], dr[i : i + chunk]) for i in range(0, batch, chunk)
    ]
    return torch.cat(parts) if parts else dr.new_zeros(0)
