"""The U-Net of Darestani, Liu & Heckel (ICML 2022): two channels in, a complex image out.

``f`` maps a two-channel zero-filled image at the encoded matrix size to a complex image (its two
output channels are the real and imaginary part; the reconstruction is ``|f|``). The input is one
of (:data:`INPUTS`):

- ``"rss-real-imag"`` (D22's input): the root-sum-of-squares over coils of the real parts and of
  the imaginary parts of the zero-filled coil images, ``(sqrt(sum_c Re(x_c)^2), sqrt(sum_c
  Im(x_c)^2))`` with ``x_c = IFFT(y_c)`` (their ``rss_torch`` on a (C, H, W, 2) tensor); no coil
  maps are needed for it;
- ``"coil-combined"`` (mribench's earlier choice): the sensitivity-weighted coil combination
  ``A^H y`` (real and imaginary part), with the model's coil maps.

Coil maps (``maps``, :data:`mribench.physics.sensitivity.MAP_PRESETS`) enter the self-supervised
losses ``|y - A f|`` and, for ``"coil-combined"``, the input.

The network is fastmri's ``NormUnet``: a ``Unet(in_chans=2, out_chans=2)`` with per-instance
normalisation (mean and std of each input channel, undone at the output, so ``f(c x) = c f(x)``
for real ``c > 0``) and padding to multiples of 16. D22 instead feed a plain U-Net k-space scaled by
a factor that makes ``|f(x)|_2 = |x|_2`` (five fixed-point iterations per slice); the instance
normalisation is ours and serves the same purpose (inputs on one scale whatever the raw intensity).

Normalisations (``norm``, :data:`NORMS`):

- ``"instance"`` (default, as checkpoints written before the option): ``NormUnet``'s, the mean and
  standard deviation of each of the two channels, undone at the output;
- ``"scale"`` (ours, closer to D22's single scale factor): :class:`ScaleNormUnet`, one positive
  scale per slice (the root-mean-square over both channels), no mean shift. With D22's
  ``"rss-real-imag"`` input both channels are non-negative images with similar means, so
  ``"instance"`` adds the *imaginary* channel's mean back to the output's imaginary part, which the
  U-Net must learn to cancel; with ``"scale"`` a zero output stays zero.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.nn.functional as F
from fastmri.models.unet import ConvBlock, TransposeConvBlock, Unet
from fastmri.models.varnet import NormUnet

from mribench.api.model import SliceMeta
from mribench.physics.fft import center_crop
from mribench.physics.operators import adjoint, coil_images
from mribench.physics.sensitivity import MAP_PRESETS, sensitivities

#: Network inputs (see the module docstring).
INPUTS = ("coil-combined", "rss-real-imag")
#: Input normalisations (see the module docstring).
NORMS = ("instance", "scale")


class ScaleNormUnet(NormUnet):
    """``NormUnet`` normalised by one positive scale per slice, without a mean shift (``norm="scale"``; ours).

    :meth:`norm` returns the same shapes as ``NormUnet.norm`` (mean and std (B, 2, 1, 1)), so every
    consumer of ``norm`` (the stacked TTT evaluation included) works unchanged: the mean is zero and
    both channels share the root-mean-square of the whole 2-channel input. ``f(c x) = c f(x)`` for
    real ``c > 0``, as with ``NormUnet``.
    """

    def norm(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """real (B, 2, H, W) -> (x / rms, zeros (B, 2, 1, 1), rms (B, 2, 1, 1))."""
        b = x.shape[0]
        rms = x.reshape(b, -1).pow(2).mean(dim=1).sqrt().clamp_min(torch.finfo(x.dtype).tiny)
        std = rms.view(b, 1, 1, 1).expand(b, 2, 1, 1)
        return x / std, torch.zeros_like(std), std


def rss_real_imag(masked_kspace: torch.Tensor, points: torch.Tensor | None = None) -> torch.Tensor:
    """D22's two-channel input as a complex image: RSS over coils of the real and of the imaginary parts.

    Args:
        masked_kspace: complex (B, C, H, W).
        points: optional (B, 1, 1, W) or (B, 1, H, W) mask applied first.

    Returns:
        complex (B, H, W) ``sqrt(sum_c Re(x_c)^2) + i sqrt(sum_c Im(x_c)^2)``, ``x_c = IFFT(y_c)``.
    """
    k = masked_kspace if points is None else masked_kspace * points.to(masked_kspace.real.dtype)
    coils = torch.view_as_real(coil_images(k))  # (B, C, H, W, 2)
    parts = coils.square().sum(dim=1).sqrt()  # (B, H, W, 2)
    return torch.view_as_complex(parts.contiguous())


def complex_to_net(image: torch.Tensor) -> torch.Tensor:
    """complex (B, H, W) -> real (B, 1, H, W, 2), NormUnet's input layout."""
    return torch.view_as_real(image).unsqueeze(1)


