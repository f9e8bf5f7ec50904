"""Turn a run directory into a leaderboard entry, write it, and read entries back.

Layout under the leaderboard root (default ``leaderboard/``)::

    entries/<task>/<model>.json              evaluated entry
    entries/<task>/<model>.slices.parquet    its per-slice sidecar
    reported/<task>/<model>.json             numbers copied from a paper (no sidecar)
    schema/entry-v1.json                     the JSON Schema of an entry
"""

from __future__ import annotations

import datetime as _dt
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
from pydantic import ValidationError

from mribench.api.run import ModelRecord, Provenance, RunConfig, RunOptions, SplitRecord, TaskRecord, comparable
from mribench.errors import SubmissionError
from mribench.paths import atomic_write_bytes, atomic_write_text, cache_dir
from mribench.results import RunResult, load_run, summarize
from mribench.tasks import manifest_hash
from mribench.workflows.leaderboard.io import (
    entry_json_text,
    read_json_capped,
    read_sidecar,
    sha256_bytes,
    sidecar_bytes,
    sidecar_frame,
)
from mribench.workflows.leaderboard.schema import SIDECAR_SUFFIX, Entry, GapSummary
from mribench.workflows.leaderboard.summary import (
    compare_summaries,
    make_gap,
    seconds_per_slice,
    summary_from_slices,
    ttt_steps_per_slice,
)

TEST_SPLITS = ("test_P", "test_Q")  # what a ranked entry must cover, every slice
ENTRIES_DIR = "entries"
REPORTED_DIR = "reported"
SCHEMA_FILE = Path("schema") / "entry-v1.json"
_PROVENANCE_KEYS = (
    "torch",
    "fastmri",
    "python",
    "platform",
    "device",
    "device_name",
    "world_size",
    "created",
    "git_commit_mribench",
)


def entry_dir(root: str | os.PathLike[str], kind: str, task: str) -> Path:
    """Folder of a task's entries of one kind."""
    return Path(root) / (ENTRIES_DIR if kind == "evaluated" else REPORTED_DIR) / task


def entry_path(root: str | os.PathLike[str], entry: Entry) -> Path:
    """Where an entry's JSON lives."""
    return entry_dir(root, entry.kind, entry.task.name) / f"{entry.model.id}.json"


def _run(run: str | os.PathLike[str] | RunResult) -> RunResult:
    return run if isinstance(run, RunResult) else load_run(run)


def _check_complete(run: RunResult) -> None:
    """Every evaluated split's slices are in the store (a killed run must be resumed first)."""
    splits = run.config.splits
    if not splits:
        raise SubmissionError(f"expected run.json in {run.run_dir} to list its evaluated splits, got none")
    if run.slices.empty:
        raise SubmissionError(f"expected per-slice results in {run.run_dir}, got none (hint: run `mribench evaluate`)")
    for sp, info in splits.items():
        rows = run.slices[run.slices["split"] == sp]
        if manifest_hash(rows) != info.evaluated_manifest:
            head = f"expected all {info.n_slices} slices of split {sp} in {run.run_dir}, got {len(rows)}"
            raise SubmissionError(
                f"{head} (hint: evaluate the same model and task with run_dir={str(run.run_dir)!r}: it continues the run)",
                cli=f"{head} (hint: run the same `mribench evaluate` again: it continues the run)",
            )
    extra = set(run.slices["split"]) - set(splits)
    if extra:
        raise SubmissionError(f"expected per-slice results only for splits {sorted(splits)}, got {sorted(extra)}")


