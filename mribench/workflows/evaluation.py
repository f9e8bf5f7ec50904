"""Orchestration of an evaluation: slices -> model -> metrics -> per-slice store.

Nothing here computes physics or metrics itself; it wires the data index, the task's splits and
masks, the model and the metric registry together, streams slices (memory stays flat as splits
grow) and records every finished batch durably so that a killed run resumes where it stopped.
"""

from __future__ import annotations

import contextlib
import functools
import os
import platform
import queue
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pandas as pd
import torch

from mribench._version import __version__
from mribench.api.model import SliceMeta
from mribench.data.annotations import Box, boxes_by_slice, load_annotations
from mribench.data.fastmri_io import read_rows
from mribench.data.index import SliceIndex, build_index
from mribench.errors import DataError, MetricError, ResultsError, WeightsMissingError
from mribench.models.loaded import LoadedModel
from mribench.models.loader import load_model
from mribench.paths import slug
from mribench.physics.masks import MaskSpec, volume_mask
from mribench.results import RunResult, SliceStore, load_run, read_config, summarize, write_config
from mribench.tasks import (
    EVAL_SPLITS,
    SPLITS,
    Split,
    TaskSpec,
    load_split_csv,
    load_task,
    make_splits,
    manifest_hash,
)

ProgressFn = Callable[[int, int, str], None]
PRECISIONS: dict[str, torch.dtype | None] = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


def resolve_data_root(data_root: str | os.PathLike[str] | None, progress: ProgressFn | None = None) -> Path:
    """``data_root`` > ``$MRIBENCH_DATA`` > the embedded MRIBench-Sim benchmark (generated on first use)."""
    if data_root:
        return Path(data_root).expanduser()
    env = os.environ.get("MRIBENCH_DATA")
    if env:
        return Path(env).expanduser()
    from mribench.data.synthetic import ensure_synthetic

    cb = (lambda d, t: progress(d, t, "generating MRIBench-Sim")) if progress else None
    return ensure_synthetic(progress=cb)


