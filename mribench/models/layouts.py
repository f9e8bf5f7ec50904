"""Recognise a state dict as the field distributes it and infer the architecture from tensor shapes.

Layouts recognised (names are the tensor keys after any wrapper prefix):

* fastMRI ``Unet`` (``fastmri.models.Unet`` or the pre-2020 ``UnetModel``): ``down_sample_layers.{i}``,
  ``conv``, ``up_transpose_conv.{i}``, ``up_conv.{i}``. ``in_chans`` and ``chans`` come from the first
  convolution ``(chans, in_chans, 3, 3)``, ``num_pool_layers`` is the number of ``down_sample_layers``,
  ``out_chans`` the output count of the last 1x1 convolution. 1 -> 1 channels is fastMRI's magnitude
  U-Net (architecture ``unet``); 2 -> 2 is Darestani et al.'s real/imaginary U-Net (``unet-d22``).
* fastMRI ``VarNet``: ``cascades.{i}.model.unet`` (a 2-channel U-Net per cascade) and
  ``sens_net.norm_unet.unet``; ``num_cascades`` is the number of cascades, ``chans``/``pools`` come
  from the first cascade's U-Net and ``sens_chans``/``sens_pools`` from the sensitivity U-Net.
* Wrappers: fastMRI's Lightning modules (``unet.`` / ``varnet.`` prefixes; ``VarNetModule`` also
  saves its SSIM loss window ``loss.w``, which is dropped), D22's ``UnetMRIModel`` (``unet.``),
  ``DataParallel``/DDP (``module.``).

Dropout probability has no tensors; it is taken from the checkpoint's hyper-parameters when they
name it, else 0 (it does nothing in evaluation).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch

from mribench.errors import ModelError

#: Tensors fastMRI's Lightning modules save that are not part of the network.
LIGHTNING_EXTRAS = ("loss.w",)


@dataclass(frozen=True)
class Layout:
    """A recognised state dict.

    Attributes:
        arch: mribench architecture name (``unet``, ``varnet``, ``unet-d22``).
        config: the architecture's hyper-parameters.
        state: the tensors renamed for the mribench module of ``arch``.
        inferred: one line saying what was recognised and inferred, for the model details and the CLI.
    """

    arch: str
    config: dict[str, Any]
    state: dict[str, torch.Tensor]
    inferred: str


def _indices(state: Mapping[str, torch.Tensor], prefix: str, part: str) -> list[int]:
    pat = re.compile(re.escape(prefix + part) + r"\.(\d+)\.")
    return sorted({int(m.group(1)) for k in state if (m := pat.match(k))})


def unet_shape(state: Mapping[str, torch.Tensor], prefix: str = "") -> dict[str, int]:
    """``in_chans``, ``out_chans``, ``chans``, ``num_pool_layers`` of a fastMRI U-Net's tensors under ``prefix``.

    Raises:
        ModelError: the tensors are not a complete fastMRI U-Net.
    """
    first = state.get(f"{prefix}down_sample_layers.0.layers.0.weight")
    downs = _indices(state, prefix, "down_sample_layers")
    ups = _indices(state, prefix, "up_conv")
    if first is None or first.ndim != 4 or not downs or downs != list(range(len(downs))) or len(ups) != len(downs):
        raise ModelError(
            f"expected a fastMRI U-Net under {prefix or 'the top level'!r} (down_sample_layers.0..n-1, conv, "
            f"up_conv.0..n-1, up_transpose_conv.0..n-1), got {sorted(state)[:4]}"
        )
    last = state.get(f"{prefix}up_conv.{len(downs) - 1}.1.weight")
    if last is None or last.ndim != 4:
        raise ModelError(f"expected the final 1x1 convolution {prefix}up_conv.{len(downs) - 1}.1.weight, got none")
    return {
        "in_chans": int(first.shape[1]),
        "out_chans": int(last.shape[0]),
        "chans": int(first.shape[0]),
        "num_pool_layers": len(downs),
    }


def varnet_shape(state: Mapping[str, torch.Tensor], prefix: str = "") -> dict[str, int]:
    """``num_cascades``, ``sens_chans``, ``sens_pools``, ``chans``, ``pools`` of a fastMRI VarNet's tensors.

    Raises:
        ModelError: the tensors are not a fastMRI VarNet.
    """
    cascades = _indices(state, prefix, "cascades")
    if not cascades or cascades != list(range(len(cascades))):
        raise ModelError(f"expected VarNet cascades {prefix}cascades.0..n-1, got {sorted(state)[:4]}")
    net = unet_shape(state, f"{prefix}cascades.0.model.unet.")
    sens = unet_shape(state, f"{prefix}sens_net.norm_unet.unet.")
    for i in cascades[1:]:
        if unet_shape(state, f"{prefix}cascades.{i}.model.unet.") != net:
            raise ModelError(
                f"expected every VarNet cascade to have the same U-Net, got a different one in cascade {i}"
            )
    return {
        "num_cascades": len(cascades),
        "sens_chans": sens["chans"],
        "sens_pools": sens["num_pool_layers"],
        "chans": net["chans"],
        "pools": net["num_pool_layers"],
    }


def _strip(state: Mapping[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    return {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}


def _fmt(cfg: Mapping[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in cfg.items())


def infer_layout(
    state: Mapping[str, torch.Tensor], *, container: str, hparams: Mapping[str, Any] | None = None
) -> Layout:
    """Recognise a fastMRI U-Net / VarNet / D22 U-Net state dict and infer its hyper-parameters.

    Args:
        state: tensor name -> tensor (as saved, with any wrapper prefix).
        container: how the file held it, for the one-line description (e.g. ``"bare state dict"``,
            ``"Lightning .ckpt"``).
        hparams: hyper-parameters saved next to the weights (Lightning ``hyper_parameters``), if any;
            only ``drop_prob`` is taken from them (every other value is read off the tensors).

    Returns:
        The :class:`Layout`.

    Raises:
        ModelError: not a recognised layout, tensors left over, or channel counts mribench has no
            input convention for.
    """
    if not state or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ModelError(f"expected a state dict of tensors in the {container}, got {sorted(state)[:4]}")
    hp = dict(hparams or {})
    notes = []
    tensors = dict(state)
    if all(k.startswith("module.") for k in tensors):
        tensors = _strip(tensors, "module.")
        notes.append("'module.' prefix removed")
    for prefix in ("varnet.", "unet."):
        if any(k.startswith(prefix) for k in tensors):
            rest = sorted(k for k in tensors if not k.startswith(prefix) and k not in LIGHTNING_EXTRAS)
            if rest:
                raise ModelError(
                    f"expected only {prefix}* tensors (and {list(LIGHTNING_EXTRAS)}) in the {container}, got {rest[:4]}"
                )
            tensors = _strip(tensors, prefix)
            notes.append(f"'{prefix}' prefix")
            break
    drop = float(hp.get("drop_prob", 0.0) or 0.0)
    how = f"{container}{' (' + ', '.join(notes) + ')' if notes else ''}"
    if any(k.startswith("cascades.") for k in tensors):
        cfg: dict[str, Any] = varnet_shape(tensors)
        _check_complete(tensors, ("cascades.", "sens_net."), "VarNet")
        line = f"fastMRI VarNet, {how}: {_fmt(cfg)} from tensor shapes"
        return Layout("varnet", cfg, {f"varnet.{k}": v for k, v in tensors.items()}, line)
    shape = unet_shape(tensors)
    _check_complete(tensors, ("down_sample_layers.", "conv.", "up_conv.", "up_transpose_conv."), "U-Net")
    channels = (shape["in_chans"], shape["out_chans"])
    cfg = {"chans": shape["chans"], "num_pool_layers": shape["num_pool_layers"], "drop_prob": drop}
    dropout = f"drop_prob={drop} {'from hyper-parameters' if 'drop_prob' in hp else 'assumed (no tensors)'}"
    if channels == (1, 1):
        line = (
            f"fastMRI U-Net (1 -> 1 channels, magnitude image), {how}: chans={cfg['chans']}, "
            f"num_pool_layers={cfg['num_pool_layers']} from tensor shapes; {dropout}"
        )
        return Layout("unet", cfg, {f"unet.{k}": v for k, v in tensors.items()}, line)
    if channels == (2, 2):
        line = (
            f"D22 2-channel U-Net (2 -> 2 channels, RSS of real/imaginary parts), {how}: chans={cfg['chans']}, "
            f"num_pool_layers={cfg['num_pool_layers']} from tensor shapes; {dropout}"
        )
        return Layout("unet-d22", cfg, {f"unet.{k}": v for k, v in tensors.items()}, line)
    raise ModelError(
        f"expected a U-Net with 1 -> 1 channels (fastMRI, magnitude) or 2 -> 2 (Darestani et al., real and "
        f"imaginary parts) in the {container}, got {channels[0]} -> {channels[1]} (hint: wrap other input "
        f"conventions as a model file and pass --model path/to/file.py:build)"
    )


def _check_complete(tensors: Mapping[str, torch.Tensor], prefixes: tuple[str, ...], what: str) -> None:
    extra = sorted(k for k in tensors if not k.startswith(prefixes))
    if extra:
        raise ModelError(f"expected only {what} tensors, got others too, e.g. {extra[:4]}")


__all__ = ["LIGHTNING_EXTRAS", "Layout", "infer_layout", "unet_shape", "varnet_shape"]
