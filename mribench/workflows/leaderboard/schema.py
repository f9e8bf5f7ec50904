"""Leaderboard entry schema, version 1 (pydantic v2 models; exported as JSON Schema).

An entry is one model's scores on one task, stored as reviewable data in git:

* ``kind: evaluated`` -- run with mribench on the benchmark data; its per-slice results sit next to
  the JSON as a Parquet sidecar (``<model>.slices.parquet``, sha256 recorded here), and every
  summary number is re-derivable from that sidecar (``mribench leaderboard validate`` does so).
* ``kind: reported`` -- numbers copied from a paper, on data mribench cannot run (real fastMRI);
  no sidecar, but a citation with the exact table they come from is required.

The task and split references and the split, metric and shift summaries are the run record's
shapes (:mod:`mribench.api.run`), with the leaderboard's stricter names and hashes.

All text is plain text (never HTML): renderers escape it. Numbers are JSON numbers; non-finite
values are not representable (a missing value is ``null``).
"""

from __future__ import annotations

import datetime as _dt
import unicodedata
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    FiniteFloat,
    JsonValue,
    model_validator,
)

from mribench.api import run

SCHEMA_VERSION = 1
KINDS = ("evaluated", "reported")
MAX_ENTRY_BYTES = 5 * 1024 * 1024  # a JSON entry
MAX_SIDECAR_BYTES = 50 * 1024 * 1024  # a per-slice Parquet sidecar
SIDECAR_SUFFIX = ".slices.parquet"

MODEL_ID_PATTERN = r"^[a-z0-9](?:[a-z0-9_-]{0,62}[a-z0-9])?$"
TASK_NAME_PATTERN = r"^[A-Za-z0-9](?:[A-Za-z0-9._-]{0,62}[A-Za-z0-9])?$"
SHA256_PATTERN = r"^[0-9a-f]{64}$"
METRIC_PATTERN = r"^[A-Za-z][A-Za-z0-9_.-]{0,63}$"
SPLIT_NAMES = ("train_P", "test_P", "train_Q", "test_Q")


def _plain_text(value: str, *, multiline: bool = False) -> str:
    """Reject control characters (and newlines unless ``multiline``); text is never HTML-rendered."""
    for ch in value:
        if ch in "\n\t" and multiline:
            continue
        if unicodedata.category(ch) in ("Cc", "Cf", "Cs", "Co"):
            raise ValueError(f"expected plain text without control characters, got {ch!r}")
    return value


def _single_line(value: str) -> str:
    return _plain_text(value)


def _multi_line(value: str) -> str:
    return _plain_text(value, multiline=True)


def _http_url(value: str) -> str:
    """Accept only absolute http(s) URLs without whitespace or control characters."""
    _plain_text(value)
    if any(c.isspace() for c in value):
        raise ValueError(f"expected a URL without whitespace, got {value!r}")
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"expected an absolute http:// or https:// URL, got {value!r}")
    return value


Text = Annotated[str, Field(min_length=1, max_length=200), AfterValidator(_single_line)]
LongText = Annotated[str, Field(min_length=1, max_length=2000), AfterValidator(_multi_line)]
Url = Annotated[str, Field(min_length=8, max_length=2000), AfterValidator(_http_url)]
Sha256 = Annotated[str, Field(pattern=SHA256_PATTERN)]
ModelId = Annotated[str, Field(pattern=MODEL_ID_PATTERN)]
TaskName = Annotated[str, Field(pattern=TASK_NAME_PATTERN)]
MetricName = Annotated[str, Field(pattern=METRIC_PATTERN)]
SplitName = Literal["train_P", "test_P", "train_Q", "test_Q"]
Count = Annotated[int, Field(ge=0)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)


class ModelInfo(_Model):
    """Who and what: the model being ranked.

    Attributes:
        id: slug, unique within a task; the file is ``<id>.json``.
        display_name: human name (plain text).
        authors: author names.
        paper: http(s) link to the paper.
        code: http(s) link to the code.
        training_data: what the model was trained on (plain text).
        architecture: model kind/architecture as recorded by the run (``zero-filled``, ``unet``...).
        sha256: hash of the model's weights/definition as recorded by the run.
        trained_on: the distribution the model was trained on: ``P`` (the task's source), ``Q``
            (its target: such an entry is the task's Q-trained reference, whose test_Q scores give
            the other entries' gap; a reference is shown apart, never ranked nor in the fit), ``P+Q``
            (both); None when not stated (untrained models, models from elsewhere).
    """

    id: ModelId
    display_name: Text
    authors: list[Text] = Field(default_factory=list, max_length=100)
    paper: Url | None = None
    code: Url | None = None
    training_data: LongText | None = None
    architecture: Text | None = None
    sha256: Annotated[str, Field(max_length=128, pattern=r"^[0-9a-f]*$")] | None = None
    trained_on: Literal["P", "Q", "P+Q"] | None = None


class TaskRef(run.TaskRef):
    """The task and the definition it was scored against."""

    model_config = _Model.model_config

    name: TaskName
    version: Annotated[int, Field(ge=1)]
    sha256: Sha256 | None = None


