"""A task's four splits on a data root, deterministic and faithful to the official splits.

``train_P``, ``test_P`` (in-distribution) and ``train_Q``, ``test_Q`` (out-of-distribution). For each
side, the volumes its filter selects are split by the folders they lie in (the slice index's
``official_split`` column):

- **official**: when a side holds volumes from training folders and from validation (or test)
  folders, test splits take validation/test volumes only and train splits training volumes only,
  as both papers do (never score a public checkpoint on the data it was trained on). Volumes of
  that side with no official split are assigned by hash.
- **hash**: when a side's volumes come from one kind of folder only (or none), each volume goes to
  the test split when a stable hash of its file name falls below the task's ``test_fraction``.

Every split records which rule made it (:attr:`Split.source`). Volumes without targets (fastMRI's
``multicoil_test`` files) are left out. A volume matching both P and Q goes to one side by a hash,
unless the task says that P and Q hold the same volumes (acceleration shifts). Caps keep the
volumes with the smallest hashes. Independent of file order, of the machine and of any global RNG.
Each split has a manifest hash (sha256 of its sorted (file, slice) list) that every result records.
"""

from __future__ import annotations

import functools
import hashlib
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from mribench.data.index import SliceIndex, filter_mask
from mribench.errors import DataError
from mribench.tasks.explain import explain_empty
from mribench.tasks.spec import SPLITS, TaskSpec

HELD_OUT = ("val", "test")
"""Official splits that test splits draw from."""


def _unit_hash(key: str) -> float:
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big") / 2**64


def manifest_hash(rows: pd.DataFrame | Iterable[tuple[str, int]]) -> str:
    """sha256 of the sorted ``file<TAB>slice`` lines of a split."""
    if isinstance(rows, pd.DataFrame):
        rows = zip(rows["file"].tolist(), rows["slice"].tolist(), strict=True)
    text = "\n".join(f"{f}\t{s}" for f, s in sorted((str(f), int(s)) for f, s in rows))
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True)
class Split:
    """The slices of one split, sorted by (file, slice), with its manifest hash (computed on first use).

    Attributes:
        name: ``train_P``, ``test_P``, ``train_Q`` or ``test_Q``.
        rows: slice-index rows.
        source: how its volumes were chosen, in words (official folders, a hash split, a CSV).
    """

    name: str
    rows: pd.DataFrame
    source: str = ""

    @functools.cached_property
    def manifest(self) -> str:
        return manifest_hash(self.rows)

    @property
    def num_volumes(self) -> int:
        return int(self.rows["file"].nunique())


@dataclass(frozen=True)
class SidePools:
    """How one side's volumes were assigned (what :func:`side_pools` computes).

    Attributes:
        train: training volumes, smallest hash first.
        test: test volumes, smallest hash first.
        rule: ``official``, ``hash`` or ``mixed`` (official folders plus hashed unlabelled volumes).
        kinds: the official splits present among the side's volumes, with counts.
        source: :attr:`Split.source` of the side's (train, test) splits.
    """

    train: list[str]
    test: list[str]
    rule: str
    kinds: dict[str, int]
    source: tuple[str, str]


def _kinds_text(kinds: dict[str, int]) -> str:
    return ", ".join(f"{n} {k}" for k, n in sorted(kinds.items())) or "none"


def side_pools(task: TaskSpec, files: list[str], official: dict[str, str]) -> SidePools:
    """Assign one side's volumes to its train and test splits (see the module docstring)."""
    u = {f: _unit_hash(f"{task.split_seed}:{f}") for f in files}
    ranked = sorted(u, key=lambda f: (u[f], f))
    kinds: dict[str, int] = {}
    for f in files:
        k = official.get(f, "unknown")
        kinds[k] = kinds.get(k, 0) + 1
    has_train = kinds.get("train", 0) > 0
    has_held = any(kinds.get(k, 0) > 0 for k in HELD_OUT)
    if has_train and has_held:
        train = [f for f in ranked if official.get(f) == "train"]
        test = [f for f in ranked if official.get(f) in HELD_OUT]
        rest = [f for f in ranked if official.get(f) not in ("train", *HELD_OUT)]
        train += [f for f in rest if u[f] >= task.test_fraction]
        test += [f for f in rest if u[f] < task.test_fraction]
        train.sort(key=lambda f: (u[f], f))
        test.sort(key=lambda f: (u[f], f))
        held = "/".join(k for k in HELD_OUT if kinds.get(k))
        extra = f"; {len(rest)} volume(s) without an official split hashed (test fraction {task.test_fraction})"
        rule = "mixed" if rest else "official"
        note = extra if rest else ""
        source = (f"official: training folders{note}", f"official: {held} folders{note}")
    else:
        train = [f for f in ranked if u[f] >= task.test_fraction]
        test = [f for f in ranked if u[f] < task.test_fraction]
        within = _kinds_text(kinds)
        why = (
            "no official train/validation folders"
            if set(kinds) <= {"unknown"}
            else "only one kind of official folder for this side"
        )
        rule = "hash"
        text = f"hash split within {within} volume(s) ({why}; test fraction {task.test_fraction})"
        source = (text, text)
    return SidePools(train, test, rule, kinds, source)


