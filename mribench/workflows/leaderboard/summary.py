"""Summary numbers of an entry, derived from its per-slice table with :func:`mribench.results.summarize`.

Building an entry and validating one both go through :func:`summary_from_slices`, so an entry's
numbers are by construction what its sidecar recomputes to; :func:`compare_summaries` lists the
differences (means and CIs to 1e-9).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from mribench.analysis.gap import fraction_gap_closed, performance_gap
from mribench.fmt import exact
from mribench.results import summarize
from mribench.workflows.leaderboard.schema import GapSummary, SplitSummary, Summary

TOLERANCE = 1e-9


def summary_from_slices(
    slices: pd.DataFrame,
    metrics: list[str],
    higher_is_better: dict[str, bool],
    gap: dict[str, GapSummary] | None = None,
) -> Summary:
    """Recompute the summary from a per-slice table (split, file, slice, status, seconds, <metrics>).

    Args:
        slices: per-slice rows (sidecar layout; an ``error`` column is not needed).
        metrics: metric names.
        higher_is_better: direction per metric.
        gap: gap numbers to carry over (they involve other models' runs, not recomputable here).

    Returns:
        The :class:`Summary` (NaN means/CIs are None; a shift only where ID and OOD are finite).
    """
    df = slices.copy()
    if "error" not in df.columns:
        df["error"] = None
    raw = summarize(df, list(metrics), dict(higher_is_better))
    splits = {sp: SplitSummary.model_validate(v.model_dump()) for sp, v in raw.splits.items()}
    return Summary(splits=splits, shift=dict(raw.shift), gap=dict(gap or {}))  # type: ignore[arg-type]


def seconds_per_slice(slices: pd.DataFrame) -> float | None:
    """Mean of the finite ``seconds`` values (model + metrics time per slice), or None."""
    secs = pd.to_numeric(slices["seconds"], errors="coerce").to_numpy(dtype=float)
    secs = secs[np.isfinite(secs)]
    return float(secs.mean()) if len(secs) else None


def ttt_steps_per_slice(slices: pd.DataFrame) -> float | None:
    """Mean of the finite ``ttt_steps`` values (test-time-training steps per slice), or None."""
    if "ttt_steps" not in slices.columns:
        return None
    steps = pd.to_numeric(slices["ttt_steps"], errors="coerce").to_numpy(dtype=float)
    steps = steps[np.isfinite(steps)]
    return float(steps.mean()) if len(steps) else None


def make_gap(
    metric: str,
    higher_is_better: bool,
    q_trained: float,
    p_trained: float,
    reference: str,
    q_before: float | None = None,
    p_before: float | None = None,
    baseline: str | None = None,
) -> GapSummary:
    """A :class:`GapSummary` from the mean metrics on test_Q (gap_before/fraction from the un-intervened pair)."""
    g = performance_gap(q_trained, p_trained, higher_is_better)
    gb = fc = None
    if q_before is not None and p_before is not None:
        gb = performance_gap(q_before, p_before, higher_is_better)
        fc = fraction_gap_closed(gb, g) if gb != 0 else None
    return GapSummary(
        q_trained=q_trained,
        p_trained=p_trained,
        gap=g,
        reference=reference,
        gap_before=gb,
        fraction_closed=fc,
        baseline=baseline if gb is not None else None,
    )


def _close(a: float | None, b: float | None, tol: float = TOLERANCE) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return abs(a - b) <= tol * max(1.0, abs(b))


def compare_summaries(stored: Summary, recomputed: Summary) -> list[str]:
    """Differences between an entry's summary and its recomputation (one short phrase each)."""
    out: list[str] = []
    if set(stored.splits) != set(recomputed.splits):
        out.append(f"summary splits {sorted(stored.splits)} but the sidecar has {sorted(recomputed.splits)}")
        return out
    for sp, r in recomputed.splits.items():
        s = stored.splits[sp]
        for k in ("n_slices", "n_ok", "n_failed", "n_volumes"):
            if getattr(s, k) != getattr(r, k):
                out.append(
                    f"summary.splits.{sp}.{k} is {exact(getattr(s, k))} but the sidecar gives {exact(getattr(r, k))}"
                )
        if set(s.metrics) != set(r.metrics):
            out.append(f"summary.splits.{sp} metrics {sorted(s.metrics)} but the sidecar has {sorted(r.metrics)}")
            continue
        for m, rm in r.metrics.items():
            sm = s.metrics[m]
            for k in ("mean", "ci_low", "ci_high"):
                if not _close(getattr(sm, k), getattr(rm, k)):
                    out.append(
                        f"summary.splits.{sp}.metrics.{m}.{k} is {exact(getattr(sm, k))} but the sidecar "
                        f"recomputes to {exact(getattr(rm, k))}"
                    )
            for k in ("n", "n_inf"):
                if getattr(sm, k) != getattr(rm, k):
                    out.append(
                        f"summary.splits.{sp}.metrics.{m}.{k} is {exact(getattr(sm, k))} but the sidecar gives "
                        f"{getattr(rm, k)}"
                    )
    if set(stored.shift) != set(recomputed.shift):
        out.append(f"summary.shift metrics {sorted(stored.shift)} but the sidecar gives {sorted(recomputed.shift)}")
    else:
        for m, rs in recomputed.shift.items():
            ss = stored.shift[m]
            for k in ("id", "ood", "drop"):
                if not _close(getattr(ss, k), getattr(rs, k)):
                    out.append(
                        f"summary.shift.{m}.{k} is {exact(getattr(ss, k))} but the sidecar recomputes to "
                        f"{exact(getattr(rs, k))}"
                    )
    return out


def check_gaps(summary: Summary, higher_is_better: dict[str, bool]) -> list[str]:
    """Internal consistency of the gap numbers (formula, and p_trained = this entry's test_Q mean)."""
    out: list[str] = []
    for m, g in summary.gap.items():
        hib = higher_is_better.get(m, True)
        want = performance_gap(g.q_trained, g.p_trained, hib)
        if not _close(g.gap, want):
            out.append(f"summary.gap.{m}.gap is {g.gap!r} but q_trained - p_trained gives {want!r}")
        tq = summary.splits.get("test_Q")
        if tq is not None and m in tq.metrics and tq.metrics[m].mean is not None:
            if not _close(g.p_trained, tq.metrics[m].mean):
                out.append(
                    f"summary.gap.{m}.p_trained is {g.p_trained!r} but the test_Q mean is {tq.metrics[m].mean!r}"
                )
        if (g.gap_before is None) != (g.fraction_closed is None):
            out.append(f"summary.gap.{m}: expected gap_before and fraction_closed together, got only one")
        elif g.gap_before is not None and g.fraction_closed is not None:
            if g.gap_before == 0:
                out.append(f"summary.gap.{m}.gap_before is 0 (fraction closed undefined)")
            else:
                want_fc = fraction_gap_closed(g.gap_before, g.gap)
                if not _close(g.fraction_closed, want_fc):
                    out.append(
                        f"summary.gap.{m}.fraction_closed is {g.fraction_closed!r} but 1 - gap/gap_before "
                        f"gives {want_fc!r}"
                    )
    return out
