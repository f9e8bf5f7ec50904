"""Training and test-time adaptation: supervised and self-supervised training, TTT, early stopping,
baseline recipes. Names are imported on first use (training pulls in sigpy/numba lazily)."""

from __future__ import annotations

from importlib import import_module
from typing import Any

_EXPORTS: dict[str, str] = {
    "TrainConfig": "mribench.workflows.training.supervised",
    "ValSet": "mribench.workflows.training.supervised",
    "TrainResult": "mribench.workflows.training.supervised",
    "train": "mribench.workflows.training.supervised",
    "validate": "mribench.workflows.training.supervised",
    "MaskSampler": "mribench.workflows.training.data",
    "TrainingSlices": "mribench.workflows.training.data",
    "ValidationSlices": "mribench.workflows.training.data",
    "ShapeBatchSampler": "mribench.workflows.training.data",
    "WarmupLinearDecay": "mribench.workflows.training.schedule",
    "OneCycleLinear": "mribench.workflows.training.schedule",
    "SCHEDULES": "mribench.workflows.training.schedule",
    "make_scheduler": "mribench.workflows.training.schedule",
    "early_stopping_epoch": "mribench.workflows.training.early_stopping",
    "should_stop": "mribench.workflows.training.early_stopping",
    "StopDecision": "mribench.workflows.training.early_stopping",
    "RECIPES": "mribench.workflows.training.recipes",
    "run_recipe": "mribench.workflows.training.recipes",
    "load_recipe_config": "mribench.workflows.training.recipes",
    "estimate_sensitivities": "mribench.physics.sensitivity",
    "forward": "mribench.physics.operators",
    "adjoint": "mribench.physics.operators",
    "joint_loss": "mribench.workflows.training.selfsup",
    "rss_l1_loss": "mribench.workflows.training.selfsup",
    "d22_joint_loss": "mribench.workflows.training.selfsup",
    "sensitivities": "mribench.physics.sensitivity",
    "selfsup_loss": "mribench.workflows.training.selfsup",
    "split_measurements": "mribench.workflows.training.selfsup",
    "ComplexUnetRecon": "mribench.models.complex_unet",
    "TTTModel": "mribench.workflows.training.ttt",
    "load_ttt": "mribench.workflows.training.ttt",
    "ttt_settings": "mribench.workflows.training.ttt_settings",
    "TTTSettings": "mribench.workflows.training.ttt_settings",
}


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        value = getattr(import_module(_EXPORTS[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'mribench.workflows.training' has no attribute {name!r}")


__all__ = sorted(_EXPORTS)
