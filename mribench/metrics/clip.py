"""CLIP image embeddings for the train/test nearest-neighbour similarity analysis.

The paper setting is open_clip ViT-B-16 trained on DataComp-XL (``pretrained`` tag
``datacomp_xl_s13b_b90k``). Its weights live only on the Hugging Face hub, which mribench cannot
assume to reach, so the checkpoint is a file the user provides, looked up in this order:

1. the ``checkpoint`` argument (``--clip-checkpoint`` on the CLI);
2. ``$MRIBENCH_CLIP_CHECKPOINT``;
3. ``<weights_dir>/clip-<model_name>/open_clip_model.safetensors`` (or ``open_clip_pytorch_model.bin``).

Only safetensors files or ``torch.load(weights_only=True)``-loadable state dicts are accepted.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mribench.errors import WeightsMissingError
from mribench.paths import weights_dir

DEFAULT_MODEL = "ViT-B-16"
DEFAULT_TAG = "datacomp_xl_s13b_b90k"
HF_REPO = "laion/CLIP-ViT-B-16-DataComp.XL-s13B-b90K"
CHECKPOINT_ENV = "MRIBENCH_CLIP_CHECKPOINT"
CHECKPOINT_NAMES = ("open_clip_model.safetensors", "open_clip_pytorch_model.bin")


def clip_dir(model_name: str = DEFAULT_MODEL) -> Path:
    """Folder where a CLIP checkpoint for ``model_name`` is looked up: ``<weights_dir>/clip-<model_name>``."""
    return weights_dir() / f"clip-{model_name}"


def _how_to_get(model_name: str) -> str:
    folder = clip_dir(model_name)
    return (
        f"hint: on a machine with internet run `huggingface-cli download {HF_REPO} open_clip_model.safetensors "
        f"--local-dir DIR` (or `python -c \"import open_clip; open_clip.create_model_and_transforms('{DEFAULT_MODEL}', "
        f"pretrained='{DEFAULT_TAG}')\"` and take open_clip_model.safetensors from the Hugging Face cache), then copy "
        f"the file to {folder}/, set {CHECKPOINT_ENV}=/path/to/file, or pass --clip-checkpoint /path/to/file"
    )


def resolve_checkpoint(checkpoint: str | os.PathLike[str] | None = None, model_name: str = DEFAULT_MODEL) -> Path:
    """Find the CLIP checkpoint file (argument, then environment, then the weights folder).

    Args:
        checkpoint: explicit file path, or None to search.
        model_name: open_clip model name, used for the weights-folder lookup.

    Returns:
        Path of an existing file.

    Raises:
        WeightsMissingError: no checkpoint found, with instructions to obtain one.
    """
    for given, origin in ((checkpoint, "checkpoint argument"), (os.environ.get(CHECKPOINT_ENV), CHECKPOINT_ENV)):
        if given:
            path = Path(given).expanduser()
            if not path.is_file():
                raise WeightsMissingError(
                    f"expected a CLIP checkpoint file from the {origin}, got {str(path)!r} "
                    f"which does not exist ({_how_to_get(model_name)})"
                )
            return path
    for name in CHECKPOINT_NAMES:
        path = clip_dir(model_name) / name
        if path.is_file():
            return path
    raise WeightsMissingError(
        f"expected open_clip {model_name} weights ({DEFAULT_TAG}, {HF_REPO}), got none in {clip_dir(model_name)} "
        f"({_how_to_get(model_name)})"
    )


def checkpoint_state(model_name: str = DEFAULT_MODEL) -> tuple[str, Path, str]:
    """Whether the CLIP checkpoint is available (``mribench weights status`` shows it).

    Returns:
        ``("found", file, how it was found)`` or ``("missing", where it is looked up, how to get it)``.
    """
    try:
        path = resolve_checkpoint(None, model_name)
    except WeightsMissingError:
        given = os.environ.get(CHECKPOINT_ENV)
        where = Path(given).expanduser() if given else clip_dir(model_name) / CHECKPOINT_NAMES[0]
        return "missing", where, _how_to_get(model_name)
    origin = f"${CHECKPOINT_ENV}" if os.environ.get(CHECKPOINT_ENV) else "the weights folder"
    return "found", path, f"from {origin}; open_clip {model_name} {DEFAULT_TAG} ({HF_REPO})"


def load_clip(
    checkpoint: str | os.PathLike[str] | None = None,
    model_name: str = DEFAULT_MODEL,
    device: str | torch.device = "cpu",
) -> nn.Module:
    """Build an open_clip model and load its weights from a local file (never from the network).

    Args:
        checkpoint: checkpoint file; None searches ``$MRIBENCH_CLIP_CHECKPOINT`` and the weights folder.
        model_name: open_clip architecture name (default ``ViT-B-16``).
        device: where the model lives.

    Returns:
        The open_clip model in eval mode without gradients.

    Raises:
        WeightsMissingError: no checkpoint (with instructions) or one that does not fit ``model_name``.
    """
    path = resolve_checkpoint(checkpoint, model_name)
    import open_clip

    try:
        with torch.random.fork_rng(devices=[]):  # model init must not move the global RNG
            model, _, _ = open_clip.create_model_and_transforms(
                model_name, pretrained=str(path), device=torch.device(device), weights_only=True
            )
    except RuntimeError as e:
        raise WeightsMissingError(
            f"expected a {model_name} open_clip checkpoint at {path}, got one that does not load: {e} ({_how_to_get(model_name)})"
        ) from e
    return model.eval().requires_grad_(False)


def _preprocess_cfg(model: nn.Module) -> tuple[int, tuple[float, ...], tuple[float, ...]]:
    from open_clip.constants import OPENAI_DATASET_MEAN, OPENAI_DATASET_STD

    visual = getattr(model, "visual", model)
    cfg = getattr(visual, "preprocess_cfg", None) or {}
    size = cfg.get("size", getattr(visual, "image_size", 224))
    size = size[0] if isinstance(size, (tuple, list)) else size
    mean = tuple(cfg.get("mean", getattr(visual, "image_mean", None) or OPENAI_DATASET_MEAN))
    std = tuple(cfg.get("std", getattr(visual, "image_std", None) or OPENAI_DATASET_STD))
    return int(size), mean, std


def preprocess(images: Tensor, size: int, mean: tuple[float, ...], std: tuple[float, ...]) -> Tensor:
    """CLIP preprocessing of grey images: shorter side to ``size`` (bicubic), centre crop, 3 channels, normalise.

    Args:
        images: (N, H, W) real tensor in [0, 1].
        size: model input size.
        mean: per-channel mean (3 values).
        std: per-channel std (3 values).

    Returns:
        (N, 3, size, size) float32 tensor.
    """
    if images.ndim != 3:
        raise ValueError(f"expected images of shape (N, H, W), got {tuple(images.shape)}")
    x = images.to(torch.float32).unsqueeze(1)
    h, w = x.shape[-2:]
    scale = size / min(h, w)
    nh, nw = max(size, round(h * scale)), max(size, round(w * scale))
    x = F.interpolate(x, size=(nh, nw), mode="bicubic", align_corners=False, antialias=scale < 1).clamp(0.0, 1.0)
    top, left = (nh - size) // 2, (nw - size) // 2
    x = x[..., top : top + size, left : left + size].expand(-1, 3, -1, -1)
    m = torch.tensor(mean, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    s = torch.tensor(std, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    return (x - m) / s


def embed_images(model: nn.Module, images: Tensor, *, batch_size: int = 64) -> Tensor:
    """L2-normalised CLIP image embeddings.

    Args:
        model: an open_clip model (from :func:`load_clip`).
        images: (N, H, W) grey images in [0, 1] (e.g. 80x80 patches of RSS targets scaled by their max).
        batch_size: images per forward pass.

    Returns:
        (N, D) float32 tensor on the model's device, rows of unit norm.
    """
    if images.ndim != 3:
        raise ValueError(f"expected images of shape (N, H, W), got {tuple(images.shape)}")
    if batch_size < 1:
        raise ValueError(f"expected batch_size >= 1, got {batch_size}")
    size, mean, std = _preprocess_cfg(model)
    device = next(model.parameters()).device
    out = []
    with torch.no_grad():
        for i in range(0, images.shape[0], batch_size):
            x = preprocess(images[i : i + batch_size].to(device), size, mean, std)
            out.append(F.normalize(model.encode_image(x).float(), dim=-1))  # type: ignore[operator]
    if not out:
        return torch.zeros(0, int(getattr(getattr(model, "visual", model), "output_dim", 0)), device=device)
    return torch.cat(out)
