"""Robustness curves: a metric versus acceleration, coil count or added noise, with an AUC.

Each point is an ordinary evaluation (resumable, stored in its own run directory), so curves
reuse the evaluator's streaming, failure handling and provenance.
"""

from __future__ import annotations

import copy
import math
import os
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from mribench.api.model import ModelInfo, ReconModel, SliceMeta
from mribench.api.run import EvalOptions, RunMode, Runtime
from mribench.data.index import build_index
from mribench.data.root import resolve_data_root
from mribench.errors import RunConflict, StoredRun
from mribench.models.loaded import LoadedModel
from mribench.models.loader import load_model
from mribench.paths import slug
from mribench.physics.masks import volume_seed
from mribench.results import RunResult
from mribench.tasks import TaskSpec, load_task, parse_task
from mribench.tasks.embedded import embedded_volumes
from mribench.workflows.evaluation import evaluate

AXES = ("acceleration", "coils", "snr")
DEFAULT_VALUES: dict[str, tuple[float, ...]] = {"acceleration": (2, 3, 4, 6, 8), "snr": (math.inf, 30.0, 20.0, 10.0)}


@dataclass
class CurveResult:
    """Mean metric per axis value, per split.

    Attributes:
        axis: ``acceleration``, ``coils`` or ``snr``.
        metric: the metric.
        points: ``{split: {x: mean}}``.
        ci: ``{split: {x: (low, high)}}`` (95%, cluster bootstrap over volumes).
        auc: ``{split: area under the curve}`` (mean metric over the normalised x range).
        runs: ``{x: run_dir}``.
    """

    axis: str
    metric: str
    points: dict[str, dict[float, float]] = field(default_factory=dict)
    ci: dict[str, dict[float, tuple[float, float]]] = field(default_factory=dict)
    auc: dict[str, float] = field(default_factory=dict)
    runs: dict[float, str] = field(default_factory=dict)


class NoisyMeasurements:
    """Wraps a model so it sees k-space with added complex Gaussian noise at a given SNR (dB).

    The noise of a slice is seeded by its file name and slice index, so every model sees the same.
    """

    def __init__(self, model: ReconModel, snr_db: float) -> None:
        self.model = model
        self.snr_db = snr_db

    def to(self, device: torch.device) -> NoisyMeasurements:
        mover = getattr(self.model, "to", None)
        if callable(mover):
            moved: Any = mover(device)
            self.model = moved if moved is not None else self.model
        return self

    def __call__(self, masked_kspace: torch.Tensor, mask: torch.Tensor, meta: SliceMeta) -> torch.Tensor:
        from mribench.analysis import add_noise

        noisy = torch.stack(
            [
                add_noise(masked_kspace[i], self.snr_db, seed=volume_seed(meta.file, s), mask=mask[i].bool())
                for i, s in enumerate(meta.slices)
            ]
        )
        return self.model(noisy, mask, meta)


def _with_acceleration(task: TaskSpec, acc: int) -> TaskSpec:
    raw = copy.deepcopy(task.raw)
    raw.pop("name", None)
    for side in ("source", "target"):
        m = dict(raw[side].get("mask", {}))
        m.update(acceleration=int(acc))
        for k in ("center_fraction", "center_fractions", "accelerations", "center_lines"):
            m.pop(k, None)
        raw[side]["mask"] = m
    top = dict(raw.get("mask", {}))  # the curve's own fraction-based masks: no D22 centre lines
    for k in ("center_lines", "center_lines_min_width", "center_fractions", "accelerations"):
        top.pop(k, None)
    raw["mask"] = top
    for side in ("source", "target"):
        raw[side]["mask"].pop("center_lines_min_width", None)
    raw.pop("include", None)
    return parse_task(raw, f"{task.name}@{int(acc)}x")


def _points(run: RunResult, metric: str, key: Callable[[Any], float] | None, x: float | None, cr: CurveResult) -> None:
    from mribench.analysis import bootstrap_mean_ci

    ok = run.slices[run.slices["status"] == "ok"]
    for split, g in ok.groupby("split"):
        groups: list[tuple[Any, Any]] = [(x, g)] if key is None else list(g.groupby(g.apply(key, axis=1)))
        for xv, gg in groups:
            vals = gg[metric].to_numpy(float)
            keep = vals == vals
            if not keep.any():
                continue
            ci = bootstrap_mean_ci(vals[keep], gg["file"].to_numpy()[keep], n_boot=1000)
            cr.points.setdefault(str(split), {})[float(xv)] = float(ci.mean)
            cr.ci.setdefault(str(split), {})[float(xv)] = (float(ci.low), float(ci.high))


