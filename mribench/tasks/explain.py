"""Why a task's split is empty on a data root: the filter condition that removes everything, and
the values the root has instead ("no volume with protocol AXT2 among volumes with dataset
fastmri_brain under ROOT; protocol present: AXT1PRE, AXFLAIR").
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mribench.data.index import filter_mask
from mribench.tasks.spec import TaskSpec

_MAX_VALUES = 12


def _fmt(want: Any) -> str:
    if isinstance(want, dict):
        parts = [f"{k} {v}" for k, v in want.items()]
        return "(" + ", ".join(parts) + ")"
    if isinstance(want, list):
        return " or ".join(str(w) for w in want)
    return str(want)


def _present(values: pd.Series) -> str:
    vals = sorted({str(v) for v in values.dropna().unique().tolist()})
    if not vals:
        return "none"
    more = f", ... ({len(vals)} in all)" if len(vals) > _MAX_VALUES else ""
    return ", ".join(vals[:_MAX_VALUES]) + more


def explain_filter(table: pd.DataFrame, spec: dict[str, Any], where: str) -> str:
    """Why ``spec`` selects no row of ``table``: the first condition that leaves nothing, and the
    values the rows passing the earlier conditions have in that column."""
    keep = np.ones(len(table), dtype=bool)
    passed: list[str] = []
    for col, want in spec.items():
        step = keep & filter_mask(table, {col: want})
        if not step.any():
            among = f" among volumes with {', '.join(passed)}" if passed else ""
            vols = table.loc[keep].drop_duplicates("file") if "file" in table.columns else table.loc[keep]
            return f"no volume with {col} {_fmt(want)}{among} {where}; {col} present: {_present(vols[col])}"
        keep = step
        passed.append(f"{col} {_fmt(want)}")
    return f"every condition of the filter matches {where}"


def explain_empty(
    task: TaskSpec, table: pd.DataFrame, split: str, root: Path | None = None, other_source: str = ""
) -> str:
    """A one-paragraph explanation of why ``split`` of ``task`` is empty on ``table``.

    Args:
        task: the task.
        table: the slice-index table.
        split: the empty split.
        root: the data root (named in the message).
        other_source: how the side's other split was chosen (:attr:`Split.source`), when known.
    """
    side = task.side(split)
    letter = split[-1]
    where = f"under {root}" if root is not None else "in the slice index"
    selects = ", ".join(f"{k} {_fmt(v)}" for k, v in side.filter.items()) or "every volume"
    head = f"expected slices in split {split} of task {task.name} ({letter}: {side.label} = {selects}), got none"
    if table.empty:
        return f"{head}: the slice index is empty"
    m = filter_mask(table, side.filter)
    if not m.any():
        why = explain_filter(table, side.filter, where)
        return f"{head}: {why} (hint: `mribench tasks check {task.name}` shows every split)"
    has_target = table["target_h"].notna().to_numpy(dtype=bool) if "target_h" in table.columns else m
    if not (m & has_target).any():
        return f"{head}: the volumes matching {side.filter} have no reconstruction_rss targets (test-set files?)"
    files = table.loc[m & has_target, "file"].nunique()
    kind = split.split("_")[0]
    if kind == "test":
        test_rows = table.loc[m & has_target]
        if side.test_filter and not filter_mask(test_rows, side.test_filter).any():
            why = explain_filter(test_rows, side.test_filter, where)
            return f"{head}: {files} volume(s) match {side.filter} but {why} (hint: the study labels come from fastMRI+ annotations: `--annotations CSV`, or EvalOptions(annotations=...))"
    other = f"{'test' if kind == 'train' else 'train'}_{letter}"
    shared = "" if task.same_volumes else " (a volume that matches both P and Q goes to one side only)"
    return (
        f"{head}: {files} volume(s) match {side.filter}{shared}, and {other} took every one of them"
        + (f": {other_source}" if other_source else "")
        + " (hint: add volumes from "
        + ("validation folders" if kind == "test" else "training folders")
        + ", or `mribench tasks check`)"
    )


__all__ = ["explain_empty", "explain_filter"]
