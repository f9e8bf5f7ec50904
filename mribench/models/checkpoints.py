"""Saving and loading model checkpoints without unpickling arbitrary objects.

Formats: safetensors with ``mribench_arch`` / ``mribench_config`` metadata (what mribench writes),
or a ``torch.save`` dict loaded with ``weights_only=True``: ``{"arch", "config", "state_dict"}`` or a
fastMRI Lightning checkpoint (``state_dict`` with ``unet.`` / ``varnet.`` prefixes).
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

from mribench.errors import ModelError
from mribench.models.builtin import ARCHITECTURES
from mribench.paths import file_sha256

CHECKPOINT_SUFFIXES = (".safetensors", ".pt", ".pth", ".ckpt")


def _architectures() -> dict[str, type[torch.nn.Module]]:
    """Built-in architectures plus the complex U-Net of self-supervised training / TTT (imported lazily:
    it lives with the training code, which imports the models package)."""
    if "unet-complex" not in ARCHITECTURES:
        from mribench.models.complex_unet import ComplexUnetRecon

        ARCHITECTURES["unet-complex"] = ComplexUnetRecon
    return ARCHITECTURES


def checkpoint_identity(path: str | os.PathLike[str]) -> str:
    """A stable sha256 of a checkpoint's content.

    For safetensors it hashes the sorted tensors (name, dtype, shape, bytes) and the sorted metadata:
    safetensors writes metadata keys in arbitrary order, so two saves of the same weights differ as
    files. Other formats hash the file.
    """
    p = Path(path)
    if p.suffix != ".safetensors":
        return file_sha256(p)
    h = hashlib.sha256()
    with safe_open(str(p), framework="pt") as f:
        h.update(json.dumps(f.metadata() or {}, sort_keys=True).encode())
        for k in sorted(f.keys()):
            t = f.get_tensor(k).contiguous()
            h.update(f"{k}|{t.dtype}|{tuple(t.shape)}".encode())
            h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def save_checkpoint(model: torch.nn.Module, path: str | os.PathLike[str], extra: dict[str, Any] | None = None) -> Path:
    """Save an mribench architecture (``UnetRecon``/``VarNetRecon``) as safetensors, atomically.

    Args:
        model: a module with ``arch`` and ``config`` attributes.
        path: destination (``.safetensors``).
        extra: JSON-serialisable metadata stored alongside (training data, epoch, ...).
    """
    arch = getattr(model, "arch", None)
    if arch not in _architectures():
        raise ValueError(f"expected a model with arch in {sorted(ARCHITECTURES)}, got {arch!r}")
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    meta = {
        "mribench_arch": arch,
        "mribench_config": json.dumps(model.config),
        "mribench_extra": json.dumps(extra or {}),
    }
    tmp = p.with_name(f".{p.name}.tmp{os.getpid()}")
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    save_file(state, str(tmp), metadata=meta)
    os.replace(tmp, p)
    return p


def _build(arch: str, config: dict[str, Any], state: dict[str, torch.Tensor], where: str) -> torch.nn.Module:
    if arch not in _architectures():
        raise ModelError(f"expected a checkpoint architecture in {sorted(ARCHITECTURES)}, got {arch!r} in {where}")
    try:
        model = ARCHITECTURES[arch](**config)
    except TypeError as e:
        raise ModelError(f"expected a valid {arch} config in {where}, got {config}: {e}") from None
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise ModelError(
            f"expected weights matching a {arch} with {config} in {where}, got {len(missing)} missing and "
            f"{len(unexpected)} unexpected keys (e.g. {(missing or unexpected)[:3]})"
        )
    return model.eval()


def _infer_lightning(
    state: dict[str, torch.Tensor], hparams: dict[str, Any]
) -> tuple[str, dict[str, Any], dict[str, torch.Tensor]]:
    keys = list(state)
    if any(k.startswith("varnet.") for k in keys):
        cfg: dict[str, Any] = {
            k: hparams[k] for k in ("num_cascades", "sens_chans", "sens_pools", "chans", "pools") if k in hparams
        }
        return "varnet", cfg, state
    if any(k.startswith("unet.") for k in keys):
        cfg = {
            "chans": hparams.get("chans", 32),
            "num_pool_layers": hparams.get("num_pool_layers", 4),
            "drop_prob": hparams.get("drop_prob", 0.0),
        }
        return "unet", cfg, state
    raise ModelError("expected a fastMRI U-Net or VarNet state_dict (keys 'unet.*' or 'varnet.*'), got other keys")


def load_checkpoint(path: str | os.PathLike[str]) -> tuple[torch.nn.Module, dict[str, Any]]:
    """Load a checkpoint into an mribench architecture.

    Returns:
        ``(model, details)`` with details ``{"arch", "config", "extra", "path"}``.

    Raises:
        ModelError: missing or unreadable file, unknown architecture, mismatching weights, or a
            pickle that needs more than plain tensors (never unpickled).
    """
    p = Path(path)
    if not p.is_file():
        raise ModelError(f"expected a checkpoint file, got no file at {p}")
    if p.suffix == ".safetensors":
        try:
            with safe_open(str(p), framework="pt") as f:
                meta = f.metadata() or {}
            state = load_file(str(p))
        except (SafetensorError, OSError) as e:
            raise ModelError(f"expected a valid safetensors file at {p}, got: {e}") from None
        if "mribench_arch" not in meta:
            raise ModelError(
                f"expected 'mribench_arch' metadata in {p.name} (hint: save it with mribench.models.save_checkpoint)"
            )
        config = json.loads(meta.get("mribench_config", "{}"))
        extra = json.loads(meta.get("mribench_extra", "{}"))
        return _build(meta["mribench_arch"], config, state, p.name), {
            "arch": meta["mribench_arch"],
            "config": config,
            "extra": extra,
        }
    try:
        obj = torch.load(p, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, OSError) as e:
        raise ModelError(
            f"expected a checkpoint loadable with torch.load(weights_only=True) at {p.name}, got: "
            f"{str(e).splitlines()[0]} (mribench never unpickles arbitrary objects; save a plain state_dict "
            f"or safetensors)"
        ) from None
    if not isinstance(obj, dict):
        raise ModelError(f"expected a dict checkpoint in {p.name}, got {type(obj).__name__}")
    if "arch" in obj and "state_dict" in obj:
        return _build(str(obj["arch"]), dict(obj.get("config", {})), obj["state_dict"], p.name), {
            "arch": obj["arch"],
            "config": obj.get("config", {}),
            "extra": {},
        }
    if "state_dict" in obj:
        arch, cfg, state = _infer_lightning(obj["state_dict"], dict(obj.get("hyper_parameters", {}) or {}))
        return _build(arch, cfg, state, p.name), {"arch": arch, "config": cfg, "extra": {}}
    raise ModelError(
        f"expected keys 'arch'+'state_dict' or a Lightning 'state_dict' in {p.name}, got {sorted(obj)[:5]}"
    )
