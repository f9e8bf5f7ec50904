"""Built-in reconstruction models: zero-filled and adapters around fastmri's U-Net and VarNet."""

from __future__ import annotations

from typing import Any

import torch
from fastmri.models import Unet, VarNet

from mribench.api.model import SliceMeta
from mribench.physics.fft import center_crop, ifft2c, rss, zero_filled


class ZeroFilled:
    """Zero-filled reconstruction: RSS of the inverse FFT of the masked k-space, centre-cropped."""

    def __call__(self, masked_kspace: torch.Tensor, mask: torch.Tensor, meta: SliceMeta) -> torch.Tensor:
        return zero_filled(masked_kspace, meta.target_size)


def zero_filled_image(masked_kspace: torch.Tensor, target_size: tuple[int, int]) -> torch.Tensor:
    """The U-Net input as fastmri's UnetDataTransform builds it: crop each coil image, then RSS.

    Args:
        masked_kspace: complex (B, C, H, W).
        target_size: (h, w).

    Returns:
        real (B, h, w).
    """
    h = min(target_size[0], masked_kspace.shape[-2])
    w = min(target_size[1], masked_kspace.shape[-1])
    return rss(center_crop(ifft2c(masked_kspace), (h, w)))


class UnetRecon(torch.nn.Module):
    """fastmri's U-Net on the zero-filled RSS image, with fastMRI's instance normalisation.

    Args:
        chans: channels of the first layer.
        num_pool_layers: down-sampling levels.
        drop_prob: dropout.
    """

    arch = "unet"

    def __init__(self, chans: int = 32, num_pool_layers: int = 4, drop_prob: float = 0.0) -> None:
        super().__init__()
        self.config = {"chans": chans, "num_pool_layers": num_pool_layers, "drop_prob": drop_prob}
        self.unet = Unet(in_chans=1, out_chans=1, chans=chans, num_pool_layers=num_pool_layers, drop_prob=drop_prob)

    def normalized_forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Normalise (B, h, w) per instance, run the U-Net; returns (output_normalised, mean, std)."""
        mean = image.mean(dim=(-2, -1), keepdim=True)
        std = image.std(dim=(-2, -1), keepdim=True)
        x = ((image - mean) / (std + 1e-11)).clamp(-6, 6)
        return self.unet(x.unsqueeze(1)).squeeze(1), mean, std

    def forward(self, masked_kspace: torch.Tensor, mask: torch.Tensor, meta: SliceMeta) -> torch.Tensor:
        image = zero_filled_image(masked_kspace, meta.target_size)
        out, mean, std = self.normalized_forward(image)
        out = out * std + mean
        if tuple(out.shape[-2:]) != tuple(meta.target_size):
            out = torch.nn.functional.pad(out, _pad_to(out.shape[-2:], meta.target_size))
        return out


def _pad_to(shape: Any, size: tuple[int, int]) -> tuple[int, int, int, int]:
    dh, dw = size[0] - shape[0], size[1] - shape[1]
    return (dw // 2, dw - dw // 2, dh // 2, dh - dh // 2)


class VarNetRecon(torch.nn.Module):
    """fastmri's end-to-end VarNet; output cropped to the target size.

    Args:
        num_cascades, sens_chans, sens_pools, chans, pools: as ``fastmri.models.VarNet``.
    """

    arch = "varnet"

    def __init__(
        self, num_cascades: int = 12, sens_chans: int = 8, sens_pools: int = 4, chans: int = 18, pools: int = 4
    ) -> None:
        super().__init__()
        self.config = {
            "num_cascades": num_cascades,
            "sens_chans": sens_chans,
            "sens_pools": sens_pools,
            "chans": chans,
            "pools": pools,
        }
        self.varnet = VarNet(
            num_cascades=num_cascades, sens_chans=sens_chans, sens_pools=sens_pools, chans=chans, pools=pools
        )

    def forward(self, masked_kspace: torch.Tensor, mask: torch.Tensor, meta: SliceMeta) -> torch.Tensor:
        k = torch.view_as_real(masked_kspace.to(torch.complex64)).contiguous()  # (B, C, H, W, 2)
        m = mask.reshape(mask.shape[0], 1, 1, -1, 1).bool()
        out = self.varnet(k, m, meta.num_low_frequencies)  # (B, H, W)
        return center_crop(out, meta.target_size)


ARCHITECTURES: dict[str, type[torch.nn.Module]] = {"unet": UnetRecon, "varnet": VarNetRecon}

__all__ = ["ARCHITECTURES", "UnetRecon", "VarNetRecon", "ZeroFilled", "zero_filled_image"]