def _middle(table: pd.DataFrame) -> np.ndarray:
    return (table["slice"].to_numpy() == (table["num_slices"].to_numpy() // 2)).astype(bool)


def _has_target(table: pd.DataFrame) -> np.ndarray:
    return table["target_h"].notna().to_numpy(dtype=bool) if "target_h" in table.columns else np.ones(len(table), bool)


def make_splits(
    task: TaskSpec,
    index: SliceIndex | pd.DataFrame,
    names: Iterable[str] = SPLITS,
    *,
    allow_empty: bool = False,
) -> dict[str, Split]:
    """Assign volumes to the task's splits (see the module docstring).

    Args:
        task: the task.
        index: the slice index (or its table).
        names: the splits to build (each is the same whichever others are built).
        allow_empty: return empty splits instead of raising (``mribench tasks check`` does).

    Raises:
        ValueError: unknown split names.
        DataError: a requested split is empty; the message says which filter removed everything
            and which values the data root has instead.
    """
    wanted_splits = [n for n in SPLITS if n in set(names)]
    if not set(names) <= set(SPLITS):
        raise ValueError(f"expected split names in {SPLITS}, got {sorted(set(names) - set(SPLITS))}")
    table = index.table if isinstance(index, SliceIndex) else index
    # integer codes and positions rather than repeated DataFrame filters and sorts (this runs in
    # every evaluation); each split's rows are taken from the table once, in (file, slice) order
    codes, uniques = pd.factorize(table["file"].to_numpy(dtype=object), sort=True)  # codes in name order
    file_names = [str(f) for f in uniques.tolist()]
    order = np.lexsort((table["slice"].to_numpy(), codes))
    usable = _has_target(table)
    matched = {side: filter_mask(table, s.filter) & usable for side, s in (("P", task.source), ("Q", task.target))}
    pools = {side: {file_names[c] for c in np.unique(codes[m]).tolist()} for side, m in matched.items()}
    if not task.same_volumes:
        for f in pools["P"] & pools["Q"]:
            pools["Q" if _unit_hash(f"{task.split_seed}:side:{f}") < 0.5 else "P"].discard(f)
    official: dict[str, str] = {}
    if "official_split" in table.columns:
        first = np.unique(codes, return_index=True)[1]
        official = dict(zip([file_names[c] for c in codes[first]], table["official_split"].to_numpy()[first].tolist()))
    code_of = {f: c for c, f in enumerate(file_names)}
    out: dict[str, Split] = {}
    sources: dict[str, tuple[str, str]] = {}
    for side, spec in (("P", task.source), ("Q", task.target)):
        if not any(n.endswith(f"_{side}") for n in wanted_splits):
            continue
        sp = side_pools(task, sorted(pools[side]), official)
        sources[side] = sp.source
        for kind, chosen, source in (("train", sp.train, sp.source[0]), ("test", sp.test, sp.source[1])):
            name = f"{kind}_{side}"
            if name not in wanted_splits:
                continue
            if name in task.max_volumes:
                chosen = chosen[: task.max_volumes[name]]
            keep = matched[side]
            if kind == "test":
                if spec.test_filter:
                    keep = keep & filter_mask(table, spec.test_filter)
                if task.test_slices == "middle":
                    keep = keep & _middle(table)
            chosen_codes = np.zeros(len(file_names), dtype=bool)
            chosen_codes[[code_of[f] for f in chosen]] = True
            pos = order[keep[order] & chosen_codes[codes[order]]]
            out[name] = Split(name, table.take(pos).reset_index(drop=True), source)
    empty = [n for n in wanted_splits if out[n].rows.empty]
    if empty and not allow_empty:
        n = empty[0]
        other = sources[n[-1]][0 if n.startswith("test") else 1]
        root = index.root if isinstance(index, SliceIndex) else None
        raise DataError(explain_empty(task, table, n, root, other))
    return {n: out[n] for n in wanted_splits}


def load_split_csv(path: str | os.PathLike[str], index: SliceIndex | pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """Import a split CSV in the format of Lin & Heckel's public code.

    The CSV has one row per volume (or per annotated slice) with ``filename``, ``start_slice`` and
    ``end_slice`` (exclusive); other columns are metadata.

    Returns:
        ``(rows, missing)``: the slice-index rows selected (sorted by file, slice) and the file names
        listed in the CSV but absent from the index (reported, never silently dropped).

    Raises:
        DataError: if the CSV lacks the required columns.
    """
    table = index.table if isinstance(index, SliceIndex) else index
    p = Path(path)
    try:
        df = pd.read_csv(p)
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError) as e:
        raise DataError(f"expected a readable split CSV at {p}, got {type(e).__name__}: {e}") from None
    need = {"filename", "start_slice", "end_slice"}
    if not need <= set(df.columns):
        raise DataError(f"expected columns {sorted(need)} in {p.name}, got {list(df.columns)}")
    wanted: set[tuple[str, int]] = set()
    for r in df.itertuples(index=False):
        fname = os.path.basename(str(r.filename))
        wanted.update((fname, s) for s in range(int(r.start_slice), int(r.end_slice)))
    present = set(table["file"])
    missing = sorted({f for f, _ in wanted if f not in present})
    keys = pd.MultiIndex.from_frame(table[["file", "slice"]])
    sel = table[keys.isin(list(wanted))]
    return sel.sort_values(["file", "slice"]).reset_index(drop=True), missing
