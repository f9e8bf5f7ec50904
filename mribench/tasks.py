"""Distribution-shift tasks: versioned YAML specs, validation, and deterministic splits.

A task names a source distribution P and a target distribution Q as metadata filters over the
slice index, a mask per side, the metrics, and a data card. Splits ``train_P``, ``test_P`` (ID),
``train_Q``, ``test_Q`` (OOD) are assigned per volume by a stable hash of the file name: independent
of file order, of the machine and of any global RNG. Each split has a manifest hash (sha256 of its
sorted (file, slice) list) that every result records.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import hashlib
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from mribench.data.index import COLUMNS, SliceIndex, filter_mask
from mribench.errors import DataError, TaskError
from mribench.physics.masks import MaskSpec
from mribench.registry import suggest

SPLITS = ("train_P", "test_P", "train_Q", "test_Q")
EVAL_SPLITS = ("test_P", "test_Q")
DEFAULT_METRICS = ("ssim", "psnr", "nmse")
_TOP_KEYS = {"name", "version", "description", "card", "source", "target", "splits", "mask", "metrics", "include"}
_SIDE_KEYS = {"filter", "test_filter", "mask", "label"}
_SPLIT_KEYS = {"test_fraction", "seed", "max_volumes"}


@dataclass(frozen=True)
class Side:
    """One distribution of a task (P or Q).

    Attributes:
        label: human label ("knee", "3T brain", ...).
        filter: slice-index filter selecting the distribution's volumes.
        test_filter: extra filter applied to its test split only (e.g. annotated slices).
        mask: the sampling mask used for this side.
    """

    label: str
    filter: dict[str, Any]
    test_filter: dict[str, Any]
    mask: MaskSpec


@dataclass(frozen=True)
class TaskSpec:
    """A validated task definition (frozen).

    Attributes:
        name: task id (YAML file stem).
        version: integer version; bump whenever splits, masks or metrics change.
        description: one line.
        card: data card (shift, paper, notes).
        source: distribution P (training / in-distribution).
        target: distribution Q (out-of-distribution).
        test_fraction: fraction of each pool's volumes put in its test split.
        split_seed: mixed into the split hash.
        max_volumes: optional cap on volumes per split.
        metrics: metric names.
        sha256: hash of the resolved definition.
        raw: the resolved mapping (after includes).
        origin: the YAML file it was loaded from (empty for tasks built in code).
    """

    name: str
    version: int
    description: str
    card: dict[str, Any]
    source: Side
    target: Side
    test_fraction: float
    split_seed: int
    max_volumes: dict[str, int]
    metrics: tuple[str, ...]
    sha256: str = ""
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)
    origin: str = field(default="", compare=False)

    def side(self, split: str) -> Side:
        """The distribution (P or Q) a split belongs to."""
        return self.source if split.endswith("_P") else self.target

    def mask_for(self, split: str) -> MaskSpec:
        return self.side(split).mask


# --------------------------------------------------------------------------- loading


def tasks_dir() -> Path:
    """The folder of shipped task YAMLs (top-level ``tasks/`` in a checkout, package data when installed)."""
    pkg = resources.files("mribench") / "_tasks"
    if pkg.is_dir():
        return Path(str(pkg))
    checkout = Path(__file__).resolve().parent.parent / "tasks"
    return checkout


def _search_dirs() -> list[Path]:
    dirs = [Path(p) for p in os.environ.get("MRIBENCH_TASKS_PATH", "").split(os.pathsep) if p]
    return [*dirs, tasks_dir()]


def list_tasks() -> list[str]:
    """Names of all known tasks (shipped and on ``$MRIBENCH_TASKS_PATH``)."""
    names: set[str] = set()
    for d in _search_dirs():
        if d.is_dir():
            names.update(p.stem for p in d.glob("*.yaml"))
    return sorted(names)


def _find_task_file(name: str) -> Path:
    p = Path(name)
    if p.suffix in (".yaml", ".yml") and p.is_file():
        return p
    for d in _search_dirs():
        f = d / f"{name}.yaml"
        if f.is_file():
            return f
    raise TaskError(
        f"expected a known task name or YAML path, got {name!r}{suggest(name, list_tasks())} "
        f"(known: {', '.join(list_tasks())})"
    )


def _deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict) and k != "filter":
            out[k] = _deep_merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


# libyaml's parser when PyYAML has it (10x faster; the same SafeConstructor builds the objects). The
# task digest keeps PyYAML's pure-Python dumper so that it is the same on every installation.
_SafeLoader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _read_yaml(path: Path, seen: tuple[Path, ...] = ()) -> dict[str, Any]:
    if path in seen:
        raise TaskError(f"expected no include cycle, got {' -> '.join(p.name for p in (*seen, path))}")
    try:
        data = yaml.load(path.read_text(), Loader=_SafeLoader)
    except yaml.YAMLError as e:
        raise TaskError(f"expected valid YAML in {path.name}, got: {e}") from None
    if not isinstance(data, dict):
        raise TaskError(f"expected a mapping at the top of {path.name}, got {type(data).__name__}")
    inc = data.pop("include", None)
    if inc is not None:
        base = _read_yaml(_find_task_file(str(path.parent / inc) if str(inc).endswith(".yaml") else inc), (*seen, path))
        base.pop("name", None)
        data = _deep_merge(base, data)
    return data


def _mask(d: Any, where: str) -> MaskSpec:
    if not isinstance(d, dict):
        raise TaskError(f"expected a mapping for {where}, got {d!r}")
    unknown = set(d) - {"type", "acceleration", "center_fraction", "seed"}
    if unknown:
        raise TaskError(f"expected mask keys type/acceleration/center_fraction/seed in {where}, got {sorted(unknown)}")
    try:
        return MaskSpec(**d)
    except (ValueError, TypeError) as e:
        raise TaskError(f"{where}: {e}") from None


def _check_filter(f: Any, where: str) -> dict[str, Any]:
    if f is None:
        return {}
    if not isinstance(f, dict):
        raise TaskError(f"expected a mapping for {where}, got {f!r}")
    for col in f:
        if col not in COLUMNS:
            raise TaskError(f"expected slice-index columns in {where}, got {col!r}{suggest(col, COLUMNS)}")
    return dict(f)


def parse_task(data: dict[str, Any], name: str) -> TaskSpec:
    """Validate a task mapping (after includes) into a :class:`TaskSpec`.

    Raises:
        TaskError: naming the offending key and what was expected.
    """
    unknown = set(data) - _TOP_KEYS
    if unknown:
        k = sorted(unknown)[0]
        raise TaskError(
            f"task {name}: expected top-level keys {sorted(_TOP_KEYS)}, got {k!r}{suggest(k, list(_TOP_KEYS))}"
        )
    version = data.get("version")
    if not isinstance(version, int) or version < 1:
        raise TaskError(f"task {name}: expected a positive integer 'version', got {version!r}")
    default_mask = data.get("mask", {"type": "equispaced", "acceleration": 4})
    sides = []
    for key in ("source", "target"):
        s = data.get(key)
        if not isinstance(s, dict) or "filter" not in s:
            raise TaskError(f"task {name}: expected '{key}' with a 'filter' mapping, got {s!r}")
        bad = set(s) - _SIDE_KEYS
        if bad:
            raise TaskError(f"task {name}: expected keys {sorted(_SIDE_KEYS)} in '{key}', got {sorted(bad)}")
        mask = _mask({**default_mask, **s.get("mask", {})}, f"task {name} {key}.mask")
        sides.append(
            Side(
                str(s.get("label", key)),
                _check_filter(s["filter"], f"{key}.filter"),
                _check_filter(s.get("test_filter"), f"{key}.test_filter"),
                mask,
            )
        )
    sp = data.get("splits", {}) or {}
    bad = set(sp) - _SPLIT_KEYS
    if bad:
        raise TaskError(f"task {name}: expected split keys {sorted(_SPLIT_KEYS)}, got {sorted(bad)}")
    tf = sp.get("test_fraction", 0.5)
    if not isinstance(tf, (int, float)) or not 0 < tf < 1:
        raise TaskError(f"task {name}: expected splits.test_fraction in (0, 1), got {tf!r}")
    mv = sp.get("max_volumes", {}) or {}
    for k, v in mv.items():
        if k not in SPLITS or not isinstance(v, int) or v < 1:
            raise TaskError(f"task {name}: expected max_volumes {{split in {SPLITS}: positive int}}, got {k}: {v!r}")
    metrics = data.get("metrics", list(DEFAULT_METRICS))
    if not isinstance(metrics, list) or not all(isinstance(m, str) for m in metrics) or not metrics:
        raise TaskError(f"task {name}: expected 'metrics' as a non-empty list of names, got {metrics!r}")
    resolved = {**data, "name": name}
    digest = _digest(resolved)
    return TaskSpec(
        name=name,
        version=version,
        description=str(data.get("description", "")),
        card=dict(data.get("card", {}) or {}),
        source=sides[0],
        target=sides[1],
        test_fraction=float(tf),
        split_seed=int(sp.get("seed", 0)),
        max_volumes=dict(mv),
        metrics=tuple(metrics),
        sha256=digest,
        raw=resolved,
    )


_DIGESTS: dict[str, str] = {}


def _digest(resolved: dict[str, Any]) -> str:
    """sha256 of the task's canonical YAML; remembered by ``repr`` (unambiguous for YAML's types),
    as PyYAML's pure-Python dumper costs more than the rest of loading a task."""
    key = repr(resolved)
    if key not in _DIGESTS:
        if len(_DIGESTS) > 256:
            _DIGESTS.clear()
        _DIGESTS[key] = hashlib.sha256(yaml.safe_dump(resolved, sort_keys=True).encode()).hexdigest()
    return _DIGESTS[key]


