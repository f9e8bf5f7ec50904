"""Orchestration of an evaluation: slices -> model -> metrics -> per-slice store.

Nothing here reads files, computes physics or metrics itself: the data layer's slice source
(:mod:`mribench.data.slices`) reads and masks the task's splits, the model reconstructs, the metric
registry scores, and :mod:`mribench.results` records every finished batch durably so that a killed
run resumes where it stopped. How it runs (device, threads, the distributed barrier, provenance) is
:mod:`mribench.workflows.runtime`.
"""

from __future__ import annotations

import json
import os
import shutil
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from mribench.api.model import ReportsSliceStats, Sample
from mribench.api.run import (
    RUN_MODES,
    DataRecord,
    EvalOptions,
    MaskRecord,
    ModelRecord,
    ProgressFn,
    RankTiming,
    RunConfig,
    RunMode,
    RunOptions,
    Runtime,
    SplitRecord,
    TaskRecord,
    comparable,
)
from mribench.data.annotations import Box, boxes_by_slice, load_annotations
from mribench.data.index import SliceIndex, build_index
from mribench.data.root import resolve_data_root
from mribench.data.slices import Prefetcher, SliceRequest, SliceSource, plan_requests
from mribench.data.subset import select_volumes
from mribench.errors import DataError, MetricError, RunConflict, StoredRun, WeightsMissingError
from mribench.models.loaded import LoadedModel
from mribench.models.loader import ModelLike, load_model
from mribench.paths import slug
from mribench.results import (
    RunResult,
    RunReuse,
    SliceStore,
    dumps,
    load_run,
    read_config,
    write_config,
    write_summary,
)
from mribench.tasks import Split, TaskSpec, load_split_csv, load_task, make_splits, manifest_hash
from mribench.tasks.embedded import embedded_volumes
from mribench.workflows.runtime import (
    GitCommit,
    autocast,
    barrier,
    git_probes,
    provenance,
    resolve_device,
    torch_threads,
)


def evaluate(
    model: ModelLike,
    task: str | TaskSpec,
    *,
    data: str | os.PathLike[str] | None = None,
    run_dir: str | os.PathLike[str] | None = None,
    mode: RunMode = "new",
    options: EvalOptions | None = None,
    runtime: Runtime | None = None,
) -> RunResult:
    """Evaluate a model on a task's ID and OOD test splits.

    A run directory holds one configuration (model identity, task, data, metrics, options: the
    fields :func:`mribench.api.run.comparable` compares). Evaluating the same configuration again
    returns the stored result at once (``result.reuse.kind == "stored"``, nothing recomputed), or
    continues a run that was killed (``"continued"``: only the missing slices are computed); either
    way a :class:`~mribench.errors.StoredRun` notice says so. Another configuration in the same
    run directory is refused with every differing field named (:class:`~mribench.errors.RunConflict`):
    pass another ``run_dir``, or ``mode="overwrite"``. Task metrics that were skipped for missing
    weights when a run started stay out of it after the weights appear (so that every slice of a
    run has the same metrics); ``mode="overwrite"`` computes them.

    Args:
        model: a model name, checkpoint path, ``file.py:attr`` / ``module:attr`` spec (see
            :func:`mribench.models.load_model`; a checkpoint for ``unet``/``varnet`` is loaded with
            ``load_model(name, checkpoint)``), a :class:`LoadedModel`, or a model object: any callable
            ``model(masked_kspace, mask, meta) -> image`` or ``torch.nn.Module`` (recorded with kind
            ``object``, whose identity is its source and parameters; see
            :func:`mribench.models.loader.model_from_object`).
        task: task name, YAML path or :class:`TaskSpec`.
        data: fastMRI-format folder; default ``$MRIBENCH_DATA`` or the embedded benchmark.
        run_dir: where the per-slice store goes (default ``./mribench-runs/<task>/<model>``).
        mode: ``new`` (start a run, or reuse the run of the same configuration in ``run_dir`` as
            described above), ``resume`` (the same, and it also continues per-slice results whose
            ``run.json`` was removed; for scripts and cluster shards) or ``overwrite`` (discard the
            run in ``run_dir`` and start again).
        options: what changes the numbers (:class:`EvalOptions`: metrics, splits, limit, ...).
        runtime: how it runs (:class:`Runtime`: device, batch size, workers, threads, shard, ...).

    Returns:
        The :class:`RunResult` (failed slices are recorded in it, not raised); its ``reuse`` says
        whether stored slices were used.

    Raises:
        RunConflict: ``run_dir`` holds a run of another configuration.
        MribenchError subclasses for unknown names, missing data, empty splits.
    """
    t_start = time.perf_counter()
    options, runtime = options or EvalOptions(), runtime or Runtime()
    _check_mode(mode)
    with torch_threads(runtime.threads):
        git = git_probes() if runtime.rank == 0 else None
        plan = _plan(model, task, data, run_dir, options, runtime)
        rd, rank = plan.run_dir, runtime.rank
        prior = _prior_run(plan, mode)
        if prior is not None and prior.complete and runtime.world_size == 1:
            result = load_run(rd)
            result.reuse = prior.reuse("stored")
            warnings.warn(_notice(result.reuse, rd, plan.model), StoredRun, stacklevel=2)
            return result
        reading: _Reading | None = None
        try:
            if rank == 0:
                if runtime.num_workers > 0 and git is not None:
                    for probe in git:  # no fork (DataLoader workers) while a probe's thread spawns git
                        probe.result()
                # reading starts now and overlaps the set-up below (overwrite empties the run directory
                # before anything is appended)
                reading = _start_reading(plan, runtime, fresh=mode == "overwrite")
            sync = barrier(runtime.world_size if runtime.synchronize else 1)
            if rank == 0:
                _write_record(plan, mode, runtime, git, prior)
            sync()  # the other ranks start once rank 0 has checked and written run.json
            reading = reading or _start_reading(plan, runtime)
            try:
                timing = _run(plan, reading, runtime)
            finally:
                reading.store.close()
        finally:
            if reading is not None:
                reading.batches.close()
        timing.wall_seconds = time.perf_counter() - t_start
        sync()  # every rank's slices are on disk before rank 0 summarises
        result = load_run(rd)
        result.config.timing[f"rank{rank}"] = timing
        if rank == 0:
            write_config(rd, result.config)
            write_summary(rd, result.summary)
        if prior is not None and (prior.n_stored or prior.left_out):
            result.reuse = prior.reuse("continued")
            if rank == 0:
                warnings.warn(_notice(result.reuse, rd, plan.model), StoredRun, stacklevel=2)
        return result


