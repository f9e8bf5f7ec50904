"""Per-slice result store and run summaries.

A run directory holds:

- ``run.json``: the run's configuration and provenance, a :class:`~mribench.api.run.RunConfig`
  (schema :data:`SCHEMA_VERSION`; older schemas are upgraded on reading), written atomically before
  any slice is computed;
- ``slices/*.jsonl``: one JSON record per finished slice, appended line by line and fsync'd (one file
  per worker rank). Region metrics scored per box also keep one score per annotated box
  (``box_metrics``); their summaries average over boxes. A line cut short by a crash is ignored on load, so a killed run loses at most the
  batch in flight and resumes where it stopped;
- ``summary.json``: a cache of :func:`summarize` (a :class:`~mribench.api.run.RunSummary`) — always
  re-derivable from the slices, never the source of truth.
"""

from __future__ import annotations

import json
import math
import numbers
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pydantic import ValidationError

from mribench.api.run import (
    SCHEMA_VERSION,
    Failure,
    MetricSummary,
    RunConfig,
    RunSummary,
    SchemaTooNew,
    ShiftSummary,
    SplitSummary,
    parse_run_config,
)
from mribench.errors import ResultsError
from mribench.paths import atomic_write_text

SLICE_COLUMNS = ["split", "file", "slice", "status", "error", "seconds"]
OPTIONAL_COLUMNS = ["ttt_steps"]  # test-time-training steps per slice, when the model reports them
# Region metrics are scored once per box: a record keeps the per-box scores under "box_metrics"
# ({metric: [score or null per annotated box]}) and the per-slice mean under "metrics"; the frame
# gets a "<metric>:n_boxes" column (boxes scored on the slice) so summaries average over boxes.
BOX_COUNT_SUFFIX = ":n_boxes"


def box_count_column(metric: str) -> str:
    """Frame column holding the number of boxes a per-box metric scored on each slice."""
    return metric + BOX_COUNT_SUFFIX


def _json_default(o: Any) -> Any:
    if isinstance(o, (np.floating, np.integer)):
        return o.item()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def json_number(v: float) -> float | str | None:
    """How a float is stored in results JSON: itself when finite, None for NaN, ``"inf"``/``"-inf"``."""
    if math.isfinite(v):
        return v
    return None if v != v else ("inf" if v > 0 else "-inf")


def dumps(obj: Any, indent: int | None = None) -> str:
    """Standard JSON with sorted keys; NaN is written as null, +-Inf as the strings ``"inf"``/``"-inf"``.

    Results never contain non-standard JSON (``NaN``, ``Infinity``). NaN means "not defined" and
    reads back as NaN; an infinity is a real value (PSNR of an exact reconstruction) and must not
    become a missing one, so it is written as a string that :func:`metric_value` (and ``float()``,
    ``pandas.to_numeric``) read back as the infinity (see :mod:`mribench.analysis.stats`).
    """
    try:  # fast path: plain JSON types and finite numbers
        return json.dumps(obj, sort_keys=True, allow_nan=False, indent=indent)
    except (ValueError, TypeError):
        pass

    def clean(o: Any) -> Any:
        if isinstance(o, float):
            return json_number(o)
        if isinstance(o, dict):
            return {str(k): clean(v) for k, v in o.items()}
        if isinstance(o, (list, tuple)):
            return [clean(v) for v in o]
        if isinstance(o, (np.floating, np.integer)):
            return clean(o.item())
        return o

    return json.dumps(clean(obj), default=_json_default, sort_keys=True, indent=indent)


