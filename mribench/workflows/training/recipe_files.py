"""The shipped recipe files ``baselines/<name>/config.yaml``, generated from the code.

:data:`mribench.workflows.training.recipes.DEFAULTS` is the source of truth for every recipe's
defaults. Each ``baselines/<name>/config.yaml`` is exactly :func:`config_yaml` of its recipe (a
header that documents the keys, then the defaults), which ``tests/test_baselines.py`` checks byte for
byte. After changing a default, regenerate the files::

    mribench baseline config --write baselines

A user starts an override file from the same text (``mribench baseline config sup-p > mine.yaml``)
and keeps only the keys they change.
"""

from __future__ import annotations

import os
from pathlib import Path

import yaml

from mribench.paths import atomic_write_text
from mribench.workflows.training.recipes import DEFAULTS, RECIPES

# One comment block per top-level key, in the order the keys appear; recipe-specific keys are
# documented only in the recipes that have them.
_KEY_DOCS: dict[str, list[str]] = {
    "train_on": ["train_on       which training split(s): P (train_P), Q (train_Q), P+Q, diverse"],
    "training": [
        "training       mribench.workflows.training.TrainConfig: arch (unet|varnet|unet-complex), model kwargs, loss",
        "               (ssim|l1|joint), epochs, Adam lr with linear warm-up (warmup_fraction) + linear decay,",
        "               batch_size (slices of equal shape), grad_clip (max global norm), seed, precision (fp32|bf16:",
        "               the model under bfloat16 autocast; ssim and l1 losses only)",
    ],
    "accelerations": [
        "accelerations  training accelerations (null: the task's mask of each side); fresh mask per sample"
    ],
    "val_limit": [
        "val_limit      slices of test_P / test_Q validated after every epoch (ID/OOD curves in history.json)"
    ],
    "evaluation": ["evaluation     mribench.evaluate options for the final model (batch_size, limit)"],
    "diverse": [
        "diverse        group_by (a slice-index column: P_1..P_m are its values), pool (filter of the training",
        "               pool; null: the task's source filter with that column freed), groups (null: all),",
        "               min_volumes (training volumes a group needs)",
    ],
    "ttt": [
        "ttt            mribench.workflows.training.ttt.TTTModel keyword arguments (window W, max_steps, val_fraction, seed;",
        "               lr: null = the training learning rate); ttt: null evaluates without test-time training",
    ],
    "early_stopping": [
        "early_stopping key (ID score in history.json, e.g. id_ssim, on holdout_fraction of the train_P volumes);",
        "               stop when the best score rose by less than threshold (mode absolute, or relative to it)",
        "               over the last patience epochs; the best epoch so far is evaluated",
    ],
}
_YAML_WIDTH = 110


def config_yaml(name: str) -> str:
    """The text of ``baselines/<name>/config.yaml``: a commented header, then the recipe's defaults.

    Args:
        name: a recipe in :data:`~mribench.workflows.training.recipes.RECIPES`.

    Raises:
        ValueError: unknown recipe.
    """
    if name not in DEFAULTS:
        raise ValueError(f"expected a recipe in {RECIPES}, got {name!r}")
    cfg = DEFAULTS[name]
    header = [
        f"Baseline recipe `{name}`: {cfg['description']}",
        f"Run: mribench baseline run {name} --task <task> [--epochs N] [--device cuda] [--out DIR] [--config this.yaml]",
        "Keys (all optional in an override file; these are the defaults of mribench.workflows.training.recipes.DEFAULTS):",
    ]
    for key in cfg:
        header += ["  " + line for line in _KEY_DOCS.get(key, [])]
    body = yaml.safe_dump(cfg, sort_keys=False, default_flow_style=None, width=_YAML_WIDTH)
    return "".join(f"# {line}\n" for line in header) + body


def write_config_files(root: str | os.PathLike[str] = "baselines") -> list[Path]:
    """Write ``<root>/<name>/config.yaml`` for every recipe; returns the paths written."""
    out = []
    for name in RECIPES:
        path = Path(root) / name / "config.yaml"
        atomic_write_text(path, config_yaml(name))
        out.append(path)
    return out
