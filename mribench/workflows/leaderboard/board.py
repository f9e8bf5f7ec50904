"""The per-task ranking shown on the site and in the README (shared by both renderers).

A :class:`TaskBoard` holds one row per entry with the numbers the tables show: ID and OOD means of
the task's primary metric (the first of its card's metrics), the drop, the gap and fraction closed, effective
robustness against a linear ``OOD = a * ID + b`` fit over the task's ranked entries, perceptual
and artifact metrics on OOD when present, cost and the latest audit. Ranked (evaluated, complete,
not failing their latest audit), unranked (partial runs, failed audits) and reported entries are
kept apart: only ranked entries are ranked and enter the fit; reported numbers are on other data
(real fastMRI). An evaluated entry trained on Q (``model.trained_on == "Q"``) is the task's
**Q-trained reference**: it is listed apart (it is not a contender: never ranked, never "best",
never in the fit), and its test_Q mean gives the gap of every evaluated entry that records none,
when their numbers are comparable (same task version and hash, same test_Q slices, same metric
definition).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from mribench.analysis._checks import AnalysisInputError
from mribench.analysis.effective_robustness import LinearTrend, fit_linear_trend
from mribench.workflows.leaderboard.entry import LoadedEntry
from mribench.workflows.leaderboard.schema import Entry

PRIMARY_PREFERENCE = ("ssim", "psnr", "nmse")


def extra_metric_label(name: str) -> str | None:
    """Column label for perceptual / artifact metrics shown on OOD, or None for other metrics."""
    low = name.lower()
    if low.startswith("lpips"):
        return "LPIPS" + (f" ({name[5:].strip('_-')})" if len(name) > 5 else "")
    if low.startswith("dists"):
        return "DISTS"
    if "laplacian" in low or "artifact" in low:
        return "Artifact var."
    return None


@dataclass(frozen=True)
class Row:
    """One entry's numbers for the task table (None = not available)."""

    entry: Entry
    id_value: float | None
    ood_value: float | None
    drop: float | None
    gap: float | None
    fraction_closed: float | None
    effective_robustness: float | None
    extras: dict[str, float | None]
    seconds_per_slice: float | None
    gap_reference: str | None = None  # the reference entry a gap was derived from (None: the entry's own gap)

    @property
    def is_reference(self) -> bool:
        """The task's Q-trained reference (not a contender)."""
        return self.entry.model.trained_on == "Q"

    @property
    def model_id(self) -> str:
        return self.entry.model.id

    @property
    def unranked_reason(self) -> str | None:
        """Why an evaluated entry is not ranked (None: ranked)."""
        return unranked_reason(self.entry)


def unranked_reason(entry: Entry) -> str | None:
    """``partial run`` or ``failed audit`` for an evaluated entry that is not ranked, else None."""
    if entry.kind != "evaluated":
        return None
    if entry.partial:
        return "partial run"
    if entry.audits and not entry.audits[-1].passed:
        return "failed audit"
    return None


@dataclass
class TaskBoard:
    """Everything rendered for one task."""

    task: str
    versions: list[int]
    metric: str
    higher_is_better: bool
    extra_metrics: list[str]
    evaluated: list[Row] = field(default_factory=list)
    references: list[Row] = field(default_factory=list)
    unranked: list[Row] = field(default_factory=list)
    reported: list[Row] = field(default_factory=list)
    trend: LinearTrend | None = None


def _mean(entry: Entry, split: str, metric: str) -> float | None:
    s = entry.summary.splits.get(split)  # type: ignore[call-overload]
    if s is None or metric not in s.metrics:
        return None
    return s.metrics[metric].mean


def _primary(entries: list[Entry]) -> str:
    """The task's first metric (its card lists the paper's primary metric first, e.g. ``ssim_d22``
    for the D22 family), as recorded by the evaluated entries; else by ``PRIMARY_PREFERENCE``."""
    evaluated = [e for e in entries if e.kind == "evaluated" and e.metrics]
    if evaluated:
        return evaluated[0].metrics[0]
    names = [m for e in entries for m in e.metrics]
    for m in PRIMARY_PREFERENCE:
        if m in names:
            return m
    return names[0]


