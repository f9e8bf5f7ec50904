"""Audits: re-evaluate a random sample of an entry's slices and compare them with its sidecar.

``mribench leaderboard validate`` proves that an entry's numbers are what its per-slice sidecar
recomputes to, but not that the sidecar holds what the model computes: consistent invented numbers
validate. An audit closes that gap. It draws a sample when it runs (whole volumes, a fraction of
each evaluated split, by a fresh seed: :func:`mribench.data.subset.volume_order`), re-evaluates the
entry's model on exactly those slices (same task definition, metric definitions, normalisation and
precision; the model's sha256 must equal the entry's), and compares every slice: same status, and
each metric within its tolerance (:class:`mribench.metrics.registry.Tolerance`). The result is
recorded in the entry (:class:`~mribench.workflows.leaderboard.schema.Audit`) and shown on the site;
an entry whose latest audit failed is not ranked.
"""

from __future__ import annotations

import csv
import datetime as _dt
import math
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from mribench.api.run import EvalOptions, Runtime, comparable
from mribench.data.subset import volume_order
from mribench.paths import atomic_write_text
from mribench.results import RunResult
from mribench.workflows.check import CheckMisuse
from mribench.workflows.leaderboard.entry import entry_to_json, entry_to_run, parse_entry
from mribench.workflows.leaderboard.io import read_json_capped
from mribench.workflows.leaderboard.schema import Audit, Entry

if TYPE_CHECKING:
    from mribench.models.loaded import LoadedModel
    from mribench.tasks import TaskSpec

MAX_LISTED = 20


@dataclass(frozen=True)
class AuditResult:
    """An audit's record, its mismatching slices (up to :data:`MAX_LISTED`, one line each) and its run."""

    record: Audit
    mismatches: list[str]
    run: RunResult

    @property
    def passed(self) -> bool:
        return self.record.passed


def draw_sample(entry_run: RunResult, fraction: float, seed: int) -> dict[str, list[str]]:
    """``{split: volumes}``: ``ceil(fraction * volumes)`` (at least one) of each split's volumes,
    the first in :func:`mribench.data.subset.volume_order` with ``seed``."""
    if not 0 < fraction <= 1:
        raise ValueError(f"expected a fraction in (0, 1], got {fraction} (hint: --fraction 0.1)")
    df = entry_run.slices
    out = {}
    for sp in sorted(set(df["split"])):
        files = volume_order(df.loc[df["split"] == sp, "file"].tolist(), seed)
        out[sp] = sorted(files[: max(1, math.ceil(fraction * len(files)))])
    return out


