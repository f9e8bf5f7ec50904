"""Perceptual metrics on MRI slices: LPIPS (``lpips`` package, VGG / AlexNet) and DISTS (the DISTS
authors' ``DISTS_pytorch`` package).

Preprocessing (as in the robustness papers that report them on MRI): each image is divided by its
own 99.9th percentile (``torch.quantile``, linear interpolation), clipped to [0, 1] and repeated to
3 channels; LPIPS gets ``2 x - 1`` (its [-1, 1] convention), DISTS gets [0, 1] at its own size (the
network normalises with ImageNet statistics itself; no resizing at any size, as Lin & Heckel).

Backbones are loaded from mribench's converted ImageNet weights (:mod:`mribench.metrics.weights`);
building them never downloads anything. Reported values are never computed with random backbones:
``allow_random_weights=True`` exists only to test plumbing without the weights.
"""

from __future__ import annotations

import threading
import warnings
from collections.abc import Callable
from typing import Literal

import torch
from torch import Tensor, nn

from mribench.metrics._checks import as_batch
from mribench.metrics.weights import load_weights, require_weights

Net = Literal["vgg", "alex"]
PERCENTILE = 0.999
_RANDOM_SEED = 0

_MODELS: dict[tuple[str, str, bool], nn.Module] = {}
_LOCK = threading.Lock()


def percentile_normalize(images: Tensor, q: float = PERCENTILE) -> Tensor:
    """Divide each image by its own ``q``-quantile and clip to [0, 1].

    Args:
        images: (B, H, W) real tensor.
        q: quantile in (0, 1].

    Returns:
        (B, H, W) float32 tensor in [0, 1]. An image whose quantile is <= 0 is only clipped.
    """
    x = images.to(torch.float32)
    flat = x.flatten(1)
    # torch.quantile refuses inputs of more than 2^24 elements, so large batches go in chunks.
    rows = max(1, (1 << 24) // max(1, flat.shape[1]))
    scale = torch.cat([torch.quantile(c, q, dim=1) for c in flat.split(rows)]).view(-1, 1, 1)
    scale = torch.where(scale > 0, scale, torch.ones_like(scale))
    return (x / scale).clamp(0.0, 1.0)


def _to_rgb(images: Tensor) -> Tensor:
    """(B, H, W) -> (B, 3, H, W) by repeating the channel."""
    return images.unsqueeze(1).expand(-1, 3, -1, -1).contiguous()


def _quiet_build(build: Callable[..., nn.Module], *args: object, **kwargs: object) -> nn.Module:
    """Construct a model under a private RNG (the global one stays untouched) and no torchvision
    deprecation chatter; random init is reproducible (seed 0) and overwritten when weights load."""
    with torch.random.fork_rng(devices=[]), warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=UserWarning, module=r"torchvision\..*")
        torch.manual_seed(_RANDOM_SEED)
        return build(*args, **kwargs)


def _build_lpips(net: Net, random_weights: bool) -> nn.Module:
    import lpips as lpips_pkg

    # pnet_rand=True: no torchvision download; the ImageNet trunk is loaded below. pretrained=True
    # loads the LPIPS v0.1 linear layers that ship inside the lpips package.
    model = _quiet_build(lpips_pkg.LPIPS, pretrained=True, net=net, version="0.1", pnet_rand=True, verbose=False)
    if not random_weights:
        state = load_weights("vgg16_imagenet" if net == "vgg" else "alexnet_imagenet")
        # lpips splits torchvision's ``features`` into slices keeping the layer indices as names.
        net_module: nn.Module = model.net  # type: ignore[assignment]
        names = list(net_module.state_dict())
        trunk = {name.split(".", 1)[1] for name in names}
        wanted = {k.removeprefix("features."): v for k, v in state.items()}
        if trunk != set(wanted):
            raise RuntimeError(f"expected LPIPS trunk keys {sorted(trunk)}, got {sorted(wanted)}")
        net_module.load_state_dict({name: wanted[name.split(".", 1)[1]] for name in names}, strict=True)
    return model.eval().requires_grad_(False)


# DISTS stages of the authors' network hold torchvision VGG16 ``features.<i>`` layers under their index.
_DISTS_STAGE_LAYERS = {1: range(0, 4), 2: range(5, 9), 3: range(10, 16), 4: range(17, 23), 5: range(24, 30)}
_AUTHORS_LOCK = threading.Lock()