class SliceStore:
    """Append-only per-slice records of one run (one JSONL file per rank).

    Each batch is one ``write`` of complete lines, so a killed process never loses a written batch
    (the page cache survives it); ``fsync`` (against power loss) runs at most every
    ``fsync_interval`` seconds and at :meth:`close`. The file stays open between appends.
    """

    def __init__(self, run_dir: str | os.PathLike[str], rank: int = 0, fsync_interval: float = 1.0) -> None:
        self.run_dir = Path(run_dir)
        self.dir = self.run_dir / "slices"
        self.path = self.dir / f"rank{rank}.jsonl"
        self.fsync_interval = fsync_interval
        self._last_sync = 0.0
        self._dirty = False
        self._fd: int | None = None

    def _open(self) -> tuple[int, bytes]:
        """Open for appending; returns the fd and a newline that closes a line torn by a crash, if any."""
        self.dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
        size = os.fstat(fd).st_size
        torn = size > 0 and os.pread(fd, 1, size - 1) != b"\n"
        self._fd = fd
        return fd, b"\n" if torn else b""

    def sync(self) -> None:
        """Flush written records to disk."""
        if self._dirty and self._fd is not None:
            os.fsync(self._fd)
        self._dirty = False

    def close(self) -> None:
        """Flush and close the file (appending again reopens it)."""
        self.sync()
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def append(self, records: list[dict[str, Any]]) -> None:
        """Append records as one write of complete lines."""
        if not records:
            return
        data = "".join(dumps(r) + "\n" for r in records).encode()
        if self._fd is None:
            fd, prefix = self._open()
            data = prefix + data  # keeps the new records intact after a torn last line
        else:
            fd = self._fd
        os.write(fd, data)
        now = time.monotonic()
        if now - self._last_sync >= self.fsync_interval:
            os.fsync(fd)
            self._last_sync = now
            self._dirty = False
        else:
            self._dirty = True

    def __del__(self) -> None:
        if getattr(self, "_fd", None) is not None:
            os.close(self._fd)  # type: ignore[arg-type]

    def records(self) -> list[dict[str, Any]]:
        """All complete records of every rank (a truncated line, or one without a string split and
        file and an integer slice, is skipped)."""
        out: list[dict[str, Any]] = []
        if not self.dir.is_dir():
            return out
        for f in sorted(self.dir.glob("*.jsonl")):
            for line in f.read_text().splitlines():
                try:
                    rec = json.loads(line)
                except json.JSONDecodeError:
                    continue  # a line cut short by a crash
                if (
                    isinstance(rec, dict)
                    and isinstance(rec.get("split"), str)
                    and isinstance(rec.get("file"), str)
                    and isinstance(rec.get("slice"), int)
                ):
                    out.append(rec)
        return out

    def done_keys(self) -> set[tuple[str, str, int]]:
        return {(r["split"], r["file"], int(r["slice"])) for r in self.records()}


_INFINITIES = {"inf": math.inf, "-inf": -math.inf}


def metric_value(v: Any) -> float:
    """A stored per-slice metric value as a float: a number, null (NaN), or ``"inf"``/``"-inf"``.

    Raises:
        ResultsError: for any other value.
    """
    if v is None:
        return math.nan
    if isinstance(v, numbers.Real) and not isinstance(v, bool):
        return float(v)
    if isinstance(v, str) and v in _INFINITIES:
        return _INFINITIES[v]
    raise ResultsError(f'expected a metric value as a number, null, "inf" or "-inf", got {v!r}')


def records_to_frame(records: list[dict[str, Any]], metrics: list[str]) -> pd.DataFrame:
    """Flatten records into one row per slice: split, file, slice, status, error, seconds, <metrics>.

    Rows are sorted by (split, file, slice). Duplicate keys (possible only after a crash between two
    ranks' writes) keep the last record.
    """
    extra = [c for c in OPTIONAL_COLUMNS if any(c in r for r in records)]
    columns = [*SLICE_COLUMNS, *extra, *metrics]
    latest: dict[tuple[str, str, int], dict[str, Any]] = {}
    for r in records:  # plain Python: pandas' per-call overhead dominates for typical run sizes
        latest[(r["split"], r["file"], int(r["slice"]))] = r
    keys = sorted(latest)
    if not keys:
        return pd.DataFrame(columns=columns)
    data: dict[str, list[Any]] = {c: [latest[k].get(c) for k in keys] for c in (*SLICE_COLUMNS, *extra)}
    data["slice"] = [k[2] for k in keys]  # the int() of the key
    for m in metrics:
        data[m] = [metric_value((latest[k].get("metrics") or {}).get(m)) for k in keys]
    for m in metrics:
        if any(m in (r.get("box_metrics") or {}) for r in latest.values()):
            counts = []
            for k in keys:
                boxes = (latest[k].get("box_metrics") or {}).get(m) or []
                counts.append(float(sum(v is not None and math.isfinite(float(v)) for v in boxes)))
            data[box_count_column(m)] = counts
            columns.append(box_count_column(m))
    return pd.DataFrame(data, columns=columns)


