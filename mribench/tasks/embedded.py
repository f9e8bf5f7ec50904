"""The MRIBench-Sim volumes a job on a task needs (so that only those are generated on first use).

- an evaluation scores test splits, which come from the validation folder: the validation
  volumes of both sides, plus one training volume per side, so that each side's splits follow
  the official folders exactly as on the full benchmark (a side with volumes of one kind of
  folder only would be hash-split, see :mod:`mribench.tasks.splits`);
- a training needs the training volumes of the side(s) it trains on, and the validation volumes
  (its per-epoch in- and out-of-distribution curves, then the evaluation).

Every test split is therefore identical to the one of the full benchmark; a training split is
complete for the sides a job trains on.
"""

from __future__ import annotations

from collections.abc import Iterable

from mribench.tasks.spec import TaskSpec

KINDS = ("test", "train_P", "train_Q")
"""What a job needs: ``test`` (both test splits), ``train_P`` / ``train_Q`` (a whole training split)."""


def embedded_volumes(task: TaskSpec, needs: Iterable[str] = ("test",), size: str = "default") -> list[str]:
    """Names of the MRIBench-Sim volumes a job on ``task`` needs.

    Args:
        task: the task.
        needs: subset of :data:`KINDS`.
        size: dataset size.

    Returns:
        Sorted file names (for :func:`mribench.data.synthetic.ensure_synthetic`).

    Raises:
        ValueError: for an unknown need.
    """
    from mribench.data.synthetic.plan import catalog_table, volumes_matching

    wanted = set(needs)
    if not wanted <= set(KINDS):
        raise ValueError(f"expected needs among {KINDS}, got {sorted(wanted - set(KINDS))}")
    table = catalog_table(size)
    slices = dict(zip(table["file"], table["num_slices"], strict=True))
    names: set[str] = set()
    for side, spec in (("P", task.source), ("Q", task.target)):
        names.update(volumes_matching(size, [spec.filter], ["val"]))
        train = volumes_matching(size, [spec.filter], ["train"])
        if f"train_{side}" in wanted:
            names.update(train)
        elif train:
            names.add(min(train, key=lambda f: (slices[f], f)))  # one makes the side's folders official
    return sorted(names)


__all__ = ["KINDS", "embedded_volumes"]
