"""Validate a leaderboard folder: every problem is one line naming the file (for CI).

Checks, per entry file:

* size (JSON <= 5 MiB, sidecar <= 50 MiB), JSON well-formed, finite numbers, schema v1;
* location: ``entries/<task>/<id>.json`` holds an evaluated entry of that task and id,
  ``reported/<task>/<id>.json`` a reported one; no stray files;
* the task exists, its current version equals the entry's and, for evaluated entries, its
  definition hash equals the recorded ``task.sha256``;
* evaluated entries: the sidecar's sha256; its (file, slice) lists hash to the recorded
  ``evaluated_manifest`` of each split (and equal ``manifest`` for full-split runs); every summary
  number recomputes from the sidecar (means and CIs to 1e-9), and so does the cost (seconds and
  test-time-training steps per slice); an entry not marked ``partial`` covers every slice of the
  task's test splits with no failed slice; audit records are consistent with the sidecar;
* with a data root: the task's splits recomputed from the data match the recorded manifests, and
  a limited entry's volumes are the ones its ``limit`` and ``limit_seed`` select;
* gap numbers are consistent (formula; p_trained = the entry's test_Q mean);
* no model id appears twice within a task.

Nothing from a submission is executed or unpickled (see :mod:`mribench.workflows.leaderboard.io`).
"""

from __future__ import annotations

import os
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from mribench.data.subset import select_volumes
from mribench.errors import MribenchError, SubmissionError, TaskError
from mribench.paths import file_sha256
from mribench.tasks import TaskSpec, list_tasks, load_task, make_splits, manifest_hash
from mribench.workflows.leaderboard.entry import ENTRIES_DIR, REPORTED_DIR, incomplete
from mribench.workflows.leaderboard.io import read_json_capped, read_sidecar
from mribench.workflows.leaderboard.schema import MAX_SIDECAR_BYTES, SCHEMA_VERSION, SIDECAR_SUFFIX, Entry
from mribench.workflows.leaderboard.summary import (
    _close,
    check_gaps,
    compare_summaries,
    seconds_per_slice,
    summary_from_slices,
    ttt_steps_per_slice,
)

_IGNORED_NAMES = {".gitkeep", "README.md"}


@dataclass(frozen=True)
class Problem:
    """One reason the leaderboard is invalid.

    Attributes:
        path: the offending file, relative to the leaderboard root.
        code: short category (schema, malformed, oversized, non-finite, location, unknown-task,
            task-version, task-hash, sidecar-hash, sidecar, manifest, summary, cost, coverage, audit,
            gap, duplicate-id, stray-file).
        message: what is wrong, in one line.
    """

    path: str
    code: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: [{self.code}] {self.message}"


class _Tasks:
    """Task lookup: an explicit mapping first, then shipped tasks and ``$MRIBENCH_TASKS_PATH``."""

    def __init__(self, tasks: Mapping[str, TaskSpec] | None) -> None:
        self.explicit = dict(tasks or {})
        self.cache: dict[str, TaskSpec | None] = {}

    def get(self, name: str) -> TaskSpec | None:
        if name in self.explicit:
            return self.explicit[name]
        if name not in self.cache:
            try:
                self.cache[name] = load_task(name)
            except TaskError:
                self.cache[name] = None
        return self.cache[name]

    def known(self) -> list[str]:
        return sorted({*self.explicit, *list_tasks()})


class _Splits:
    """The tasks' splits recomputed from a data root (index built once)."""

    def __init__(self, data_root: Path) -> None:
        self.data_root = data_root
        self._index: Any = None
        self.cache: dict[str, Any] = {}

    def get(self, task: TaskSpec) -> Any:
        if task.name not in self.cache:
            if self._index is None:
                from mribench.data.index import build_index

                self._index = build_index(self.data_root)
            self.cache[task.name] = make_splits(task, self._index)
        return self.cache[task.name]


def _rel(path: Path, root: Path) -> str:
    try:
        return str(path.relative_to(root))
    except ValueError:
        return str(path)


def _has_link(path: Path, root: Path) -> bool:
    """Whether ``path`` or a folder between ``root`` and it is a symbolic link (never followed)."""
    p = path
    while p != root and p != p.parent:
        if p.is_symlink():
            return True
        p = p.parent
    return False