def incomplete(
    splits: Mapping[str, Any],
    limit: int | None,
    failed: Mapping[str, int],
    required: Sequence[str] = TEST_SPLITS,
    manifests: bool = True,
) -> list[str]:
    """Why a run or entry cannot be ranked: it must cover every slice of the task's test splits
    (no ``limit``, each evaluated manifest equal to the split's) with no failed slice.

    Args:
        splits: ``{split: SplitRef-like}`` (``manifest``, ``evaluated_manifest``) as recorded.
        limit: the run's limit (volumes per split), None for full splits.
        failed: failed slices per split.
        required: the splits a ranked entry covers.
        manifests: also compare each evaluated manifest with its split's (validation reports that
            as a manifest problem of its own).

    Returns:
        One phrase per reason (empty: rankable).
    """
    out = [f"split {sp} not evaluated" for sp in required if sp not in splits]
    if limit is not None:
        out.append(f"--limit {limit} (at most {limit} volumes per split)")
    out += [
        f"split {sp} evaluated on part of its slices"
        for sp, ref in sorted(splits.items())
        if manifests and limit is None and ref.evaluated_manifest != ref.manifest
    ]
    out += [f"{n} failed slice(s) in {sp}" for sp, n in sorted(failed.items()) if n]
    return out


def _failed_per_split(slices: pd.DataFrame) -> dict[str, int]:
    bad = slices[slices["status"] != "ok"]
    return {str(k): int(v) for k, v in bad.groupby("split").size().items()}


def _default_dataset(config: RunConfig) -> str:
    root = config.data.root if config.data else None
    if root:
        try:
            Path(root).resolve().relative_to(cache_dir().resolve())
            return "MRIBench-Sim"
        except ValueError:
            pass
    return "custom"


def _test_q_means(run: RunResult, of: RunResult, what: str) -> dict[str, float]:
    """test_Q means of ``run``, which must be comparable with ``of`` on the same test_Q slices."""
    diffs = comparable(of.config, run.config, splits=["test_Q"])
    if diffs:
        raise SubmissionError(
            f"expected the {what} run {run.run_dir} to be comparable on test_Q, got {'; '.join(diffs)}"
        )
    sp = run.config.splits.get("test_Q")
    if sp is None or sp.evaluated_manifest != of.config.splits["test_Q"].evaluated_manifest:
        raise SubmissionError(
            f"expected the {what} run {run.run_dir} to be evaluated on the same test_Q slices, got a different manifest"
        )
    split = run.summary.splits.get("test_Q")
    ms = split.metrics if split else {}
    return {m: v.mean for m, v in ms.items() if v.mean is not None}


def _describe(run: RunResult) -> str:
    m = run.config.model
    sha = m.sha256[:12]
    return m.name + (f" (sha256 {sha})" if sha else "")


def _gaps(run: RunResult, q_reference: Any, baseline: Sequence[Any] | None) -> dict[str, GapSummary]:
    if q_reference is None:
        if baseline is not None:
            raise ValueError("expected q_reference together with baseline, got baseline only")
        return {}
    if "test_Q" not in run.config.splits:
        raise SubmissionError(f"expected {run.run_dir} to have evaluated test_Q for a gap, got no test_Q")
    ref = _run(q_reference)
    q = _test_q_means(ref, run, "Q-trained reference")
    p = _test_q_means(run, run, "submitted")
    qb = pb = None
    base_desc = None
    if baseline is not None:
        if len(baseline) != 2:
            raise ValueError(
                f"expected baseline as (P-trained run, Q-trained run) without the intervention, got {baseline!r}"
            )
        pb_run, qb_run = _run(baseline[0]), _run(baseline[1])
        pb, qb = (
            _test_q_means(pb_run, run, "baseline P-trained"),
            _test_q_means(qb_run, run, "baseline Q-trained"),
        )
        base_desc = f"P: {_describe(pb_run)}; Q: {_describe(qb_run)}"
    hib = run.config.higher_is_better
    out = {}
    for m in run.config.metrics:
        if m in q and m in p and (baseline is None or (m in qb and m in pb)):  # type: ignore[operator]
            out[m] = make_gap(
                m,
                bool(hib.get(m, True)),
                q[m],
                p[m],
                _describe(ref),
                qb[m] if qb else None,
                pb[m] if pb else None,
                base_desc,
            )
    return out