def resolve_device(device: str) -> torch.device:
    """``auto`` -> cuda when available else cpu; otherwise as given."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        d = torch.device(device)
    except RuntimeError:
        raise ValueError(f"expected a device like auto, cpu, cuda or cuda:1, got {device!r}") from None
    if d.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("expected a CUDA device to be available for --device cuda, got none (hint: --device cpu)")
    return d


# the slice-index columns a work item carries (its volume's metadata, for the mask and SliceMeta)
_ROW_COLUMNS = (
    "file",
    "path",
    "padding_left",
    "padding_right",
    "volume_max",
    "protocol",
    "anatomy",
    "contrast",
    "field_strength",
    "coils",
    "vendor",
)


@dataclass(frozen=True)
class WorkItem:
    """A batch of slices of one volume in one split."""

    split: str
    file: str
    path: Path
    slices: tuple[int, ...]
    mask: MaskSpec
    row: dict[str, Any]  # the volume's index metadata (_ROW_COLUMNS)


class SliceBatches(torch.utils.data.Dataset):  # type: ignore[type-arg]
    """Reads and masks the k-space of each work item (runs in DataLoader workers)."""

    def __init__(self, items: list[WorkItem]) -> None:
        self.items = items

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> dict[str, Any]:
        it = self.items[i]
        try:
            idx = list(it.slices)
            # consecutive slices are read as one hyperslab (h5py's list indexing is a much slower path)
            sel: Any = slice(idx[0], idx[-1] + 1) if idx == list(range(idx[0], idx[-1] + 1)) else idx
            with h5py.File(it.path, "r") as hf:
                kspace = torch.from_numpy(read_rows(hf, "kspace", sel, np.dtype(np.complex64)))
                target = torch.from_numpy(read_rows(hf, "reconstruction_rss", sel, np.dtype(np.float32)))
        except (OSError, KeyError, ValueError) as e:
            return {"index": i, "error": f"reading {it.file} failed: {type(e).__name__}: {e}"}
        w = kspace.shape[-1]
        mask = volume_mask(it.mask, w, it.file, (int(it.row["padding_left"]), int(it.row["padding_right"])))
        mask = mask.reshape(1, 1, 1, w).expand(len(idx), 1, 1, w).contiguous()
        # in place and with NumPy (one thread): the reader must not compete with the model for cores
        np.multiply(kspace.numpy(), mask.numpy(), out=kspace.numpy())
        return {"index": i, "masked_kspace": kspace, "mask": mask, "target": target, "error": None}


def _git_commit(path: Path) -> str | None:
    # output to a file, not a pipe: a process forked meanwhile by another thread (DataLoader workers)
    # inherits the pipe's write end, and reading the pipe to its end would then wait forever
    try:
        with tempfile.TemporaryFile() as out:
            proc = subprocess.run(
                ["git", "-C", str(path), "rev-parse", "HEAD"],
                stdout=out,
                stderr=subprocess.DEVNULL,
                stdin=subprocess.DEVNULL,
                timeout=5,
            )
            out.seek(0)
            text = out.read().decode(errors="replace").strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return text or None if proc.returncode == 0 else None


class _GitCommit:
    """:func:`_git_commit` of a folder, run in a thread from the start so that the set-up overlaps it."""

    def __init__(self, path: Path) -> None:
        self._value: str | None = None
        self._thread = threading.Thread(target=self._run, args=(path,), daemon=True, name="mribench-git")
        self._thread.start()

    def _run(self, path: Path) -> None:
        self._value = _git_commit(path)

    def result(self) -> str | None:
        self._thread.join()
        return self._value


@functools.cache
def _package_commit() -> _GitCommit:
    """The commit of mribench's own checkout (if any): the code loaded in a process does not change."""
    return _GitCommit(Path(__file__).parent)


def _metric_specs(names: list[str], explicit: bool) -> tuple[list[Any], dict[str, str]]:
    from mribench.metrics import get_metric

    specs, unavailable = [], {}
    for n in names:
        spec = get_metric(n)
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
        if name not in SPLITS:
            raise ValueError(f"expected split names in {SPLITS} for --split-file, got {name!r}")
        rows, miss = load_split_csv(path, index)
        splits[name] = Split(name, rows)
        missing[name] = miss
    return missing


def _work_items(
    task: TaskSpec, splits: dict[str, Split], which: tuple[str, ...], root: Path, batch_size: int, limit: int | None
) -> tuple[list[WorkItem], dict[str, pd.DataFrame]]:
    items: list[WorkItem] = []
    evaluated: dict[str, pd.DataFrame] = {}
    for name in which:
        rows = splits[name].rows
        if limit is not None:
            rows = rows.iloc[:limit]
        evaluated[name] = rows
        # plain lists of the columns a work item needs: much faster than per-row pandas access
        files = [str(f) for f in rows["file"].tolist()]
        first: dict[str, int] = {}
        by_file: dict[str, list[int]] = {}
        for i, (f, s) in enumerate(zip(files, rows["slice"].tolist(), strict=True)):
            first.setdefault(f, i)
            by_file.setdefault(f, []).append(int(s))
        columns = {c: rows[c].tolist() for c in _ROW_COLUMNS if c in rows.columns}
        mask = task.mask_for(name)
        for file in sorted(by_file):
            row = {c: v[first[file]] for c, v in columns.items()}
            sl = sorted(by_file[file])
            for i in range(0, len(sl), batch_size):
                items.append(WorkItem(name, file, root / str(row["path"]), tuple(sl[i : i + batch_size]), mask, row))
    return items, evaluated


