"""Training and test-time adaptation: supervised and self-supervised training, TTT, early stopping,
baseline recipes. Names are imported on first use (training pulls in sigpy/numba lazily)."""

from __future__ import annotations

from importlib import import_module
from typing import Any

_EXPORTS: dict[str, str] = {
    "TrainConfig": "supervised",
    "ValSet": "supervised",
    "TrainResult": "supervised",
    "train": "supervised",
    "validate": "supervised",
    "MaskSampler": "data",
    "TrainingSlices": "data",
    "ValidationSlices": "data",
    "ShapeBatchSampler": "data",
    "WarmupLinearDecay": "schedule",
    "make_scheduler": "schedule",
    "early_stopping_epoch": "early_stopping",
    "should_stop": "early_stopping",
    "StopDecision": "early_stopping",
    "RECIPES": "recipes",
    "run_recipe": "recipes",
    "load_recipe_config": "recipes",
    "register_shipped_baselines": "recipes",
    "estimate_sensitivities": "sensitivity",
    "forward": "operators",
    "adjoint": "operators",
    "joint_loss": "selfsup",
    "selfsup_loss": "selfsup",
    "split_measurements": "selfsup",
    "ComplexUnetRecon": "complex_unet",
    "TTTModel": "ttt",
    "load_ttt": "ttt",
}


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        value = getattr(import_module(f"mribench.training.{_EXPORTS[name]}"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'mribench.training' has no attribute {name!r}")


__all__ = sorted(_EXPORTS)