def load_task(name: str) -> TaskSpec:
    """Load a task by name (``anatomy``) or YAML path, resolving ``include:``.

    Raises:
        TaskError: unknown name (with a suggestion) or invalid definition.
    """
    path = _find_task_file(name)
    spec = parse_task(_read_yaml(path), path.stem)
    return dataclasses.replace(spec, origin=str(path.resolve()))


# --------------------------------------------------------------------------- splits


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
    """The slices of one split, sorted by (file, slice), with its manifest hash (computed on first use)."""

    name: str
    rows: pd.DataFrame

    @functools.cached_property
    def manifest(self) -> str:
        return manifest_hash(self.rows)

    @property
    def num_volumes(self) -> int:
        return int(self.rows["file"].nunique())


def make_splits(task: TaskSpec, index: SliceIndex | pd.DataFrame, names: Iterable[str] = SPLITS) -> dict[str, Split]:
    """Assign volumes to the task's four splits.

    A volume matching both P and Q goes to one side only (by a hash), so no volume is in two
    splits. Within a side, a volume is in the test split when its hash falls below
    ``test_fraction``. Caps keep the volumes with the smallest hashes.

    Args:
        task: the task.
        index: the slice index (or its table).
        names: the splits to build (each is the same whichever others are built).

    Raises:
        DataError: if a split that the task needs is empty.
    """
    wanted_splits = set(names)
    if not wanted_splits <= set(SPLITS):
        raise ValueError(f"expected split names in {SPLITS}, got {sorted(wanted_splits - set(SPLITS))}")
    table = index.table if isinstance(index, SliceIndex) else index
    # integer codes and positions rather than repeated DataFrame filters and sorts (this runs in
    # every evaluation); each split's rows are taken from the table once, in (file, slice) order
    codes, uniques = pd.factorize(table["file"].to_numpy(dtype=object), sort=True)  # codes in name order
    file_names = [str(f) for f in uniques.tolist()]
    order = np.lexsort((table["slice"].to_numpy(), codes))
    matched = {side: filter_mask(table, s.filter) for side, s in (("P", task.source), ("Q", task.target))}
    pools = {side: {file_names[c] for c in np.unique(codes[m]).tolist()} for side, m in matched.items()}
    both = pools["P"] & pools["Q"]
    for f in both:
        pools["Q" if _unit_hash(f"{task.split_seed}:side:{f}") < 0.5 else "P"].discard(f)
    code_of = {f: c for c, f in enumerate(file_names)}
    out: dict[str, Split] = {}
    for side, spec in (("P", task.source), ("Q", task.target)):
        u = {f: _unit_hash(f"{task.split_seed}:{f}") for f in pools[side]}
        ranked = sorted(u, key=lambda f: (u[f], f))
        test = [f for f in ranked if u[f] < task.test_fraction]
        train = [f for f in ranked if u[f] >= task.test_fraction]
        for kind, chosen in (("train", train), ("test", test)):
            name = f"{kind}_{side}"
            if name not in wanted_splits:
                continue
            if name in task.max_volumes:
                chosen = chosen[: task.max_volumes[name]]
            keep = matched[side]
            if kind == "test" and spec.test_filter:
                keep = keep & filter_mask(table, spec.test_filter)
            chosen_codes = np.zeros(len(file_names), dtype=bool)
            chosen_codes[[code_of[f] for f in chosen]] = True
            pos = order[keep[order] & chosen_codes[codes[order]]]
            out[name] = Split(name, table.take(pos).reset_index(drop=True))
    return out


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
