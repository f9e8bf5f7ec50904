"""Models from any framework: export a task's inputs as files, score reconstruction files.

As in the fastMRI challenge, masked k-space goes out and reconstructions come back:

- :func:`export_inputs` writes, for every volume of a task's evaluated splits, a test-set style
  input file (:mod:`mribench.data.exchange`) holding exactly the masked k-space and mask the
  evaluator gives a model (both are read by :func:`mribench.data.slices.read_sample` from the
  slices :func:`mribench.workflows.evaluation.plan_slices` plans), plus the manifest
  :data:`MANIFEST` (task, splits, masks, files and slices) that scoring checks.
- :func:`score` evaluates the reconstruction files of a folder laid out like the export
  (``<split>/<file>``, dataset ``reconstruction``) with the ordinary evaluator, through a model
  that serves them (:class:`mribench.models.folder.ReconstructionFolder`); the run is stored,
  summarised, reported, checked and submitted like any other.
"""

from __future__ import annotations

import itertools
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mribench._version import __version__
from mribench.api.model import ModelInfo
from mribench.api.run import EvalOptions, ProgressFn, RunMode, Runtime
from mribench.data.exchange import input_file, source_header
from mribench.data.slices import SliceRequest, read_sample
from mribench.errors import DataError
from mribench.models.folder import ExpectedVolume, ReconstructionFolder, folder_identity
from mribench.models.loaded import LoadedModel
from mribench.paths import atomic_write_text, file_sha256, slug
from mribench.physics.masks import MaskSpec
from mribench.results import RunResult
from mribench.tasks import TaskSpec, load_task, manifest_hash
from mribench.workflows.evaluation import SlicePlan, evaluate, plan_slices

MANIFEST = "mribench-inputs.json"
"""File name of an export's manifest (in the export folder)."""
MANIFEST_FORMAT = 1
"""Version of the manifest's layout."""
MAX_LISTED = 100
"""At most this many missing or extra files are named in a run record (all are counted)."""


# --------------------------------------------------------------------------- manifest


def _volumes(plan: SlicePlan) -> list[ExpectedVolume]:
    """The volumes of a plan with the slices they contribute, in the plan's order."""
    out = []
    for s, rows in plan.evaluated.items():
        by_file: dict[str, list[int]] = {}
        for f, i in zip(rows["file"].tolist(), rows["slice"].tolist(), strict=True):
            by_file.setdefault(str(f), []).append(int(i))
        out += [ExpectedVolume(s, f, tuple(sorted(sl)), plan.spec.mask_for(s)) for f, sl in sorted(by_file.items())]
    return out


def inputs_manifest(plan: SlicePlan, limit: int | None = None) -> dict[str, Any]:
    """The manifest of a plan's inputs (without the per-file shapes an export adds).

    Args:
        plan: the planned slices.
        limit: the ``limit`` the plan was made with (recorded).
    """
    splits: dict[str, Any] = {}
    for v in _volumes(plan):
        if v.split not in splits:
            rows = plan.evaluated[v.split]
            splits[v.split] = {
                "mask": plan.spec.mask_for(v.split).to_dict(),
                "manifest": plan.splits[v.split].manifest,
                "evaluated_manifest": manifest_hash(rows),
                "n_slices": len(rows),
                "n_volumes": int(rows["file"].nunique()),
                "files": {},
            }
        splits[v.split]["files"][v.file] = {"slices": list(v.slices)}
    return {
        "format": MANIFEST_FORMAT,
        "mribench": __version__,
        "task": {"name": plan.spec.name, "version": plan.spec.version, "sha256": plan.spec.sha256},
        "limit": limit,
        "splits": splits,
    }


