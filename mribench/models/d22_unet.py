"""The 2-channel U-Net of Darestani, Liu & Heckel (ICML 2022), with their input convention.

Facts from the authors' public code (github.com/MLI-lab/ttt_for_deep_learning_cs, ``unet/``):

* Network: fastMRI's U-Net with ``in_chans = out_chans = 2`` (their ``UnetMRIModel`` wraps it as
  ``self.unet``), 64 channels and 4 pooling layers in the paper. Its checkpoints are
  ``torch.save({"model_state_dict": model.state_dict()})`` with keys ``unet.down_sample_layers...``,
  the same tensor names as ``fastmri.models.Unet``.
* Input: the masked multi-coil k-space at the full encoded size, coil images by the centred
  orthonormal inverse FFT, then the root-sum-of-squares over coils taken **separately** of the real
  and of the imaginary parts: channel 0 = ``sqrt(sum_c Re(x_c)^2)``, channel 1 =
  ``sqrt(sum_c Im(x_c)^2)``. No mean/std normalisation.
* Scale: before inference the k-space is multiplied by a per-slice factor ``s`` found by five
  fixed-point steps ``s <- s * ||f(x(s))|| / ||x(s)||`` from ``s = 1`` (their ``scale_factor``), so
  the network's output and input norms match.
* Output: the magnitude of the two output channels, centre-cropped to the target size.
* Training (their ``train.ipynb``): each training slice's scale is computed once, with the initial
  network, and kept for all epochs; the loss ``||s x - |f(x(s))| ||_1 / ||s x||_1`` compares with the
  RSS of the scaled fully sampled k-space. At inference the scale is computed with the trained
  network (what :meth:`D22UnetRecon.forward` does). The normalised l1 loss is scale-invariant, so
  ``|f(x(s))| / s`` against the unscaled target gives the same loss.

Ours: the output is divided by ``s``. D22 trained against the RSS of the *scaled* k-space and
normalise every reconstruction to the target's mean and standard deviation before SSIM, so they
never needed the original scale; mribench's contract is a reconstruction at the target's scale.
Because the input is positively homogeneous (``x(s) = s x(1)``), ``f(x(s)) / s`` is exactly their
reconstruction brought back to the data's scale.
"""

from __future__ import annotations

import torch
from fastmri.models import Unet

from mribench.api.model import SliceMeta
from mribench.physics.fft import center_crop, ifft2c

#: D22's number of fixed-point steps for the input scale.
SCALE_STEPS = 5


def d22_input(masked_kspace: torch.Tensor) -> torch.Tensor:
    """D22's network input: RSS over coils of the real and of the imaginary parts.

    Args:
        masked_kspace: complex (B, C, H, W).

    Returns:
        real (B, 2, H, W): channel 0 from the real parts, channel 1 from the imaginary parts.
    """
    coil = ifft2c(masked_kspace)
    return torch.stack((coil.real.pow(2).sum(1).sqrt(), coil.imag.pow(2).sum(1).sqrt()), dim=1)


def _norms(x: torch.Tensor) -> torch.Tensor:
    """Per-sample Frobenius norm. (B, ...) -> (B, 1, 1, 1)."""
    return x.flatten(1).norm(dim=1).clamp_min(torch.finfo(x.dtype).tiny).view(-1, 1, 1, 1)


class D22UnetRecon(torch.nn.Module):
    """D22's 2-channel U-Net as an mribench reconstruction model (architecture ``unet-d22``).

    Args:
        chans: channels of the first layer (64 in the paper).
        num_pool_layers: down-sampling levels (4 in the paper).
        drop_prob: dropout (0 in the paper).

    Attributes:
        arch: ``"unet-d22"`` (the checkpoint architecture name).
        config: the constructor arguments (stored in checkpoints).
        unet: ``fastmri.models.Unet(in_chans=2, out_chans=2, ...)``; input and output real
            (B, 2, H, W).
    """

    arch = "unet-d22"

    def __init__(self, chans: int = 64, num_pool_layers: int = 4, drop_prob: float = 0.0) -> None:
        super().__init__()
        self.config = {"chans": chans, "num_pool_layers": num_pool_layers, "drop_prob": drop_prob}
        self.unet = Unet(in_chans=2, out_chans=2, chans=chans, num_pool_layers=num_pool_layers, drop_prob=drop_prob)

    def input_scale(self, image: torch.Tensor) -> torch.Tensor:
        """D22's scale ``s`` for the input ``x(1)`` (five fixed-point steps on the output/input norm ratio).

        Args:
            image: real (B, 2, H, W), :func:`d22_input` of the unscaled k-space.

        Returns:
            (B, 1, 1, 1) positive scale factors (no gradient).
        """
        with torch.no_grad():
            scale = torch.ones(image.shape[0], 1, 1, 1, dtype=image.dtype, device=image.device)
            for _ in range(SCALE_STEPS):
                x = scale * image
                scale = scale * _norms(self.unet(x)) / _norms(x)
        return scale

    def magnitude(self, image: torch.Tensor) -> torch.Tensor:
        """``|f(x)|``: the network on a 2-channel input, magnitude of its 2 output channels.

        Args:
            image: real (B, 2, H, W).

        Returns:
            real (B, H, W).
        """
        out = self.unet(image)
        return out.pow(2).sum(1).sqrt()

    def forward(self, masked_kspace: torch.Tensor, mask: torch.Tensor, meta: SliceMeta) -> torch.Tensor:
        """ReconModel protocol: ``|f(x(s))| / s`` centre-cropped to the target size. Returns real (B, h, w)."""
        image = d22_input(masked_kspace)
        scale = self.input_scale(image)
        out = self.magnitude(scale * image) / scale[:, 0]
        h = min(meta.target_size[0], out.shape[-2])
        w = min(meta.target_size[1], out.shape[-1])
        out = center_crop(out, (h, w))
        if (h, w) != tuple(meta.target_size):
            dh, dw = meta.target_size[0] - h, meta.target_size[1] - w
            out = torch.nn.functional.pad(out, (dw // 2, dw - dw // 2, dh // 2, dh - dh // 2))
        return out


__all__ = ["SCALE_STEPS", "D22UnetRecon", "d22_input"]