def _split_files(entry_run: RunResult, sample: dict[str, list[str]], folder: Path) -> dict[str, str]:
    """One split CSV (Lin & Heckel's format, a row per slice) per sampled split, in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    df = entry_run.slices
    out = {}
    for sp, files in sample.items():
        rows = df[(df["split"] == sp) & df["file"].isin(files)].sort_values(["file", "slice"])
        path = folder / f"{sp}.csv"
        with open(path, "w", newline="") as fh:
            w = csv.writer(fh, lineterminator="\n")
            w.writerow(["filename", "start_slice", "end_slice"])
            w.writerows([f, int(s), int(s) + 1] for f, s in zip(rows["file"], rows["slice"]))
        out[sp] = str(path)
    return out


def _compare(
    recorded: RunResult, audited: RunResult, metrics: list[str]
) -> tuple[int, dict[str, float | None], list[str]]:
    """Mismatching slices, the largest difference per metric, and up to MAX_LISTED lines."""
    from mribench.metrics import tolerance_of

    key = ["split", "file", "slice"]
    a = recorded.slices.merge(audited.slices, on=key, how="left", suffixes=("_rec", "_aud"), indicator=True)
    bad = np.zeros(len(a), dtype=bool)
    lines: list[str] = []
    missing = (a["_merge"] != "both").to_numpy()
    status_differs = (a["status_rec"] != a["status_aud"]).to_numpy() & ~missing
    bad |= missing | status_differs
    for i in np.flatnonzero(missing | status_differs)[:MAX_LISTED].tolist():
        r = a.iloc[i]
        what = "not re-evaluated" if missing[i] else f"status {r['status_rec']} recorded, {r['status_aud']} now"
        lines.append(f"{r['split']} {r['file']} slice {r['slice']}: {what}")
    largest: dict[str, float | None] = {}
    both_ok = ((a["status_rec"] == "ok") & (a["status_aud"] == "ok")).to_numpy()
    for m in metrics:
        rec, aud = a[f"{m}_rec"].to_numpy(float), a[f"{m}_aud"].to_numpy(float)
        same_nan = np.isnan(rec) & np.isnan(aud)
        diff = np.abs(aud - rec)
        allowed = np.array([tolerance_of(m).allowed(x) for x in rec])
        off = both_ok & ~same_nan & ~(diff <= allowed)  # NaN on one side only is off too
        finite = both_ok & np.isfinite(diff)
        largest[m] = float(diff[finite].max()) if finite.any() else None
        for i in np.flatnonzero(off).tolist():
            if len(lines) < MAX_LISTED:
                r = a.iloc[i]
                lines.append(
                    f"{r['split']} {r['file']} slice {r['slice']}: {m} recorded {rec[i]:.6g}, re-evaluated "
                    f"{aud[i]:.6g} (|difference| {diff[i]:.3g} > tolerance {allowed[i]:.3g})"
                )
        bad |= off
    return int(bad.sum()), largest, lines


def audit_entry(
    entry: str | os.PathLike[str],
    model: str | LoadedModel,
    *,
    data: str | os.PathLike[str] | None = None,
    fraction: float = 0.1,
    seed: int | None = None,
    task: str | TaskSpec | None = None,
    checkpoint: str | None = None,
    runtime: Runtime | None = None,
    run_dir: str | os.PathLike[str] | None = None,
    record: bool = True,
) -> AuditResult:
    """Re-evaluate a random sample of an evaluated entry's slices and compare them with its sidecar.

    Args:
        entry: the entry's JSON (its sidecar next to it).
        model: the entry's model (a name, path or spec as for :func:`mribench.load_model`, or a
            loaded model); its sha256 must equal the entry's ``model.sha256``.
        data: the data the entry was evaluated on (default: ``$MRIBENCH_DATA`` or the embedded
            benchmark).
        fraction: fraction of each evaluated split's volumes to re-evaluate (at least one).
        seed: the sample's seed (default: drawn now, from the operating system).
        task: the task (default: the entry's task by name); its version and hash must be the entry's.
        checkpoint: weights for ``unet``/``varnet`` models.
        runtime: how the re-evaluation runs (device, batch size, threads).
        run_dir: where it is stored (default ``mribench-runs/audit/<task>/<model id>``).
        record: append the audit to the entry's ``audits`` (rewrites its JSON).

    Returns:
        The :class:`AuditResult` (``passed`` when every sampled slice matches).

    Raises:
        CheckMisuse: a reported entry, another model, another task or metric definition.
        SubmissionError: an unreadable entry or sidecar.
    """
    from mribench.models.loader import load_model
    from mribench.tasks import TaskSpec, load_task
    from mribench.workflows.evaluation import evaluate

    path = Path(entry)
    ent = parse_entry(read_json_capped(path))
    if ent.kind != "evaluated":
        raise CheckMisuse(f"expected an evaluated entry to audit, got a {ent.kind} entry {path} (no per-slice results)")
    recorded = entry_to_run(path)
    spec = task if isinstance(task, TaskSpec) else load_task(task or ent.task.name)
    if spec.version != ent.task.version or (ent.task.sha256 and spec.sha256 != ent.task.sha256):
        raise CheckMisuse(
            f"expected task {ent.task.name} as the entry was scored on (v{ent.task.version}, sha256 "
            f"{(ent.task.sha256 or '?')[:12]}), got v{spec.version} sha256 {spec.sha256[:12]} (hint: the entry is "
            f"stale: re-evaluate it on the current task)"
        )
    lm = load_model(model, checkpoint) if isinstance(model, str) else model
    if ent.model.sha256 and lm.info.sha256 != ent.model.sha256:
        raise CheckMisuse(
            f"expected the entry's model (sha256 {ent.model.sha256[:12]}), got {lm.info.name} with sha256 "
            f"{lm.info.sha256[:12]} (hint: the same weights or checkpoint the entry was evaluated with)"
        )
    seed = secrets.randbits(31) if seed is None else seed
    sample = draw_sample(recorded, fraction, seed)
    rd = Path(run_dir) if run_dir else Path("mribench-runs") / "audit" / ent.task.name / ent.model.id
    opts = recorded.config.options
    options = EvalOptions(
        metrics=tuple(ent.metrics),
        splits=tuple(sample),
        normalize_output=opts.normalize_output,
        precision=opts.precision,
        split_files=_split_files(recorded, sample, rd.with_name(rd.name + ".sample")),
    )
    run = evaluate(lm, spec, data=data, run_dir=rd, mode="overwrite", options=options, runtime=runtime)
    diffs = comparable(recorded.config, run.config, splits=[], metrics=list(ent.metrics))
    if diffs:
        raise CheckMisuse(f"expected the entry's definitions of its numbers, got {'; '.join(diffs)} (entry first)")
    sampled = recorded.slices[
        np.logical_or.reduce(
            [(recorded.slices["split"] == sp) & recorded.slices["file"].isin(f) for sp, f in sample.items()]
        )
    ]
    n_bad, largest, lines = _compare(RunResult(recorded.run_dir, recorded.config, sampled), run, list(ent.metrics))
    from mribench._version import __version__

    audit = Audit(
        date=_dt.datetime.now(_dt.timezone.utc).replace(microsecond=0),
        mribench_version=__version__,
        passed=n_bad == 0,
        fraction=fraction,
        seed=seed,
        sample=sample,  # type: ignore[arg-type]
        n_slices=len(sampled),
        mismatches=n_bad,
        max_difference=largest,
        device=run.config.provenance.device,
    )
    if record:
        _append(path, ent, audit)
    return AuditResult(audit, lines, run)


def _append(path: Path, entry: Entry, audit: Audit) -> None:
    """Rewrite the entry's JSON with the audit appended (its sidecar is unchanged)."""
    updated = entry.model_copy(update={"audits": [*entry.audits, audit]})
    atomic_write_text(path, entry_to_json(Entry.model_validate(updated.model_dump())))


__all__ = ["AuditResult", "audit_entry", "draw_sample"]
