"""Task definitions: versioned YAML specs, validation, families and short-name aliases.

A task names a source distribution P and a target distribution Q as metadata filters over the
slice index, a mask per side, the metrics, how its test slices are chosen and scored, and a data
card. Shipped tasks come in two families named after the paper they mirror (``d22-*``: Darestani,
Liu & Heckel 2022; ``lh24-*``: Lin & Heckel 2024). Short names (``anatomy``, ``field``, ...) are
aliases listed in ``tasks/_aliases.yaml``; what a name resolves to is recorded in
:attr:`TaskSpec.alias` and the task's own name.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import os
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from mribench.api.metric_names import known_metric_names
from mribench.data.index import COLUMNS
from mribench.errors import TaskError
from mribench.physics.masks import MASK_KEYS, MaskSpec
from mribench.registry import suggest

SPLITS = ("train_P", "test_P", "train_Q", "test_Q")
EVAL_SPLITS = ("test_P", "test_Q")
DEFAULT_METRICS = ("ssim", "psnr", "nmse")
FAMILIES = {"d22": "Darestani, Liu & Heckel (ICML 2022)", "lh24": "Lin & Heckel (2024)"}
"""Task families by paper."""
ALIASES_FILE = "_aliases.yaml"

_TOP_KEYS = {
    "name",
    "version",
    "family",
    "description",
    "card",
    "source",
    "target",
    "splits",
    "mask",
    "metrics",
    "scoring",
    "include",
}
_SIDE_KEYS = {"filter", "test_filter", "mask", "label"}
_SPLIT_KEYS = {"test_fraction", "seed", "max_volumes", "test_slices", "same_volumes"}
_SCORING_KEYS = {"output_normalization", "target_normalization"}
TEST_SLICES = ("all", "middle")
OUTPUT_NORMALIZATIONS = ("none", "lh24")
TARGET_NORMALIZATIONS = ("none",)


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
        card: data card (shift, paper, table, notes, differences on the embedded data).
        source: distribution P (training / in-distribution).
        target: distribution Q (out-of-distribution).
        test_fraction: fraction of a pool's volumes put in its test split when the data root has no
            official train / validation folders for it (see :func:`mribench.tasks.make_splits`).
        split_seed: mixed into the split hash.
        max_volumes: optional cap on volumes per split.
        metrics: metric names.
        sha256: hash of the resolved definition.
        raw: the resolved mapping (after includes).
        origin: the YAML file it was loaded from (empty for tasks built in code).
        family: ``d22``, ``lh24`` or empty (a user's task).
        test_slices: ``all`` or ``middle`` (one slice per test volume, ``num_slices // 2``, as D22).
        same_volumes: P and Q hold the same volumes; only the mask differs (acceleration shifts).
        output_normalization: ``none`` or ``lh24`` (each reconstruction matched to its target's
            mean and standard deviation before scoring).
        target_normalization: ``none`` (targets scored as stored).
        alias: the short name this task was loaded by (empty when loaded by its own name).
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
    family: str = ""
    test_slices: str = "all"
    same_volumes: bool = False
    output_normalization: str = "none"
    target_normalization: str = "none"
    alias: str = field(default="", compare=False)

    def side(self, split: str) -> Side:
        """The distribution (P or Q) a split belongs to."""
        return self.source if split.endswith("_P") else self.target

    def mask_for(self, split: str) -> MaskSpec:
        return self.side(split).mask

    @property
    def normalize_output(self) -> bool:
        """Whether reconstructions are matched to their target's mean and std before scoring."""
        return self.output_normalization == "lh24"

    @property
    def paper(self) -> str:
        """The paper the task mirrors (from its family), or ``""``."""
        return FAMILIES.get(self.family, "")


# --------------------------------------------------------------------------- loading


def tasks_dir() -> Path:
    """The folder of shipped task YAMLs (top-level ``tasks/`` in a checkout, package data when installed)."""
    pkg = resources.files("mribench") / "_tasks"
    if pkg.is_dir():
        return Path(str(pkg))
    return Path(__file__).resolve().parents[2] / "tasks"


def _search_dirs() -> list[Path]:
    dirs = [Path(p) for p in os.environ.get("MRIBENCH_TASKS_PATH", "").split(os.pathsep) if p]
    return [*dirs, tasks_dir()]


def _task_files() -> dict[str, Path]:
    out: dict[str, Path] = {}
    for d in reversed(_search_dirs()):  # earlier folders win
        if d.is_dir():
            out.update({p.stem: p for p in d.glob("*.yaml") if not p.name.startswith("_")})
    return out


def shipped_tasks() -> list[str]:
    """Names of the tasks shipped with mribench (not those on ``$MRIBENCH_TASKS_PATH``)."""
    d = tasks_dir()
    return sorted(p.stem for p in d.glob("*.yaml") if not p.name.startswith("_")) if d.is_dir() else []


def aliases() -> dict[str, str]:
    """Short name -> task name, from ``_aliases.yaml`` of every task folder (earlier folders win).

    Raises:
        TaskError: a malformed alias file.
    """
    out: dict[str, str] = {}
    for d in reversed(_search_dirs()):
        f = d / ALIASES_FILE
        if not f.is_file():
            continue
        try:
            data = yaml.load(f.read_text(), Loader=_SafeLoader) or {}
        except yaml.YAMLError as e:
            raise TaskError(f"expected valid YAML in {f}, got: {e}") from None
        if not isinstance(data, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in data.items()):
            raise TaskError(f"expected a mapping of short name -> task name in {f}, got {data!r}")
        out.update(data)
    return out