def build_entry(
    run_dir: str | os.PathLike[str] | RunResult,
    *,
    name: str,
    display_name: str,
    authors: Iterable[str] = (),
    paper: str | None = None,
    code: str | None = None,
    training_data: str | None = None,
    dataset: str | None = None,
    real_data: bool = False,
    q_reference: str | os.PathLike[str] | RunResult | None = None,
    baseline: Sequence[str | os.PathLike[str] | RunResult] | None = None,
    notes: str | None = None,
    entry_date: _dt.date | None = None,
    partial: bool = False,
    trained_on: str | None = None,
) -> Entry:
    """Build an evaluated entry from a finished run directory.

    Args:
        run_dir: the run (``mribench evaluate --run-dir``), or its loaded :class:`RunResult`.
        name: model id (slug: lowercase letters, digits, ``-``, ``_``).
        display_name: human name.
        authors: author names.
        paper: http(s) link.
        code: http(s) link.
        training_data: what the model was trained on.
        dataset: name of the evaluation data (default ``MRIBench-Sim`` when the run used the embedded
            benchmark, else ``custom``).
        real_data: the evaluation data are real scanner data.
        q_reference: run of the same architecture trained on Q, on the same test_Q slices: adds the
            performance gap per metric.
        baseline: ``(P-trained run, Q-trained run)`` without this entry's intervention: adds
            ``gap_before`` and ``fraction_closed = 1 - gap / gap_before``. For a TTT entry pass the
            SUPERVISED pair (with the self-supervised + TTT Q-trained run as ``q_reference``): that
            is Darestani et al.'s fraction of the gap closed.
        notes: free text.
        entry_date: date of the numbers (default: the run's creation date).
        partial: accept a run that cannot be ranked (a ``--limit`` run, a test split missing or
            evaluated in part, failed slices): the entry is marked ``partial``, shown apart and
            never in the effective-robustness fit.
        trained_on: ``P``, ``Q`` or ``P+Q`` (default: what the run's model record says, e.g. a
            shipped checkpoint's training splits). A ``Q`` entry is the task's Q-trained reference.

    Every number comes from the run: the summary and the cost (seconds and test-time-training
    steps per slice) from its per-slice results.

    Returns:
        The validated :class:`Entry` (its sidecar hash is that of :func:`sidecar_bytes` of the run's
        slices, which :func:`write_entry` writes).

    Raises:
        SubmissionError: unfinished run, a run that cannot be ranked without ``partial``, invalid
            field (one line naming it), mismatched references.
    """
    run = _run(run_dir)
    cfg = run.config
    _check_complete(run)
    why = incomplete(dict(cfg.splits), cfg.options.limit, _failed_per_split(run.slices))
    if why and not partial:
        raise SubmissionError(
            f"expected a run covering every slice of the task's test splits without failures to be ranked, got "
            f"{'; '.join(why)} (hint: evaluate the full splits and fix the failures, or submit with --partial "
            f"to list it apart, unranked)"
        )
    metrics = list(cfg.metrics)
    hib = {m: bool(cfg.higher_is_better.get(m, True)) for m in metrics}
    data = sidecar_bytes(run.slices, metrics)
    frame = sidecar_frame(run.slices, metrics)
    summary = summary_from_slices(frame, metrics, hib, _gaps(run, q_reference, baseline))
    prov_in = cfg.provenance.model_dump()
    created = str(prov_in.get("created") or "")
    if entry_date is None:
        try:
            entry_date = _dt.date.fromisoformat(created[:10])
        except ValueError:
            entry_date = _dt.datetime.now(_dt.timezone.utc).date()
    provenance: dict[str, Any] = {k: prov_in[k] for k in _PROVENANCE_KEYS if prov_in.get(k) is not None}
    provenance = {k: (v[:500] if isinstance(v, str) else v) for k, v in provenance.items()}
    provenance["normalize_output"] = cfg.options.normalize_output
    provenance["precision"] = cfg.options.precision
    provenance["model_kind"] = cfg.model.kind[:500]
    task, model = cfg.task, cfg.model
    fields: dict[str, Any] = {
        "kind": "evaluated",
        "model": {
            "id": name,
            "display_name": display_name,
            "authors": list(authors),
            "paper": paper,
            "code": code,
            "training_data": training_data,
            "architecture": model.name,
            "sha256": model.sha256,
            "trained_on": trained_on or model.training_side,
        },
        "task": {"name": task.name, "version": task.version, "sha256": task.sha256},
        "data": {"name": dataset or _default_dataset(cfg), "real": real_data},
        "splits": {sp: v.model_dump(exclude={"missing_files", "source"}) for sp, v in cfg.splits.items()},
        "limit": cfg.options.limit,
        "limit_seed": cfg.options.limit_seed,
        "partial": bool(partial or why),
        "metrics": metrics,
        "higher_is_better": hib,
        "metric_profiles": dict(cfg.metric_profiles),
        "mribench_version": str(prov_in.get("mribench") or _version()),
        "summary": summary.model_dump(),
        "slices": {"file": f"{name}{SIDECAR_SUFFIX}", "sha256": sha256_bytes(data), "rows": len(frame)},
        "cost": {
            "device": str(prov_in.get("device") or "unknown"),
            "device_name": prov_in.get("device_name") or None,
            "seconds_per_slice": seconds_per_slice(frame),
            "ttt_steps": ttt_steps_per_slice(frame),
        },
        "date": entry_date,
        "provenance": provenance,
        "notes": notes,
    }
    return parse_entry(fields)