def box_scores(records: list[dict[str, Any]]) -> pd.DataFrame:
    """One row per scored box: split, file, slice, metric, box (index in the slice's annotations), value.

    Records of a slice written twice (after a crash) keep the last one, as in :func:`records_to_frame`.
    """
    latest: dict[tuple[str, str, int], dict[str, Any]] = {}
    for r in records:
        latest[(str(r["split"]), str(r["file"]), int(r["slice"]))] = r
    rows = []
    for (split, file, sl), r in sorted(latest.items()):
        for m, values in sorted((r.get("box_metrics") or {}).items()):
            for b, v in enumerate(values or []):
                if v is not None and math.isfinite(float(v)):
                    rows.append((split, file, sl, m, b, float(v)))
    return pd.DataFrame(rows, columns=["split", "file", "slice", "metric", "box", "value"])


def _box_cis(files: np.ndarray, values: np.ndarray, counts: np.ndarray, seed: int = 0) -> dict[str, Any]:
    """Mean over boxes and 95% CI of a per-box metric from per-slice means (N,) and box counts (N,).

    The mean over boxes is ``sum(count * mean) / sum(count)``; a draw resamples volumes (cluster
    bootstrap, 1000 draws) and takes the same ratio over the drawn slices.
    """
    from mribench.analysis.stats import cluster_bootstrap_means, percentile_interval

    keep = np.isfinite(values) & np.isfinite(counts) & (counts > 0)
    nan = float("nan")
    n_boxes = int(counts[keep].sum())
    mean, low, high = nan, nan, nan
    if n_boxes:
        w, v = counts[keep], values[keep]
        mean = float((w * v).sum() / w.sum())
        if len(set(files[keep].tolist())) >= 2:
            draws = cluster_bootstrap_means(np.stack([w * v, w], axis=1), files[keep], n_boot=1000, seed=seed)
            low, high = percentile_interval(draws[:, 0] / draws[:, 1], 0.05)
    return {"mean": mean, "ci_low": low, "ci_high": high, "n": n_boxes, "unit": "box", "n_slices": int(keep.sum())}


def _metric_cis(files: np.ndarray, arrays: dict[str, np.ndarray], seed: int = 0) -> dict[str, dict[str, Any]]:
    """Per-metric mean and 95% CI (cluster bootstrap over volumes, 1000 draws).

    The rule for non-finite values is :mod:`mribench.analysis.stats`'s: ``mean``/CI over the ``n``
    finite values, +-Inf values counted in ``n_inf``, NaN (not defined) left out.

    Args:
        files: (N,) volume of each slice.
        arrays: ``{metric: (N,) float64 values}``.
        seed: seed of the bootstrap.
    """
    from mribench.analysis.stats import summarize_columns

    cis = summarize_columns(arrays, files, n_boot=1000, alpha=0.05, seed=seed)
    return {m: {"mean": c.mean, "ci_low": c.low, "ci_high": c.high, "n": c.n, "n_inf": c.n_inf} for m, c in cis.items()}


def _finite(x: float) -> float | None:
    return x if math.isfinite(x) else None


