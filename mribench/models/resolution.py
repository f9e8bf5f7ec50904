"""Resolution-mismatch option: show a model k-space enlarged by interleave-repetition.

Models trained on fastMRI see k-space whose image has a larger field of view (FOV) than the anatomy
(the read-out is 2x oversampled: 640 rows for a 320-row target) and typical matrix sizes. Datasets
without oversampling, or with smaller matrices, give the model an image in which the anatomy fills
the FOV. :class:`ResolutionAdapter` enlarges the FOV by an integer factor ``r`` before the model and
crops the output back, so that the model sees an image of the size it was trained on, with the
anatomy at its original pixel size in the centre.

What interleaving does to the image (centred orthonormal FFTs, size ``n`` along the axis, ``r``
the factor; checked numerically in ``tests/test_resolution.py``):

- ``mode="repeat"`` (default): each k-space sample is repeated ``r`` times,
  ``[k0, k0, k1, k1, ...]``. This is nearest-neighbour interpolation of k-space onto an ``r``-times
  finer grid: the FOV grows ``r``-fold (``r * n`` pixels, same pixel size). The new image is the
  original tiled periodically over the larger FOV times the window
  ``w(m) = D(m) / sqrt(r)``, ``|D(m)| = |sin(pi m / n) / sin(pi m / (r n))|`` (``m`` the centred
  pixel index of the enlarged image): the central copy is the original image, weighted by a smooth
  taper from ``sqrt(r)`` at the centre to ``1/(sqrt(r) sin(pi / (2 r)))`` at its edges, and the side
  copies are attenuated towards zero at ``|m| = n``. The central ``n`` pixels are therefore exactly
  ``x * w``: with ``compensate=True`` the adapter divides the cropped output by ``|w|``, which makes
  the adapter exact for models that are linear in the image magnitude (zero-filled: tested to float
  precision).
- ``mode="zeros"``: zero-insertion, ``[k0, 0, k1, 0, ...]``. The image becomes ``r`` full-intensity
  copies of the original tiled over the ``r``-times larger FOV, each scaled by ``1 / sqrt(r)``. The
  model then sees several copies of the anatomy, which it never saw in training; ``repeat`` is the
  default for that reason.

The mask is interleaved the same way (each column's value repeated ``r`` times), so the sampled
fraction, the acceleration and the pixel period of the aliasing are unchanged; the padding and the
number of low frequencies in :class:`SliceMeta` scale by ``r``. Lin & Heckel's exact choice could
not be checked against their text; ``repeat`` is what "repeating each k-space line" means.

Off by default: nothing in mribench wraps a model unless asked (:func:`with_resolution`).
"""

from __future__ import annotations

import functools
from dataclasses import replace
from typing import Any

import numpy as np
import torch

from mribench.api.model import ModelInfo, SliceMeta
from mribench.models.loaded import LoadedModel
from mribench.physics.fft import center_crop

MODES = ("repeat", "zeros")


def _check(n: int, factor: int, mode: str) -> None:
    if not isinstance(factor, int) or factor < 1:
        raise ValueError(f"expected a positive integer factor, got {factor!r}")
    if mode not in MODES:
        raise ValueError(f"expected mode in {MODES}, got {mode!r}")
    if n % 2 == 1 and factor % 2 == 0:
        # the centred image grid of an odd size cannot sit on the centre of an even one: the crop
        # back would be off by one pixel
        raise ValueError(f"expected an even size or an odd factor, got size {n} with factor {factor}")


def _shift(n: int, factor: int, mode: str) -> int:
    """Roll that puts the k-space centre (index ``n // 2``) at the enlarged centre ``(r n) // 2``."""
    base = (factor * n) // 2 - factor * (n // 2)
    return base - (factor - 1) // 2 if mode == "repeat" else base


def interleave(kspace: torch.Tensor, factor: int, dim: int = -1, mode: str = "repeat") -> torch.Tensor:
    """Interleave k-space along ``dim``: size ``n`` -> ``factor * n`` (see the module docstring).

    Args:
        kspace: complex (..., n, ...), centred.
        factor: integer factor r (1 returns the input).
        dim: the axis.
        mode: ``repeat`` (each sample r times) or ``zeros`` (r - 1 zeros after each sample).

    Returns:
        complex (..., r n, ...).

    Raises:
        ValueError: bad factor/mode, or an odd size with an even factor.
    """
    n = kspace.shape[dim]
    _check(n, factor, mode)
    if factor == 1:
        return kspace
    if mode == "repeat":
        out = torch.repeat_interleave(kspace, factor, dim=dim)
    else:
        shape = list(kspace.shape)
        shape[dim] = factor * n
        out = torch.zeros(shape, dtype=kspace.dtype, device=kspace.device)
        idx = torch.arange(n, device=kspace.device) * factor
        out.index_copy_(dim % kspace.ndim, idx, kspace)
    return torch.roll(out, _shift(n, factor, mode), dims=dim)


def interleave_mask(mask: torch.Tensor, factor: int, mode: str = "repeat") -> torch.Tensor:
    """Interleave a column mask (..., W) -> (..., r W): each column's value covers the r columns it owns."""
    n = mask.shape[-1]
    _check(n, factor, mode)
    if factor == 1:
        return mask
    return torch.roll(torch.repeat_interleave(mask, factor, dim=-1), _shift(n, factor, mode), dims=-1)