def robustness_curve(
    model: str | LoadedModel,
    task: str | TaskSpec,
    axis: str,
    *,
    values: list[float] | None = None,
    metric: str = "ssim",
    data: str | os.PathLike[str] | None = None,
    run_root: str | os.PathLike[str] = "mribench-runs/curves",
    limit: int | None = None,
    overwrite: bool = False,
    runtime: Runtime | None = None,
) -> CurveResult:
    """Evaluate ``model`` along a shift axis.

    Args:
        model: model name/spec or loaded model (``load_model(name, checkpoint)`` for weights).
        task: the task whose test splits are evaluated.
        axis: ``acceleration`` (mask of both sides set to each value), ``coils`` (one run, slices
            grouped by their coil count) or ``snr`` (noise added to the measurements, dB; ``inf`` is
            clean).
        values: axis values (defaults: accelerations 2, 3, 4, 6, 8; SNR inf, 30, 20, 10 dB).
        metric: the metric of the curve.
        data: fastMRI-format folder; default ``$MRIBENCH_DATA`` or the embedded benchmark.
        run_root: each point's run directory goes below it.
        limit: at most N volumes per split per point (:class:`mribench.api.run.EvalOptions`).
        overwrite: recompute every point; by default a point whose run (same model identity and
            options) is stored is reused, and an unfinished one continued.
        runtime: how each point's evaluation runs (device, batch size, progress, ...).

    Returns:
        The :class:`CurveResult` with an AUC per split.

    Raises:
        RunConflict: a point's run directory holds a run of another configuration (another
            model version, ``limit`` or metric): pass another ``run_root`` or ``overwrite=True``.
    """
    from mribench.analysis import robustness_auc

    if axis not in AXES:
        raise ValueError(f"expected axis in {AXES}, got {axis!r}")
    runtime = runtime or Runtime()
    spec = task if isinstance(task, TaskSpec) else load_task(task)
    lm = model if isinstance(model, LoadedModel) else load_model(model)
    root = resolve_data_root(data, runtime.progress, embedded_volumes(spec, ("test",)))
    cr = CurveResult(axis, metric)
    base = Path(run_root) / spec.name / slug(lm.info.name)
    options = EvalOptions(metrics=(metric,), limit=limit)

    def run(m: LoadedModel, t: TaskSpec, tag: str) -> RunResult:
        mode: RunMode = "overwrite" if overwrite else "new"
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", StoredRun)  # reusing a curve's stored points is the point
                return evaluate(
                    m, t, data=root, run_dir=base / f"{axis}-{tag}", mode=mode, options=options, runtime=runtime
                )
        except RunConflict as e:
            raise e.with_hints(
                "run_root=... for separate runs, or overwrite=True to recompute the curve",
                "--run-root DIR for separate runs, or --overwrite to recompute the curve",
            ) from None

    if axis == "coils":
        r = run(lm, spec, "all")
        coils = build_index(root).table.drop_duplicates("file").set_index("file")["coils"]
        _points(r, metric, lambda row: float(coils[row["file"]]), None, cr)
        cr.runs = {x: str(r.run_dir) for x in sorted({float(c) for c in coils})}
    else:
        for x in values or DEFAULT_VALUES[axis]:
            if axis == "acceleration":
                r = run(lm, _with_acceleration(spec, int(x)), f"{int(x)}x")
            else:
                noisy = LoadedModel(
                    NoisyMeasurements(lm.model, float(x)),
                    ModelInfo(
                        f"{lm.info.name}+snr{x:g}dB",
                        lm.info.kind,
                        lm.info.sha256,
                        {**lm.info.details, "snr_db": float(x)},
                    ),
                )
                r = run(noisy, spec, "clean" if math.isinf(x) else f"{x:g}dB")
            _points(r, metric, None, float(x), cr)
            cr.runs[float(x)] = str(r.run_dir)
    for split, pts in cr.points.items():
        finite = {k: v for k, v in pts.items() if math.isfinite(k)}
        if len(finite) >= 2:
            cr.auc[split] = float(robustness_auc(finite))
    return cr