def prepare_run(
    model: ModelLike,
    task: str | TaskSpec,
    *,
    data: str | os.PathLike[str] | None = None,
    run_dir: str | os.PathLike[str] | None = None,
    mode: RunMode = "new",
    options: EvalOptions | None = None,
    runtime: Runtime | None = None,
) -> RunConfig:
    """Check a run's configuration and write its ``run.json`` without evaluating.

    A launcher does this once before starting its shards (each then runs :func:`evaluate` with
    ``mode="resume"``). Arguments as :func:`evaluate`.

    Returns:
        The run record as written.
    """
    options, runtime = options or EvalOptions(), runtime or Runtime()
    _check_mode(mode)
    with torch_threads(runtime.threads):
        plan = _plan(model, task, data, run_dir, options, runtime)
        return _write_record(plan, mode, runtime, None, _prior_run(plan, mode))


# --------------------------------------------------------------------------- set-up


@dataclass
class _Plan:
    """Everything resolved before the first slice: the record, the requests, the model, the metrics."""

    run_dir: Path
    config: RunConfig
    requests: list[SliceRequest]
    model: LoadedModel
    device: torch.device
    metric_specs: list[Any]
    root: Path
    options: EvalOptions

    def scorer(self) -> _Scorer:
        needs_boxes = any(m.needs_boxes for m in self.metric_specs)
        boxes = _load_boxes(self.root, self.options.annotations) if needs_boxes else {}
        return _Scorer(self.metric_specs, boxes, self.options.normalize_output)


@dataclass(frozen=True)
class SlicePlan:
    """The slices an evaluation reads, planned once for every consumer of a task's inputs.

    :func:`evaluate` reads them; ``mribench export-inputs`` writes them to files and ``mribench
    score`` scores reconstructions of them, so all three see the same slices and masks.

    Attributes:
        spec: the task.
        root: the data root.
        index: its slice index.
        splits: the task's splits (full), by name.
        evaluated: the rows evaluated per split (``limit`` applied).
        missing: per split, the split-file rows whose volume is missing.
        requests: the batches to read, ordered by split, file, slice.
    """

    spec: TaskSpec
    root: Path
    index: SliceIndex
    splits: dict[str, Split]
    evaluated: dict[str, pd.DataFrame]
    missing: dict[str, list[str]]
    requests: list[SliceRequest]