def _build_dists(random_weights: bool) -> nn.Module:
    """The DISTS authors' network (``DISTS_pytorch.DISTS``, Ding et al. 2020) with mribench's weights.

    ``DISTS.__init__`` builds its backbone with ``torchvision.models.vgg16(pretrained=True)``, which
    downloads; its module-level ``models`` name is pointed at an offline builder for the duration
    of the constructor (the authors' layers, L2 pooling and forward are used unchanged), then the
    converted ImageNet VGG16 weights and the authors' alpha/beta are loaded. Images are never
    resized (the authors' ``prepare_image`` resizes only when asked; piq always does above 256).
    """
    from types import SimpleNamespace

    from DISTS_pytorch import DISTS_pt
    from torchvision.models import vgg16

    def offline_vgg16(*args: object, **kwargs: object) -> nn.Module:
        return vgg16(weights=None)

    with _AUTHORS_LOCK:
        saved = DISTS_pt.models
        DISTS_pt.models = SimpleNamespace(vgg16=offline_vgg16)  # type: ignore[assignment]
        try:
            model = _quiet_build(DISTS_pt.DISTS, load_weights=False)
        finally:
            DISTS_pt.models = saved
    if not random_weights:
        vgg = load_weights("vgg16_imagenet")
        state = {}
        for stage, layers in _DISTS_STAGE_LAYERS.items():
            for i in layers:
                for kind in ("weight", "bias"):
                    key = f"features.{i}.{kind}"
                    if key in vgg:
                        state[f"stage{stage}.{i}.{kind}"] = vgg.pop(key)
        if vgg:
            raise RuntimeError(f"expected every VGG16 feature tensor to map to a DISTS stage, left {sorted(vgg)}")
        missing, unexpected = model.load_state_dict(state, strict=False)
        conv_missing = [k for k in missing if not k.endswith(("filter", "mean", "std", "alpha", "beta"))]
        if conv_missing or unexpected:
            raise RuntimeError(f"expected DISTS stage keys, missing {conv_missing}, unexpected {unexpected}")
        ab = load_weights("dists_alpha_beta")
        params = dict(model.named_parameters())
        with torch.no_grad():
            params["alpha"].copy_(ab["alpha"])  # the forward normalises alpha and beta by their joint sum
            params["beta"].copy_(ab["beta"])
    return model.eval().requires_grad_(False)


def get_model(kind: str, device: torch.device | str = "cpu", *, allow_random_weights: bool = False) -> nn.Module:
    """The cached LPIPS / DISTS module for ``kind`` (``lpips_vgg``, ``lpips_alex``, ``dists``) on ``device``.

    Args:
        kind: ``"lpips_vgg"``, ``"lpips_alex"`` or ``"dists"``.
        device: where the model runs.
        allow_random_weights: build with randomly initialised backbones (seeded) when True; for
            plumbing tests only, never for reported numbers.

    Returns:
        An eval-mode module without gradients.

    Raises:
        WeightsMissingError: the ImageNet weights are not fetched (and random weights not allowed).
        ValueError: unknown ``kind``.
    """
    if kind not in ("lpips_vgg", "lpips_alex", "dists"):
        raise ValueError(f"expected kind 'lpips_vgg', 'lpips_alex' or 'dists', got {kind!r}")
    dev = torch.device(device)
    key = (kind, str(dev), allow_random_weights)
    if not allow_random_weights:
        require_weights(kind)  # cheap (no hashing); also when cached, so removed weights are noticed
    with _LOCK:
        model = _MODELS.get(key)
        if model is None:
            if kind == "dists":
                model = _build_dists(allow_random_weights)
            else:
                model = _build_lpips("vgg" if kind == "lpips_vgg" else "alex", allow_random_weights)
            model = model.to(dev)
            _MODELS[key] = model
    return model


def clear_model_cache() -> None:
    """Drop cached LPIPS / DISTS modules (frees memory; the next call rebuilds them)."""
    with _LOCK:
        _MODELS.clear()


def lpips(
    target: Tensor, recon: Tensor, net: Net = "vgg", *, allow_random_weights: bool = False, batch_size: int = 8
) -> Tensor:
    """LPIPS v0.1 distance per slice (lower is better) after percentile normalisation.

    Args:
        target: reference images, (H, W) or (B, H, W), real, H and W >= 16 or so for the backbone.
        recon: reconstructions, same shape and device.
        net: ``"vgg"`` or ``"alex"`` backbone.
        allow_random_weights: plumbing tests only (see :func:`get_model`).
        batch_size: slices per forward pass (bounds activation memory).

    Returns:
        (B,) float64 tensor on the input device.
    """
    if batch_size < 1:
        raise ValueError(f"expected batch_size >= 1, got {batch_size}")
    if net not in ("vgg", "alex"):
        raise ValueError(f"expected net 'vgg' or 'alex', got {net!r}")
    target, recon = as_batch(target, recon)
    model = get_model(f"lpips_{net}", target.device, allow_random_weights=allow_random_weights)
    out = []
    with torch.no_grad():
        for i in range(0, target.shape[0], batch_size):
            t = _to_rgb(percentile_normalize(target[i : i + batch_size])) * 2.0 - 1.0
            r = _to_rgb(percentile_normalize(recon[i : i + batch_size])) * 2.0 - 1.0
            out.append(model(t, r).reshape(-1))  # (b,)
    return torch.cat(out).to(torch.float64)


def dists(target: Tensor, recon: Tensor, *, allow_random_weights: bool = False, batch_size: int = 8) -> Tensor:
    """DISTS distance per slice (lower is better; the authors' network, no resizing) after percentile
    normalisation.

    Args:
        target: reference images, (H, W) or (B, H, W), real.
        recon: reconstructions, same shape and device.
        allow_random_weights: plumbing tests only (see :func:`get_model`).
        batch_size: slices per forward pass (bounds activation memory).

    Returns:
        (B,) float64 tensor on the input device.
    """
    if batch_size < 1:
        raise ValueError(f"expected batch_size >= 1, got {batch_size}")
    target, recon = as_batch(target, recon)
    model = get_model("dists", target.device, allow_random_weights=allow_random_weights)
    out = []
    with torch.no_grad():
        for i in range(0, target.shape[0], batch_size):
            t = _to_rgb(percentile_normalize(target[i : i + batch_size]))
            r = _to_rgb(percentile_normalize(recon[i : i + batch_size]))
            out.append(model(t, r).reshape(-1))  # the authors' forward(reference, distorted), (b,)
    return torch.cat(out).to(torch.float64)