class DataInfo(_Model):
    """The data the numbers come from.

    Attributes:
        name: ``MRIBench-Sim`` (the embedded benchmark), ``fastMRI`` (real data, reported entries), ...
        real: True when the numbers are on real scanner data (not comparable with MRIBench-Sim).
    """

    name: Text
    real: bool = False


class SplitRef(run.SplitRef):
    """Manifest hashes of one evaluated split (sha256 of its sorted ``file<TAB>slice`` lines).

    Attributes:
        manifest: the task's full split.
        evaluated_manifest: the slices actually evaluated (equal to ``manifest`` unless ``limit``).
        n_slices: slices evaluated.
        n_volumes: volumes evaluated.
    """

    model_config = _Model.model_config

    manifest: Sha256
    evaluated_manifest: Sha256


MetricSummary = run.MetricSummary
ShiftSummary = run.ShiftSummary


class SplitSummary(run.SplitSummary):
    """Per-split numbers (counts are required for evaluated entries, optional for reported ones)."""

    model_config = _Model.model_config

    metrics: dict[MetricName, MetricSummary]


class GapSummary(_Model):
    """Distribution-shift performance gap on test_Q against a model trained on Q.

    ``gap = s * (q_trained - p_trained)`` with ``s = +1`` for higher-is-better metrics, else -1.
    ``fraction_closed = 1 - gap / gap_before`` when the gap without the intervention is given.
    For a test-time-training entry this is Darestani et al.'s fraction of the gap closed when
    ``gap_before`` is the SUPERVISED gap (Q-trained minus P-trained, both supervised) and ``gap`` the
    gap between the self-supervised Q- and P-trained models after TTT.

    Attributes:
        q_trained: the reference model trained on Q, on test_Q.
        p_trained: this model (trained on P), on test_Q.
        gap: the performance gap.
        reference: what the Q-trained reference is (plain text).
        gap_before: the gap without this entry's intervention (Darestani et al.: the supervised gap).
        fraction_closed: ``1 - gap / gap_before``.
        baseline: what the models without the intervention are (plain text).
    """

    q_trained: FiniteFloat
    p_trained: FiniteFloat
    gap: FiniteFloat
    reference: Text
    gap_before: FiniteFloat | None = None
    fraction_closed: FiniteFloat | None = None
    baseline: Text | None = None


class Summary(_Model):
    """Summary numbers (for evaluated entries: exactly what the per-slice sidecar recomputes to)."""

    splits: dict[SplitName, SplitSummary]
    shift: dict[MetricName, ShiftSummary] = Field(default_factory=dict)
    gap: dict[MetricName, GapSummary] = Field(default_factory=dict)


class SlicesRef(_Model):
    """The per-slice Parquet sidecar next to the JSON (columns split, file, slice, status, seconds, <metrics>)."""

    file: Annotated[str, Field(pattern=r"^[a-z0-9](?:[a-z0-9_-]{0,62}[a-z0-9])?\.slices\.parquet$")]
    sha256: Sha256
    rows: Count


class Cost(_Model):
    """Compute cost of the evaluation (the numbers re-derived from the per-slice sidecar).

    Attributes:
        device: ``cpu``, ``cuda``, ``cuda:0``...
        device_name: the processor or GPU name.
        seconds_per_slice: mean of the sidecar's ``seconds`` column (model + metrics, per slice).
        ttt_steps: mean of the sidecar's ``ttt_steps`` column (test-time-training steps per slice,
            recorded by models that adapt at test time); None without that column.
    """

    device: Text
    device_name: Text | None = None
    seconds_per_slice: Annotated[FiniteFloat, Field(ge=0)] | None = None
    ttt_steps: Annotated[FiniteFloat, Field(ge=0)] | None = None


class Source(_Model):
    """Where a reported entry's numbers come from.

    Attributes:
        citation: full reference of the paper.
        table: exact location of the numbers ("Table 1, U-Net, anatomy shift").
        url: link to the paper or the stored copy the numbers were checked against.
        verified_from: how the numbers were verified.
    """

    citation: LongText
    table: Text
    url: Url | None = None
    verified_from: LongText | None = None


class Audit(_Model):
    """One audit of an evaluated entry: a sample of its slices re-evaluated and compared.

    ``mribench leaderboard audit`` draws the sample when it runs (whole volumes, a fraction of each
    evaluated split, by a fresh seed), re-evaluates the model on it and compares every slice's
    values with the sidecar's within each metric's tolerance
    (:class:`mribench.metrics.registry.Tolerance`).

    Attributes:
        date: when the audit ran (UTC).
        mribench_version: the version that re-evaluated.
        passed: every sampled slice matched (status and every metric within its tolerance).
        fraction: the fraction of each split's volumes sampled.
        seed: the seed that drew the sample (:func:`mribench.data.subset.volume_order`).
        sample: the re-evaluated volumes per split.
        n_slices: the re-evaluated slices.
        mismatches: slices outside the tolerance or whose status differs.
        max_difference: per metric, the largest ``|re-evaluated - recorded|`` over the sample.
        device: where it ran.
    """

    date: _dt.datetime
    mribench_version: Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[0-9A-Za-z.+_-]+$")]
    passed: bool
    fraction: Annotated[FiniteFloat, Field(gt=0, le=1)]
    seed: Annotated[int, Field(ge=0)]
    sample: dict[SplitName, list[Text]]
    n_slices: Count
    mismatches: Count
    max_difference: dict[MetricName, Annotated[FiniteFloat, Field(ge=0)] | None]
    device: Text | None = None