def net_to_complex(x: torch.Tensor) -> torch.Tensor:
    """real (B, 1, H, W, 2) -> complex (B, H, W)."""
    return torch.view_as_complex(x[:, 0].contiguous())


class ComplexUnetRecon(torch.nn.Module):
    """U-Net on the complex coil-combined zero-filled image (the TTT paper's network).

    Args:
        chans: channels of the first U-Net layer.
        num_pool_layers: down-sampling levels.
        drop_prob: dropout.
        input: ``"coil-combined"`` (default, as checkpoints written before the option) or
            ``"rss-real-imag"`` (D22), see :data:`INPUTS`.
        maps: coil-map preset of the losses and the coil-combined input (``"mribench"`` default, as
            before the option; ``"bart-ecalib"``: D22).
        norm: input normalisation, ``"instance"`` (default, as before the option) or ``"scale"``
            (ours), see :data:`NORMS`.

    Attributes:
        arch: ``"unet-complex"`` (the checkpoint architecture name).
        config: the constructor arguments (stored in checkpoints).
        net: the ``fastmri.models.varnet.NormUnet`` (or :class:`ScaleNormUnet`) ``f``; its input and output are real
            (B, 1, H, W, 2).
    """

    arch = "unet-complex"

    def __init__(
        self,
        chans: int = 32,
        num_pool_layers: int = 4,
        drop_prob: float = 0.0,
        input: str = "coil-combined",
        maps: str = "mribench",
        norm: str = "instance",
    ) -> None:
        super().__init__()
        if input not in INPUTS:
            raise ValueError(f"expected input in {INPUTS}, got {input!r}")
        if maps not in MAP_PRESETS:
            raise ValueError(f"expected maps in {sorted(MAP_PRESETS)}, got {maps!r}")
        if norm not in NORMS:
            raise ValueError(f"expected norm in {NORMS}, got {norm!r}")
        self.config: dict[str, object] = {"chans": chans, "num_pool_layers": num_pool_layers, "drop_prob": drop_prob}
        if input != "coil-combined" or maps != "mribench":  # checkpoints of the defaults keep their config
            self.config.update(input=input, maps=maps)
        if norm != "instance":
            self.config["norm"] = norm
        self.input = input
        self.maps = maps
        net_cls = ScaleNormUnet if norm == "scale" else NormUnet
        self.net = net_cls(chans=chans, num_pools=num_pool_layers, in_chans=2, out_chans=2, drop_prob=drop_prob)

    def estimate_maps(self, masked_kspace: torch.Tensor, num_low_frequencies: int) -> torch.Tensor:
        """Coil maps of the model's preset. complex (B, C, H, W) -> complex64 (B, C, H, W)."""
        return sensitivities(masked_kspace, num_low_frequencies, self.maps)

    def zero_filled_input(
        self, masked_kspace: torch.Tensor, points: torch.Tensor, sens: torch.Tensor | None
    ) -> torch.Tensor:
        """The network's input image from the k-space at ``points``.

        Args:
            masked_kspace: complex (B, C, H, W).
            points: (B, 1, 1, W) column mask or (B, 1, H, W) point mask.
            sens: complex (B, C, H, W) (needed for ``"coil-combined"`` only).

        Returns:
            complex (B, H, W).
        """
        if self.input == "rss-real-imag":
            return rss_real_imag(masked_kspace, points)
        if sens is None:
            raise ValueError("expected coil maps for the coil-combined input, got none")
        return adjoint(masked_kspace, sens.to(masked_kspace.dtype), points.to(masked_kspace.real.dtype))

    def image_to_image(self, image: torch.Tensor) -> torch.Tensor:
        """``f``: complex (B, H, W) -> complex (B, H, W)."""
        return net_to_complex(self.net(complex_to_net(image)))

    def stacked_image_to_image(self, params: dict[str, torch.Tensor], image: torch.Tensor) -> torch.Tensor:
        """``f`` with different weights per slice, evaluated in one pass (see :func:`stacked_norm_unet`).

        Args:
            params: ``self.net`` parameter name -> (S, *shape) stacked per-slice values.
            image: complex (S, H, W).

        Returns:
            complex (S, H, W); slice ``i`` equals ``f`` with weights ``params[...][i]`` applied to
            ``image[i]``.
        """
        return stacked_norm_unet(self.net, params, image)

    def predict_image(self, masked_kspace: torch.Tensor, mask: torch.Tensor, sens: torch.Tensor | None) -> torch.Tensor:
        """``f`` of the zero-filled input at the encoded size.

        Args:
            masked_kspace: complex (B, C, H, W).
            mask: (B, 1, 1, W).
            sens: complex (B, C, H, W), e.g. from :meth:`estimate_maps` (unused by the
                ``"rss-real-imag"`` input: may be ``None`` then).

        Returns:
            complex (B, H, W).
        """
        return self.image_to_image(self.zero_filled_input(masked_kspace, mask, sens))

    def forward(self, masked_kspace: torch.Tensor, mask: torch.Tensor, meta: SliceMeta) -> torch.Tensor:
        """ReconModel protocol: ``|f(input)|`` centre-cropped. Returns real (B, h, w)."""
        sens = self.estimate_maps(masked_kspace, meta.num_low_frequencies) if self.input == "coil-combined" else None
        image = self.predict_image(masked_kspace, mask, sens)
        return center_crop(image.abs(), meta.target_size)