def _version() -> str:
    from mribench._version import __version__

    return __version__


def parse_entry(data: dict[str, Any]) -> Entry:
    """Validate a mapping into an :class:`Entry`.

    Raises:
        SubmissionError: one line naming the first invalid field.
    """
    try:
        return Entry.model_validate(data)
    except ValidationError as e:
        err = e.errors()[0]
        where = ".".join(str(p) for p in err["loc"]) or "entry"
        raise SubmissionError(f"invalid entry field {where}: {err['msg']}") from None


def entry_to_json(entry: Entry) -> str:
    """Canonical JSON text of an entry."""
    return entry_json_text(entry.model_dump(mode="json"))


def write_entry(
    entry: Entry,
    slices_df: pd.DataFrame | None = None,
    root: str | os.PathLike[str] = "leaderboard",
    *,
    overwrite: bool = False,
) -> Path:
    """Write an entry (and, for evaluated entries, its per-slice sidecar) atomically.

    The sidecar is written first, then the JSON, each via a temporary file and a rename, so a reader
    never sees a JSON whose sidecar is missing or half-written.

    Args:
        entry: the entry (from :func:`build_entry`, or a reported entry).
        slices_df: the run's per-slice table (``load_run(dir).slices``) for evaluated entries.
        root: the leaderboard folder.
        overwrite: replace an existing entry with the same model id.

    Returns:
        The path of the JSON.

    Raises:
        SubmissionError: the entry exists (without ``overwrite``), the per-slice table is not the one
            the entry was built from, or its numbers do not match the table.
    """
    path = entry_path(root, entry)
    if path.exists() and not overwrite:
        raise SubmissionError(
            f"expected a new model id in task {entry.task.name}, got {entry.model.id!r} which "
            f"exists at {path} (hint: --overwrite, or another --name)"
        )
    if entry.kind == "evaluated":
        if slices_df is None or entry.slices is None:
            raise SubmissionError("expected the per-slice table for an evaluated entry, got none")
        data = sidecar_bytes(slices_df, list(entry.metrics))
        if sha256_bytes(data) != entry.slices.sha256:
            raise SubmissionError(
                f"expected the per-slice table the entry was built from (sha256 "
                f"{entry.slices.sha256[:12]}), got a different table ({sha256_bytes(data)[:12]})"
            )
        frame = sidecar_frame(slices_df, list(entry.metrics))
        diffs = compare_summaries(
            entry.summary, summary_from_slices(frame, list(entry.metrics), dict(entry.higher_is_better))
        )
        if diffs:
            raise SubmissionError(f"expected summary numbers matching the per-slice table, got: {diffs[0]}")
        atomic_write_bytes(path.with_name(entry.slices.file), data)
    atomic_write_text(path, entry_to_json(entry))
    return path