class Entry(_Model):
    """One leaderboard entry (schema version 1).

    Attributes:
        schema_version: always 1.
        kind: ``evaluated`` (run with mribench, per-slice sidecar) or ``reported`` (from a paper).
        model: the ranked model.
        task: task name, version and definition hash.
        data: the dataset the numbers are on.
        splits: manifest hashes of the evaluated splits (evaluated entries).
        limit: at most this many volumes per split were evaluated (None = full splits).
        limit_seed: the seed of that selection (:func:`mribench.data.subset.select_volumes`).
        partial: the entry is not ranked: it does not cover every slice of the task's test splits
            or has failed slices (submitted with ``--partial``; shown apart, never in the fit).
        metrics: metric names, in the run's order.
        higher_is_better: direction of each metric.
        metric_profiles: the metric implementations' profile ids, as recorded by the run.
        mribench_version: version of mribench that produced the numbers.
        summary: the numbers.
        slices: the per-slice sidecar (evaluated entries).
        cost: compute cost (evaluated entries).
        date: when the numbers were produced (or entered, for reported entries).
        provenance: versions, commit, device as recorded by the run (scalars only).
        source: citation (reported entries).
        notes: free text.
        audits: re-evaluations of samples of the entry's slices (:class:`Audit`), oldest first.
    """

    schema_version: Literal[1] = 1
    kind: Literal["evaluated", "reported"]
    model: ModelInfo
    task: TaskRef
    data: DataInfo
    splits: dict[SplitName, SplitRef] = Field(default_factory=dict)
    limit: Annotated[int, Field(ge=1)] | None = None
    limit_seed: Annotated[int, Field(ge=0)] | None = None
    partial: bool = False
    metrics: list[MetricName] = Field(min_length=1, max_length=64)
    higher_is_better: dict[MetricName, bool]
    metric_profiles: dict[MetricName, JsonValue] = Field(default_factory=dict)
    mribench_version: Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[0-9A-Za-z.+_-]+$")]
    summary: Summary
    slices: SlicesRef | None = None
    cost: Cost | None = None
    date: _dt.date
    provenance: dict[
        Annotated[str, Field(max_length=64)], Annotated[str, Field(max_length=500)] | FiniteFloat | int | bool | None
    ] = Field(default_factory=dict)
    source: Source | None = None
    notes: LongText | None = None
    audits: list[Audit] = Field(default_factory=list, max_length=1000)

    @model_validator(mode="after")
    def _kind_rules(self) -> Entry:
        if self.kind == "evaluated":
            missing = [k for k in ("slices", "cost") if getattr(self, k) is None]
            if missing or not self.splits:
                raise ValueError(
                    f"expected an evaluated entry to have splits, slices and cost, got none for "
                    f"{', '.join(missing or ['splits'])}"
                )
            if self.source is not None:
                raise ValueError("expected no 'source' on an evaluated entry (use kind: reported for paper numbers)")
            if self.slices is not None and self.slices.file != f"{self.model.id}{SIDECAR_SUFFIX}":
                raise ValueError(f"expected slices.file {self.model.id}{SIDECAR_SUFFIX!s}, got {self.slices.file}")
            if set(self.summary.splits) != set(self.splits):
                raise ValueError(f"expected summary splits {sorted(self.splits)}, got {sorted(self.summary.splits)}")
        else:
            if self.source is None:
                raise ValueError("expected a reported entry to carry 'source' (citation + table)")
            if self.slices is not None:
                raise ValueError("expected no per-slice sidecar on a reported entry")
            if self.audits:
                raise ValueError("expected no audits on a reported entry (it has no per-slice results to re-evaluate)")
        for m in self.metrics:
            if m not in self.higher_is_better:
                raise ValueError(f"expected higher_is_better for every metric, got none for {m!r}")
        known = set(self.metrics)
        for sp, s in self.summary.splits.items():
            extra = set(s.metrics) - known
            if extra:
                raise ValueError(f"expected summary.splits.{sp} metrics among {self.metrics}, got {sorted(extra)}")
        for part in ("shift", "gap"):
            extra = set(getattr(self.summary, part)) - known
            if extra:
                raise ValueError(f"expected summary.{part} metrics among {self.metrics}, got {sorted(extra)}")
        return self


def json_schema() -> dict[str, Any]:
    """The JSON Schema of :class:`Entry` (what ``leaderboard/schema/entry-v1.json`` holds)."""
    schema = Entry.model_json_schema(mode="validation")
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    return schema