def _check_recon(recon: Any, b: int, size: tuple[int, int]) -> str | None:
    if not isinstance(recon, torch.Tensor):
        return f"expected the model to return a torch.Tensor, got {type(recon).__name__}"
    if tuple(recon.shape) != (b, *size):
        return f"expected a reconstruction of shape {(b, *size)}, got {tuple(recon.shape)}"
    if recon.is_complex():
        return "expected a real reconstruction (magnitude), got a complex tensor"
    return None


def evaluate(
    model: str | LoadedModel,
    task: str | TaskSpec,
    *,
    checkpoint: str | None = None,
    data_root: str | os.PathLike[str] | None = None,
    run_dir: str | os.PathLike[str] | None = None,
    resume: bool = False,
    overwrite: bool = False,
    metrics: list[str] | None = None,
    splits: tuple[str, ...] = EVAL_SPLITS,
    limit: int | None = None,
    device: str = "auto",
    batch_size: int = 8,
    num_workers: int = 0,
    fail_fast: bool = False,
    normalize_output: bool = False,
    split_files: dict[str, str] | None = None,
    annotations: str | os.PathLike[str] | None = None,
    rank: int = 0,
    world_size: int = 1,
    synchronize: bool = True,
    prepare_only: bool = False,
    precision: str = "fp32",
    progress: ProgressFn | None = None,
) -> RunResult:
    """Evaluate a model on a task's ID and OOD test splits.

    Args:
        model: a model name/path/spec (see :func:`mribench.models.load_model`) or a loaded model.
        task: task name, YAML path or :class:`TaskSpec`.
        checkpoint: weights for ``unet``/``varnet`` or a user factory.
        data_root: fastMRI-format folder; default ``$MRIBENCH_DATA`` or the embedded benchmark.
        run_dir: where the per-slice store goes (default ``./mribench-runs/<task>/<model>``).
        resume: continue a run in ``run_dir`` (configuration must match).
        overwrite: discard an existing run in ``run_dir``.
        metrics: metric names overriding the task's list; asking for a metric whose weights are
            missing is then an error (task defaults are skipped with a note instead).
        splits: splits to evaluate.
        limit: at most this many slices per split (the first in (file, slice) order).
        device: ``auto``, ``cpu``, ``cuda``, ``cuda:N``.
        batch_size: slices per model call (all from one volume).
        num_workers: DataLoader workers reading HDF5.
        fail_fast: stop at the first failed slice.
        normalize_output: match each reconstruction's mean/std to the target's (Lin & Heckel).
        split_files: ``{split: csv}`` in Lin & Heckel's format, replacing the task's split.
        annotations: fastMRI+ CSV (default ``<data_root>/annotations.csv`` when present).
        rank, world_size: shard of the work this process does (distributed evaluation).
        synchronize: with ``world_size > 1``, wait for the other ranks through torch.distributed
            (torchrun); ``False`` for independent shards (cluster array jobs, see
            :mod:`mribench.workflows.launch`), whose run directory was prepared beforehand.
        prepare_only: check and write ``run.json`` and return without evaluating (a launcher does
            this once before starting its shards).
        precision: ``fp32``, or ``bf16`` / ``fp16`` to run the model under ``torch.autocast`` (for
            models that allow it; metrics are always computed in float32/float64).
        progress: ``progress(done, total, description)`` callback.

    Returns:
        The :class:`RunResult` (failed slices are recorded in it, not raised).

    Raises:
        MribenchError subclasses for unknown names, missing data, empty splits, mismatched resumes.
    """
    t_start = time.perf_counter()
    git = (_GitCommit(Path.cwd()), _package_commit()) if rank == 0 else None
    spec = task if isinstance(task, TaskSpec) else load_task(task)
    lm = model if isinstance(model, LoadedModel) else load_model(model, checkpoint)
    for s in splits:
        if s not in SPLITS:
            raise ValueError(f"expected split names in {SPLITS}, got {s!r}")
    if batch_size < 1:
        raise ValueError(f"expected batch_size >= 1, got {batch_size}")
    if precision not in PRECISIONS:
        raise ValueError(f"expected precision in {tuple(PRECISIONS)}, got {precision!r}")
    if limit is not None and limit < 1:
        raise ValueError(f"expected limit >= 1, got {limit}")
    normalize_output = normalize_output or spec.normalize_output  # the task may declare it (LH24 coils)
    root = resolve_data_root(data_root, progress)
    index = build_index(root, annotations=annotations)
    all_splits = make_splits(spec, index, names=splits)  # an empty split raises, saying why
    missing = _apply_split_files(all_splits, index, split_files or {})
    for s in splits:
        if all_splits[s].rows.empty:
            raise DataError(
                f"expected slices in split {s} of task {spec.name}, got none under {root} "
                f"(hint: `mribench tasks splits {spec.name}` shows the split sizes)"
            )
    explicit = metrics is not None
    specs, unavailable = _metric_specs(list(metrics) if metrics else list(spec.metrics), explicit)
    names = [m.name for m in specs]
    from mribench.metrics import profile_ids

    items, evaluated = _work_items(spec, all_splits, splits, root, batch_size, limit)
    dev = resolve_device(device)
    rd = Path(run_dir) if run_dir else Path("mribench-runs") / spec.name / slug(lm.info.name)

    def plan(fresh: bool = False) -> tuple[SliceStore, set[tuple[str, str, int]], list[WorkItem], _Batches]:
        store = SliceStore(rd, rank)
        done = set() if fresh else store.done_keys()
        todo = [it for i, it in enumerate(items) if i % world_size == rank]
        todo = [it for it in todo if any((it.split, it.file, s) not in done for s in it.slices)]
        return store, done, todo, _Batches(todo, num_workers)

    planned = None
    try:
        if rank == 0 and not prepare_only:
            if num_workers > 0 and git is not None:
                for probe in git:  # no fork (DataLoader workers) while a probe's thread spawns git
                    probe.result()
            # reading starts now and overlaps the set-up below (--overwrite empties the run directory
            # before anything is appended; a refused --resume stops the reader in `finally`)
            planned = plan(fresh=overwrite)
        config = {
            "schema_version": 1,
            "task": {
                "name": spec.name,
                "version": spec.version,
                "sha256": spec.sha256,
                "description": spec.description,
                "origin": spec.origin,
            },
            "model": {"name": lm.info.name, "kind": lm.info.kind, "sha256": lm.info.sha256, "details": lm.info.details},
            "metrics": names,
            "higher_is_better": {m.name: m.higher_is_better for m in specs},
            "metric_profiles": profile_ids(names),
            "unavailable_metrics": unavailable,
            "masks": {s: spec.mask_for(s).to_dict() for s in splits},
            "splits": {
                s: {
                    "manifest": all_splits[s].manifest,
                    "evaluated_manifest": all_splits[s].manifest
                    if len(evaluated[s]) == len(all_splits[s].rows)
                    else manifest_hash(evaluated[s]),
                    "n_slices": len(evaluated[s]),
                    "n_volumes": int(evaluated[s]["file"].nunique()),
                    "missing_files": missing.get(s, []),
                    "source": f"split file {split_files[s]}"
                    if split_files and s in split_files
                    else all_splits[s].source,
                }
                for s in splits
            },
            "options": {
                "limit": limit,
                "normalize_output": normalize_output,
                "batch_size": batch_size,
                "precision": precision,
            },
            "data": {"root": str(root), "index_fingerprint": index.fingerprint},
        }
        barrier = _barrier(world_size if synchronize else 1)
        if rank == 0:
            _prepare_run_dir(rd, config, resume, overwrite, rank)
            config = read_config(rd) if resume and (rd / "run.json").is_file() else config
            config["provenance"] = _provenance(dev, world_size, git)
            write_config(rd, config)
        barrier()  # the other ranks start once rank 0 has checked and written run.json
        if prepare_only:
            return load_run(rd)
        store, done, todo, batches = planned = planned or plan()
        boxes = _load_boxes(root, annotations) if any(m.needs_boxes for m in specs) else {}
        try:
            timing = _run_items(
                todo,
                batches,
                lm.to(dev),
                specs,
                store,
                dev,
                done,
                boxes,
                normalize_output,
                fail_fast,
                progress,
                PRECISIONS[precision],
            )
        finally:
            store.close()
    finally:
        if planned is not None:
            planned[3].close()
    timing["wall_seconds"] = time.perf_counter() - t_start
    barrier()  # every rank's slices are on disk before rank 0 summarises
    result = load_run(rd)
    result.config.setdefault("timing", {})[f"rank{rank}"] = timing
    if rank == 0:
        write_config(rd, {**result.config})
        from mribench.paths import atomic_write_text
        from mribench.results import dumps

        atomic_write_text(rd / "summary.json", dumps(result.summary), durable=False)  # a re-derivable cache
    return result