# ---------------------------------------------------------------------------------------------
# One network, S weight sets: batched evaluation for test-time training.
#
# TTT adapts an independent copy of the weights to every slice. The S slices' activations are kept
# as (S, C, H, W); since that is the memory of (1, S*C, H, W), every 3x3 convolution is one grouped
# convolution (groups=S, oneDNN) with the S weight sets stacked, and per-channel instance
# normalisation stays per slice, so S forward/backward passes become one. The layers where a
# grouped convolution is a poor fit on CPU are written as batched matrix products (``torch.bmm``,
# batched over slices):
#
# * the first 3x3 convolution: its input, the normalised zero-filled image, does not depend on the
#   weights, so its 3x3 patches are extracted once per slice (:func:`stacked_norm_unet_inputs`)
#   and every step is one product with them (oneDNN's grouped convolution with 2 input channels per
#   group is several times slower, its weight gradient too);
# * the 2x2 stride-2 transposed convolutions: no output pixel gets contributions from two input
#   pixels, so the layer is one product per pixel, (2*2*out, in) x (in, h*w); the result is kept
#   in that "blocked" order (S, out, 2, 2, h, w) through instance norm and leaky ReLU (per-channel
#   statistics do not depend on the pixel order) and laid out spatially by the concatenation with
#   the skip connection, which copies anyway;
# * the final 1x1 convolution.
#
# 2x2 average pooling is a product with a pair-averaging matrix (:func:`_avg_pool2x2`). Instance
# normalisation without affine parameters is layer normalisation over (H, W) of every (slice,
# channel) image; torch's layer norm kernels (forward and backward) are faster on CPU than instance
# norm's batch-norm path, and leaky ReLU runs in place on their output. The evaluation
# mirrors ``fastmri.models.Unet.forward`` (fastmri 0.3.0) and is tested against fastmri's outputs.