@functools.lru_cache(maxsize=64)
def _window_np(n: int, factor: int, mode: str) -> np.ndarray:
    # the operation applied to the k-space of a constant image (a centred delta) gives the image-domain
    # multiplier directly; computed with fastmri's centred transforms through mribench.physics
    from mribench.physics.fft import fft2c, ifft2c

    ones = torch.ones(1, n, dtype=torch.complex64)
    k = fft2c(ones)
    img = ifft2c(interleave(k, factor, -1, mode))
    return img[0].numpy()


def interleave_window(n: int, factor: int, mode: str = "repeat") -> torch.Tensor:
    """Image-domain multiplier of :func:`interleave` along one axis: complex (r n,).

    The enlarged image is ``tile(x) * window`` exactly (``tile`` the periodic extension of the
    original over the larger FOV).
    """
    _check(n, factor, mode)
    return torch.from_numpy(_window_np(n, factor, mode).copy())


class ResolutionAdapter(torch.nn.Module):
    """Wrap a :class:`~mribench.api.model.ReconModel` so that it sees an ``factor``-times larger FOV.

    Args:
        model: the wrapped model (``model(masked_kspace, mask, meta) -> (B, h, w)``).
        factor: FOV factor r along phase encoding (k-space W); 1 disables the adapter.
        readout: also enlarge the read-out (k-space H) by r.
        mode: ``repeat`` or ``zeros`` (see the module docstring).
        compensate: divide the output by the magnitude of the interleaving window over the crop
            (exact for models linear in the image magnitude; for ``zeros`` the window is the
            constant ``1 / sqrt(r)``).
    """

    def __init__(
        self, model: Any, factor: int = 2, *, readout: bool = False, mode: str = "repeat", compensate: bool = True
    ) -> None:
        super().__init__()
        if not isinstance(factor, int) or factor < 1:
            raise ValueError(f"expected a positive integer factor, got {factor!r}")
        if mode not in MODES:
            raise ValueError(f"expected mode in {MODES}, got {mode!r}")
        self.model = model
        self.factor = factor
        self.readout = readout
        self.mode = mode
        self.compensate = compensate

    def config(self) -> dict[str, Any]:
        """The adapter's settings, for provenance."""
        return {"factor": self.factor, "readout": self.readout, "mode": self.mode, "compensate": self.compensate}

    def _gain(self, hw: tuple[int, int], crop: tuple[int, int], device: torch.device) -> torch.Tensor:
        """|window| over the output crop: real (h, w)."""
        h, w = crop
        cols = center_crop(interleave_window(hw[1], self.factor, self.mode).abs()[None], (1, w))[0]
        rows = torch.ones(h)
        if self.readout:
            rows = center_crop(interleave_window(hw[0], self.factor, self.mode).abs()[None], (1, h))[0]
        return (rows[:, None] * cols[None, :]).to(device=device, dtype=torch.float32)

    def forward(self, masked_kspace: torch.Tensor, mask: torch.Tensor, meta: SliceMeta) -> torch.Tensor:
        """Interleave, run the model, return its (B, h, w) output for the original FOV.

        Args:
            masked_kspace: complex (B, C, H, W).
            mask: float (B, 1, 1, W).
            meta: the batch's metadata (target size unchanged).

        Returns:
            real (B, h, w), ``(h, w) = meta.target_size``.
        """
        r = self.factor
        if r == 1:
            return self.model(masked_kspace, mask, meta)
        _, _, hh, ww = masked_kspace.shape
        k = interleave(masked_kspace, r, -1, self.mode)
        if self.readout:
            k = interleave(k, r, -2, self.mode)
        m = interleave_mask(mask, r, self.mode)
        shift = _shift(ww, r, self.mode)
        left, right = meta.padding
        padding = (max(0, r * left + shift), min(r * ww, r * right + shift))
        inner = replace(meta, padding=padding, num_low_frequencies=r * meta.num_low_frequencies)
        out = self.model(k, m, inner)
        if self.compensate:
            out = out / self._gain((hh, ww), tuple(out.shape[-2:]), out.device)  # type: ignore[arg-type]
        return out


def with_resolution(
    lm: LoadedModel, factor: int = 1, *, readout: bool = False, mode: str = "repeat", compensate: bool = True
) -> LoadedModel:
    """Wrap a loaded model with a :class:`ResolutionAdapter`; ``factor=1`` (the default) returns it unchanged.

    The adapter settings are added to the model's identity (``info.details["resolution"]`` and its
    name), so results record them.
    """
    if factor == 1:
        return lm
    adapter = ResolutionAdapter(lm.model, factor, readout=readout, mode=mode, compensate=compensate)
    details = {**lm.info.details, "resolution": adapter.config()}
    suffix = f"+fov{factor}{'rp' if readout else 'p'}-{mode}"
    return LoadedModel(adapter, ModelInfo(lm.info.name + suffix, lm.info.kind, lm.info.sha256, details))


__all__ = ["MODES", "ResolutionAdapter", "interleave", "interleave_mask", "interleave_window", "with_resolution"]
