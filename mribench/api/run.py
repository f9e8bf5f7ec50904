"""The run contract: what an evaluation is asked to do and what it records (pydantic; no heavy imports).

- :class:`EvalOptions`: what changes the numbers (metrics, splits, limit, normalisation, precision,
  split files, annotations). :class:`Runtime`: how a run executes (device, batch size, workers,
  threads, sharding, progress); it never changes a slice's numbers. :data:`RunMode`: what happens to
  an existing run directory.
- :class:`RunConfig`: ``run.json``, the record of a run (schema :data:`SCHEMA_VERSION`), with
  :class:`Provenance`; :func:`parse_run_config` reads every schema version written so far.
- :class:`RunSummary`: ``summary.json``, the numbers derived from the per-slice store. The
  leaderboard's entry schema reuses these shapes (its split, metric and shift summaries, the
  task and split references).
- :func:`comparable`: the one place that declares which recorded fields change results; used when
  resuming a run, by ``mribench check`` and by the leaderboard.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    FiniteFloat,
    JsonValue,
    SerializerFunctionWrapHandler,
    field_validator,
    model_serializer,
    model_validator,
)

SCHEMA_VERSION = 2
"""Version of ``run.json``. 1: batch size under ``options``; 2: under ``provenance`` (how it ran)."""

SPLITS = ("train_P", "test_P", "train_Q", "test_Q")
EVAL_SPLITS = ("test_P", "test_Q")
PRECISIONS = ("fp32", "bf16", "fp16")

RunMode = Literal["new", "resume", "overwrite"]
"""``new``: start a run, or reuse the stored run of the same configuration (another one is refused,
naming what differs); ``resume``: the same, and it also continues per-slice results without a
``run.json``; ``overwrite``: replace the run."""
RUN_MODES: tuple[str, ...] = ("new", "resume", "overwrite")

Count = Annotated[int, Field(ge=0)]
ProgressFn = Callable[[int, int, str], None]


class _Record(BaseModel):
    """A typed record: unknown keys are refused, so a typo never passes silently."""

    model_config = ConfigDict(extra="forbid")


# --------------------------------------------------------------------------- what a run is asked


class EvalOptions(BaseModel):
    """What changes the numbers of an evaluation.

    Attributes:
        metrics: metric names overriding the task's list; asking for a metric whose weights are
            missing is then an error (task defaults are skipped with a note instead).
        splits: splits to evaluate.
        limit: at most this many volumes per split, whole (all their slices), chosen by
            :func:`mribench.data.subset.select_volumes`: ordered by sha256 of
            ``"<limit_seed>:<file name>"``, so spread over the split and nested as ``limit`` grows.
        limit_seed: the seed of that selection (recorded with the run).
        normalize_output: match each reconstruction's mean/std to the target's (Lin & Heckel).
        precision: ``fp32``, or ``bf16`` / ``fp16`` to run the model under ``torch.autocast`` (for
            models that allow it; metrics are always computed in float32/float64).
        split_files: ``{split: csv}`` in Lin & Heckel's format, replacing the task's split.
        annotations: fastMRI+ CSV (default ``<data root>/annotations.csv`` when present).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    metrics: tuple[str, ...] | None = None
    splits: tuple[str, ...] = EVAL_SPLITS
    limit: int | None = None
    limit_seed: int = 0
    normalize_output: bool = False
    precision: str = "fp32"
    split_files: dict[str, str] = Field(default_factory=dict)
    annotations: str | None = None

    @field_validator("split_files", mode="before")
    @classmethod
    def _paths_as_text(cls, v: Any) -> Any:
        return {str(k): str(p) for k, p in v.items()} if isinstance(v, Mapping) else v

    @field_validator("annotations", mode="before")
    @classmethod
    def _path_as_text(cls, v: Any) -> Any:
        return None if v is None else str(v)

    @model_validator(mode="after")
    def _check(self) -> EvalOptions:
        for s in (*self.splits, *self.split_files):
            if s not in SPLITS:
                raise ValueError(f"expected split names in {SPLITS}, got {s!r}")
        if not self.splits:
            raise ValueError("expected at least one split to evaluate, got none")
        if self.limit is not None and self.limit < 1:
            raise ValueError(f"expected limit >= 1, got {self.limit}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"expected precision in {PRECISIONS}, got {self.precision!r}")
        if self.metrics is not None and not self.metrics:
            raise ValueError("expected at least one metric name, got none (hint: omit metrics for the task's list)")
        return self


class Runtime(BaseModel):
    """How an evaluation runs; none of it changes a slice's numbers.

    Attributes:
        device: ``auto``, ``cpu``, ``cuda``, ``cuda:N``.
        batch_size: slices per model call (all from one volume).
        num_workers: DataLoader worker processes reading HDF5 (0: one reader thread).
        threads: torch intra-op threads during the run (``None``: leave torch's setting).
        fail_fast: stop at the first failed slice.
        rank, world_size: shard of the work this process does (distributed evaluation).
        synchronize: with ``world_size > 1``, wait for the other ranks through torch.distributed
            (torchrun); ``False`` for independent shards (cluster array jobs) whose run directory
            was prepared beforehand.
        progress: ``progress(done, total, description)`` callback.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    device: str = "auto"
    batch_size: int = 8
    num_workers: int = 0
    threads: int | None = None
    fail_fast: bool = False
    rank: int = 0
    world_size: int = 1
    synchronize: bool = True
    progress: ProgressFn | None = Field(default=None, exclude=True)

    @model_validator(mode="after")
    def _check(self) -> Runtime:
        if self.batch_size < 1:
            raise ValueError(f"expected batch_size >= 1, got {self.batch_size}")
        if self.num_workers < 0:
            raise ValueError(f"expected num_workers >= 0, got {self.num_workers}")
        if self.threads is not None and self.threads < 1:
            raise ValueError(f"expected threads >= 1, got {self.threads}")
        if not 0 <= self.rank < self.world_size:
            raise ValueError(f"expected 0 <= rank < world_size, got rank {self.rank} of {self.world_size}")
        return self


# --------------------------------------------------------------------------- run.json


class TaskRef(_Record):
    """The task and the definition it was scored against."""

    name: str
    version: int
    sha256: str | None = None


class TaskRecord(TaskRef):
    """The task of a run: its reference plus the description and the YAML it came from."""

    description: str = ""
    origin: str | None = None


class ModelRecord(_Record):
    """The evaluated model's identity (see :class:`mribench.api.model.ModelInfo`).

    ``kind`` says what the hash covers: ``builtin`` (name and version), ``checkpoint`` / ``zoo``
    (the weights file), ``user`` (a ``file.py:attr`` / ``module:attr`` spec: its source file, the
    local modules it imports and the parameters), ``object`` (a Python object passed to
    :func:`mribench.evaluate`: its class or function source and parameters only, a weaker identity
    that ``details["identity"]`` spells out), ``reconstructions`` (files scored by ``mribench score``).
    """

    name: str
    kind: str
    sha256: str
    details: dict[str, JsonValue] = Field(default_factory=dict)

    @property
    def training_side(self) -> str | None:
        """``"P"``, ``"Q"`` or ``"P+Q"`` when the model's record says which distribution it was trained
        on (``details.training_side``, or a checkpoint's ``extra.training_side`` /
        ``extra.training_data.splits``), else None."""
        extra = self.details.get("extra")
        extra = extra if isinstance(extra, dict) else {}
        side = self.details.get("training_side") or extra.get("training_side")
        if isinstance(side, str) and side.upper() in ("P", "Q", "P+Q"):
            return side.upper()
        data = extra.get("training_data")
        splits = data.get("splits") if isinstance(data, dict) else None
        if isinstance(splits, list):
            sides = {str(s)[-1] for s in splits if str(s) in ("train_P", "train_Q")}
            return "P+Q" if sides == {"P", "Q"} else next(iter(sides)) if sides else None
        return None


class MaskRecord(BaseModel):
    """The fixed per-volume mask of a split (:meth:`mribench.physics.masks.MaskSpec.to_dict`)."""

    model_config = ConfigDict(extra="allow")

    type: str
    acceleration: int
    center_fraction: float | None = None
    seed: int = 0

    def describe(self) -> str:
        """The mask in a few words, e.g. ``random 4x, 33 centre lines`` or ``equispaced 4x, centre 8%``."""
        extra = self.model_extra or {}
        accs = extra.get("accelerations") or [self.acceleration]
        text = f"{self.type} {'/'.join(f'{a}x' for a in accs)}" + (" mix" if len(accs) > 1 else "")
        if extra.get("center_lines"):
            return f"{text}, {extra['center_lines']} centre lines"
        fractions = extra.get("center_fractions") or ([self.center_fraction] if self.center_fraction else [])
        if fractions:
            text += ", centre " + "/".join(f"{100 * float(c):g}%" for c in fractions)
        return text


class SplitRef(_Record):
    """Manifest hashes of one evaluated split (sha256 of its sorted ``file<TAB>slice`` lines).

    Attributes:
        manifest: the task's full split.
        evaluated_manifest: the slices actually evaluated (equal to ``manifest`` unless ``limit``).
        n_slices: slices evaluated.
        n_volumes: volumes evaluated.
    """

    manifest: str
    evaluated_manifest: str
    n_slices: Count
    n_volumes: Count


class SplitRecord(SplitRef):
    """An evaluated split of a run: its manifests, the split-file rows whose volume is missing, and
    where its volumes come from (e.g. the official validation folders, a hash split, a split file)."""

    missing_files: list[str] = Field(default_factory=list)
    source: str | None = None


class RunOptions(_Record):
    """The recorded :class:`EvalOptions` scalars (metrics and splits are recorded at the top level).

    Attributes:
        limit: volumes per split (see :class:`EvalOptions`); in runs without ``limit_seed``
            (written before volumes were selected) the first ``limit`` slices in file order.
        limit_seed: the seed of the volume selection; None without a limit.
        normalize_output, precision: as :class:`EvalOptions`.
    """

    limit: int | None = None
    limit_seed: int | None = None
    normalize_output: bool = False
    precision: str = "fp32"


class DataRecord(_Record):
    """Where the data came from: the root and the fingerprint of its slice index."""

    root: str
    index_fingerprint: str | None = None


class Provenance(BaseModel):
    """How and where a run ran: software, device, commit, time (never compared between runs).

    Further keys are kept as written (older runs carry some this version does not name).
    """

    model_config = ConfigDict(extra="allow")

    mribench: str | None = None
    torch: str | None = None
    fastmri: str | None = None
    python: str | None = None
    platform: str | None = None
    device: str | None = None
    device_name: str | None = None
    world_size: int = 1
    threads: int | None = None
    batch_size: int | None = None
    num_workers: int | None = None
    created: str | None = None
    git_commit_cwd: str | None = None
    git_commit_mribench: str | None = None
    mask_seed_rule: str | None = None


class RankTiming(_Record):
    """Seconds one rank spent in the model, in the metrics, and in all."""

    model_seconds: float = 0.0
    metric_seconds: float = 0.0
    wall_seconds: float | None = None


class RunConfig(_Record):
    """``run.json``: what a run evaluated, how its numbers are defined, and its provenance.

    Attributes:
        schema_version: :data:`SCHEMA_VERSION` (older runs are upgraded by :func:`parse_run_config`).
        task: task name, version, definition hash, description, origin.
        model: the model's identity.
        metrics: computed metrics, in order.
        higher_is_better: direction of each metric.
        metric_profiles: ``{metric: {"profile": id, "hash": sha256 of the definition}}``.
        unavailable_metrics: task metrics skipped (missing weights), with the reason.
        masks: the fixed mask of each evaluated split.
        splits: manifests of each evaluated split.
        options: the recorded :class:`EvalOptions` scalars.
        data: data root and index fingerprint (``None`` for runs rebuilt from a leaderboard entry).
        provenance: versions, device, commit, batch size, time.
        timing: ``{"rank<N>": seconds}``.
    """

    schema_version: int = SCHEMA_VERSION
    task: TaskRecord
    model: ModelRecord
    metrics: list[str]
    higher_is_better: dict[str, bool] = Field(default_factory=dict)
    metric_profiles: dict[str, JsonValue] = Field(default_factory=dict)
    unavailable_metrics: dict[str, str] = Field(default_factory=dict)
    masks: dict[str, MaskRecord] = Field(default_factory=dict)
    splits: dict[str, SplitRecord] = Field(default_factory=dict)
    options: RunOptions = Field(default_factory=RunOptions)
    data: DataRecord | None = None
    provenance: Provenance = Field(default_factory=Provenance)
    timing: dict[str, RankTiming] = Field(default_factory=dict)


def _upgrade_1(raw: dict[str, Any]) -> dict[str, Any]:
    """Schema 1 -> 2: the batch size moves from ``options`` (results) to ``provenance`` (how it ran);
    runs older than the ``precision`` option ran in fp32."""
    out = dict(raw)
    opts = dict(out.get("options") or {})
    prov = dict(out.get("provenance") or {})
    if "batch_size" in opts:
        prov.setdefault("batch_size", opts.pop("batch_size"))
    opts.setdefault("precision", "fp32")
    out["options"], out["provenance"], out["schema_version"] = opts, prov, 2
    return out


_UPGRADES: dict[int, Callable[[dict[str, Any]], dict[str, Any]]] = {1: _upgrade_1}


def parse_run_config(raw: Mapping[str, Any]) -> RunConfig:
    """Validate a ``run.json`` mapping of any schema version so far into a :class:`RunConfig`.

    Raises:
        ValueError: a newer schema than this mribench knows (``SchemaTooNew``), or an invalid
            record (pydantic's ``ValidationError``, a ``ValueError``).
    """
    data = dict(raw)
    version = int(data.get("schema_version", 1) or 1)
    if version > SCHEMA_VERSION:
        raise SchemaTooNew(f"expected result schema <= {SCHEMA_VERSION}, got {version} (upgrade mribench)")
    while version < SCHEMA_VERSION:
        data = _UPGRADES[version](data)
        version = int(data["schema_version"])
    return RunConfig.model_validate(data)


class SchemaTooNew(ValueError):
    """A record written by a newer mribench."""


# --------------------------------------------------------------------------- summary.json


class MetricSummary(_Record):
    """Mean of a metric over a split's successful slices with a 95% cluster-bootstrap CI (volumes).

    The mean and CI are over the ``n`` finite per-slice values; ``n_inf`` counts infinite ones (PSNR
    of an exact reconstruction), which are left out of the mean (the rule of
    :mod:`mribench.analysis.stats`). Region metrics scored per box have ``unit="box"``: ``n`` then
    counts boxes and ``n_slices`` the slices they lie on. The three optional fields are written only
    when they say something (``n_inf`` > 0, ``unit``/``n_slices`` set), so ordinary summaries keep
    their layout.
    """

    mean: FiniteFloat | None
    ci_low: FiniteFloat | None = None
    ci_high: FiniteFloat | None = None
    n: Count | None = None
    n_inf: Count = 0
    unit: Literal["box"] | None = None
    n_slices: Count | None = None

    @model_serializer(mode="wrap")
    def _omit_empty_extras(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        data: dict[str, Any] = handler(self)
        if not data.get("n_inf"):
            data.pop("n_inf", None)
        for key in ("unit", "n_slices"):
            if data.get(key) is None:
                data.pop(key, None)
        return data


class SplitSummary(_Record):
    """Per-split numbers (counts are required for evaluated entries, optional for reported ones)."""

    n_slices: Count | None = None
    n_ok: Count | None = None
    n_failed: Count | None = None
    n_volumes: Count | None = None
    metrics: dict[str, MetricSummary]


class ShiftSummary(_Record):
    """ID (test_P) and OOD (test_Q) means and the drop (positive = worse OOD, whatever the direction)."""

    id: FiniteFloat
    ood: FiniteFloat
    drop: FiniteFloat


class Failure(_Record):
    """A slice that failed (unreadable, the model raised, non-finite output)."""

    split: str
    file: str
    slice: int
    error: str | None = None


class RunSummary(_Record):
    """``summary.json``: numbers derived from the per-slice store (a cache, never the source of truth).

    Non-finite means and bounds (no successful slice, fewer than two volumes) are ``None``; a
    metric has a ``shift`` entry when both its ID and OOD means are finite.

    Attributes:
        splits: ``{split: SplitSummary}``.
        shift: ``{metric: ShiftSummary}`` when both test_P and test_Q were evaluated.
        failures: the failed slices.
    """

    splits: dict[str, SplitSummary] = Field(default_factory=dict)
    shift: dict[str, ShiftSummary] = Field(default_factory=dict)
    failures: list[Failure] = Field(default_factory=list)


# --------------------------------------------------------------------------- comparability

# What changes a slice's numbers: two runs differing in one of these cannot be compared slice by
# slice. ``*`` stands for each compared split (masks, splits) or metric (metric_profiles).
RESULT_FIELDS: tuple[str, ...] = (
    "task.name",
    "task.version",
    "task.sha256",
    "masks.*",
    "splits.*.manifest",
    "metric_profiles.*.hash",
    "options.normalize_output",
    "options.precision",
)
# What else makes a run the same run (resuming it): the model, what was evaluated and how much.
RUN_FIELDS: tuple[str, ...] = (
    "model.name",
    "model.kind",
    "model.sha256",
    "model.details",
    "metrics",
    "splits",
    "splits.*.evaluated_manifest",
    "options.limit",
    "options.limit_seed",
)
# Fields a record may not know (a leaderboard entry has no masks, older runs no task hash): a
# missing value there is not a difference.
_MAY_BE_UNKNOWN = ("task.sha256", "masks.*", "metric_profiles.*.hash")

_MISSING = object()


def _get(obj: Any, path: list[str]) -> Any:
    for key in path:
        if obj is None or obj is _MISSING:
            return _MISSING
        if isinstance(obj, BaseModel):
            obj = getattr(obj, key, _MISSING)
        elif isinstance(obj, Mapping):
            obj = obj.get(key, _MISSING)
        else:
            return _MISSING
    return obj


def _plain(v: Any) -> Any:
    if isinstance(v, BaseModel):
        return v.model_dump(mode="json")
    if isinstance(v, Mapping):
        return {k: _plain(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    return v


def _show(v: Any) -> str:
    if v is _MISSING:
        return "missing"
    if isinstance(v, str) and len(v) == 64 and all(c in "0123456789abcdef" for c in v):
        return v[:12]  # a sha256
    if isinstance(v, dict):
        return "{" + ", ".join(f"{k}: {_show(x)}" for k, x in sorted(v.items())) + "}"
    if isinstance(v, list) and all(isinstance(x, str) for x in v):
        return "[" + ", ".join(v) + "]"
    return repr(v)


def comparable(
    a: RunConfig,
    b: RunConfig,
    *,
    same_run: bool = False,
    splits: Iterable[str] | None = None,
    metrics: Iterable[str] | None = None,
) -> list[str]:
    """The recorded fields in which two runs differ so that their numbers are not comparable.

    Args:
        a, b: the two run records.
        same_run: also require what makes them one run (model, metrics, splits, limit): resuming.
        splits: splits whose definitions are compared (default: those of ``a`` and ``b`` together
            with ``same_run``, else the splits both evaluated).
        metrics: metrics whose definitions are compared (default: likewise).

    Returns:
        One line per differing field, e.g. ``"options.normalize_output: False != True"``; empty
        when the runs are comparable.
    """
    if splits is None:
        splits = (set(a.splits) | set(b.splits)) if same_run else (set(a.splits) & set(b.splits))
    if metrics is None:
        metrics = (set(a.metrics) | set(b.metrics)) if same_run else (set(a.metrics) & set(b.metrics))
    keys = {"masks": sorted(splits), "splits": sorted(splits), "metric_profiles": sorted(metrics)}
    fields = (*RESULT_FIELDS, *RUN_FIELDS) if same_run else RESULT_FIELDS
    out: list[str] = []
    for field in fields:
        parts = field.split(".")
        paths = [[*parts[:1], k, *parts[2:]] for k in keys[parts[0]]] if "*" in parts else [parts]
        for path in paths:
            va, vb = _plain(_get(a, path)), _plain(_get(b, path))
            if field in _MAY_BE_UNKNOWN and (va in (None, _MISSING) or vb in (None, _MISSING)):
                continue
            if field == "splits":
                va, vb = sorted(va), sorted(vb)
            out += _differences(".".join(path), va, vb)
    return out


def _differences(where: str, va: Any, vb: Any) -> list[str]:
    """``where: a != b`` lines; two mappings are compared key by key (``model.details.sources.x.py``)."""
    if va == vb:
        return []
    if isinstance(va, dict) and isinstance(vb, dict):
        out: list[str] = []
        for k in sorted(set(va) | set(vb), key=str):
            out += _differences(f"{where}.{k}", va.get(k, _MISSING), vb.get(k, _MISSING))
        return out
    return [f"{where}: {_show(va)} != {_show(vb)}"]


__all__ = [
    "EVAL_SPLITS",
    "PRECISIONS",
    "RESULT_FIELDS",
    "RUN_FIELDS",
    "RUN_MODES",
    "SCHEMA_VERSION",
    "SPLITS",
    "DataRecord",
    "EvalOptions",
    "Failure",
    "MaskRecord",
    "MetricSummary",
    "ModelRecord",
    "Provenance",
    "RankTiming",
    "RunConfig",
    "RunMode",
    "RunOptions",
    "RunSummary",
    "Runtime",
    "SchemaTooNew",
    "ShiftSummary",
    "SplitRecord",
    "SplitRef",
    "SplitSummary",
    "TaskRecord",
    "TaskRef",
    "comparable",
    "parse_run_config",
]