@dataclass(frozen=True)
class LoadedEntry:
    """An entry read from disk with where it came from."""

    path: Path
    entry: Entry


def iter_entry_files(root: str | os.PathLike[str]) -> list[Path]:
    """All ``*.json`` files under ``entries/`` and ``reported/`` (sorted)."""
    r = Path(root)
    out: list[Path] = []
    for sub in (ENTRIES_DIR, REPORTED_DIR):
        d = r / sub
        if d.is_dir():
            out.extend(p for p in d.rglob("*.json") if p.is_file())
    return sorted(out)


def load_entries(root: str | os.PathLike[str]) -> list[LoadedEntry]:
    """Read and schema-check every entry (no recomputation; see :func:`validate_leaderboard`).

    Raises:
        SubmissionError: naming the first file that cannot be read or fails the schema.
    """
    out = []
    for p in iter_entry_files(root):
        try:
            out.append(LoadedEntry(p, parse_entry(read_json_capped(p))))
        except SubmissionError as e:
            raise SubmissionError(f"{p}: {e} (hint: `mribench leaderboard validate`)") from None
    return out


def write_json_schema(root: str | os.PathLike[str] = "leaderboard") -> Path:
    """Write the entry JSON Schema to ``<root>/schema/entry-v1.json``."""
    import json

    from mribench.workflows.leaderboard.schema import json_schema

    path = Path(root) / SCHEMA_FILE
    atomic_write_text(path, json.dumps(json_schema(), indent=2, sort_keys=True) + "\n")
    return path


def entry_to_run(path: str | os.PathLike[str]) -> RunResult:
    """An evaluated entry (JSON + per-slice sidecar) as a run, e.g. the reference of ``mribench check``.

    The run record holds what the entry records (task, model identity, metrics and their profiles,
    split manifests, limit, normalisation); masks and data root are unknown (``None``).

    Raises:
        SubmissionError: unreadable or invalid entry, a reported entry (no per-slice results), or a
            sidecar that is missing or not the one the entry's sha256 names.
    """
    p = Path(path)
    entry = parse_entry(read_json_capped(p))
    if entry.kind != "evaluated" or entry.slices is None:
        raise SubmissionError(f"expected an evaluated entry with per-slice results, got a {entry.kind} entry {p}")
    sidecar = p.with_name(entry.slices.file)
    if not sidecar.is_file():
        raise SubmissionError(f"expected the per-slice sidecar {sidecar.name} next to {p.name}, got none")
    if sha256_bytes(sidecar.read_bytes()) != entry.slices.sha256:
        raise SubmissionError(f"expected {sidecar.name} with the sha256 recorded in {p.name}, got a different file")
    frame = read_sidecar(sidecar, list(entry.metrics))
    if "error" not in frame.columns:
        frame["error"] = None
    prov = entry.provenance
    config = RunConfig(
        task=TaskRecord(name=entry.task.name, version=entry.task.version, sha256=entry.task.sha256),
        model=ModelRecord(
            name=entry.model.architecture or entry.model.id,
            kind=str(prov.get("model_kind") or "unknown"),
            sha256=entry.model.sha256 or "",
        ),
        metrics=list(entry.metrics),
        higher_is_better=dict(entry.higher_is_better),
        metric_profiles=dict(entry.metric_profiles),
        splits={sp: SplitRecord(**ref.model_dump()) for sp, ref in entry.splits.items()},
        options=RunOptions(
            limit=entry.limit,
            limit_seed=entry.limit_seed,
            normalize_output=bool(prov.get("normalize_output", False)),
            precision=str(prov.get("precision") or "fp32"),  # not recorded by older entries: taken as fp32
        ),
        provenance=Provenance.model_validate(
            {
                **{k: v for k, v in prov.items() if k not in ("model_kind", "normalize_output", "precision")},
                "mribench": entry.mribench_version,
            }
        ),
    )
    return RunResult(p, config, frame, summarize(frame, config.metrics, config.higher_is_better))
