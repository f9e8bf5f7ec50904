"""l1-wavelet compressed sensing with ESPIRiT maps: a classical baseline with nothing to overfit.

Per slice: ESPIRiT sensitivity maps ``S`` from the auto-calibration columns of the under-sampled
k-space (:func:`mribench.physics.sensitivity.estimate_sensitivities`, sigpy's ``EspiritCalib``), then
sigpy's ``L1WaveletRecon``,

    x = argmin_x 1/2 ||M F S x - y||_2^2 + lambda ||W x||_1,

(``M`` the sampling mask, ``F`` the centred orthonormal FFT, ``W`` an orthogonal Daubechies wavelet
transform), solved by accelerated proximal gradient descent (FISTA). The step is ``1 / max_r sum_c
|S_c(r)|^2``, the inverse of a bound on the largest eigenvalue of ``S^H F^H M F S`` (``F`` unitary, ``M`` a
projection); ESPIRiT maps make it 1. sigpy would estimate it by a power iteration started from
numpy's global random generator, which mribench never touches. The reconstruction is ``|x|``, centre-cropped to the target size. With maps normalised to
``sum_c |S_c|^2 = 1`` on the object, ``|x|`` has the scale of the root-sum-of-squares target there.

``lambda`` is relative: before the solve the k-space is divided by BART's automatic scale (the
90th percentile of ``|S^H F^H y|``, or its maximum when the distribution's tail is long: when
``max - p90 >= 2 (p90 - median)``), and the image multiplied back afterwards, as ``bart pics``
does, so one ``lambda`` serves data of any intensity scale (sigpy has no such step; applying it
here is ours). The defaults, ``lambda = 0.01`` and 100 iterations, are fastMRI's CS example's
regularisation weight and sigpy's iteration default.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from mribench.api.model import SliceMeta
from mribench.physics.fft import center_crop, ifft2c
from mribench.physics.sensitivity import estimate_sensitivities


def bart_scale(image: np.ndarray) -> float:
    """BART's automatic data scale of an image: the 90th percentile of ``|image|`` (or the maximum).

    Args:
        image: complex or real array, any shape.

    Returns:
        The scale (1 for an all-zero image).
    """
    mag = np.abs(image).ravel()
    if not mag.size or not mag.max() > 0:
        return 1.0
    med, p90, top = np.percentile(mag, [50, 90, 100])
    scale = p90 if (top - p90) < 2 * (p90 - med) else top
    return float(scale) if scale > 0 else float(top)


class L1WaveletCS:
    """l1-wavelet CS reconstruction with ESPIRiT maps (``--model cs-l1wavelet``).

    Args:
        lamda: regularisation weight relative to the data scale (see the module docstring).
        max_iter: proximal gradient iterations.
        wave_name: PyWavelets name of the orthogonal wavelet (``db4``: sigpy's default).

    Attributes:
        config: the arguments (recorded in results).
    """

    def __init__(self, lamda: float = 0.01, max_iter: int = 100, wave_name: str = "db4") -> None:
        if not lamda > 0:
            raise ValueError(f"expected lamda > 0, got {lamda}")
        if max_iter < 1:
            raise ValueError(f"expected max_iter >= 1, got {max_iter}")
        self.config: dict[str, Any] = {"lamda": float(lamda), "max_iter": int(max_iter), "wave_name": wave_name}

    def reconstruct(self, masked_kspace: torch.Tensor, mask: torch.Tensor, sens: torch.Tensor) -> np.ndarray:
        """Complex image of one slice at the encoded size.

        Args:
            masked_kspace: complex (C, H, W).
            mask: (1, 1, W) or (W,), ones on sampled columns.
            sens: complex (C, H, W) maps.

        Returns:
            complex64 array (H, W).
        """
        import sigpy.mri.app as mr

        y = masked_kspace.detach().cpu().to(torch.complex64).numpy()
        maps = sens.detach().cpu().to(torch.complex64).numpy()
        cols = mask.detach().cpu().reshape(-1).numpy().astype(np.float32)
        weights = np.broadcast_to(cols, y.shape[-2:]).copy()
        adjoint = (np.conj(maps) * ifft2c(masked_kspace.detach().cpu()).numpy()).sum(0)
        scale = bart_scale(adjoint)
        lipschitz = float((np.abs(maps) ** 2).sum(0).max())
        app = mr.L1WaveletRecon(
            y / scale,
            maps,
            self.config["lamda"],
            weights=weights,
            wave_name=self.config["wave_name"],
            max_iter=self.config["max_iter"],
            alpha=1.0 / lipschitz if lipschitz > 0 else 1.0,
            show_pbar=False,
        )
        return (np.asarray(app.run()) * scale).astype(np.complex64)

    def __call__(self, masked_kspace: torch.Tensor, mask: torch.Tensor, meta: SliceMeta) -> torch.Tensor:
        """ReconModel protocol. masked_kspace complex (B, C, H, W), mask (B, 1, 1, W) -> real (B, h, w) on the input's device."""
        sens = estimate_sensitivities(masked_kspace, meta.num_low_frequencies)
        images = [self.reconstruct(masked_kspace[b], mask[b], sens[b]) for b in range(masked_kspace.shape[0])]
        out = torch.from_numpy(np.abs(np.stack(images))).to(masked_kspace.device)
        h = min(meta.target_size[0], out.shape[-2])
        w = min(meta.target_size[1], out.shape[-1])
        out = center_crop(out, (h, w))
        if (h, w) != tuple(meta.target_size):
            dh, dw = meta.target_size[0] - h, meta.target_size[1] - w
            out = torch.nn.functional.pad(out, (dw // 2, dw - dw // 2, dh // 2, dh - dh // 2))
        return out


__all__ = ["L1WaveletCS", "bart_scale"]