def plan_slices(
    task: str | TaskSpec,
    *,
    data: str | os.PathLike[str] | None = None,
    options: EvalOptions | None = None,
    batch_size: int = 8,
    progress: ProgressFn | None = None,
) -> SlicePlan:
    """Plan the slices of a task's evaluation (see :class:`SlicePlan`).

    Args:
        task: task name, YAML path or :class:`TaskSpec`.
        data: fastMRI-format folder; default ``$MRIBENCH_DATA`` or the embedded benchmark.
        options: splits, limit, split files and annotations are used.
        batch_size: slices per request (all from one volume).
        progress: ``progress(done, total, description)`` while the embedded benchmark is generated.

    Raises:
        DataError: a requested split has no slices.
    """
    options = options or EvalOptions()
    spec = task if isinstance(task, TaskSpec) else load_task(task)
    needs = ("test", *(s for s in options.splits if s in ("train_P", "train_Q")))
    root = resolve_data_root(data, progress, embedded_volumes(spec, needs))  # embedded: only what is scored
    index = build_index(root, annotations=options.annotations)
    splits = make_splits(spec, index, names=options.splits)
    missing = _apply_split_files(splits, index, options.split_files)
    for s in options.splits:
        if splits[s].rows.empty:
            raise DataError(
                f"expected slices in split {s} of task {spec.name}, got none under {root} "
                f"(hint: `mribench tasks splits {spec.name}` shows the split sizes)"
            )
    requests: list[SliceRequest] = []
    evaluated: dict[str, pd.DataFrame] = {}
    for s in options.splits:
        rows = splits[s].rows
        evaluated[s] = select_volumes(rows, options.limit, options.limit_seed)
        requests += plan_requests(evaluated[s], s, spec.mask_for(s), root, batch_size)
    return SlicePlan(spec, root, index, splits, evaluated, missing, requests)


def _plan(
    model: ModelLike,
    task: str | TaskSpec,
    data: str | os.PathLike[str] | None,
    run_dir: str | os.PathLike[str] | None,
    options: EvalOptions,
    runtime: Runtime,
) -> _Plan:
    spec = task if isinstance(task, TaskSpec) else load_task(task)
    if spec.normalize_output and not options.normalize_output:  # the task declares it (LH24 coils)
        options = options.model_copy(update={"normalize_output": True})
    lm = load_model(model)
    explicit = options.metrics is not None
    specs, unavailable = _metric_specs(list(options.metrics or spec.metrics), explicit)
    sp = plan_slices(spec, data=data, options=options, batch_size=runtime.batch_size, progress=runtime.progress)
    config = _record(spec, lm, specs, unavailable, sp.splits, sp.evaluated, sp.missing, options, sp.root, sp.index)
    device = resolve_device(runtime.device)
    rd = Path(run_dir) if run_dir else Path("mribench-runs") / spec.name / slug(lm.info.name)
    return _Plan(rd, config, sp.requests, lm, device, specs, sp.root, options)


def _record(
    spec: TaskSpec,
    lm: LoadedModel,
    specs: list[Any],
    unavailable: dict[str, str],
    splits: dict[str, Split],
    evaluated: dict[str, pd.DataFrame],
    missing: dict[str, list[str]],
    options: EvalOptions,
    root: Path,
    index: SliceIndex,
) -> RunConfig:
    """The run record of a planned evaluation (its provenance is added when it is written)."""
    from mribench.metrics import profile_ids

    names = [m.name for m in specs]
    full = {s: len(evaluated[s]) == len(splits[s].rows) for s in options.splits}
    return RunConfig(
        task=TaskRecord(
            name=spec.name,
            version=spec.version,
            sha256=spec.sha256,
            description=spec.description,
            origin=spec.origin,
        ),
        model=ModelRecord(
            name=lm.info.name,
            kind=lm.info.kind,
            sha256=lm.info.sha256,
            details=json.loads(dumps(lm.info.details)),  # as run.json will hold them
        ),
        metrics=names,
        higher_is_better={m.name: m.higher_is_better for m in specs},
        metric_profiles=json.loads(dumps(profile_ids(names))),
        unavailable_metrics=unavailable,
        masks={s: MaskRecord.model_validate(spec.mask_for(s).to_dict()) for s in options.splits},
        splits={
            s: SplitRecord(
                manifest=splits[s].manifest,
                evaluated_manifest=splits[s].manifest if full[s] else manifest_hash(evaluated[s]),
                n_slices=len(evaluated[s]),
                n_volumes=int(evaluated[s]["file"].nunique()),
                missing_files=missing.get(s, []),
                source=f"split file {options.split_files[s]}" if s in options.split_files else splits[s].source or None,
            )
            for s in options.splits
        },
        options=RunOptions(
            limit=options.limit,
            limit_seed=None if options.limit is None else options.limit_seed,
            normalize_output=options.normalize_output,
            precision=options.precision,
        ),
        data=DataRecord(root=str(root), index_fingerprint=index.fingerprint),
    )