def summarize(slices: pd.DataFrame, metrics: list[str], higher_is_better: dict[str, bool]) -> RunSummary:
    """Derive the run summary from the per-slice table.

    Args:
        slices: one row per slice (split, file, slice, status, error, <metrics>).
        metrics: the metrics to summarise.
        higher_is_better: direction of each metric (default higher is better).

    Returns:
        The :class:`RunSummary`: per split the counts and, per metric, the mean with its 95% CI
        (``None`` where not finite) over the ``n`` finite values, and ``n_inf``, the infinite ones
        (e.g. PSNR of exact reconstructions) left out of the mean (see :mod:`mribench.analysis.stats`);
        per metric the ``shift`` from ID to OOD, whose ``drop`` is the loss from ID to OOD (positive =
        worse out of distribution) whatever the metric's direction; the failed slices.
        Metrics with a ``<metric>:n_boxes`` column are averaged over boxes (``n`` = boxes, plus
        ``unit="box"`` and ``n_slices``), the others over slices.
    """
    out = RunSummary()
    if slices.empty:
        return out
    # NumPy columns rather than groupby: this runs at the end of every evaluation
    split = slices["split"].to_numpy(dtype=object)
    files = slices["file"].to_numpy(dtype=object)
    is_ok = slices["status"].to_numpy(dtype=object) == "ok"
    values = {m: slices[m].to_numpy(dtype=np.float64) for m in metrics}
    counts = {
        m: slices[box_count_column(m)].to_numpy(dtype=np.float64)
        for m in metrics
        if box_count_column(m) in slices.columns
    }
    for name in sorted(set(split.tolist())):
        sel = split == name
        ok = sel & is_ok
        per_box = {m: c for m, c in counts.items() if m in values}
        cis = _metric_cis(files[ok], {m: v[ok] for m, v in values.items() if m not in per_box})
        for m, c in per_box.items():  # region metrics: one score per box, averaged over boxes
            cis[m] = _box_cis(files[ok], values[m][ok], c[ok])
        out.splits[name] = SplitSummary(
            n_slices=int(sel.sum()),
            n_ok=int(ok.sum()),
            n_failed=int((sel & ~is_ok).sum()),
            n_volumes=len(set(files[ok].tolist())),
            metrics={
                m: MetricSummary(
                    mean=_finite(cis[m]["mean"]),
                    ci_low=_finite(cis[m]["ci_low"]),
                    ci_high=_finite(cis[m]["ci_high"]),
                    n=cis[m]["n"],
                    n_inf=cis[m].get("n_inf", 0),
                    unit=cis[m].get("unit"),
                    n_slices=cis[m].get("n_slices"),
                )
                for m in metrics
            },
        )
    sp = out.splits
    if "test_P" in sp and "test_Q" in sp:
        for m in metrics:
            i, o = sp["test_P"].metrics[m].mean, sp["test_Q"].metrics[m].mean
            if i is not None and o is not None:
                hib = higher_is_better.get(m, True)
                drop = (i - o) if hib else (o - i)
                if math.isfinite(drop):
                    out.shift[m] = ShiftSummary(id=i, ood=o, drop=drop)
    bad = np.flatnonzero(~is_ok).tolist()
    if bad:
        sl = slices["slice"].to_numpy()
        err = slices["error"].to_numpy(dtype=object) if "error" in slices.columns else [None] * len(slices)
        out.failures = [
            Failure(split=split[i], file=files[i], slice=int(sl[i]), error=None if err[i] is None else str(err[i]))
            for i in bad
        ]
    return out


@dataclass(frozen=True)
class RunReuse:
    """How an evaluation used slices already stored in its run directory.

    Attributes:
        kind: ``stored`` (an identical finished run: its stored result was returned, nothing
            computed) or ``continued`` (an identical unfinished run: only the missing slices were
            computed).
        n_stored: planned slices that were stored already.
        n_planned: slices the evaluation planned.
        left_out: task metrics the run was started without (their weights were missing then) and
            that stay out of it although they are computable now.
    """

    kind: str
    n_stored: int
    n_planned: int
    left_out: list[str] = field(default_factory=list)


