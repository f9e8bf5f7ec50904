"""Baseline recipes: train a model on a task's data, evaluate it, leave a run directory.

Recipes (defaults in :data:`DEFAULTS`, ``baselines/<name>/config.yaml`` is generated from them). Lin & Heckel
(2024, "LH24") recipes train the fastMRI U-Net (32 channels, 4 pools; ``training.arch: varnet``
for the VarNet) with the SSIM loss (volume max), Adam with their one-cycle schedule (linear warm-up
over 1% of the steps from lr/25 to lr 1e-3, linear decay back to 4e-5), 60 epochs, gradient
clipping 1.0, batch 1 and a fresh mask per sample:

- ``sup-p``: supervised on the source distribution P (``train_P``).
- ``sup-q``: supervised on the target distribution Q (``train_Q``): the reference for the gap.
- ``joint``: supervised on P + Q (each slice with its own side's mask).
- ``diverse``: Lin & Heckel's diverse training: P_1..P_m are the groups of one slice-index column
  or of a combination of columns (``diverse.group_by``: ``contrast``, or ``[contrast,
  system_model]`` for their contrast x scanner distributions) within a pool (default: the task's
  source filter with those columns freed); optionally subsampled to equal size
  (``diverse.equal_size`` / ``diverse.group_size``); one model per P_i and one on their union. Test
  volumes of the task and every volume of Q's pool are excluded. The run directory is the union
  model; ``singles/<P_i>/`` hold the single-distribution models and ``diverse.json`` compares the
  union with the best single P_i (by test_Q SSIM).
- ``early-stop``: ``sup-p`` with Lin & Heckel's early stopping on a held-out part of ``train_P``
  (:mod:`mribench.workflows.training.early_stopping`); the chosen epoch is evaluated.

Darestani, Liu & Heckel (2022, "D22") recipes train their U-Net (64 channels, 4 pools, two-channel
input: the RSS over coils of the real and of the imaginary parts, :mod:`mribench.models.complex_unet`)
with Adam at a constant lr 1e-5, batch 1, 300 epochs, the task's fixed mask (``masks: task``), no
gradient clipping, against the RSS magnitude of the fully sampled coil images:

- ``sup-d22``: supervised, ``|x - |f||_1 / |x|_1``: the reference pair of their gap (run it with
  ``train_on: P`` and ``train_on: Q``).
- ``ttt-d22``: self-supervised training (that loss plus ``|y - A f|_1 / |y|_1``, BART-like coil
  maps), evaluated with their test-time training (:mod:`mribench.workflows.training.ttt`, variant
  ``d22``; lr, W and the step cap from ``ttt_d22.yaml`` by the task card's shift). ``ttt: null``
  evaluates the trained network without adaptation.
- ``ttt-fast``: mribench's earlier self-supervised recipe (complex coil-combined target and input,
  this project's maps, mribench's schedule) evaluated with TTT variant ``fast`` (held-out points
  removed from the input, lr = the training lr, W = 20, at most 1000 steps). Named so that it is
  never taken for the paper's.

Run directory (``out``, default ``mribench-runs/baselines/<task>/<recipe>``)::

    baseline.json       recipe, resolved config, task, training data, timings, chosen epoch, scores
    model.safetensors   the evaluated weights
    training/           checkpoints/epoch_NNN.safetensors, history.json (ID/OOD per epoch), train_state.pt
    run.json, slices/, summary.json   the mribench.evaluate run (what `mribench submit` reads)

Re-running a recipe with the same config resumes both the training and the evaluation.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import hashlib
import json
import os
import shutil
import time
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from mribench.api.model import ModelInfo
from mribench.data.index import apply_filter, build_index
from mribench.errors import DataError, ModelError, StoredRun, TaskError
from mribench.models.checkpoints import checkpoint_identity
from mribench.models.loaded import LoadedModel
from mribench.paths import atomic_write_text, slug
from mribench.registry import suggest
from mribench.tasks import Split, TaskSpec, load_task, make_splits
from mribench.workflows.training.data import MaskSampler, split_holdout, spread_subset
from mribench.workflows.training.early_stopping import early_stopping_epoch, should_stop
from mribench.workflows.training.supervised import (
    TrainConfig,
    TrainResult,
    ValSet,
    build_model,
    checkpoint_path,
    dist_rank,
    load_weights,
    train,
)

ProgressFn = Callable[[int, int, str], None]

_UNET = {"chans": 32, "num_pool_layers": 4, "drop_prob": 0.0}
#: Lin & Heckel (2024): fastMRI U-Net, SSIM loss, Adam with their one-cycle schedule, 60 epochs.
_LH24_TRAIN = {
    "arch": "unet",
    "model": _UNET,
    "loss": "ssim",
    "epochs": 60,
    "lr": 1e-3,
    "weight_decay": 0.0,
    "warmup_fraction": 0.01,
    "schedule": "onecycle-lh24",
    "batch_size": 1,
    "grad_clip": 1.0,
    "seed": 0,
    "num_workers": 0,
    "val_batch_size": 8,
}
#: Darestani, Liu & Heckel (2022): their U-Net, Adam at a constant lr 1e-5, batch 1, no clipping. ``norm: scale``
#: (ours) stands for their single per-slice scale factor: one scale, no mean shift (see mribench.models.complex_unet).
_D22_UNET = {
    "chans": 64,
    "num_pool_layers": 4,
    "drop_prob": 0.0,
    "input": "rss-real-imag",
    "maps": "bart-ecalib",
    "norm": "scale",
}
_D22_TRAIN = {
    "arch": "unet-complex",
    "model": _D22_UNET,
    "loss": "d22-sup",
    "epochs": 300,
    "lr": 1e-5,
    "weight_decay": 0.0,
    "warmup_fraction": 0.0,
    "schedule": "constant",
    "batch_size": 1,
    "grad_clip": 0.0,
    "seed": 0,
    "num_workers": 0,
    "val_batch_size": 8,
}
#: mribench's earlier training defaults (kept by ``ttt-fast``).
_FAST_TRAIN = {
    **_LH24_TRAIN,
    "arch": "unet-complex",
    "loss": "joint",
    "model": {"chans": 32, "num_pool_layers": 4},
    "epochs": 30,
    "warmup_fraction": 0.05,
    "schedule": "warmup-linear",
}
_EVAL = {"batch_size": 8, "limit": None}


def _base(name: str, description: str, train_on: str, **extra: Any) -> dict[str, Any]:
    training = extra.pop("training", _LH24_TRAIN)
    return {
        "recipe": name,
        "description": description,
        "train_on": train_on,
        "model_name": None,
        "training": copy.deepcopy(training),
        "accelerations": None,
        "masks": "fresh",
        "val_limit": 64,
        "evaluation": dict(_EVAL),
        **extra,
    }


#: Default configuration of every recipe: the source of truth (``baselines/<name>/config.yaml`` is
#: generated from it by :mod:`mribench.workflows.training.recipe_files`).
DEFAULTS: dict[str, dict[str, Any]] = {
    "sup-p": _base("sup-p", "U-Net trained supervised (SSIM loss) on the source distribution P (Lin & Heckel).", "P"),
    "sup-q": _base(
        "sup-q", "U-Net trained supervised on the target distribution Q (reference for the gap; Lin & Heckel).", "Q"
    ),
    "joint": _base(
        "joint", "U-Net trained supervised on P and Q together (each slice with its side's mask; Lin & Heckel).", "P+Q"
    ),
    "diverse": _base(
        "diverse",
        "Diverse training (Lin & Heckel): one model on the union of P_1..P_m vs one per P_i.",
        "diverse",
        diverse={
            "group_by": "contrast",
            "pool": None,
            "groups": None,
            "min_volumes": 2,
            "equal_size": False,
            "group_size": None,
        },
    ),
    "early-stop": _base(
        "early-stop",
        "U-Net on P, stopped when the in-distribution improvement becomes marginal "
        "(Lin & Heckel); the chosen epoch is evaluated.",
        "P",
        early_stopping={
            "key": "id_ssim",
            "patience": 3,
            "threshold": 1e-3,
            "mode": "absolute",
            "holdout_fraction": 0.1,
        },
    ),
    "sup-d22": _base(
        "sup-d22",
        "Darestani et al.'s supervised U-Net (64 channels, 2-channel RSS input, normalised L1 against the RSS "
        "magnitude, Adam lr 1e-5, the task's fixed mask): the reference pair of their gap (train_on P and Q).",
        "P",
        training=_D22_TRAIN,
        masks="task",
    ),
    "ttt-d22": _base(
        "ttt-d22",
        "Darestani et al.'s self-supervised U-Net (supervised + k-space loss) evaluated with their test-time "
        "training (lr, W and step cap by shift from ttt_d22.yaml).",
        "P",
        training={**_D22_TRAIN, "loss": "d22-joint"},
        masks="task",
        ttt={"variant": "d22", "shift": None},
    ),
    "ttt-fast": _base(
        "ttt-fast",
        "mribench's earlier self-supervised complex U-Net (coil-combined target and input) evaluated with the "
        "fast TTT variant (not the paper's: held-out points left out of the input, lr = training lr, W = 20).",
        "P",
        training=_FAST_TRAIN,
        ttt={"variant": "fast", "window": 20, "lr": None, "max_steps": 1000},
    ),
}

#: Recipes that evaluate with test-time training (their ``ttt`` section).
TTT_RECIPES = ("ttt-d22", "ttt-fast")
_D22_RECIPES = ("sup-d22", "ttt-d22")
RECIPES = tuple(DEFAULTS)
_TOP = {
    "recipe",
    "description",
    "train_on",
    "model_name",
    "training",
    "accelerations",
    "masks",
    "val_limit",
    "evaluation",
    "diverse",
    "ttt",
    "early_stopping",
}
_TRAIN_ON = ("P", "Q", "P+Q", "diverse")
#: Training masks: ``fresh`` (a new random mask per sample and epoch, Lin & Heckel) or ``task`` (the
#: task's mask of each volume, fixed: Darestani et al.'s one fixed mask).
MASK_MODES = ("fresh", "task")
_DIVERSE_KEYS = {"group_by", "pool", "groups", "min_volumes", "equal_size", "group_size"}


@dataclass(frozen=True)
class RecipeConfig:
    """A resolved recipe configuration.

    Attributes:
        recipe: recipe name.
        description: one line for the card and ``baseline list``.
        train_on: ``P``, ``Q``, ``P+Q`` or ``diverse``.
        model_name: name recorded in the evaluation (default ``<recipe>-<arch>``).
        training: the :class:`TrainConfig`.
        accelerations: training accelerations (``None``: the task's mask of each side).
        masks: ``fresh`` or ``task`` (:data:`MASK_MODES`).
        val_limit: slices per validation set per epoch (spread over the split; ``None``: all).
        evaluation: ``{"batch_size", "limit"}`` passed to :func:`mribench.evaluate`.
        diverse: ``{"group_by", "pool", "groups", "min_volumes", "equal_size", "group_size"}`` for
            ``diverse`` (see :func:`diverse_groups`).
        ttt: ``TTTModel`` keyword arguments of the TTT recipes. ``variant: d22``: ``shift`` (``null``:
            the task card's) selects lr, W and the step cap from ``ttt_d22.yaml``; an explicit
            ``lr``/``window``/``max_steps`` overrides the table and is recorded as such.
            ``variant: fast``: ``lr: null`` = the training learning rate. ``None`` evaluates the
            recipe's network without test-time training.
        early_stopping: ``{"key", "patience", "threshold", "mode", "holdout_fraction"}``.
    """

    recipe: str
    description: str
    train_on: str
    training: TrainConfig
    model_name: str | None = None
    accelerations: tuple[int, ...] | None = None
    masks: str = "fresh"
    val_limit: int | None = 64
    evaluation: dict[str, Any] = field(default_factory=lambda: dict(_EVAL))
    diverse: dict[str, Any] | None = None
    ttt: dict[str, Any] | None = None
    early_stopping: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "recipe": self.recipe,
            "description": self.description,
            "train_on": self.train_on,
            "model_name": self.model_name,
            "training": self.training.to_dict(),
            "accelerations": list(self.accelerations) if self.accelerations else None,
            "masks": self.masks,
            "val_limit": self.val_limit,
            "evaluation": dict(self.evaluation),
            "diverse": self.diverse,
            "ttt": self.ttt,
            "early_stopping": self.early_stopping,
        }

    @property
    def name(self) -> str:
        return self.model_name or f"{self.recipe}-{self.training.arch}"


def _merge(base: dict[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for k, v in over.items():
        if isinstance(v, Mapping) and isinstance(out.get(k), dict) and k != "model":
            out[k] = _merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def parse_recipe_config(data: Mapping[str, Any]) -> RecipeConfig:
    """Validate a recipe mapping (defaults already merged) into a :class:`RecipeConfig`.

    Raises:
        ValueError: naming the offending key and what was expected.
    """
    bad = sorted(set(data) - _TOP)
    if bad:
        raise ValueError(f"expected recipe keys among {sorted(_TOP)}, got {bad[0]!r}{suggest(bad[0], sorted(_TOP))}")
    name = data.get("recipe")
    if name not in DEFAULTS:
        raise ValueError(f"expected a recipe in {RECIPES}, got {name!r}{suggest(str(name), list(RECIPES))}")
    if data.get("train_on") not in _TRAIN_ON:
        raise ValueError(f"expected train_on in {_TRAIN_ON}, got {data.get('train_on')!r}")
    acc = data.get("accelerations")
    if acc is not None and (not isinstance(acc, list) or not acc or not all(isinstance(a, int) and a > 0 for a in acc)):
        raise ValueError(f"expected accelerations as a list of positive ints or null, got {acc!r}")
    vl = data.get("val_limit")
    if vl is not None and (not isinstance(vl, int) or vl < 1):
        raise ValueError(f"expected val_limit as a positive int or null, got {vl!r}")
    ev = dict(data.get("evaluation") or {})
    if set(ev) - set(_EVAL):
        raise ValueError(f"expected evaluation keys {sorted(_EVAL)}, got {sorted(ev)}")
    es = data.get("early_stopping")
    if es is not None:
        allowed = {"key", "patience", "threshold", "mode", "holdout_fraction"}
        if set(es) - allowed:
            raise ValueError(f"expected early_stopping keys {sorted(allowed)}, got {sorted(es)}")
    masks = data.get("masks", "fresh")
    if masks not in MASK_MODES:
        raise ValueError(f"expected masks in {MASK_MODES}, got {masks!r}")
    if masks == "task" and acc is not None:
        raise ValueError(f"expected no training accelerations with masks: task (the task's own masks), got {acc}")
    dv = data.get("diverse")
    if data.get("train_on") == "diverse" and not (dv and dv.get("group_by")):
        raise ValueError("expected diverse.group_by (a slice-index column or a list of them) for train_on: diverse")
    if dv is not None and set(dv) - _DIVERSE_KEYS:
        raise ValueError(f"expected diverse keys among {sorted(_DIVERSE_KEYS)}, got {sorted(set(dv) - _DIVERSE_KEYS)}")
    if data.get("ttt") is not None and name not in TTT_RECIPES:
        raise ValueError(f"expected a ttt section only in the recipes {TTT_RECIPES}, got one in {name!r}")
    return RecipeConfig(
        recipe=str(name),
        description=str(data.get("description", "")),
        train_on=str(data["train_on"]),
        training=TrainConfig.from_dict(data.get("training") or {}),
        model_name=data.get("model_name"),
        accelerations=tuple(acc) if acc else None,
        masks=str(masks),
        val_limit=vl,
        evaluation={**_EVAL, **ev},
        diverse=dict(dv) if dv else None,
        ttt=dict(data["ttt"]) if data.get("ttt") is not None else None,
        early_stopping=dict(es) if es else None,
    )


def load_recipe_config(
    name: str, overrides: Mapping[str, Any] | str | os.PathLike[str] | None = None, *, epochs: int | None = None
) -> RecipeConfig:
    """A recipe's defaults merged with overrides (a mapping or a YAML file) and ``epochs``.

    Mappings merge key by key, except ``training.model`` (the architecture's keyword arguments),
    which an override replaces as a whole; in ``sup-d22`` and ``ttt-d22`` a replaced complex U-Net
    keeps D22's ``input``, ``maps`` and ``norm`` unless it names others.

    Raises:
        ValueError: unknown recipe (with a suggestion) or invalid keys.
    """
    if name not in DEFAULTS:
        raise ValueError(f"expected a recipe in {RECIPES}, got {name!r}{suggest(name, list(RECIPES))}")
    over: Mapping[str, Any] = {}
    if isinstance(overrides, (str, os.PathLike)):
        p = Path(overrides)
        if not p.is_file():
            raise ValueError(f"expected a recipe config YAML file, got no file at {p}")
        loaded = yaml.safe_load(p.read_text()) or {}
        if not isinstance(loaded, dict):
            raise ValueError(f"expected a mapping in {p.name}, got {type(loaded).__name__}")
        over = loaded
    elif overrides is not None:
        over = overrides
    if over.get("recipe", name) != name:
        raise ValueError(f"expected a config for recipe {name!r}, got one for {over.get('recipe')!r}")
    data = _merge(DEFAULTS[name], over)
    training = data.get("training") or {}
    if name in _D22_RECIPES and training.get("arch") == "unet-complex" and isinstance(training.get("model"), dict):
        # model kwargs are replaced as a whole; a D22 recipe's network keeps D22's input, maps and
        # normalisation unless the override names others
        kept = {k: _D22_UNET[k] for k in ("input", "maps", "norm")}
        training["model"] = {**kept, **training["model"]}
    if epochs is not None:
        data["training"]["epochs"] = int(epochs)
    return parse_recipe_config(data)


# --------------------------------------------------------------------------- results


@dataclass
class RecipeResult:
    """What a recipe run produced.

    Attributes:
        out_dir: the run directory.
        config: the resolved recipe config.
        scores: ``{"test_P": mean SSIM, "test_Q": mean SSIM}`` of the evaluated model.
        history: per-epoch records of the (main) training.
        chosen_epoch: the evaluated epoch.
        train_seconds: summed epoch times (training + per-epoch validation) of the whole training,
            including epochs done before a resume.
        eval_seconds: summed per-slice evaluation times (model + metrics).
        extra: recipe-specific results (diverse: singles; early-stop: decision).
    """

    out_dir: Path
    config: RecipeConfig
    scores: dict[str, float | None]
    history: list[dict[str, Any]]
    chosen_epoch: int
    train_seconds: float
    eval_seconds: float
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class _Data:
    spec: TaskSpec
    root: Path
    index: pd.DataFrame
    splits: dict[str, Split]


def _load_data(
    task: str | TaskSpec,
    data_root: str | os.PathLike[str] | None,
    progress: ProgressFn | None,
    train_on: str | None = None,
) -> _Data:
    from mribench.data.root import resolve_data_root
    from mribench.tasks.embedded import embedded_volumes

    spec = task if isinstance(task, TaskSpec) else load_task(task)
    # on the embedded benchmark, only what this training needs is generated (diverse: everything)
    sides = {"P": ("train_P",), "Q": ("train_Q",), "P+Q": ("train_P", "train_Q")}.get(train_on or "")
    volumes = None if sides is None else embedded_volumes(spec, ("test", *sides))
    root = resolve_data_root(data_root, progress, volumes)
    index = build_index(root)
    splits = make_splits(spec, index)
    return _Data(spec, root, index.table, splits)


def _training_rows(cfg: RecipeConfig, d: _Data) -> tuple[pd.DataFrame, list[MaskSampler]]:
    """Rows to train on and one mask sampler per row."""
    sides = {"P": ["train_P"], "Q": ["train_Q"], "P+Q": ["train_P", "train_Q"]}[cfg.train_on]
    rows, masks = [], []
    for s in sides:
        r = d.splits[s].rows
        if r.empty:
            raise DataError(f"expected training slices in {s} of task {d.spec.name}, got none under {d.root}")
        rows.append(r)
        masks += [MaskSampler.from_spec(d.spec.mask_for(s), cfg.accelerations, cfg.masks == "task")] * len(r)
    return pd.concat(rows, ignore_index=True), masks


def _val_sets(cfg: RecipeConfig, d: _Data) -> dict[str, ValSet]:
    return {
        s: ValSet(spread_subset(d.splits[s].rows, cfg.val_limit), d.spec.mask_for(s))
        for s in ("test_P", "test_Q")
        if not d.splits[s].rows.empty
    }


def _evaluate(
    model: Any, info: ModelInfo, d: _Data, out: Path, cfg: RecipeConfig, device: str, progress: ProgressFn | None
) -> tuple[dict[str, float | None], float]:
    from mribench.api.run import EvalOptions, Runtime
    from mribench.workflows.evaluation import evaluate

    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", StoredRun)  # a resumed recipe reuses its stored evaluation by design
        res = evaluate(
            LoadedModel(model, info),
            d.spec,
            data=d.root,
            run_dir=out,
            mode="resume" if (out / "run.json").is_file() else "new",
            options=EvalOptions(limit=cfg.evaluation["limit"]),
            runtime=Runtime(device=device, batch_size=int(cfg.evaluation["batch_size"]), progress=progress),
        )
    sp = res.summary.splits
    scores = {
        s: ssim.mean if s in sp and (ssim := sp[s].metrics.get("ssim")) is not None else None
        for s in ("test_P", "test_Q")
    }
    # per-slice model + metric seconds summed: the evaluation's cost even when it was resumed
    seconds = float(res.slices["seconds"].sum()) if not res.slices.empty else time.perf_counter() - t0
    return scores, seconds


def _model_info(name: str, path: Path, cfg: RecipeConfig, epoch: int, extra: dict[str, Any] | None = None) -> ModelInfo:
    t = cfg.training
    details = {
        "arch": t.arch,
        "config": t.model,
        "recipe": cfg.recipe,
        "epoch": epoch,
        "path": str(path),
        **(extra or {}),
    }
    return ModelInfo(name, "checkpoint", checkpoint_identity(path), details)


def _train_eval(
    cfg: RecipeConfig,
    d: _Data,
    out: Path,
    rows: pd.DataFrame,
    masks: list[MaskSampler],
    device: str,
    progress: ProgressFn | None,
    on_epoch: Callable[[dict[str, Any]], None] | None,
    data_desc: dict[str, Any],
) -> RecipeResult:
    """Train on ``rows``, pick the epoch (last, or early-stopped), evaluate, write ``baseline.json``."""
    t0 = time.perf_counter()
    val = _val_sets(cfg, d)
    # ID = the test split of the distribution trained on; OOD = the other one (none for P+Q).
    id_sets, ood_sets = {
        "P": (["test_P"], ["test_Q"]),
        "diverse": (["test_P"], ["test_Q"]),
        "Q": (["test_Q"], ["test_P"]),
        "P+Q": (["test_P", "test_Q"], []),
    }[cfg.train_on]
    id_sets = [s for s in id_sets if s in val]
    ood_sets = [s for s in ood_sets if s in val]
    stop_rule = None
    es = cfg.early_stopping
    if es:
        frame = rows.assign(_i=range(len(rows)))
        train_part, held = split_holdout(frame, float(es.get("holdout_fraction", 0.1)), cfg.training.seed)
        masks = [masks[i] for i in train_part["_i"]]
        rows = train_part.drop(columns="_i")
        val = {
            "val_P": ValSet(spread_subset(held.drop(columns="_i"), cfg.val_limit), d.spec.mask_for("train_P")),
            **val,
        }
        id_sets = ["val_P"]
        rule = {k: es[k] for k in ("key", "patience", "threshold", "mode") if k in es}
        stop_rule = functools.partial(should_stop, **rule)
        data_desc = {
            **data_desc,
            "n_slices": len(rows),
            "n_volumes": int(rows["file"].nunique()),
            "holdout_slices": len(held),
            "holdout_volumes": int(held["file"].nunique()),
        }
    extra = {"recipe": cfg.recipe, "task": d.spec.name, "task_version": d.spec.version, "training_data": data_desc}
    tr: TrainResult = train(
        cfg.training,
        rows,
        d.root,
        out / "training",
        masks=masks,
        val_sets=val,
        id_sets=id_sets,
        ood_sets=ood_sets,
        device=device,
        stop_rule=stop_rule,
        extra=extra,
        progress=progress,
        on_epoch=on_epoch,
    )
    # epoch seconds (training + validation) summed over the history: the cost even when resumed
    t_train = sum(float(h.get("seconds") or 0.0) for h in tr.history) or time.perf_counter() - t0
    if dist_rank() != 0:  # under torchrun, rank 0 alone evaluates and writes the run directory
        return RecipeResult(out, cfg, {}, tr.history, tr.last_epoch, t_train, 0.0)
    chosen, decision = tr.last_epoch, None
    if es:
        rule = {k: es[k] for k in ("key", "patience", "threshold", "mode") if k in es}
        dec = early_stopping_epoch(tr.history, **rule)
        chosen = dec.chosen_epoch
        decision = {
            "chosen_epoch": dec.chosen_epoch,
            "stop_epoch": dec.stop_epoch,
            "improvement": dec.improvement,
            "rule": rule,
        }
    ckpt = checkpoint_path(out / "training", chosen)
    model_file = out / "model.safetensors"
    shutil.copyfile(ckpt, model_file)
    model = build_model(cfg.training.arch, cfg.training.model, cfg.training.seed)
    load_weights(model, model_file)
    model.eval()
    ttt_info: dict[str, Any] | None = None
    if cfg.recipe in TTT_RECIPES and cfg.ttt is not None:
        model, ttt_info = wrap_ttt(model, cfg, d.spec)
    info = _model_info(cfg.name, model_file, cfg, chosen, {"ttt": ttt_info} if ttt_info else None)
    scores, t_eval = _evaluate(model, info, d, out, cfg, device, progress)
    result = RecipeResult(
        out, cfg, scores, tr.history, chosen, t_train, t_eval, {"early_stopping": decision} if decision else {}
    )
    _write_baseline(result, d, data_desc, info)
    return result


def wrap_ttt(model: Any, cfg: RecipeConfig, spec: TaskSpec) -> tuple[Any, dict[str, Any]]:
    """The trained network wrapped in its recipe's test-time training (see :attr:`RecipeConfig.ttt`)."""
    try:
        from mribench.workflows.training.ttt import TTTModel
    except ImportError as e:
        raise ModelError(f"expected mribench.workflows.training.ttt for the {cfg.recipe} recipe, got: {e}") from None
    kw = dict(cfg.ttt or {})
    variant = kw.get("variant", "d22")
    try:
        if variant == "fast":
            if kw.get("lr") is None:
                kw["lr"] = cfg.training.lr  # the fast variant adapts with the training learning rate
                kw["settings"] = {"source": "fast variant: the training learning rate"}
            ttt = TTTModel(model, **kw)
        else:
            shift = kw.pop("shift", None) or spec.card.get("shift")
            kw = {k: v for k, v in kw.items() if v is not None}
            explicit = {"lr", "window", "max_steps"} <= set(kw)
            try:
                ttt = TTTModel.from_settings(model, str(shift), **kw)
            except ValueError:
                if not explicit:
                    raise
                # a shift the paper gives no settings for: the config's own, recorded as such
                ttt = TTTModel(model, settings={"source": f"explicit (no table entry for shift {shift!r})"}, **kw)
    except TypeError as e:
        raise ValueError(
            f"expected TTTModel keyword arguments in the recipe's ttt section, got {sorted(kw)}: {e}"
        ) from None
    return ttt, dict(ttt.config)


def _write_baseline(r: RecipeResult, d: _Data, data_desc: dict[str, Any], info: ModelInfo) -> None:
    doc = {
        "schema_version": 1,
        "recipe": r.config.recipe,
        "model": {"name": info.name, "sha256": info.sha256, "file": "model.safetensors", **info.details},
        "config": r.config.to_dict(),
        "task": {"name": d.spec.name, "version": d.spec.version, "sha256": d.spec.sha256},
        "training_data": data_desc,
        "chosen_epoch": r.chosen_epoch,
        "scores": {"ssim": r.scores},
        "train_seconds": r.train_seconds,
        "eval_seconds": r.eval_seconds,
        "history": "training/history.json",
        **r.extra,
    }
    atomic_write_text(r.out_dir / "baseline.json", json.dumps(doc, indent=2, sort_keys=True, default=str))


def _describe(d: _Data, split_names: list[str], rows: pd.DataFrame) -> dict[str, Any]:
    return {
        "splits": split_names,
        "manifests": {s: d.splits[s].manifest for s in split_names if s in d.splits},
        "n_slices": len(rows),
        "n_volumes": int(rows["file"].nunique()),
    }


# --------------------------------------------------------------------------- diverse


def _group_columns(dv: Mapping[str, Any]) -> list[str]:
    by = dv.get("group_by")
    cols = [by] if isinstance(by, str) else list(by or [])
    if not cols or not all(isinstance(c, str) and c for c in cols) or len(set(cols)) != len(cols):
        raise ValueError(f"expected diverse.group_by as a column name or a list of distinct names, got {by!r}")
    return cols


def group_name(value: Any) -> str:
    """The name of a group P_i: its column value, or the values of several columns joined by ``" x "``."""
    return " x ".join(str(v) for v in value) if isinstance(value, tuple) else str(value)


def diverse_groups(cfg: RecipeConfig, d: _Data) -> dict[str, pd.DataFrame]:
    """The training rows of each P_i: groups of ``diverse.group_by`` within the pool.

    ``group_by`` is one slice-index column or a list of them; with a list, every combination of
    values present in the pool is one P_i (Lin & Heckel's contrast x scanner distributions:
    ``[contrast, system_model]``), named ``"<value> x <value>"`` (:func:`group_name`). The pool is
    ``diverse.pool`` (a slice-index filter) or the task's source filter without the ``group_by``
    columns. Volumes of test_P/test_Q and every volume matching Q's filter are excluded.
    ``diverse.groups`` keeps only the named groups. Groups with fewer than ``min_volumes`` volumes
    are dropped. With ``equal_size: true`` every P_i is subsampled to the size of the smallest (in
    slices), or to ``group_size`` slices when that is set; the subsample is a seeded random choice
    of slices (``training.seed`` and the group's name, never the global RNG), sorted.

    Raises:
        ValueError: unknown columns.
        DataError: fewer than two groups with ``min_volumes`` volumes, or a group smaller than
            ``group_size``.
    """
    dv = cfg.diverse or {}
    cols = _group_columns(dv)
    for col in cols:
        if col not in d.index.columns:
            raise ValueError(
                f"expected diverse.group_by to name slice-index columns, got {col!r}{suggest(col, list(d.index.columns))}"
            )
    pool_filter = dv.get("pool")
    if pool_filter is None:
        pool_filter = {k: v for k, v in d.spec.source.filter.items() if k not in cols}
    pool = apply_filter(d.index, dict(pool_filter))
    banned = set(d.splits["test_P"].rows["file"]) | set(d.splits["test_Q"].rows["file"])
    banned |= set(apply_filter(d.index, d.spec.target.filter)["file"])
    pool = pool[~pool["file"].isin(banned)]
    wanted = dv.get("groups")
    wanted_names = None if wanted is None else {group_name(tuple(w)) if isinstance(w, list) else str(w) for w in wanted}
    groups: dict[str, pd.DataFrame] = {}
    for value, g in pool.groupby(cols if len(cols) > 1 else cols[0], sort=True):
        name = group_name(value)
        if wanted_names is not None and name not in wanted_names:
            continue
        if g["file"].nunique() >= int(dv.get("min_volumes", 2)):
            groups[name] = g.sort_values(["file", "slice"]).reset_index(drop=True)
    if len(groups) < 2:
        raise DataError(
            f"expected at least two groups of {' x '.join(cols)} with >= {dv.get('min_volumes', 2)} training "
            f"volumes in the diverse pool {pool_filter}, got {sorted(groups)} (hint: set diverse.pool/groups)"
        )
    size = dv.get("group_size")
    if dv.get("equal_size") or size is not None:
        n = int(size) if size is not None else min(len(g) for g in groups.values())
        small = {k: len(g) for k, g in groups.items() if len(g) < n}
        if n < 1 or small:
            raise DataError(f"expected every group to hold at least group_size={n} slices, got {small}")
        groups = {k: _subsample(g, n, cfg.training.seed, k) for k, g in groups.items()}
    return groups


def _subsample(rows: pd.DataFrame, n: int, seed: int, name: str) -> pd.DataFrame:
    """``n`` of the rows, chosen by a generator seeded from (seed, group name), in (file, slice) order."""
    if len(rows) == n:
        return rows
    digest = hashlib.sha256(f"{seed}:diverse:{name}".encode()).digest()
    rng = np.random.default_rng(int.from_bytes(digest[:8], "little"))
    keep = np.sort(rng.choice(len(rows), size=n, replace=False))
    return rows.iloc[keep].reset_index(drop=True)


def _run_diverse(
    cfg: RecipeConfig,
    d: _Data,
    out: Path,
    device: str,
    progress: ProgressFn | None,
    on_epoch: Callable[[dict[str, Any]], None] | None,
) -> RecipeResult:
    groups = diverse_groups(cfg, d)
    mask = d.spec.mask_for("train_P")
    group_by = (cfg.diverse or {})["group_by"]
    singles: dict[str, Any] = {}
    for value, rows in groups.items():
        sub = out / "singles" / slug(value, "group", basename=False)
        masks = [MaskSampler.from_spec(mask, cfg.accelerations, cfg.masks == "task")] * len(rows)
        desc = {
            "group_by": group_by,
            "groups": [value],
            "n_slices": len(rows),
            "n_volumes": int(rows["file"].nunique()),
        }
        scfg = _with_name(cfg, f"{cfg.name}-{slug(value, 'group', basename=False)}")
        r = _train_eval(scfg, d, sub, rows, masks, device, progress, on_epoch, desc)
        singles[value] = {"scores": r.scores, "run_dir": str(sub.relative_to(out)), "n_slices": len(rows)}
    union = pd.concat(list(groups.values()), ignore_index=True)
    masks = [MaskSampler.from_spec(mask, cfg.accelerations, cfg.masks == "task")] * len(union)
    desc = {
        "group_by": group_by,
        "groups": sorted(groups),
        "n_slices": len(union),
        "n_volumes": int(union["file"].nunique()),
    }
    result = _train_eval(cfg, d, out, union, masks, device, progress, on_epoch, desc)
    if dist_rank() != 0:
        return result
    scored = {k: v for k, v in singles.items() if v["scores"].get("test_Q") is not None}
    best = max(scored, key=lambda k: scored[k]["scores"]["test_Q"]) if scored else None
    summary = {
        "singles": singles,
        "best_single": best,
        "union": result.scores,
        "ood_gain_over_best_single": (result.scores["test_Q"] - scored[best]["scores"]["test_Q"])
        if best and result.scores.get("test_Q") is not None
        else None,
    }
    atomic_write_text(out / "diverse.json", json.dumps(summary, indent=2, sort_keys=True))
    result.extra["diverse"] = summary
    _write_baseline(result, d, desc, _model_info(cfg.name, out / "model.safetensors", cfg, result.chosen_epoch))
    return result


def _with_name(cfg: RecipeConfig, name: str) -> RecipeConfig:
    from dataclasses import replace

    return replace(cfg, model_name=name)


# --------------------------------------------------------------------------- entry point


def default_out_dir(task: str, recipe: str) -> Path:
    return Path("mribench-runs") / "baselines" / task / recipe


def run_recipe(
    name: str,
    task: str | TaskSpec,
    *,
    config: Mapping[str, Any] | str | os.PathLike[str] | None = None,
    epochs: int | None = None,
    device: str = "auto",
    out: str | os.PathLike[str] | None = None,
    data_root: str | os.PathLike[str] | None = None,
    progress: ProgressFn | None = None,
    on_epoch: Callable[[dict[str, Any]], None] | None = None,
) -> RecipeResult:
    """Train and evaluate one baseline recipe on a task; re-running resumes.

    Args:
        name: recipe (:data:`RECIPES`).
        task: task name, YAML path or :class:`TaskSpec`.
        config: overrides of the recipe's defaults (mapping or YAML file).
        epochs: override ``training.epochs``.
        device: ``auto``, ``cpu``, ``cuda``, ``cuda:N``.
        out: run directory (default ``mribench-runs/baselines/<task>/<recipe>``).
        data_root: fastMRI-format data (default ``$MRIBENCH_DATA`` or the embedded benchmark).
        progress: ``progress(done, total, description)``.
        on_epoch: called with every epoch's history record.

    Returns:
        The :class:`RecipeResult`.

    Raises:
        ValueError / MribenchError: unknown recipe, task or keys; missing data; a resume with a
            different configuration.
    """
    cfg = load_recipe_config(name, config, epochs=epochs)
    d = _load_data(task, data_root, progress, cfg.train_on)
    rd = Path(out) if out else default_out_dir(d.spec.name, name)
    rd.mkdir(parents=True, exist_ok=True)
    prev = rd / "recipe.json"
    doc = {"recipe": cfg.to_dict(), "task": d.spec.name, "task_sha256": d.spec.sha256}
    if prev.is_file() and json.loads(prev.read_text()) != json.loads(json.dumps(doc)):
        raise TaskError(
            f"expected the same recipe config and task to resume the run in {rd}, got different ones "
            f"(hint: use another --out)"
        )
    atomic_write_text(prev, json.dumps(doc, indent=2, sort_keys=True))
    with contextlib.ExitStack() as stack:
        if cfg.training.arch == "unet-complex":
            # the complex U-Net estimates ESPIRiT maps (seconds per slice) on every call: keep them for
            # the validation after every epoch and the final evaluation
            from mribench.physics.sensitivity import cached_sensitivities

            stack.enter_context(cached_sensitivities())
        if cfg.train_on == "diverse":
            return _run_diverse(cfg, d, rd, device, progress, on_epoch)
        rows, masks = _training_rows(cfg, d)
        sides = {"P": ["train_P"], "Q": ["train_Q"], "P+Q": ["train_P", "train_Q"]}[cfg.train_on]
        return _train_eval(cfg, d, rd, rows, masks, device, progress, on_epoch, _describe(d, sides, rows))


def recipe_card(name: str) -> dict[str, Any]:
    """Name, description and training data of a recipe (for ``baseline list``)."""
    c = DEFAULTS[name]
    return {
        "name": name,
        "description": c["description"],
        "train_on": c["train_on"],
        "arch": c["training"]["arch"],
        "loss": c["training"]["loss"],
    }


__all__ = [
    "DEFAULTS",
    "RECIPES",
    "MASK_MODES",
    "TTT_RECIPES",
    "RecipeConfig",
    "RecipeResult",
    "default_out_dir",
    "diverse_groups",
    "group_name",
    "load_recipe_config",
    "parse_recipe_config",
    "recipe_card",
    "run_recipe",
    "wrap_ttt",
]
