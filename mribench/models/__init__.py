"""Reconstruction models: the ReconModel protocol, built-ins and loaders."""

from __future__ import annotations

from mribench.api.model import ModelInfo, ReconModel, SliceMeta
from mribench.models.architectures import architecture_names, build_architecture
from mribench.models.builtin import UnetRecon, VarNetRecon, ZeroFilled
from mribench.models.checkpoints import load_checkpoint, save_checkpoint
from mribench.models.d22_unet import D22UnetRecon
from mribench.models.loaded import LoadedModel
from mribench.models.loader import MODELS, list_models, load_model, register_pretrained

__all__ = [
    "MODELS",
    "D22UnetRecon",
    "LoadedModel",
    "ModelInfo",
    "ReconModel",
    "SliceMeta",
    "UnetRecon",
    "VarNetRecon",
    "ZeroFilled",
    "architecture_names",
    "build_architecture",
    "list_models",
    "load_checkpoint",
    "load_model",
    "register_pretrained",
    "save_checkpoint",
]