def read_manifest(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read an export's manifest (the file, or the export folder holding :data:`MANIFEST`).

    Raises:
        DataError: missing, unreadable or of an unknown format.
    """
    p = Path(path)
    p = p / MANIFEST if p.is_dir() else p
    try:
        raw = json.loads(p.read_text())
    except (OSError, ValueError) as e:
        raise DataError(
            f"expected an export manifest {p}, got {type(e).__name__}: {e} (hint: `mribench export-inputs` writes it)"
        ) from None
    if not isinstance(raw, dict) or raw.get("format") != MANIFEST_FORMAT or not isinstance(raw.get("splits"), dict):
        got = raw.get("format") if isinstance(raw, dict) else type(raw).__name__
        raise DataError(f"expected an mribench inputs manifest of format {MANIFEST_FORMAT} in {p}, got format {got}")
    return raw


def manifest_differences(exported: dict[str, Any], planned: dict[str, Any]) -> list[str]:
    """How the inputs a manifest describes differ from those planned now (per split planned).

    Returns:
        One line per difference; empty when the planned inputs are the exported ones.
    """
    out = []
    for key in ("name", "version", "sha256"):
        a, b = exported.get("task", {}).get(key), planned["task"][key]
        if a != b:
            out.append(f"task.{key}: {a!r} exported, {b!r} now")
    for s, now in planned["splits"].items():
        then = exported["splits"].get(s)
        if then is None:
            out.append(f"split {s}: not exported (exported: {sorted(exported['splits'])})")
            continue
        for key in ("mask", "manifest", "evaluated_manifest"):
            if then.get(key) != now[key]:
                out.append(f"splits.{s}.{key}: {_short(then.get(key))} exported, {_short(now[key])} now")
        slices_then = {f: v.get("slices") for f, v in (then.get("files") or {}).items()}
        slices_now = {f: v["slices"] for f, v in now["files"].items()}
        if slices_then != slices_now:
            out.append(f"splits.{s}.files: the exported files or slices differ from those planned now")
    return out


def _short(v: Any) -> str:
    return v[:12] if isinstance(v, str) and len(v) == 64 else repr(v)


# --------------------------------------------------------------------------- export


@dataclass
class ExportReport:
    """What :func:`export_inputs` wrote.

    Attributes:
        output: the export folder.
        manifest: the manifest written to ``output / MANIFEST``.
        files: the input files, relative to ``output`` (``<split>/<file>``).
    """

    output: Path
    manifest: dict[str, Any]
    files: list[str] = field(default_factory=list)


def export_inputs(
    task: str | TaskSpec,
    output: str | os.PathLike[str],
    *,
    data: str | os.PathLike[str] | None = None,
    options: EvalOptions | None = None,
    overwrite: bool = False,
    progress: ProgressFn | None = None,
) -> ExportReport:
    """Write the inputs of a task's evaluation as fastMRI test-set style files.

    One file per volume and split, ``<output>/<split>/<file>``, holding the slices the evaluation
    scores in (source) slice order; see :mod:`mribench.data.exchange` for the layout. The manifest
    is written last: a folder with a manifest is a complete export.

    Args:
        task: task name, YAML path or :class:`TaskSpec`.
        output: the export folder.
        data: fastMRI-format folder; default ``$MRIBENCH_DATA`` or the embedded benchmark.
        options: splits, limit and split files (as :func:`mribench.workflows.evaluation.evaluate`).
        overwrite: replace an earlier export in ``output``.
        progress: ``progress(done, total, description)``.

    Raises:
        DataError: ``output`` holds an export or a file to be written (without ``overwrite``), or the
            data cannot be read.
    """
    options = options or EvalOptions()
    spec = task if isinstance(task, TaskSpec) else load_task(task)
    plan = plan_slices(spec, data=data, options=options, progress=progress)
    out = Path(output)
    manifest = inputs_manifest(plan, options.limit)
    targets = [out / v.relpath for v in _volumes(plan)]
    _clear(out, targets, overwrite)
    total = sum(len(r.slices) for r in plan.requests)
    done = 0
    files = []
    for (split, file), group in itertools.groupby(plan.requests, key=lambda r: (r.split, r.file)):
        reqs = list(group)
        entry = manifest["splits"][split]["files"][file]
        entry.update(_write_volume(out / split / file, reqs, entry["slices"]))
        files.append(f"{split}/{file}")
        done += sum(len(r.slices) for r in reqs)
        if progress:
            progress(done, total, f"export {split} {file}")
    atomic_write_text(out / MANIFEST, json.dumps(manifest, indent=1))
    return ExportReport(out, manifest, files)


def _clear(out: Path, targets: list[Path], overwrite: bool) -> None:
    """Refuse to mix exports; with ``overwrite``, remove the files of an earlier one."""
    existing = [p for p in [out / MANIFEST, *targets] if p.exists()]
    if existing and not overwrite:
        raise DataError(
            f"expected a folder without an earlier export, got {existing[0]} "
            f"(hint: --overwrite to replace the export, or another --output)"
        )
    if overwrite and (out / MANIFEST).is_file():
        try:
            old = read_manifest(out)
        except DataError:
            old = {"splits": {}}
        for s, sp in old["splits"].items():
            for f in sp.get("files") or {}:
                (out / s / f).unlink(missing_ok=True)
        (out / MANIFEST).unlink()


def _write_volume(path: Path, reqs: list[SliceRequest], slices: list[int]) -> dict[str, Any]:
    """Write one volume's input file from its requests; returns its per-file manifest fields."""
    first = read_sample(reqs[0])
    if [s for r in reqs for s in r.slices] != slices:
        raise DataError(f"expected the slices {slices} of {reqs[0].file}, got requests for others")
    header, attrs = source_header(reqs[0].path)
    meta = first.meta
    _, c, h, w = (int(x) for x in first.masked_kspace.shape)
    shape = (len(slices), c, h, w)
    with input_file(
        path,
        shape=shape,
        mask=first.mask[0].reshape(-1).numpy(),
        header=header,
        acceleration=meta.acceleration,
        num_low_frequencies=meta.num_low_frequencies,
        slices=slices,
        attrs=attrs,
    ) as write:
        row = 0
        for i, req in enumerate(reqs):
            sample = first if i == 0 else read_sample(req)
            write(row, sample.masked_kspace.numpy())
            row += len(req.slices)
    return {
        "kspace_shape": list(shape),
        "reconstruction_shape": [len(slices), *meta.target_size],
        "acceleration": meta.acceleration,
        "num_low_frequencies": meta.num_low_frequencies,
    }


# --------------------------------------------------------------------------- score


@dataclass
class ScoreResult:
    """What :func:`score` found and scored.

    Attributes:
        result: the run (failed slices, e.g. of missing files, are recorded in it).
        missing: expected reconstruction files (``<split>/<file>``) that are absent.
        extra: files in the folder that the evaluation does not read.
        manifest: the export manifest the inputs were checked against, if any.
    """

    result: RunResult
    missing: list[str]
    extra: list[str]
    manifest: Path | None = None


def reconstruction_model(
    recon_dir: str | os.PathLike[str],
    plan: SlicePlan,
    *,
    name: str | None = None,
    manifest: Path | None = None,
) -> tuple[LoadedModel, list[str], list[str]]:
    """The model serving a folder's reconstructions of a plan's slices.

    Its identity is the sha256 over the reconstruction files it reads; its details name the
    folder, the missing and extra files and the manifest's sha256.

    Returns:
        ``(model, missing, extra)``.
    """
    folder = Path(recon_dir)
    if not folder.is_dir():
        raise DataError(f"expected a folder of reconstruction files, got {folder} (no such folder)")
    volumes = _volumes(plan)
    sha, missing = folder_identity(folder, volumes)
    wanted = {v.relpath for v in volumes}
    extra = sorted(
        rel
        for p in folder.rglob("*")
        if p.is_file() and (rel := p.relative_to(folder).as_posix()) not in wanted and rel != MANIFEST
    )
    details: dict[str, Any] = {
        "description": "reconstructions read from files (fastMRI submission layout)",
        "recon_dir": str(folder.resolve()),
        "n_files": len(wanted) - len(missing),
        "n_missing_files": len(missing),
        "missing_files": missing[:MAX_LISTED],
        "n_extra_files": len(extra),
        "extra_files": extra[:MAX_LISTED],
        "inputs_manifest_sha256": file_sha256(manifest) if manifest else None,
    }
    info = ModelInfo(name or slug(folder.resolve().name, "reconstructions"), "reconstructions", sha, details)
    return LoadedModel(ReconstructionFolder(folder, volumes), info), missing, extra


def model_of_run(run: RunResult) -> LoadedModel:
    """The model of a scored run again (for report panels), from its record and per-slice store.

    Raises:
        DataError: the run did not score reconstruction files, or their folder is gone.
    """
    cfg = run.config
    folder = cfg.model.details.get("recon_dir")
    if cfg.model.kind != "reconstructions" or not isinstance(folder, str) or not Path(folder).is_dir():
        raise DataError(f"expected a run of `mribench score` whose folder exists, got {cfg.model.kind} {folder}")
    volumes = []
    for (split, file), rows in run.slices.groupby(["split", "file"], sort=True):
        m = cfg.masks[str(split)]
        mask = MaskSpec.from_dict(m.model_dump())
        volumes.append(ExpectedVolume(str(split), str(file), tuple(sorted(int(s) for s in rows["slice"])), mask))
    return LoadedModel(
        ReconstructionFolder(folder, volumes), ModelInfo(cfg.model.name, cfg.model.kind, cfg.model.sha256)
    )


def score(
    task: str | TaskSpec,
    recon_dir: str | os.PathLike[str],
    *,
    data: str | os.PathLike[str] | None = None,
    run_dir: str | os.PathLike[str] | None = None,
    mode: RunMode = "new",
    options: EvalOptions | None = None,
    runtime: Runtime | None = None,
    inputs: str | os.PathLike[str] | None = None,
    name: str | None = None,
) -> ScoreResult:
    """Score a folder of reconstruction files like a model (see the module docstring).

    Args:
        task: task name, YAML path or :class:`TaskSpec`.
        recon_dir: ``<split>/<file>`` reconstruction files.
        data: fastMRI-format folder with the targets; default ``$MRIBENCH_DATA`` or the embedded
            benchmark.
        run_dir: where the per-slice store goes (default ``./mribench-runs/<task>/<name>``).
        mode: as :func:`mribench.workflows.evaluation.evaluate`.
        options: as :func:`~mribench.workflows.evaluation.evaluate`; splits and limit must be those
            of the export.
        runtime: as :func:`~mribench.workflows.evaluation.evaluate`.
        inputs: the export folder (or its manifest) to check the inputs against; default the
            manifest in ``recon_dir`` when there is one.
        name: the model's name (default the folder's name).

    Returns:
        The :class:`ScoreResult`.

    Raises:
        DataError: the folder is missing, or the inputs planned now differ from the exported ones.
    """
    options, runtime = options or EvalOptions(), runtime or Runtime()
    spec = task if isinstance(task, TaskSpec) else load_task(task)
    plan = plan_slices(spec, data=data, options=options, batch_size=runtime.batch_size, progress=runtime.progress)
    manifest_path: Path | None = None
    if inputs is not None or (Path(recon_dir) / MANIFEST).is_file():
        src = Path(inputs) if inputs is not None else Path(recon_dir)
        manifest_path = src / MANIFEST if src.is_dir() else src
        diffs = manifest_differences(read_manifest(manifest_path), inputs_manifest(plan, options.limit))
        if diffs:
            raise DataError(
                f"expected the inputs exported in {manifest_path}, got other inputs now: {'; '.join(diffs)} "
                f"(hint: the same task version, data, --splits, --limit and --split-file as the export)"
            )
    model, missing, extra = reconstruction_model(recon_dir, plan, name=name, manifest=manifest_path)
    result = evaluate(model, spec, data=plan.root, run_dir=run_dir, mode=mode, options=options, runtime=runtime)
    return ScoreResult(result, missing, extra, manifest_path)


__all__ = [
    "MANIFEST",
    "ExportReport",
    "ScoreResult",
    "export_inputs",
    "inputs_manifest",
    "manifest_differences",
    "model_of_run",
    "read_manifest",
    "reconstruction_model",
    "score",
]