def list_tasks(family: str | None = None) -> list[str]:
    """Names of all known tasks (shipped and on ``$MRIBENCH_TASKS_PATH``), optionally of one family.

    Raises:
        TaskError: an unknown family.
    """
    names = sorted(_task_files())
    if family is None:
        return names
    if family not in FAMILIES:
        raise TaskError(
            f"expected a task family in {sorted(FAMILIES)}, got {family!r}{suggest(family, list(FAMILIES))}"
        )
    return [n for n in names if n.startswith(f"{family}-")]


def resolve_name(name: str) -> str:
    """The task name a name or alias stands for (YAML paths and unknown names pass through)."""
    if name in _task_files():
        return name
    return aliases().get(name, name)


def _find_task_file(name: str) -> Path:
    p = Path(name)
    if p.suffix in (".yaml", ".yml") and p.is_file():
        return p
    files = _task_files()
    if name in files:
        return files[name]
    known = sorted({*files, *aliases()})
    raise TaskError(
        f"expected a known task name, alias or YAML path, got {name!r}{suggest(name, known)} "
        f"(known: {', '.join(known)}; `mribench tasks list`)"
    )


def _deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict) and k not in ("filter", "test_filter"):
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
        target = str(path.parent / inc) if str(inc).endswith(".yaml") else resolve_name(str(inc))
        base = _read_yaml(_find_task_file(target), (*seen, path))
        base.pop("name", None)
        data = _deep_merge(base, data)
    return data


def _mask(d: Any, where: str) -> MaskSpec:
    if not isinstance(d, dict):
        raise TaskError(f"expected a mapping for {where}, got {d!r}")
    unknown = set(d) - set(MASK_KEYS)
    if unknown:
        raise TaskError(f"expected mask keys {'/'.join(MASK_KEYS)} in {where}, got {sorted(unknown)}")
    try:
        return MaskSpec.from_dict(d)
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


def _choice(value: Any, allowed: tuple[str, ...], where: str) -> str:
    if value not in allowed:
        raise TaskError(f"expected {where} in {allowed}, got {value!r}")
    return str(value)


def parse_task(data: dict[str, Any], name: str) -> TaskSpec:
    """Validate a task mapping (after includes) into a :class:`TaskSpec`.

    Raises:
        TaskError: naming the offending key and what was expected (unknown metric names included).
    """
    unknown = set(data) - _TOP_KEYS
    if unknown:
        k = sorted(unknown)[0]
        raise TaskError(
            f"task {name}: expected top-level keys {sorted(_TOP_KEYS)}, got {k!r}{suggest(k, list(_TOP_KEYS))}"
        )
    version = data.get("version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise TaskError(f"task {name}: expected a positive integer 'version', got {version!r}")
    family = data.get("family", "") or ""
    if family and family not in FAMILIES:
        raise TaskError(f"task {name}: expected family in {sorted(FAMILIES)} (or none), got {family!r}")
    default_mask = data.get("mask", {"type": "equispaced", "acceleration": 4})
    if not isinstance(default_mask, dict):
        raise TaskError(f"task {name}: expected a mapping for 'mask', got {default_mask!r}")
    sides = []
    for key in ("source", "target"):
        s = data.get(key)
        if not isinstance(s, dict) or "filter" not in s:
            raise TaskError(f"task {name}: expected '{key}' with a 'filter' mapping, got {s!r}")
        bad = set(s) - _SIDE_KEYS
        if bad:
            raise TaskError(f"task {name}: expected keys {sorted(_SIDE_KEYS)} in '{key}', got {sorted(bad)}")
        side_mask = s.get("mask", {}) or {}
        if not isinstance(side_mask, dict):
            raise TaskError(f"task {name}: expected a mapping for {key}.mask, got {side_mask!r}")
        mask = _mask({**default_mask, **side_mask}, f"task {name} {key}.mask")
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
    same = sp.get("same_volumes", False)
    if not isinstance(same, bool):
        raise TaskError(f"task {name}: expected splits.same_volumes true or false, got {same!r}")
    if same and sides[0].filter != sides[1].filter:
        raise TaskError(f"task {name}: expected the same filter on both sides with splits.same_volumes, got two")
    test_slices = _choice(sp.get("test_slices", "all"), TEST_SLICES, f"task {name}: splits.test_slices")
    sc = data.get("scoring", {}) or {}
    if not isinstance(sc, dict) or set(sc) - _SCORING_KEYS:
        raise TaskError(f"task {name}: expected scoring keys {sorted(_SCORING_KEYS)}, got {sc!r}")
    out_norm = _choice(
        sc.get("output_normalization", "none"), OUTPUT_NORMALIZATIONS, f"task {name}: scoring.output_normalization"
    )
    tgt_norm = _choice(
        sc.get("target_normalization", "none"), TARGET_NORMALIZATIONS, f"task {name}: scoring.target_normalization"
    )
    metrics = data.get("metrics", list(DEFAULT_METRICS))
    if not isinstance(metrics, list) or not all(isinstance(m, str) for m in metrics) or not metrics:
        raise TaskError(f"task {name}: expected 'metrics' as a non-empty list of names, got {metrics!r}")
    known = known_metric_names()
    for m in metrics:
        if m not in known:
            raise TaskError(
                f"task {name}: expected known metric names, got {m!r}{suggest(m, known)} (known: {', '.join(known)})"
            )
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
        family=str(family),
        test_slices=test_slices,
        same_volumes=same,
        output_normalization=out_norm,
        target_normalization=tgt_norm,
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
    """Load a task by name (``d22-anatomy``), alias (``anatomy``) or YAML path, resolving ``include:``.

    Raises:
        TaskError: unknown name (with a suggestion) or invalid definition.
    """
    resolved = resolve_name(name)
    path = _find_task_file(resolved)
    spec = parse_task(_read_yaml(path), path.stem)
    return dataclasses.replace(spec, origin=str(path.resolve()), alias=name if resolved != name else "")
