"""Does a data root serve a task? Volumes and slices per split, and why a split is empty.

``mribench tasks check`` prints :func:`check_task` for every task; an evaluation raises the same
explanation (:func:`mribench.tasks.explain.explain_empty`) instead of starting on an empty split.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from mribench.data.index import SliceIndex
from mribench.tasks.explain import explain_empty
from mribench.tasks.spec import SPLITS, TaskSpec
from mribench.tasks.splits import make_splits


@dataclass
class SplitCount:
    """Size of one split on a data root."""

    volumes: int
    slices: int
    source: str
    problem: str = ""


@dataclass
class TaskCheck:
    """What a data root gives one task.

    Attributes:
        task: the task.
        splits: per split, its size, how it was chosen and (when empty) why.
    """

    task: TaskSpec
    splits: dict[str, SplitCount] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """Every split has at least one slice."""
        return all(s.slices > 0 for s in self.splits.values())


def check_task(task: TaskSpec, index: SliceIndex | pd.DataFrame) -> TaskCheck:
    """Volumes and slices per split of ``task`` on ``index``, with an explanation for empty ones."""
    table = index.table if isinstance(index, SliceIndex) else index
    root = index.root if isinstance(index, SliceIndex) else None
    sp = make_splits(task, table, allow_empty=True)
    out = TaskCheck(task)
    for name in SPLITS:
        s = sp[name]
        other = sp[("test_" if name.startswith("train") else "train_") + name[-1]]
        problem = explain_empty(task, table, name, root, other.source) if s.rows.empty else ""
        out.splits[name] = SplitCount(s.num_volumes, len(s.rows), s.source, problem)
    return out


__all__ = ["SplitCount", "TaskCheck", "check_task"]