def _schema_problems(rel: str, e: ValidationError) -> list[Problem]:
    out = []
    for err in e.errors()[:5]:
        where = ".".join(str(p) for p in err["loc"]) or "entry"
        msg = str(err["msg"]).splitlines()[0]
        code = "non-finite" if err.get("type") == "finite_number" else "schema"
        out.append(Problem(rel, code, f"schema error at {where}: {msg}"))
    if len(e.errors()) > 5:
        out.append(Problem(rel, "schema", f"... and {len(e.errors()) - 5} more schema error(s)"))
    return out


def _check_evaluated(
    rel: str, path: Path, entry: Entry, task: TaskSpec | None, splits: _Splits | None, root: Path
) -> list[Problem]:
    if entry.slices is None or entry.cost is None:  # the schema requires both on evaluated entries
        return [Problem(rel, "schema", "evaluated entry without slices or cost")]
    sc = path.with_name(entry.slices.file)
    sc_rel = _rel(sc, root)
    if _has_link(sc, root):
        return [Problem(sc_rel, "malformed", "symbolic links are not allowed in the leaderboard")]
    if not sc.is_file():
        return [Problem(rel, "sidecar", f"missing per-slice sidecar {entry.slices.file}")]
    if sc.stat().st_size > MAX_SIDECAR_BYTES:
        return [
            Problem(sc_rel, "oversized", f"oversized sidecar: {sc.stat().st_size} bytes (limit {MAX_SIDECAR_BYTES})")
        ]
    digest = file_sha256(sc)
    if digest != entry.slices.sha256:
        return [
            Problem(
                sc_rel,
                "sidecar-hash",
                f"sha256 {digest[:12]}... does not match the entry's slices.sha256 "
                f"{entry.slices.sha256[:12]}... (sidecar changed after the entry was built)",
            )
        ]
    try:
        df = read_sidecar(sc, list(entry.metrics))
    except SubmissionError as e:
        return [Problem(sc_rel, "sidecar", str(e))]
    out: list[Problem] = []
    if len(df) != entry.slices.rows:
        out.append(Problem(rel, "sidecar", f"slices.rows is {entry.slices.rows} but the sidecar has {len(df)} rows"))
    bad_status = sorted(set(df["status"]) - {"ok", "failed"})
    if bad_status:
        out.append(Problem(sc_rel, "sidecar", f"expected status ok or failed, got {bad_status[:3]}"))
    if df.duplicated(["split", "file", "slice"]).any():
        out.append(Problem(sc_rel, "sidecar", "duplicate (split, file, slice) rows"))
    extra = sorted(set(df["split"]) - set(entry.splits))
    if extra:
        out.append(Problem(sc_rel, "sidecar", f"rows for splits {extra} that the entry does not list"))
    if out:
        return out
    recomputed_splits = splits.get(task) if (splits is not None and task is not None) else None
    for sp, ref in entry.splits.items():
        rows = df[df["split"] == sp]
        got = manifest_hash(rows)
        if got != ref.evaluated_manifest:
            out.append(
                Problem(
                    rel,
                    "manifest",
                    f"splits.{sp}.evaluated_manifest {ref.evaluated_manifest[:12]}... does "
                    f"not match the sidecar's (file, slice) list ({got[:12]}...)",
                )
            )
        if entry.limit is None and ref.evaluated_manifest != ref.manifest:
            out.append(
                Problem(
                    rel,
                    "manifest",
                    f"splits.{sp}: evaluated_manifest differs from manifest but the entry "
                    f"has no limit (a full split must be evaluated)",
                )
            )
        if ref.n_slices != len(rows) or ref.n_volumes != rows["file"].nunique():
            out.append(
                Problem(
                    rel,
                    "manifest",
                    f"splits.{sp} lists {ref.n_slices} slices / {ref.n_volumes} volumes "
                    f"but the sidecar has {len(rows)} / {rows['file'].nunique()}",
                )
            )
        if recomputed_splits is not None:
            full = recomputed_splits[sp].rows
            want = recomputed_splits[sp].manifest
            if entry.limit is None:
                want_eval = want
            elif entry.limit_seed is None:  # written before --limit selected volumes: the first slices
                want_eval = manifest_hash(full.iloc[: entry.limit])
            else:
                want_eval = manifest_hash(select_volumes(full, entry.limit, entry.limit_seed))
            if ref.manifest != want or ref.evaluated_manifest != want_eval:
                where = splits.data_root if splits is not None else "the data"
                out.append(
                    Problem(
                        rel,
                        "manifest",
                        f"splits.{sp} manifest {ref.manifest[:12]}... (evaluated {ref.evaluated_manifest[:12]}...) "
                        f"does not match the task's split recomputed from {where} ({want[:12]}..., "
                        f"evaluated {want_eval[:12]}...)",
                    )
                )
    recomputed = summary_from_slices(df, list(entry.metrics), dict(entry.higher_is_better), entry.summary.gap)
    out.extend(Problem(rel, "summary", d) for d in compare_summaries(entry.summary, recomputed))
    sps = seconds_per_slice(df)
    if not _close(entry.cost.seconds_per_slice, sps):
        out.append(
            Problem(
                rel,
                "cost",
                f"cost.seconds_per_slice is {entry.cost.seconds_per_slice!r} but the sidecar's seconds give {sps!r}",
            )
        )
    steps = ttt_steps_per_slice(df)
    if not _close(entry.cost.ttt_steps, steps):
        out.append(
            Problem(
                rel, "cost", f"cost.ttt_steps is {entry.cost.ttt_steps!r} but the sidecar's ttt_steps give {steps!r}"
            )
        )
    failed: dict[str, int] = {str(sp): int(s.n_failed or 0) for sp, s in recomputed.splits.items()}
    refs: dict[str, Any] = {str(sp): ref for sp, ref in entry.splits.items()}
    why = incomplete(refs, entry.limit, failed, manifests=False)
    if why and not entry.partial:
        out.append(
            Problem(
                rel,
                "coverage",
                f"a ranked entry must cover every slice of the task's test splits without failures, got "
                f"{'; '.join(why)} (hint: re-evaluate the full splits, or mark it partial: submit --partial)",
            )
        )
    out.extend(Problem(rel, "audit", m) for m in _audit_problems(entry, df))
    return out