def _metric_specs(names: list[str], explicit: bool) -> tuple[list[Any], dict[str, str]]:
    from mribench.metrics import get_metric

    specs: list[Any] = []
    unavailable: dict[str, str] = {}
    for n in names:
        spec = get_metric(n)  # an alias (``lpips``) gives its metric (``lpips_vgg``), recorded by its own name
        if any(s.name == spec.name for s in specs):
            continue
        try:
            spec.check_available()
        except WeightsMissingError as e:
            if explicit:
                raise
            unavailable[n] = str(e)
            continue
        specs.append(spec)
    if not specs:
        raise MetricError(f"expected at least one computable metric, got none (unavailable: {unavailable})")
    return specs, unavailable


def _apply_split_files(
    splits: dict[str, Split], index: SliceIndex, split_files: dict[str, str]
) -> dict[str, list[str]]:
    missing: dict[str, list[str]] = {}
    for name, path in split_files.items():
        rows, miss = load_split_csv(path, index)
        splits[name] = Split(name, rows)
        missing[name] = miss
    return missing


def _load_boxes(root: Path, annotations: str | os.PathLike[str] | None) -> dict[tuple[str, int], list[Box]]:
    ann = Path(annotations) if annotations else root / "annotations.csv"
    return boxes_by_slice(load_annotations(ann)) if ann.is_file() else {}


# --------------------------------------------------------------------------- run-dir lifecycle


def _check_mode(mode: str) -> None:
    if mode not in RUN_MODES:
        raise ValueError(f"expected mode in {RUN_MODES}, got {mode!r}")


@dataclass
class _Prior:
    """The run already in a run directory, of the same configuration as the planned one.

    Attributes:
        config: its record.
        n_stored: planned slices already in its store.
        n_planned: slices the evaluation plans.
        left_out: task metrics the run was started without (their weights were missing then) that
            are computable now: they stay out of the run.
    """

    config: RunConfig
    n_stored: int
    n_planned: int
    left_out: list[str]

    @property
    def complete(self) -> bool:
        return self.n_stored == self.n_planned

    def reuse(self, kind: str) -> RunReuse:
        return RunReuse(kind, self.n_stored, self.n_planned, list(self.left_out))


_CONFLICT_HINT = 'run_dir=... for a separate run, or mode="overwrite" to replace it'
_CONFLICT_CLI_HINT = "--run-dir DIR for a separate run, or --overwrite to replace it"


def _prior_run(plan: _Plan, mode: RunMode) -> _Prior | None:
    """The run of the same configuration in the plan's run directory (None: none, or ``overwrite``).

    Task metrics that joined only because their weights appeared since the run started are left
    out of the plan (the run keeps the metrics it started with).

    Raises:
        RunConflict: the directory holds a run of another configuration, or per-slice results
            without a ``run.json``.
    """
    rd = plan.run_dir
    if mode == "overwrite":
        return None
    store = SliceStore(rd)
    if not (rd / "run.json").is_file():
        # per-slice results without a record: refused unless continued on purpose (``resume``: what
        # `mribench check --until-decided` does to extend its run with more volumes)
        if mode != "resume" and store.records():
            raise RunConflict(
                rd, ["run.json: missing, but per-slice results are stored"], _CONFLICT_HINT, _CONFLICT_CLI_HINT
            )
        return None
    old = read_config(rd)
    left_out = _keep_started_metrics(plan, old)
    diffs = comparable(old, plan.config, same_run=True)
    if diffs:
        raise RunConflict(rd, diffs, _CONFLICT_HINT, _CONFLICT_CLI_HINT)
    done = store.done_keys()
    planned = {(r.split, r.file, s) for r in plan.requests for s in r.slices}
    return _Prior(old, len(planned & done), len(planned), left_out)