def _barrier(world_size: int) -> Callable[[], None]:
    """A process barrier across ranks (gloo; torchrun's environment), or a no-op for one process."""
    if world_size <= 1:
        return lambda: None
    import torch.distributed as dist

    if not dist.is_initialized():
        if "MASTER_ADDR" not in os.environ:
            raise ValueError("expected torchrun's MASTER_ADDR/MASTER_PORT for a distributed evaluation, got none")
        dist.init_process_group("gloo", rank=int(os.environ.get("RANK", "0")), world_size=world_size)
    return dist.barrier


_MUST_MATCH = ("task", "model", "metrics", "masks", "options", "splits")


def _prepare_run_dir(rd: Path, config: dict[str, Any], resume: bool, overwrite: bool, rank: int) -> None:
    exists = (rd / "run.json").is_file()
    if exists and overwrite and rank == 0:
        import shutil

        shutil.rmtree(rd)
        exists = False
    if exists and not resume:
        raise ResultsError(
            f"expected a new run directory, got an existing run in {rd} "
            f"(hint: --resume to continue it, --overwrite to replace it, or --run-dir)"
        )
    if exists:
        old = read_config(rd)
        for k in _MUST_MATCH:
            a = old.get(k)
            b = _roundtrip(config.get(k))
            if a != b:
                raise ResultsError(
                    f"expected --resume with the same {k} as the run in {rd}, got a different one "
                    f"(hint: use a new --run-dir)"
                )
    rd.mkdir(parents=True, exist_ok=True)