def _audit_problems(entry: Entry, df: Any) -> list[str]:
    """Audit records that cannot be right: a sample outside the sidecar, counts that disagree."""
    out = []
    for i, a in enumerate(entry.audits):
        if a.passed != (a.mismatches == 0):
            out.append(f"audits[{i}]: passed is {a.passed} with {a.mismatches} mismatching slice(s)")
        n = 0
        for sp, files in a.sample.items():
            rows = df[(df["split"] == sp) & df["file"].isin(files)]
            unknown = sorted(set(files) - set(rows["file"]))
            if unknown:
                out.append(f"audits[{i}].sample.{sp} lists volumes the entry has no results for: {unknown[:3]}")
            n += len(rows)
        if n != a.n_slices:
            out.append(f"audits[{i}].n_slices is {a.n_slices} but its sample has {n} slices in the sidecar")
    return out


def _check_location(rel_parts: tuple[str, ...], entry: Entry) -> list[str]:
    """Messages for an entry stored in the wrong place (expects ``<kind dir>/<task>/<id>.json``)."""
    msgs = []
    want_dir = ENTRIES_DIR if entry.kind == "evaluated" else REPORTED_DIR
    if len(rel_parts) != 3 or rel_parts[0] != want_dir:
        msgs.append(f"expected a {entry.kind} entry at {want_dir}/{entry.task.name}/{entry.model.id}.json")
    else:
        if rel_parts[1] != entry.task.name:
            msgs.append(f"task folder {rel_parts[1]!r} does not match task.name {entry.task.name!r}")
        if rel_parts[2] != f"{entry.model.id}.json":
            msgs.append(
                f"file name {rel_parts[2]!r} does not match model.id {entry.model.id!r} (expected "
                f"{entry.model.id}.json)"
            )
    return msgs


def _stray_files(root: Path, claimed: set[Path]) -> list[Problem]:
    out = []
    for sub in (ENTRIES_DIR, REPORTED_DIR):
        d = root / sub
        if not d.is_dir():
            continue
        for p in sorted(d.rglob("*")):
            if p.is_symlink() and p.suffix != ".json" and p not in claimed:
                out.append(Problem(_rel(p, root), "stray-file", "symbolic link"))
                continue
            if p.is_dir() or p.name in _IGNORED_NAMES or p.suffix == ".json" or p in claimed:
                continue
            if p.name.endswith(SIDECAR_SUFFIX) and p.with_name(p.name[: -len(SIDECAR_SUFFIX)] + ".json").is_file():
                continue  # belongs to an entry that has its own problem (unreadable / invalid)
            what = "orphan sidecar (no entry lists it)" if p.name.endswith(SIDECAR_SUFFIX) else "unexpected file"
            out.append(Problem(_rel(p, root), "stray-file", what))
    return out