def _keep_started_metrics(plan: _Plan, old: RunConfig) -> list[str]:
    """Drop from the plan the task metrics a run in progress was started without because their
    weights were missing then; returns their names (none when metrics were asked for explicitly)."""
    if plan.options.metrics is not None:
        return []
    new = plan.config.metrics
    joined = [m for m in new if m not in old.metrics]
    if not joined or any(m not in old.unavailable_metrics for m in joined) or any(m not in new for m in old.metrics):
        return []
    cfg = plan.config
    plan.metric_specs = [m for m in plan.metric_specs if m.name in old.metrics]
    plan.config = cfg.model_copy(
        update={
            "metrics": [m for m in new if m in old.metrics],
            "higher_is_better": {k: v for k, v in cfg.higher_is_better.items() if k in old.metrics},
            "metric_profiles": {k: v for k, v in cfg.metric_profiles.items() if k in old.metrics},
            "unavailable_metrics": {**cfg.unavailable_metrics, **{m: old.unavailable_metrics[m] for m in joined}},
        }
    )
    return joined


def _notice(reuse: RunReuse, rd: Path, model: LoadedModel) -> str:
    """The :class:`StoredRun` notice of a run that used stored slices (Python words)."""
    if reuse.kind == "stored":
        text = (
            f"{rd} holds this evaluation already (same model identity, task, data and options): its stored result "
            f"is returned and nothing was recomputed"
        )
        if model.info.kind == "object":
            text += " (the model's identity is its source and parameters only)"
    else:
        text = f"continued the run in {rd}: {reuse.n_stored} of {reuse.n_planned} slices were stored already"
    if reuse.left_out:
        text += (
            f"; metrics {', '.join(reuse.left_out)} were unavailable (weights missing) when the run started and "
            f"stay out of it"
        )
    return text + ' (hint: mode="overwrite" recomputes everything)'


def _write_record(
    plan: _Plan, mode: RunMode, runtime: Runtime, git: tuple[GitCommit, GitCommit] | None, prior: _Prior | None
) -> RunConfig:
    """Write ``run.json`` (rank 0 only): the plan's record, or the run's own when it is continued."""
    rd = plan.run_dir
    if mode == "overwrite":  # a run directory only: never a folder that holds no run
        if (rd / "run.json").is_file():
            shutil.rmtree(rd)
        elif (rd / "slices").is_dir():
            shutil.rmtree(rd / "slices")
    config = prior.config if prior is not None else plan.config
    rd.mkdir(parents=True, exist_ok=True)
    config = config.model_copy(update={"provenance": provenance(plan.device, runtime, git)})
    write_config(rd, config)
    return config


@dataclass
class _Reading:
    """This rank's store, the slices it already holds, the requests still to do and their reader."""

    store: SliceStore
    done: set[tuple[str, str, int]]
    requests: list[SliceRequest]
    batches: Prefetcher


def _start_reading(plan: _Plan, runtime: Runtime, fresh: bool = False) -> _Reading:
    """This rank's requests not yet in the store, and a prefetcher that starts reading them now."""
    store = SliceStore(plan.run_dir, runtime.rank)
    done = set() if fresh else store.done_keys()
    todo = [r for i, r in enumerate(plan.requests) if i % runtime.world_size == runtime.rank]
    todo = [r for r in todo if any((r.split, r.file, s) not in done for s in r.slices)]
    return _Reading(store, done, todo, Prefetcher(SliceSource(todo), runtime.num_workers))


# --------------------------------------------------------------------------- model and metrics


def _check_recon(recon: Any, b: int, size: tuple[int, int]) -> str | None:
    if not isinstance(recon, torch.Tensor):
        return f"expected the model to return a torch.Tensor, got {type(recon).__name__}"
    if tuple(recon.shape) != (b, *size):
        return f"expected a reconstruction of shape {(b, *size)}, got {tuple(recon.shape)}"
    if recon.is_complex():
        return "expected a real reconstruction (magnitude), got a complex tensor"
    return None


