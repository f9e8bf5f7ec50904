"""Network architectures by name: what a checkpoint's ``arch`` + ``config`` build.

============== ================================================ =========================================
name           module                                           hyper-parameters (constructor keywords)
============== ================================================ =========================================
``unet``       :class:`~mribench.models.builtin.UnetRecon`      chans, num_pool_layers, drop_prob
``varnet``     :class:`~mribench.models.builtin.VarNetRecon`    num_cascades, sens_chans, sens_pools,
                                                                chans, pools
``unet-complex`` :class:`~mribench.models.complex_unet.ComplexUnetRecon`  chans, num_pool_layers, drop_prob
``unet-d22``   :class:`~mribench.models.d22_unet.D22UnetRecon`  chans, num_pool_layers, drop_prob
============== ================================================ =========================================

Every module has ``arch`` and ``config`` attributes, so :func:`mribench.models.save_checkpoint` can
store it and :func:`mribench.models.load_checkpoint` rebuild it. Training code builds networks here
(``build_architecture("unet-d22", chans=64, num_pool_layers=4)``) rather than importing classes.
"""

from __future__ import annotations

from typing import Any

import torch

from mribench.errors import ModelError
from mribench.models.builtin import ARCHITECTURES
from mribench.models.complex_unet import ComplexUnetRecon
from mribench.models.d22_unet import D22UnetRecon
from mribench.registry import suggest

ARCHITECTURES.setdefault("unet-complex", ComplexUnetRecon)
ARCHITECTURES.setdefault("unet-d22", D22UnetRecon)


def architecture_names() -> list[str]:
    """The registered architecture names, sorted."""
    return sorted(ARCHITECTURES)


def build_architecture(arch: str, **config: Any) -> torch.nn.Module:
    """A freshly initialised network of architecture ``arch``.

    Args:
        arch: a name of :func:`architecture_names`.
        **config: the architecture's hyper-parameters (constructor keywords; defaults otherwise).

    Returns:
        The module (in training mode, random weights: load weights before scoring it).

    Raises:
        ModelError: unknown architecture or invalid hyper-parameters.
    """
    if arch not in ARCHITECTURES:
        raise ModelError(
            f"expected an architecture in {architecture_names()}, got {arch!r}{suggest(arch, list(ARCHITECTURES))}"
        )
    try:
        return ARCHITECTURES[arch](**config)
    except TypeError as e:
        raise ModelError(f"expected valid {arch} hyper-parameters, got {config}: {e}") from None


__all__ = ["ARCHITECTURES", "architecture_names", "build_architecture"]