def validate_leaderboard(
    root: str | os.PathLike[str] = "leaderboard",
    *,
    data_root: str | os.PathLike[str] | None = None,
    tasks: Mapping[str, TaskSpec] | None = None,
) -> list[Problem]:
    """Validate every entry under ``root``.

    Args:
        root: the leaderboard folder.
        data_root: data the evaluated entries were run on (default ``$MRIBENCH_DATA`` if set); when
            given, each task's splits are recomputed and compared with the recorded manifests.
            Without it, manifests are checked against the sidecars' (file, slice) lists only.
        tasks: extra task definitions by name (e.g. test tasks); otherwise tasks are resolved with
            :func:`mribench.tasks.load_task` (shipped tasks and ``$MRIBENCH_TASKS_PATH``).

    Returns:
        The problems, sorted by file (empty when the leaderboard is valid).
    """
    r = Path(root)
    if not r.is_dir():
        return [Problem(str(r), "malformed", "leaderboard folder not found")]
    droot = data_root if data_root is not None else os.environ.get("MRIBENCH_DATA") or None
    splits = _Splits(Path(droot)) if droot else None
    lookup = _Tasks(tasks)
    problems: list[Problem] = []
    claimed: set[Path] = set()
    ids: dict[tuple[str, str], list[str]] = defaultdict(list)
    for sub in (ENTRIES_DIR, REPORTED_DIR):
        d = r / sub
        if not d.is_dir():
            continue
        for path in sorted(p for p in d.rglob("*.json") if p.is_file()):
            rel = _rel(path, r)
            if _has_link(path, r):
                problems.append(Problem(rel, "malformed", "symbolic links are not allowed in the leaderboard"))
                continue
            try:
                raw = read_json_capped(path)
            except SubmissionError as e:
                msg = str(e)
                code = (
                    "oversized"
                    if msg.startswith("oversized")
                    else "non-finite"
                    if msg.startswith("non-finite")
                    else "malformed"
                )
                problems.append(Problem(rel, code, msg))
                continue
            if raw.get("schema_version") != SCHEMA_VERSION:
                problems.append(
                    Problem(
                        rel, "schema", f"expected schema_version {SCHEMA_VERSION}, got {raw.get('schema_version')!r}"
                    )
                )
                continue
            try:
                entry = Entry.model_validate(raw)
            except ValidationError as e:
                problems.extend(_schema_problems(rel, e))
                continue
            if entry.slices is not None:
                claimed.add(path.with_name(entry.slices.file))
            for msg in _check_location(path.relative_to(r).parts, entry):
                problems.append(Problem(rel, "location", msg))
            task = lookup.get(entry.task.name)
            if task is None:
                from mribench.registry import suggest

                known = lookup.known()
                problems.append(
                    Problem(
                        rel,
                        "unknown-task",
                        f"unknown task {entry.task.name!r}"
                        f"{suggest(entry.task.name, known)} (known: {', '.join(known)})",
                    )
                )
            elif task.version == entry.task.version and entry.kind == "evaluated" and entry.task.sha256 != task.sha256:
                problems.append(
                    Problem(
                        rel,
                        "task-hash",
                        f"task {entry.task.name} v{task.version} has sha256 {task.sha256[:12]}... but the entry was "
                        f"scored on {(entry.task.sha256 or 'an unrecorded definition')[:12]}... (the task changed "
                        f"without a version bump, or the entry was edited: re-evaluate on the current task)",
                    )
                )
            elif task.version != entry.task.version:
                problems.append(
                    Problem(
                        rel,
                        "task-version",
                        f"task {entry.task.name} is at version {task.version} but "
                        f"the entry was scored on version {entry.task.version} "
                        f"(re-evaluate on the current version)",
                    )
                )
            if entry.kind == "evaluated":
                ok_task = task if (task is not None and task.version == entry.task.version) else None
                try:
                    problems.extend(_check_evaluated(rel, path, entry, ok_task, splits, r))
                except MribenchError as e:  # e.g. the data root cannot be indexed
                    problems.append(Problem(rel, "manifest", f"cannot recompute splits: {e}"))
            problems.extend(Problem(rel, "gap", msg) for msg in check_gaps(entry.summary, dict(entry.higher_is_better)))
            ids[(entry.task.name, entry.model.id)].append(rel)
    for (task_name, model_id), files in ids.items():
        if len(files) > 1:
            for f in files[1:]:
                problems.append(
                    Problem(
                        f, "duplicate-id", f"duplicate model id {model_id!r} in task {task_name} (also in {files[0]})"
                    )
                )
    problems.extend(_stray_files(r, claimed))
    return sorted(problems, key=lambda p: (p.path, p.code, p.message))
