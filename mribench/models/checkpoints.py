"""Saving and loading model checkpoints without unpickling arbitrary objects.

Formats read:

* mribench's own: safetensors with ``mribench_arch`` / ``mribench_config`` metadata (what
  :func:`save_checkpoint` writes), or a ``torch.save`` dict ``{"arch", "config", "state_dict"}``;
* as the field distributes them (:mod:`mribench.models.layouts` infers the architecture from the
  tensor shapes): a bare ``state_dict`` of ``fastmri.models.Unet`` / ``VarNet`` (``torch.save`` or
  safetensors without metadata), a fastMRI Lightning ``.ckpt`` (``state_dict`` with ``unet.`` /
  ``varnet.`` prefixes next to ``hyper_parameters``, optimizer states, callbacks), and Darestani et
  al.'s ``{"model_state_dict": ...}`` of their 2-channel U-Net.

``torch.save`` files are read by :func:`mribench.models.safe_load.safe_torch_load`: weights only,
with inert stand-ins for the training framework's bookkeeping objects.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

from mribench.errors import ModelError
from mribench.models.architectures import ARCHITECTURES, architecture_names, build_architecture
from mribench.models.layouts import infer_layout
from mribench.models.safe_load import as_mapping, safe_torch_load
from mribench.paths import file_sha256

CHECKPOINT_SUFFIXES = (".safetensors", ".pt", ".pth", ".ckpt")


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
    if arch not in ARCHITECTURES:
        raise ValueError(f"expected a model with arch in {architecture_names()}, got {arch!r}")
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
    model = build_architecture(arch, **config)
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise ModelError(
            f"expected weights matching a {arch} with {config} in {where}, got {len(missing)} missing and "
            f"{len(unexpected)} unexpected keys (e.g. {(missing or unexpected)[:3]})"
        )
    return model.eval()


def _own(
    arch: str, config: dict[str, Any], state: dict[str, torch.Tensor], where: str, extra: dict[str, Any]
) -> tuple[torch.nn.Module, dict[str, Any]]:
    details = {
        "arch": arch,
        "config": config,
        "extra": extra,
        "inferred": f"mribench checkpoint: arch={arch} and config from the file's metadata",
    }
    return _build(arch, config, state, where), details


def _inferred(
    state: dict[str, Any], where: str, container: str, hparams: dict[str, Any] | None = None
) -> tuple[torch.nn.Module, dict[str, Any]]:
    layout = infer_layout(state, container=container, hparams=hparams)
    model = _build(layout.arch, layout.config, layout.state, where)
    return model, {"arch": layout.arch, "config": layout.config, "extra": {}, "inferred": layout.inferred}


def _is_state_dict(obj: Any) -> bool:
    return isinstance(obj, dict) and bool(obj) and all(isinstance(v, torch.Tensor) for v in obj.values())


def load_checkpoint(path: str | os.PathLike[str]) -> tuple[torch.nn.Module, dict[str, Any]]:
    """Load a checkpoint into an mribench architecture (see the module docstring for the formats).

    Returns:
        ``(model, details)`` in eval mode, with details ``{"arch", "config", "extra", "inferred"}``;
        ``inferred`` is one line saying how the file was read and which hyper-parameters were inferred.

    Raises:
        ModelError: missing or unreadable file, unknown layout or architecture, mismatching weights,
            or a pickle that names objects other than tensors, plain values and known training-framework
            bookkeeping (never unpickled).
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
            return _inferred(state, p.name, "safetensors state dict without mribench metadata")
        config = json.loads(meta.get("mribench_config", "{}"))
        extra = json.loads(meta.get("mribench_extra", "{}"))
        return _own(meta["mribench_arch"], config, state, p.name, extra)
    obj = safe_torch_load(p)
    if not isinstance(obj, dict):
        raise ModelError(f"expected a dict checkpoint in {p.name}, got {type(obj).__name__}")
    if "arch" in obj and "state_dict" in obj:
        return _own(str(obj["arch"]), dict(obj.get("config", {})), obj["state_dict"], p.name, {})
    if _is_state_dict(obj):
        return _inferred(obj, p.name, "bare state dict")
    if _is_state_dict(obj.get("state_dict")):
        hparams = as_mapping(obj.get("hyper_parameters", obj.get("hparams")))
        return _inferred(obj["state_dict"], p.name, "Lightning checkpoint 'state_dict'", hparams)
    if _is_state_dict(obj.get("model_state_dict")):
        return _inferred(obj["model_state_dict"], p.name, "'model_state_dict' (D22's checkpoint layout)")
    raise ModelError(
        f"expected a state dict, a Lightning checkpoint ('state_dict'), a 'model_state_dict' or mribench's "
        f"'arch'+'state_dict' in {p.name}, got keys {sorted(map(str, obj))[:5]}"
    )