def _run(plan: _Plan, reading: _Reading, runtime: Runtime) -> RankTiming:
    """Reconstruct and score every batch, appending its records to the store as it finishes."""
    dev, precision = plan.device, plan.options.precision
    lm, scorer = plan.model.to(dev), plan.scorer()
    requests, done = reading.requests, reading.done
    t_model = t_metrics = 0.0
    total = sum(len(r.slices) for r in requests)
    n_done = 0
    for item in reading.batches:
        req = requests[item["index"]]
        base = {"split": req.split, "file": req.file}
        sample: Sample | None = item["sample"]
        if sample is None:
            records = [{**base, "slice": s, "status": "failed", "error": item["error"]} for s in req.slices]
        else:
            meta = sample.meta
            t0 = time.perf_counter()
            try:
                with torch.inference_mode(), autocast(dev, precision):
                    recon = lm(sample.masked_kspace.to(dev), sample.mask.to(dev), meta)
                err = _check_recon(recon, len(req.slices), meta.target_size)
                if dev.type == "cuda":
                    torch.cuda.synchronize(dev)
            except Exception as e:  # the model is user code: record the failure, go on
                recon, err = None, f"model raised {type(e).__name__}: {e}"
            t_model += time.perf_counter() - t0
            if err is not None or recon is None:
                records = [{**base, "slice": s, "status": "failed", "error": err} for s in req.slices]
            else:
                records = scorer.score(recon, sample, base)
                t_metrics += sum(r.pop("_metric_seconds", 0.0) for r in records)
            per_slice = (time.perf_counter() - t0) / len(req.slices)
            stats = _slice_stats(lm.model, len(records))
            for r, st in zip(records, stats):
                r["seconds"] = per_slice
                if st is not None and "steps" in st:
                    r["ttt_steps"] = int(st["steps"])
        records = [r for r in records if (req.split, req.file, r["slice"]) not in done]
        reading.store.append(records)
        n_done += len(req.slices)
        if runtime.progress:
            runtime.progress(n_done, total, f"{req.split} {req.file}")
        if runtime.fail_fast and any(r["status"] != "ok" for r in records):
            break
        item = sample = None  # type: ignore[assignment]  # its buffers are freed by the reader thread
    return RankTiming(model_seconds=t_model, metric_seconds=t_metrics)


def _slice_stats(model: Any, n: int) -> list[Any]:
    """Per-slice stats of a model that reports them (test-time training steps), else ``None`` each."""
    stats = list(model.slice_stats()) if isinstance(model, ReportsSliceStats) else []
    return stats if len(stats) == n and all(isinstance(s, dict) for s in stats) else [None] * n


class _Scorer:
    """The metrics of a run applied to a batch's reconstructions (data range: the volume max)."""

    def __init__(self, specs: list[Any], boxes: dict[tuple[str, int], list[Box]], normalize_output: bool) -> None:
        from mribench.metrics import normalize_output as normalize
        from mribench.metrics.region import mean_per_slice

        self._mean_per_slice = mean_per_slice

        self.specs, self.boxes, self.normalize_output, self._normalize = specs, boxes, normalize_output, normalize

    def score(self, recon: torch.Tensor, sample: Sample, base: dict[str, Any]) -> list[dict[str, Any]]:
        """One record per slice: ``ok`` with its metrics, or ``failed`` for non-finite output."""
        meta = sample.meta
        t0 = time.perf_counter()
        recon = recon.detach().float()
        target = sample.target.to(recon.device)
        finite = torch.isfinite(recon).flatten(1).all(1).cpu()
        out: list[dict[str, Any]] = []
        ok = finite.nonzero().flatten().tolist()
        values: dict[str, list[float]] = {}
        box_values: dict[str, list[list[float]]] = {}  # region metrics: one score per box, per slice
        if ok:
            r, t = recon[ok], target[ok]
            if self.normalize_output:
                r = self._normalize(r, t)
            dr = torch.full((len(ok),), meta.volume_max, dtype=torch.float64)
            bx = [self.boxes.get((meta.file, meta.slices[i]), []) for i in ok]
            for m in self.specs:
                if m.needs_boxes and m.per_box is not None:
                    box_values[m.name] = m.compute_boxes(t, r, data_range=dr, boxes=bx)
                    values[m.name] = self._mean_per_slice(box_values[m.name]).tolist()
                else:
                    values[m.name] = (
                        m.compute(t, r, data_range=dr, boxes=bx if m.needs_boxes else None).double().cpu().tolist()
                    )
        seconds = time.perf_counter() - t0
        for j, s in enumerate(meta.slices):
            if not bool(finite[j]):
                out.append({**base, "slice": s, "status": "failed", "error": "model returned NaN or Inf values"})
            else:
                k = ok.index(j)
                rec = {
                    **base,
                    "slice": s,
                    "status": "ok",
                    "error": None,
                    "metrics": {n: v[k] for n, v in values.items()},
                }
                if box_values:
                    rec["box_metrics"] = {n: v[k] for n, v in box_values.items()}
                out.append(rec)
        if out:
            out[0]["_metric_seconds"] = seconds
        return out


__all__ = ["SlicePlan", "evaluate", "plan_slices", "prepare_run"]