@dataclass
class RunResult:
    """A run loaded from its directory.

    Attributes:
        run_dir: the folder.
        config: the run record (``run.json``).
        slices: one row per slice (split, file, slice, status, error, seconds, metrics...).
        summary: :func:`summarize` of ``slices``.
        reuse: set by :func:`mribench.evaluate` when stored slices were used (None: all computed now,
            or loaded with :func:`load_run`).
    """

    run_dir: Path
    config: RunConfig
    slices: pd.DataFrame
    summary: RunSummary = field(default_factory=RunSummary)
    reuse: RunReuse | None = None

    @property
    def failures(self) -> pd.DataFrame:
        return self.slices[self.slices["status"] != "ok"] if not self.slices.empty else self.slices

    def to_json(self) -> dict[str, Any]:
        """Summary + provenance, as written by ``--output``."""
        return {
            "schema_version": SCHEMA_VERSION,
            "run_dir": str(self.run_dir),
            "config": self.config.model_dump(mode="json"),
            "summary": self.summary.model_dump(mode="json"),
        }


def describe_measurement(config: RunConfig) -> str:
    """What a run's numbers measure, in one line: the data, the mask of each split, what was
    evaluated, the CI and the sign of the ID -> OOD drop (the caption of every result table)."""
    from mribench.data.root import data_label

    parts = [f"data: {data_label(config.data.root) if config.data else 'unknown'}"]
    masks = {sp: m.describe() for sp, m in config.masks.items()}
    if masks:
        if len(set(masks.values())) == 1:
            parts.append(f"mask: {next(iter(masks.values()))} ({' and '.join(masks)})")
        else:
            parts.append("masks: " + "; ".join(f"{sp} {text}" for sp, text in masks.items()))
    if config.options.limit is not None:
        parts.append(f"at most {config.options.limit} volumes per split (seed {config.options.limit_seed})")
    if config.options.normalize_output:
        parts.append("outputs normalised to the target's mean/std")
    if config.options.precision != "fp32":
        parts.append(f"model under {config.options.precision} autocast")
    parts.append("CI: 95% bootstrap over volumes")
    parts.append("drop = ID - OOD loss, positive = worse out of distribution (whatever the metric's direction)")
    return "; ".join(parts)


def read_config(run_dir: str | os.PathLike[str]) -> RunConfig:
    """Read ``run.json`` (upgrading older schemas).

    Raises:
        ResultsError: if missing, corrupt, invalid or of a newer schema.
    """
    p = Path(run_dir) / "run.json"
    if not p.is_file():
        raise ResultsError(f"expected a run directory with run.json, got {Path(run_dir)}")
    try:
        raw = json.loads(p.read_text())
    except json.JSONDecodeError as e:
        raise ResultsError(f"expected valid JSON in {p}, got: {e}") from None
    return config_from_json(raw, p)


def config_from_json(raw: Any, where: str | os.PathLike[str]) -> RunConfig:
    """A :class:`RunConfig` from the JSON of a run record of any schema so far.

    Raises:
        ResultsError: naming ``where`` and the first invalid field.
    """
    if not isinstance(raw, dict):
        raise ResultsError(f"expected a JSON object as the run record in {where}, got {type(raw).__name__}")
    try:
        return parse_run_config(raw)
    except SchemaTooNew as e:
        raise ResultsError(str(e)) from None
    except ValidationError as e:
        err = e.errors()[0]
        field_name = ".".join(str(x) for x in err["loc"]) or "record"
        raise ResultsError(f"expected a valid run record in {where}, got {field_name}: {err['msg']}") from None


def write_config(run_dir: str | os.PathLike[str], config: RunConfig) -> None:
    """Write ``run.json`` atomically."""
    atomic_write_text(Path(run_dir) / "run.json", dumps(config.model_dump(mode="json"), indent=2))


def write_summary(run_dir: str | os.PathLike[str], summary: RunSummary) -> None:
    """Write the ``summary.json`` cache (not fsync'd: it is re-derivable from the slices)."""
    atomic_write_text(Path(run_dir) / "summary.json", dumps(summary.model_dump(mode="json")), durable=False)


def load_run(run_dir: str | os.PathLike[str]) -> RunResult:
    """Load a run directory: config, per-slice table and (re-derived) summary."""
    cfg = read_config(run_dir)
    slices = records_to_frame(SliceStore(run_dir).records(), list(cfg.metrics))
    return RunResult(Path(run_dir), cfg, slices, summarize(slices, cfg.metrics, cfg.higher_is_better))