def _patches3x3(x: torch.Tensor) -> torch.Tensor:
    """3x3 patches with zero padding 1. (S, C, H, W) -> (S, C*9, H*W), rows ordered (c, kh, kw)."""
    return F.unfold(x, kernel_size=3, padding=1)


def _norm_lrelu(x: torch.Tensor, norm: torch.nn.InstanceNorm2d, act: torch.nn.LeakyReLU | None) -> torch.Tensor:
    """Instance norm (no affine) then leaky ReLU of every leading-two-dims image. (S, C, ...) -> same."""
    if norm.affine or norm.track_running_stats:
        raise ValueError("expected InstanceNorm2d without affine parameters or running statistics")
    shape = x.shape
    flat = x.reshape(shape[0] * shape[1], -1)
    out = F.layer_norm(flat, flat.shape[-1:], eps=norm.eps)
    if act is not None:
        out = F.leaky_relu_(out, act.negative_slope)
    return out.view(shape)


def _avg_pool2x2(x: torch.Tensor) -> torch.Tensor:
    """``F.avg_pool2d(x, 2, 2)`` of (S, C, H, W).

    For even sizes as a product with a small pair-averaging matrix along W (within blocks of up
    to 16 columns, which pairs never straddle) and a sum of row pairs: on CPU about half the time
    of torch's pooling kernel (forward plus backward) on these narrow images.
    """
    s, c, h, w = x.shape
    if h % 2 or w % 2:
        return F.avg_pool2d(x, kernel_size=2, stride=2, padding=0)
    block = next(b for b in (16, 8, 4, 2) if w % b == 0)
    pairs = torch.zeros(block, block // 2, dtype=x.dtype, device=x.device)
    pairs[torch.arange(block), torch.arange(block) // 2] = 0.5
    y = (x.reshape(-1, block) @ pairs).view(s, c, h // 2, 2, w // 2)
    return (y[:, :, :, 0] + y[:, :, :, 1]).mul_(0.5)


def _expect(layer: torch.nn.Module, kind: type, where: str) -> None:
    if not isinstance(layer, kind):
        raise ValueError(f"expected a {kind.__name__} at {where}, got {type(layer).__name__}")


Patches = tuple[torch.Tensor, tuple[int, int]]


def _conv_block(
    block: ConvBlock, x: torch.Tensor | Patches, params: dict[str, torch.Tensor], name: str
) -> torch.Tensor:
    """A fastmri ``ConvBlock`` (conv3x3, IN, LReLU, dropout, twice) with per-slice weights.

    ``x``: (S, C, H, W); or, for the first block, ``(patches (S, C*9, H*W), (H, W))`` of its input.
    Returns (S, out, H, W).
    """
    layers = list(block.layers)
    if len(layers) != 8:
        raise ValueError(f"expected a fastmri ConvBlock of 8 layers at {name}, got {len(layers)}")
    out = x
    for j in (0, 4):
        conv, norm, act, drop = layers[j : j + 4]
        where = f"{name}.layers.{j}"
        _expect(conv, torch.nn.Conv2d, where)
        _expect(norm, torch.nn.InstanceNorm2d, where)
        _expect(act, torch.nn.LeakyReLU, where)
        _expect(drop, torch.nn.Dropout2d, where)
        if drop.training and drop.p > 0:
            raise ValueError(f"expected the network in eval mode (dropout at {where} is random)")
        if (
            conv.kernel_size != (3, 3)
            or conv.padding != (1, 1)
            or conv.stride != (1, 1)
            or conv.groups != 1
            or conv.bias is not None
        ):
            raise ValueError(f"expected a 3x3 convolution without bias at {where}")
        weight = params[f"{where}.weight"]  # (S, out, in, 3, 3)
        slices = weight.shape[0]
        if isinstance(out, tuple):  # first layer: one product with the precomputed patches
            y = torch.bmm(weight.reshape(slices, weight.shape[1], -1), out[0])
            out = y.view(slices, weight.shape[1], *out[1])
        else:
            out = _grouped_conv3x3(out, weight)
        out = _norm_lrelu(out, norm, act)
    if isinstance(out, tuple):
        raise ValueError(f"expected convolutions in the ConvBlock at {name}")
    return out


def _grouped_conv3x3(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """3x3 convolution (padding 1, no bias) with per-slice weights. (S, in, H, W), (S, out, in, 3, 3) -> (S, out, H, W)."""
    slices, (h, w) = weight.shape[0], x.shape[-2:]
    y = F.conv2d(x.reshape(1, -1, h, w), weight.reshape(-1, *weight.shape[2:]), None, 1, 1, 1, slices)
    return y.view(slices, -1, h, w)


def _transpose_block(
    block: TransposeConvBlock, x: torch.Tensor, params: dict[str, torch.Tensor], name: str
) -> torch.Tensor:
    """A fastmri ``TransposeConvBlock`` (2x2 stride-2 transposed conv, IN, LReLU) with per-slice weights.

    (S, in, h, w) -> the blocked output (S, out, 2, 2, h, w): pixel (2i+a, 2j+b) at [..., a, b, i, j].
    """
    conv, norm, act = block.layers
    where = f"{name}.layers.0"
    _expect(conv, torch.nn.ConvTranspose2d, where)
    _expect(norm, torch.nn.InstanceNorm2d, where)
    _expect(act, torch.nn.LeakyReLU, where)
    if (
        conv.kernel_size != (2, 2)
        or conv.stride != (2, 2)
        or conv.padding != (0, 0)
        or conv.groups != 1
        or conv.bias is not None
        or conv.output_padding != (0, 0)
    ):
        raise ValueError(f"expected a 2x2 stride-2 transposed convolution without bias at {where}")
    weight = params[f"{where}.weight"]  # (S, in, out, 2, 2)
    slices, cin, cout = weight.shape[:3]
    h, w = x.shape[-2:]
    y = torch.bmm(weight.reshape(slices, cin, cout * 4).transpose(1, 2), x.reshape(slices, cin, h * w))
    return _norm_lrelu(y.view(slices, cout, 4 * h * w), norm, act).view(slices, cout, 2, 2, h, w)


def stacked_unet(
    unet: Unet, params: dict[str, torch.Tensor], image: torch.Tensor | Patches, prefix: str = ""
) -> torch.Tensor:
    """``fastmri.models.Unet.forward`` with per-slice weights. (S, in, H, W) -> (S, out, H, W).

    Args:
        unet: the network (its structure and layer settings; its own weights are not used).
        params: parameter name (``prefix`` + the Unet's names) -> (S, *shape).
        image: (S, in_chans, H, W); or ``(_patches3x3(image), (H, W))`` when the input is reused
            and its 3x3 patches are computed once.
        prefix: prefix of the names in ``params``.
    """
    out: torch.Tensor | Patches = (
        image if isinstance(image, tuple) else (_patches3x3(image), (int(image.shape[-2]), int(image.shape[-1])))
    )
    stack = []
    for i, layer in enumerate(unet.down_sample_layers):
        _expect(layer, ConvBlock, f"{prefix}down_sample_layers.{i}")
        out = _conv_block(layer, out, params, f"{prefix}down_sample_layers.{i}")
        stack.append(out)
        out = _avg_pool2x2(out)
    out = _conv_block(unet.conv, out, params, f"{prefix}conv")
    for i, (transpose_conv, conv) in enumerate(zip(unet.up_transpose_conv, unet.up_conv, strict=True)):
        skip = stack.pop()
        up = _transpose_block(transpose_conv, out, params, f"{prefix}up_transpose_conv.{i}")
        s, c, _, _, h, w = up.shape
        up = up.permute(0, 1, 4, 2, 5, 3)  # (S, C, h, 2, w, 2): pixel (2i+a, 2j+b) at [..., i, a, j, b]
        if (2 * h, 2 * w) == tuple(skip.shape[-2:]):
            # the concatenation lays the blocked output out spatially in the same copy
            out = torch.cat([up, skip.view(s, -1, h, 2, w, 2)], dim=1).view(s, -1, 2 * h, 2 * w)
        else:
            up = up.reshape(s, c, 2 * h, 2 * w)
            padding = [0, 1 if up.shape[-1] != skip.shape[-1] else 0, 0, 1 if up.shape[-2] != skip.shape[-2] else 0]
            out = torch.cat([F.pad(up, padding, "reflect"), skip], dim=1)
        if isinstance(conv, ConvBlock):
            out = _conv_block(conv, out, params, f"{prefix}up_conv.{i}")
            continue
        # the last level: Sequential(ConvBlock, 1x1 Conv2d)
        block, final = conv
        _expect(block, ConvBlock, f"{prefix}up_conv.{i}.0")
        _expect(final, torch.nn.Conv2d, f"{prefix}up_conv.{i}.1")
        if final.kernel_size != (1, 1) or final.stride != (1, 1) or final.groups != 1:
            raise ValueError(f"expected a 1x1 convolution at {prefix}up_conv.{i}.1")
        out = _conv_block(block, out, params, f"{prefix}up_conv.{i}.0")
        weight = params[f"{prefix}up_conv.{i}.1.weight"]  # (S, out, in, 1, 1)
        s, c, h, w = out.shape
        flat, w2 = out.reshape(s, c, h * w), weight.reshape(s, weight.shape[1], c)
        bias = params.get(f"{prefix}up_conv.{i}.1.bias")
        out = (torch.bmm(w2, flat) if bias is None else torch.baddbmm(bias.unsqueeze(-1), w2, flat)).view(s, -1, h, w)
    if isinstance(out, tuple):
        raise ValueError("expected a U-Net with at least one level")
    return out


def stacked_norm_unet_inputs(net: NormUnet, image: torch.Tensor) -> dict[str, torch.Tensor]:
    """The weight-independent part of ``NormUnet`` on complex (S, H, W) images, per slice.

    Returns:
        ``{"patches": (S, 2*9, Hp*Wp) 3x3 patches of the normalised, padded input (Hp, Wp: the
        sizes padded to multiples of 16), "mean": (S, 2, 1, 1), "std": (S, 2, 1, 1)}``: every
        tensor has the leading slice axis (rows can be selected when slices drop out).
    """
    x = net.complex_to_chan_dim(complex_to_net(image))  # (S, 2, H, W)
    x, mean, std = net.norm(x)
    x, _ = net.pad(x)
    return {"patches": _patches3x3(x), "mean": mean, "std": std}


def stacked_norm_unet_apply(
    net: NormUnet, params: dict[str, torch.Tensor], inputs: Mapping[str, torch.Tensor], size: tuple[int, int]
) -> torch.Tensor:
    """``NormUnet`` with per-slice weights on inputs prepared by :func:`stacked_norm_unet_inputs`.

    Args:
        net: the ``NormUnet`` (1 complex channel).
        params: ``net`` parameter name -> (S, *shape).
        inputs: :func:`stacked_norm_unet_inputs` of the S images.
        size: (H, W) of the images.

    Returns:
        real (S, 2, H, W): the real and imaginary part of the output image.
    """
    h, w = size
    h_mult, w_mult = ((h - 1) | 15) + 1, ((w - 1) | 15) + 1  # NormUnet.pad
    top, left = (h_mult - h) // 2, (w_mult - w) // 2
    x = stacked_unet(net.unet, params, (inputs["patches"], (h_mult, w_mult)), prefix="unet.")
    return x[..., top : top + h, left : left + w] * inputs["std"] + inputs["mean"]


def stacked_norm_unet(net: NormUnet, params: dict[str, torch.Tensor], image: torch.Tensor) -> torch.Tensor:
    """``NormUnet`` (complex image in, complex image out) with per-slice weights.

    Args:
        net: the ``NormUnet`` (1 complex channel).
        params: ``net`` parameter name -> (S, *shape).
        image: complex (S, H, W).

    Returns:
        complex (S, H, W).
    """
    size = (int(image.shape[-2]), int(image.shape[-1]))
    out = stacked_norm_unet_apply(net, params, stacked_norm_unet_inputs(net, image), size)
    return torch.complex(out[:, 0], out[:, 1])