def _row(e: Entry, metric: str, extras: list[str]) -> Row:
    sh = e.summary.shift.get(metric)
    g = e.summary.gap.get(metric)
    return Row(
        entry=e,
        id_value=sh.id if sh else _mean(e, "test_P", metric),
        ood_value=sh.ood if sh else _mean(e, "test_Q", metric),
        drop=sh.drop if sh else None,
        gap=g.gap if g else None,
        fraction_closed=g.fraction_closed if g else None,
        effective_robustness=None,
        extras={m: _mean(e, "test_Q", m) for m in extras},
        seconds_per_slice=e.cost.seconds_per_slice if e.cost else None,
    )


def _comparable_on_test_q(a: Entry, b: Entry, metric: str) -> bool:
    """Whether two evaluated entries' test_Q means of ``metric`` measure the same thing."""
    sa, sb = a.splits.get("test_Q"), b.splits.get("test_Q")
    pa, pb = a.metric_profiles.get(metric), b.metric_profiles.get(metric)
    return (
        sa is not None
        and sb is not None
        and sa.evaluated_manifest == sb.evaluated_manifest
        and (a.task.version, a.task.sha256) == (b.task.version, b.task.sha256)
        and (pa is None or pb is None or pa == pb)
    )


def _with_reference_gap(row: Row, refs: list[Row], metric: str, hib: bool) -> Row:
    """The row with its gap against the first comparable Q-trained reference, when it records none."""
    if row.gap is not None or row.ood_value is None or row.is_reference:
        return row
    for ref in refs:
        if ref.ood_value is not None and _comparable_on_test_q(row.entry, ref.entry, metric):
            gap = (ref.ood_value - row.ood_value) if hib else (row.ood_value - ref.ood_value)
            return Row(**{**row.__dict__, "gap": gap, "gap_reference": ref.entry.model.display_name})
    return row


def _sort_key(row: Row, hib: bool) -> tuple[int, float, str]:
    v = row.ood_value
    if v is None or not math.isfinite(v):
        return (1, 0.0, row.model_id)
    return (0, -v if hib else v, row.model_id)


def make_boards(loaded: list[LoadedEntry]) -> list[TaskBoard]:
    """Group entries by task and compute each table's rows and the effective-robustness fit."""
    by_task: dict[str, list[Entry]] = {}
    for le in loaded:
        by_task.setdefault(le.entry.task.name, []).append(le.entry)
    boards = []
    for task in sorted(by_task):
        entries = by_task[task]
        metric = _primary(entries)
        hib = next((e.higher_is_better[metric] for e in entries if metric in e.higher_is_better), True)
        extras = sorted({m for e in entries for m in e.metrics if extra_metric_label(m)})
        board = TaskBoard(task, sorted({e.task.version for e in entries}), metric, hib, extras)
        rows = [_row(e, metric, extras) for e in entries]
        refs = [r for r in rows if r.entry.kind == "evaluated" and r.is_reference and r.unranked_reason is None]
        rows = [_with_reference_gap(r, refs, metric, hib) if r.entry.kind == "evaluated" else r for r in rows]
        board.references = sorted(refs, key=lambda r: _sort_key(r, hib))
        ev = [r for r in rows if r.entry.kind == "evaluated" and r.unranked_reason is None and not r.is_reference]
        board.unranked = sorted((r for r in rows if r.unranked_reason is not None), key=lambda r: _sort_key(r, hib))
        pts = [(r.id_value, r.ood_value) for r in ev if r.id_value is not None and r.ood_value is not None]
        if len(pts) >= 2:
            try:
                board.trend = fit_linear_trend([p[0] for p in pts], [p[1] for p in pts], scale="linear")
            except AnalysisInputError:  # all ID scores equal: no line
                board.trend = None
        if board.trend is not None:
            t = board.trend
            ev = [
                Row(
                    **{
                        **r.__dict__,
                        "effective_robustness": (r.ood_value - float(t.predict([r.id_value])[0]))
                        if r.id_value is not None and r.ood_value is not None
                        else None,
                    }
                )
                for r in ev
            ]
        board.evaluated = sorted(ev, key=lambda r: _sort_key(r, hib))
        board.reported = sorted((r for r in rows if r.entry.kind == "reported"), key=lambda r: _sort_key(r, hib))
        boards.append(board)
    return boards