def _roundtrip(x: Any) -> Any:
    import json

    from mribench.results import dumps

    return json.loads(dumps(x))


def _provenance(dev: torch.device, world_size: int, git: tuple[_GitCommit, _GitCommit] | None = None) -> dict[str, Any]:
    git = git or (_GitCommit(Path.cwd()), _package_commit())
    return {
        **_software(),
        "device": str(dev),
        "device_name": torch.cuda.get_device_name(dev)
        if dev.type == "cuda"
        else platform.processor() or platform.machine(),
        "world_size": world_size,
        "threads": torch.get_num_threads(),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "git_commit_cwd": git[0].result(),
        "git_commit_mribench": git[1].result(),
        "mask_seed_rule": "sha256(file name : mask seed) -> fastmri MaskFunc seed",
    }


@functools.cache
def _software() -> dict[str, Any]:
    """Versions of the code this process runs (fixed once imported, so looked up once per process)."""
    from importlib.metadata import PackageNotFoundError, version

    import fastmri  # noqa: F401

    try:
        fastmri_version: str | None = version("fastmri")
    except PackageNotFoundError:
        fastmri_version = None
    return {
        "mribench": __version__,
        "torch": torch.__version__,
        "fastmri": fastmri_version,
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def _load_boxes(root: Path, annotations: str | os.PathLike[str] | None) -> dict[tuple[str, int], list[Box]]:
    ann = Path(annotations) if annotations else root / "annotations.csv"
    return boxes_by_slice(load_annotations(ann)) if ann.is_file() else {}


class _Batches:
    """The batches of the work items in order, read ahead from the moment this is created.

    With ``num_workers == 0`` one thread reads (reads and masking overlap the model and the
    metrics: contiguous datasets are read with ``os.preadv`` and masked with NumPy, both without the
    GIL, see :func:`mribench.data.fastmri_io.read_rows`); otherwise a DataLoader with worker
    processes. The thread also frees the batches the consumer has finished with. :meth:`close` stops
    the reader (also when the consumer stops early or fails).
    """

    def __init__(self, items: list[WorkItem], num_workers: int, depth: int = 2) -> None:
        self._stop = threading.Event()
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=depth)
        self._thread: threading.Thread | None = None
        self._spent: list[Any] = []  # batches the consumer is done with, freed by the reader thread
        self._loader: Iterator[dict[str, Any]] | None = None
        if not items:
            self._loader = iter(())
        elif num_workers > 0:
            ds = SliceBatches(items)
            self._loader = iter(
                torch.utils.data.DataLoader(
                    ds, batch_size=None, shuffle=False, num_workers=num_workers, persistent_workers=False
                )
            )
        else:
            ds = SliceBatches(items)
            self._thread = threading.Thread(target=self._work, args=(ds,), daemon=True, name="mribench-prefetch")
            self._thread.start()

    _DONE = object()

    def _put(self, x: Any) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(x, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _work(self, ds: SliceBatches) -> None:
        try:
            for i in range(len(ds)):
                # freeing a batch's buffers (megabytes) costs the model thread milliseconds at times
                # (unmapping memory another thread allocated); here it overlaps the model instead
                self._spent.clear()
                if not self._put(ds[i]):
                    return
        except BaseException as e:  # re-raised in the consumer
            self._put(e)
            return
        self._put(self._DONE)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        if self._loader is not None:
            yield from self._loader
            return
        while True:
            x = self._queue.get()
            if x is self._DONE:
                return
            if isinstance(x, BaseException):
                raise x
            yield x
            self._spent.append(x)  # the consumer drops its own reference before asking for the next
            x = None

    def close(self) -> None:
        self._stop.set()


def _run_items(
    items: list[WorkItem],
    batches: _Batches,
    lm: LoadedModel,
    specs: list[Any],
    store: SliceStore,
    dev: torch.device,
    done: set[tuple[str, str, int]],
    boxes: dict[tuple[str, int], list[Box]],
    normalize_output: bool,
    fail_fast: bool,
    progress: ProgressFn | None,
    autocast_dtype: torch.dtype | None = None,
) -> dict[str, float]:
    from mribench.metrics import normalize_output as normalize

    def autocast() -> contextlib.AbstractContextManager[Any]:
        if autocast_dtype is not None:
            return torch.autocast(dev.type, dtype=autocast_dtype)
        # fp32: switch off a caller's autocast; otherwise skip constructing a context per batch
        return (
            torch.autocast(dev.type, enabled=False) if torch.is_autocast_enabled(dev.type) else contextlib.nullcontext()
        )

    t_model = t_metrics = 0.0
    total = sum(len(it.slices) for it in items)
    n_done = 0
    for batch in batches:
        it = items[batch["index"]]
        records: list[dict[str, Any]] = []
        base = {"split": it.split, "file": it.file}
        if batch["error"] is not None:
            records = [{**base, "slice": s, "status": "failed", "error": batch["error"]} for s in it.slices]
        else:
            size = (int(batch["target"].shape[-2]), int(batch["target"].shape[-1]))
            w = batch["mask"].shape[-1]
            choice = it.mask.choice(w, it.file)  # the volume's acceleration and centre lines
            meta = SliceMeta(
                file=it.file,
                slices=it.slices,
                target_size=size,
                padding=(int(it.row["padding_left"]), int(it.row["padding_right"])),
                num_low_frequencies=choice.num_low_frequencies,
                acceleration=choice.acceleration,
                volume_max=float(it.row["volume_max"])
                if it.row["volume_max"] is not None
                else float(batch["target"].max()),
                attrs={k: it.row[k] for k in ("protocol", "anatomy", "contrast", "field_strength", "coils", "vendor")},
            )
            t0 = time.perf_counter()
            try:
                with torch.inference_mode(), autocast():
                    recon = lm(batch["masked_kspace"].to(dev), batch["mask"].to(dev), meta)
                err = _check_recon(recon, len(it.slices), size)
                if dev.type == "cuda":
                    torch.cuda.synchronize(dev)
            except Exception as e:  # the model is user code: record the failure, go on
                recon, err = None, f"model raised {type(e).__name__}: {e}"
            t_model += time.perf_counter() - t0
            if err is not None:
                records = [{**base, "slice": s, "status": "failed", "error": err} for s in it.slices]
            else:
                records = _score(recon, batch["target"], meta, specs, boxes, normalize_output, normalize, base, dev)
                t_metrics += sum(r.pop("_metric_seconds", 0.0) for r in records)
            per_slice = (time.perf_counter() - t0) / len(it.slices)
            stats = getattr(lm.model, "last_stats", None)  # models adapting at test time report their steps
            if not (isinstance(stats, list) and len(stats) == len(records)):
                stats = [None] * len(records)
            for r, st in zip(records, stats):
                r["seconds"] = per_slice
                if isinstance(st, dict) and "steps" in st:
                    r["ttt_steps"] = int(st["steps"])
        records = [r for r in records if (it.split, it.file, r["slice"]) not in done]
        store.append(records)
        n_done += len(it.slices)
        if progress:
            progress(n_done, total, f"{it.split} {it.file}")
        if fail_fast and any(r["status"] != "ok" for r in records):
            break
        batch = None  # type: ignore[assignment]  # its buffers are freed by the reader thread (_Batches)
    return {"model_seconds": t_model, "metric_seconds": t_metrics}


def _score(
    recon: torch.Tensor,
    target: torch.Tensor,
    meta: SliceMeta,
    specs: list[Any],
    boxes: dict[tuple[str, int], list[Box]],
    normalize_output: bool,
    normalize: Callable[..., torch.Tensor],
    base: dict[str, Any],
    dev: torch.device,
) -> list[dict[str, Any]]:
    t0 = time.perf_counter()
    recon = recon.detach().float()
    target = target.to(recon.device)
    finite = torch.isfinite(recon).flatten(1).all(1).cpu()
    out: list[dict[str, Any]] = []
    ok = finite.nonzero().flatten().tolist()
    values: dict[str, list[float]] = {}
    if ok:
        r, t = recon[ok], target[ok]
        if normalize_output:
            r = normalize(r, t)
        dr = torch.full((len(ok),), meta.volume_max, dtype=torch.float64)
        bx = [boxes.get((meta.file, meta.slices[i]), []) for i in ok]
        for m in specs:
            values[m.name] = m.compute(t, r, data_range=dr, boxes=bx if m.needs_boxes else None).double().cpu().tolist()
    seconds = time.perf_counter() - t0
    for j, s in enumerate(meta.slices):
        if not bool(finite[j]):
            out.append({**base, "slice": s, "status": "failed", "error": "model returned NaN or Inf values"})
        else:
            k = ok.index(j)
            out.append(
                {**base, "slice": s, "status": "ok", "error": None, "metrics": {n: v[k] for n, v in values.items()}}
            )
    if out:
        out[0]["_metric_seconds"] = seconds
    return out


__all__ = ["evaluate", "resolve_data_root", "resolve_device", "summarize"]
