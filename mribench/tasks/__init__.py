"""Distribution-shift tasks: definitions (YAML), splits on a data root, and checks.

- :mod:`mribench.tasks.spec`: :class:`TaskSpec`, loading, validation, families, aliases;
- :mod:`mribench.tasks.splits`: :func:`make_splits` (official folders first), split CSVs;
- :mod:`mribench.tasks.check`: split sizes per task; :mod:`mribench.tasks.explain`: why a split is empty.
"""

from __future__ import annotations

from mribench.tasks.check import SplitCount, TaskCheck, check_task
from mribench.tasks.explain import explain_empty
from mribench.tasks.spec import (
    DEFAULT_METRICS,
    EVAL_SPLITS,
    FAMILIES,
    SPLITS,
    Side,
    TaskSpec,
    aliases,
    list_tasks,
    load_task,
    parse_task,
    resolve_name,
    shipped_tasks,
    tasks_dir,
)
from mribench.tasks.splits import Split, load_split_csv, make_splits, manifest_hash

__all__ = [
    "DEFAULT_METRICS",
    "EVAL_SPLITS",
    "FAMILIES",
    "SPLITS",
    "Side",
    "Split",
    "SplitCount",
    "TaskCheck",
    "TaskSpec",
    "aliases",
    "check_task",
    "explain_empty",
    "list_tasks",
    "load_split_csv",
    "load_task",
    "make_splits",
    "manifest_hash",
    "parse_task",
    "resolve_name",
    "shipped_tasks",
    "tasks_dir",
]
